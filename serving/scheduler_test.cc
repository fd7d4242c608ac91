// The continuous-batching scheduler against one-request-at-a-time generation
// (LanguageModel::GenerateIds): the same tokens for greedy and seeded
// sampling, the same logprobs within 1e-4, the same text; plus the queue
// bound, cancellation, deadlines and stop strings.
#include "serving/scheduler.h"

#include <cmath>
#include <thread>

#include "common/json_util.h"
#include "gtest/gtest.h"
#include "model/tokenizer.h"

namespace streamlm {
namespace {

std::shared_ptr<LanguageModel> PeakyModel() {
  std::vector<std::string> lines;
  const char* words[] = {"harbour", "ship", "the", "sailed", "north", "at", "dawn", "crew",
                         "café", "naïve", "東京", "storm"};
  for (int i = 0; i < 600; ++i) {
    std::string l;
    for (int w = 0; w < 8; ++w) l += std::string(words[(i * 7 + w * 5) % 12]) + " ";
    lines.push_back(l);
  }
  SentencePieceTrainOptions o;
  o.vocab_size = 400;
  auto bytes = TrainSentencePiece(lines, o);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  auto tok = LoadTokenizer(*bytes);
  EXPECT_TRUE(tok.ok());
  ModelConfig c;
  // The tokenizer's size: logprobs then cover the same ids as the loss.
  c.vocab_size = (*tok)->vocab_size();
  c.context_tokens = 24;
  c.d_model = 32;
  c.heads = 4;
  c.layers = 2;
  auto m = LanguageModel::Create(c, std::move(*tok), 3);
  EXPECT_TRUE(m.ok()) << m.status();
  // Larger weights: clear winners, so greedy choices do not hinge on rounding.
  torch::NoGradGuard g;
  for (auto& p : (*m)->net().named_parameters()) {
    if (p.key().find("weight") != std::string::npos && p.value().dim() == 2) p.value().mul_(4.0);
  }
  return *m;
}

struct Result {
  std::vector<int32_t> ids;
  std::vector<double> logprobs;
  std::string text;
  std::string finish_reason;
  absl::Status error;
};

Result Collect(GenerationStream& s) {
  Result r;
  GenerationEvent e;
  while (s.Next(&e, 60000)) {
    if (e.kind == GenerationEvent::kToken) {
      r.ids.push_back(e.id);
      r.logprobs.push_back(e.logprob.logprob);
      r.text += e.text;
    } else if (e.kind == GenerationEvent::kDone) {
      r.text += e.text;
      r.finish_reason = e.finish_reason;
      return r;
    } else if (e.kind == GenerationEvent::kError) {
      r.error = e.error;
      return r;
    }
  }
  r.error = absl::DeadlineExceededError("no event for 60 s");
  return r;
}

class SchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = PeakyModel(); }
  static std::shared_ptr<LanguageModel> model_;
  Counters counters_;
};
std::shared_ptr<LanguageModel> SchedulerTest::model_;

class BatchedVsAlone : public SchedulerTest, public ::testing::WithParamInterface<int> {};

// With one worker and with two (each its own batch, requests spread over
// them), every request gets what it would get alone.
TEST_P(BatchedVsAlone, BatchedGenerationEqualsOneAtATime) {
  Scheduler::Options o;
  o.max_batch = 8;
  o.threads = GetParam();
  Scheduler sched(o, &counters_);
  const Tokenizer& tok = model_->tokenizer();
  std::vector<std::string> prompts = {"the harbour", "ship sailed north at dawn the crew",
                                      "storm", "café naïve 東京", "at dawn", "crew crew crew",
                                      "north", "the ship"};
  std::vector<GenerationRequest> requests;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest r;
    r.model = model_;
    r.prompt_ids = tok.Encode(prompts[i]);
    r.params.max_tokens = 6 + static_cast<int>(i) * 5;  // up to 41 > context 24: the cache refills
    if (i % 2 == 0) {
      r.params.temperature = 0;
    } else {
      r.params.temperature = 0.9;
      r.params.top_k = 20;
      r.params.has_seed = true;
      r.params.seed = 100 + i;
    }
    r.logprobs = 0;
    requests.push_back(r);
  }
  // Submitted before the scheduler starts and while it runs: later ones join
  // a batch already decoding.
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (size_t i = 0; i < 3; ++i) streams.push_back(*sched.Submit(requests[i]));
  sched.Start();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (size_t i = 3; i < requests.size(); ++i) {
    auto s = sched.Submit(requests[i]);
    ASSERT_TRUE(s.ok()) << s.status();
    streams.push_back(*s);
  }
  int compared_tokens = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    Result got = Collect(*streams[i]);
    ASSERT_TRUE(got.error.ok()) << got.error;
    Completion want = model_->GenerateIds(requests[i].prompt_ids, requests[i].params);
    EXPECT_EQ(got.ids, want.ids) << "request " << i;
    ASSERT_EQ(got.logprobs.size(), want.logprobs.size());
    for (size_t t = 0; t < want.logprobs.size(); ++t) {
      EXPECT_NEAR(got.logprobs[t], want.logprobs[t], 1e-4) << "request " << i << " token " << t;
      EXPECT_LE(got.logprobs[t], 0.0);
    }
    EXPECT_EQ(got.finish_reason, want.finish_reason) << "request " << i;
    EXPECT_EQ(got.text, want.text) << "request " << i;
    compared_tokens += static_cast<int>(want.ids.size());
  }
  EXPECT_GT(compared_tokens, 60);
  // One worker decoded more than one sequence per step (two workers split
  // the requests, so their steps are smaller).
  if (GetParam() == 1) {
    EXPECT_GT(counters_.HistogramCountSum("streamlm_batch_size").second,
              counters_.HistogramCountSum("streamlm_batch_size").first * 1.5);
  }
  EXPECT_EQ(counters_.Get("streamlm_generation_tokens_total"), compared_tokens);
}

INSTANTIATE_TEST_SUITE_P(Workers, BatchedVsAlone, ::testing::Values(1, 2));

// While the learner works only `threads` workers take requests; the others
// join when it has been idle for kLearnerIdleMs.
TEST_F(SchedulerTest, IdleLearnerLendsItsCoresToServing) {
  std::atomic<int64_t> progress{0};
  std::atomic<bool> learner_busy{true};
  Scheduler::Options o;
  o.max_batch = 4;
  o.threads = 1;
  o.idle_threads = 2;
  o.learner_progress = [&] { return learner_busy ? progress.fetch_add(1) + 1 : progress.load(); };
  Scheduler sched(o, &counters_);
  GenerationRequest r;
  r.model = model_;
  r.prompt_ids = model_->tokenizer().Encode("north");
  r.params.max_tokens = 100000;  // runs until cancelled
  r.params.ignore_eos = true;
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (int i = 0; i < 6; ++i) streams.push_back(*sched.Submit(r));
  sched.Start();
  // The learner works: one worker with a batch of 4 runs, two requests wait.
  for (int i = 0; i < 300 && sched.running() < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(sched.running(), 4);
  EXPECT_EQ(sched.waiting(), 2);
  // The learner goes idle: after kLearnerIdleMs the second worker takes them.
  learner_busy = false;
  for (int i = 0; i < 500 && sched.waiting() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(sched.waiting(), 0);
  EXPECT_EQ(sched.running(), 6);
  for (auto& s : streams) s->Cancel();
}

TEST_F(SchedulerTest, StopStringsEndTheTextLikeGenerate) {
  Scheduler sched(Scheduler::Options(), &counters_);
  sched.Start();
  GenerationRequest r;
  r.model = model_;
  r.prompt_ids = model_->tokenizer().Encode("the ship");
  r.params.temperature = 0;
  r.params.max_tokens = 20;
  Result full = Collect(**sched.Submit(r));
  ASSERT_GT(full.text.size(), 6u) << full.text;
  // A stop string from the middle of the output (two characters, so it may
  // span tokens and must be held back while streaming).
  r.params.stop = {full.text.substr(full.text.size() / 2, 2)};
  Result cut = Collect(**sched.Submit(r));
  Completion want = model_->GenerateIds(r.prompt_ids, r.params);
  EXPECT_EQ(cut.finish_reason, "stop");
  EXPECT_EQ(cut.text, want.text);
  EXPECT_EQ(cut.text.find(r.params.stop[0]), std::string::npos);
  EXPECT_EQ(full.text.compare(0, cut.text.size(), cut.text), 0);
}

TEST_F(SchedulerTest, FullQueueRefusesAndDeadlinesAndCancelsEndRequests) {
  Scheduler::Options o;
  o.max_batch = 1;
  o.max_queue = 2;
  Scheduler sched(o, &counters_);
  GenerationRequest r;
  r.model = model_;
  r.prompt_ids = model_->tokenizer().Encode("north");
  r.params.max_tokens = 100000;  // runs until cancelled
  r.params.temperature = 1.0;
  r.params.ignore_eos = true;
  auto first = sched.Submit(r);
  GenerationRequest late = r;
  late.deadline_ms = NowMs() - 1;  // already past
  auto second = sched.Submit(late);
  ASSERT_TRUE(first.ok() && second.ok());
  auto third = sched.Submit(r);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(counters_.Get("streamlm_requests_rejected_total", "reason=queue_full"), 1);
  sched.Start();
  // The first runs; the client reads a few tokens, then goes away.
  GenerationEvent e;
  int tokens = 0;
  while (tokens < 3 && (*first)->Next(&e, 10000)) tokens += e.kind == GenerationEvent::kToken;
  ASSERT_EQ(tokens, 3);
  (*first)->Cancel();
  // The cancelled one leaves the batch; the one past its deadline fails.
  Result timed_out = Collect(**second);
  EXPECT_EQ(timed_out.error.code(), absl::StatusCode::kDeadlineExceeded);
  for (int i = 0; i < 200 && counters_.Get("streamlm_requests_cancelled_total") == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(counters_.Get("streamlm_requests_cancelled_total"), 1);
  for (int i = 0; i < 200 && sched.running() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(sched.running(), 0);
  // Generated tokens stop growing once cancelled.
  int64_t generated = counters_.Get("streamlm_generation_tokens_total");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(counters_.Get("streamlm_generation_tokens_total"), generated);
}

TEST_F(SchedulerTest, PromptLogprobsMatchTheModelsOwnScoring) {
  Scheduler sched(Scheduler::Options(), &counters_);
  sched.Start();
  GenerationRequest r;
  r.model = model_;
  r.prompt_ids = model_->tokenizer().Encode("the crew sailed north at dawn");
  r.params.max_tokens = 0;
  r.prompt_logprobs = 2;
  auto s = *sched.Submit(r);
  GenerationEvent e;
  ASSERT_TRUE(s->Next(&e, 10000));
  ASSERT_EQ(e.kind, GenerationEvent::kPrompt);
  ASSERT_EQ(e.prompt.size(), r.prompt_ids.size());
  // Sum of per-token logprobs = minus the summed next-token loss.
  auto losses = model_->SequenceLosses({r.prompt_ids});
  double sum = 0;
  for (size_t i = 1; i < e.prompt.size(); ++i) {
    sum += e.prompt[i].logprob;
    ASSERT_EQ(e.prompt[i].top.size(), 2u);
    EXPECT_GE(e.prompt[i].top[0].second, e.prompt[i].top[1].second);
    EXPECT_GE(e.prompt[i].top[0].second + 1e-9, e.prompt[i].logprob);
  }
  EXPECT_NEAR(sum, -losses[0].sum_nats, 1e-3);
  ASSERT_TRUE(s->Next(&e, 10000));
  EXPECT_EQ(e.kind, GenerationEvent::kDone);
  EXPECT_EQ(e.completion_tokens, 0);
}

}  // namespace
}  // namespace streamlm
