#include "serving/scheduler.h"

#include <algorithm>
#include <chrono>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/json_util.h"
#include "common/log.h"
#include "model/batch_decoder.h"
#include "model/detokenizer.h"

namespace streamlm {

bool GenerationStream::Next(GenerationEvent* e, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                    [this] { return !events_.empty(); })) {
    return false;
  }
  *e = std::move(events_.front());
  events_.pop_front();
  return true;
}

void GenerationStream::Push(GenerationEvent e) {
  const bool last = e.kind == GenerationEvent::kDone || e.kind == GenerationEvent::kError;
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
  }
  if (last || wake_per_token_) cv_.notify_one();
}

struct Scheduler::Job {
  GenerationRequest request;
  std::shared_ptr<GenerationStream> stream;
  int64_t enqueued_ms = 0;
  int64_t admitted_ms = 0;
  int64_t first_token_ms = 0;
};

struct Scheduler::Active {
  std::unique_ptr<Job> job;
  BatchDecoder::SeqId seq = 0;
  std::vector<int32_t> context;  // prompt and generated ids (repetition penalty, re-prefill)
  torch::Tensor logits;          // next-token logits, cut to the vocabulary
  at::Generator gen;
  std::unique_ptr<IncrementalDetokenizer> detok;
  std::string text;        // output text so far (stop strings cut it)
  size_t sent = 0;         // bytes of `text` already in events
  int generated = 0;
  int64_t next_token = -1;  // sampled, still to be fed
  int64_t greedy_next = -1;  // argmax of `logits` when computed with the batch's
  bool done = false;
};

struct Scheduler::Group {
  std::shared_ptr<const LanguageModel> model;
  std::unique_ptr<BatchDecoder> decoder;
  std::vector<std::unique_ptr<Active>> seqs;
};

struct Scheduler::Worker {
  int index = 0;
  int load = 0;  // GUARDED_BY(mu_) sequences running or admitted
  // Owned by the worker's thread.
  std::vector<std::unique_ptr<Group>> groups;
};

namespace {

size_t MaxStopBytes(const SamplingParams& p) {
  size_t n = 0;
  for (const std::string& s : p.stop) n = std::max(n, s.size());
  return n;
}

// Cuts `text` where a stop string first occurs, searching only where a
// match could have begun after the `sent` bytes already released (one
// string after another, each in what the last left). The cut never goes
// below `floor`. True when a stop string was found.
bool CutAtStop(const std::vector<std::string>& stop, size_t sent, size_t floor,
               std::string* text) {
  bool found = false;
  for (const std::string& s : stop) {
    if (s.empty()) continue;
    size_t from = sent >= s.size() ? sent - s.size() + 1 : 0;
    size_t pos = text->find(s, std::min(from, text->size()));
    if (pos != std::string::npos) {
      text->resize(std::max(pos, floor));
      found = true;
    }
  }
  return found;
}

// Largest end <= `end` that does not split a UTF-8 character of `s`.
size_t CharBoundary(const std::string& s, size_t end) {
  while (end > 0 && end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return end;
}

}  // namespace

Scheduler::Scheduler(const Options& options, Counters* counters)
    : options_(options), counters_(counters) {
  options_.max_batch = std::max(1, options_.max_batch);
  options_.max_queue = std::max(1, options_.max_queue);
  options_.threads = std::max(1, options_.threads);
  options_.idle_threads = std::max(options_.threads, options_.idle_threads);
  for (int i = 0; i < options_.idle_threads; ++i) {
    workers_.push_back(std::make_unique<Worker>());
    workers_.back()->index = i;
  }
  // Exported from the start, so rates and alerts see 0 rather than nothing.
  for (const char* name : {"streamlm_prompt_tokens_total", "streamlm_generation_tokens_total",
                           "streamlm_requests_cancelled_total", "streamlm_requests_timed_out_total"}) {
    counters_->Add(name, 0);
  }
  counters_->Add("streamlm_requests_rejected_total", 0, "reason=queue_full");
  counters_->Set("streamlm_num_requests_running", 0);
  counters_->Set("streamlm_num_requests_waiting", 0);
}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Start() {
  for (auto& w : workers_) {
    Worker* worker = w.get();
    threads_.emplace_back([this, worker] { Loop(worker); });
  }
}

int Scheduler::AllowedWorkers() {
  if (!options_.learner_progress) return options_.idle_threads;
  const int64_t now = NowMs();
  int64_t progress = options_.learner_progress();
  if (progress != learner_seen_) {
    learner_seen_ = progress;
    learner_moved_ms_ = now;
  }
  return now - learner_moved_ms_ < kLearnerIdleMs ? options_.threads : options_.idle_threads;
}

void Scheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

int Scheduler::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

absl::StatusOr<std::shared_ptr<GenerationStream>> Scheduler::Submit(GenerationRequest r) {
  auto job = std::make_unique<Job>();
  job->request = std::move(r);
  job->stream = std::make_shared<GenerationStream>(job->request.wake_per_token);
  job->enqueued_ms = NowMs();
  auto stream = job->stream;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return absl::UnavailableError("serving is shutting down");
    if (static_cast<int>(queue_.size()) >= options_.max_queue) {
      counters_->Add("streamlm_requests_rejected_total", 1, "reason=queue_full");
      return absl::ResourceExhaustedError(absl::StrCat(
          "the request queue is full (", options_.max_queue,
          " waiting; serving.max_queue); retry shortly"));
    }
    queue_.push_back(std::move(job));
    counters_->Set("streamlm_num_requests_waiting", static_cast<double>(queue_.size()));
  }
  cv_.notify_one();
  return stream;
}

void Scheduler::Observe(const Job& job, int64_t now_ms, int tokens) {
  counters_->Observe("streamlm_e2e_request_latency_seconds", (now_ms - job.enqueued_ms) / 1e3,
                     Counters::LatencyBuckets());
  if (tokens > 1 && job.first_token_ms > 0) {
    counters_->Observe("streamlm_time_per_output_token_seconds",
                       (now_ms - job.first_token_ms) / 1e3 / (tokens - 1),
                       Counters::LatencyBuckets());
  }
}

void Scheduler::Finish(Active* a, const std::string& reason, bool flush) {
  a->done = true;
  GenerationEvent e;
  e.kind = GenerationEvent::kDone;
  e.finish_reason = reason;
  e.completion_tokens = a->generated;
  if (flush) {
    // Release what was held back: an incomplete character, or the tail that
    // could have begun a stop string. A stop string may complete in it.
    a->text += a->detok->Flush();
    if (CutAtStop(a->job->request.params.stop, a->sent, a->sent, &a->text)) {
      e.finish_reason = "stop";
    }
  }
  if (a->sent < a->text.size()) e.text = a->text.substr(a->sent);
  a->sent = a->text.size();
  Observe(*a->job, NowMs(), a->generated);
  counters_->Add("streamlm_requests_finished_total", 1, "finish_reason=" + e.finish_reason);
  a->job->stream->Push(std::move(e));
}

bool Scheduler::Advance(Active* a, Group* g) {
  Job& job = *a->job;
  const SamplingParams& p = job.request.params;
  const Tokenizer& tok = g->model->tokenizer();
  if (job.stream->cancelled()) {
    a->done = true;
    counters_->Add("streamlm_requests_cancelled_total", 1);
    return false;
  }
  int64_t now = NowMs();
  if (job.request.deadline_ms > 0 && now > job.request.deadline_ms) {
    a->done = true;
    GenerationEvent e;
    e.kind = GenerationEvent::kError;
    e.error = absl::DeadlineExceededError(absl::StrCat(
        "the request ran past its deadline (serving.request_timeout_s) after ", a->generated,
        " tokens"));
    counters_->Add("streamlm_requests_timed_out_total", 1);
    job.stream->Push(std::move(e));
    return false;
  }
  if (a->generated >= p.max_tokens) {
    Finish(a, "length", true);
    return false;
  }
  const bool plain_greedy = p.temperature <= 0 && p.repetition_penalty == 1.0;
  int64_t next = plain_greedy && a->greedy_next >= 0 ? a->greedy_next
                                                     : SampleToken(a->logits, p, a->context, a->gen);
  a->greedy_next = -1;
  if (next == tok.eos_id() && !p.ignore_eos) {
    Finish(a, "stop", true);
    return false;
  }
  GenerationEvent e;
  e.kind = GenerationEvent::kToken;
  e.id = static_cast<int32_t>(next);
  if (job.request.logprobs >= 0) {
    e.logprob = LogprobOf(a->logits, next, job.request.logprobs);
    e.token_text.push_back(TokenTextAfter(tok, a->context, static_cast<int32_t>(next)));
    std::vector<std::string> alternatives;
    for (const auto& [alt, v] : e.logprob.top) alternatives.push_back(TokenTextAfter(tok, a->context, alt));
    e.top_text.push_back(std::move(alternatives));
  }
  ++a->generated;
  counters_->Add("streamlm_generation_tokens_total", 1);
  if (job.first_token_ms == 0) {
    job.first_token_ms = now;
    counters_->Observe("streamlm_time_to_first_token_seconds", (now - job.enqueued_ms) / 1e3,
                       Counters::LatencyBuckets());
  }
  a->context.push_back(static_cast<int32_t>(next));
  a->text += a->detok->Add(static_cast<int32_t>(next));
  // Stop strings: search only where a new match can start.
  const size_t hold = MaxStopBytes(p);
  const bool stopped = CutAtStop(p.stop, a->sent, /*floor=*/0, &a->text);
  // Hold back a tail that could be the start of a stop string.
  size_t safe = a->text.size();
  if (!stopped && hold > 1) safe = safe > hold - 1 ? safe - (hold - 1) : 0;
  safe = CharBoundary(a->text, std::max(safe, a->sent));
  if (safe > a->sent) {
    e.text = a->text.substr(a->sent, safe - a->sent);
    a->sent = safe;
  }
  job.stream->Push(std::move(e));
  if (stopped) {
    Finish(a, "stop", false);
    return false;
  }
  if (a->generated >= p.max_tokens) {
    Finish(a, "length", true);
    return false;
  }
  a->next_token = next;
  return true;
}

void Scheduler::Prefill(Active* a, Group* g, int keep_tokens) {
  const size_t keep = static_cast<size_t>(keep_tokens);
  std::vector<int32_t> window(a->context.end() - std::min(keep, a->context.size()),
                              a->context.end());
  torch::Tensor logits;
  a->seq = g->decoder->Add(window, &logits);
  a->logits = VocabLogits(logits, g->model->tokenizer().vocab_size());
}

void Scheduler::Admit(Worker* w, std::vector<std::unique_ptr<Job>>* jobs) {
  for (auto& job : *jobs) {
    const GenerationRequest& r = job->request;
    job->admitted_ms = NowMs();
    counters_->Observe("streamlm_request_queue_time_seconds",
                       (job->admitted_ms - job->enqueued_ms) / 1e3, Counters::LatencyBuckets());
    counters_->Add("streamlm_prompt_tokens_total", static_cast<int64_t>(r.prompt_ids.size()));
    if (job->stream->cancelled()) {
      counters_->Add("streamlm_requests_cancelled_total", 1);
      continue;
    }
    if (r.deadline_ms > 0 && job->admitted_ms > r.deadline_ms) {
      GenerationEvent e;
      e.kind = GenerationEvent::kError;
      e.error = absl::DeadlineExceededError(
          "the request waited in the queue past its deadline (serving.request_timeout_s)");
      counters_->Add("streamlm_requests_timed_out_total", 1);
      job->stream->Push(std::move(e));
      continue;
    }
    const LanguageModel& model = *r.model;
    if (r.prompt_logprobs >= 0) {
      GenerationEvent e;
      e.kind = GenerationEvent::kPrompt;
      e.prompt = model.PromptLogprobs(r.prompt_ids, r.prompt_logprobs);
      std::vector<int32_t> before;
      for (size_t i = 0; i < r.prompt_ids.size(); ++i) {
        e.token_text.push_back(TokenTextAfter(model.tokenizer(), before, r.prompt_ids[i]));
        std::vector<std::string> alternatives;
        for (const auto& [alt, v] : e.prompt[i].top) {
          alternatives.push_back(TokenTextAfter(model.tokenizer(), before, alt));
        }
        e.top_text.push_back(std::move(alternatives));
        before.push_back(r.prompt_ids[i]);
      }
      job->stream->Push(std::move(e));
    }
    if (r.params.max_tokens <= 0) {
      GenerationEvent e;
      e.kind = GenerationEvent::kDone;
      e.finish_reason = "length";
      Observe(*job, NowMs(), 0);
      job->stream->Push(std::move(e));
      continue;
    }
    Group* group = nullptr;
    for (auto& g : w->groups) {
      if (g->model == r.model) group = g.get();
    }
    if (group == nullptr) {
      w->groups.push_back(std::make_unique<Group>());
      group = w->groups.back().get();
      group->model = r.model;
      group->decoder = std::make_unique<BatchDecoder>(r.model, options_.max_batch);
    }
    auto a = std::make_unique<Active>();
    a->context = r.prompt_ids;
    if (a->context.empty()) a->context.push_back(model.tokenizer().eos_id());
    a->detok = std::make_unique<IncrementalDetokenizer>(&model.tokenizer(), r.prompt_ids);
    a->gen = at::detail::createCPUGenerator(
        r.params.has_seed ? r.params.seed : static_cast<uint64_t>(std::random_device{}()));
    Prefill(a.get(), group, model.config().context_tokens);
    a->job = std::move(job);
    group->seqs.push_back(std::move(a));
  }
}

void Scheduler::Loop(Worker* w) {
  SetThreadComputeBudget(1);
  torch::NoGradGuard no_grad;
  std::vector<std::unique_ptr<Group>>& groups = w->groups;
  // Publishes this worker's load; returns all workers' total. REQUIRES: mu_.
  auto publish = [this, w](int load) {
    w->load = load;
    int total = 0;
    for (const auto& other : workers_) total += other->load;
    running_.store(total);
    counters_->Set("streamlm_num_requests_running", total);
  };
  while (true) {
    std::vector<std::unique_ptr<Job>> admitted;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // The allowed count changes with the learner's activity, without a
      // notification: look again every 100 ms.
      while (!stopping_ && w->load == 0 && (queue_.empty() || w->index >= AllowedWorkers())) {
        cv_.wait_for(lock, std::chrono::milliseconds(100));
      }
      if (stopping_) break;
      const int allowed = AllowedWorkers();
      while (!queue_.empty() && w->index < allowed && w->load < options_.max_batch) {
        // The least loaded allowed worker takes the next request.
        int least = w->load;
        for (int i = 0; i < allowed; ++i) least = std::min(least, workers_[i]->load);
        if (w->load > least) break;
        admitted.push_back(std::move(queue_.front()));
        queue_.pop_front();
        ++w->load;
      }
      if (!queue_.empty()) cv_.notify_all();  // others may take the rest
      counters_->Set("streamlm_num_requests_waiting", static_cast<double>(queue_.size()));
      publish(w->load);
    }
    try {
      Admit(w, &admitted);
      int total = 0;
      for (auto& g : groups) {        // Sample every sequence's next token; drop the ones that finished.
        std::vector<std::pair<BatchDecoder::SeqId, int64_t>> feed;
        std::vector<Active*> refill;
        for (auto& a : g->seqs) {
          if (!Advance(a.get(), g.get())) {
            g->decoder->Remove(a->seq);
            continue;
          }
          if (g->decoder->Length(a->seq) >= g->model->config().context_tokens) {
            refill.push_back(a.get());
            g->decoder->Remove(a->seq);
          } else {
            feed.emplace_back(a->seq, a->next_token);
          }
        }
        g->seqs.erase(std::remove_if(g->seqs.begin(), g->seqs.end(),
                                     [](const std::unique_ptr<Active>& a) { return a->done; }),
                      g->seqs.end());
        const int vocab = g->model->tokenizer().vocab_size();
        if (!feed.empty()) {
          torch::Tensor logits = g->decoder->Step(feed).to(torch::kFloat).slice(1, 0, vocab);
          // Greedy choices of the whole batch in one op.
          torch::Tensor best = logits.argmax(-1);
          auto best_ids = best.accessor<int64_t, 1>();
          size_t i = 0;
          for (auto& a : g->seqs) {
            if (i < feed.size() && a->seq == feed[i].first) {
              a->greedy_next = best_ids[static_cast<int64_t>(i)];
              a->logits = logits[static_cast<int64_t>(i++)];
            }
          }
        }
        // The context is full: continue from its newest half, as Generate() does.
        for (Active* a : refill) {
          Prefill(a, g.get(), g->model->config().context_tokens / 2);
        }
        total += static_cast<int>(g->seqs.size());
      }
      // Models no longer served and without sequences are released.
      groups.erase(std::remove_if(groups.begin(), groups.end(),
                                  [](const std::unique_ptr<Group>& g) { return g->seqs.empty(); }),
                   groups.end());
      {
        std::lock_guard<std::mutex> lock(mu_);
        publish(total);
      }
      if (total > 0) counters_->Observe("streamlm_batch_size", total, {1, 2, 4, 8, 16, 32, 64});
    } catch (const std::exception& ex) {
      // A model error fails the requests in flight, not the server.
      SLM_LOG(kError) << "serving scheduler: " << ex.what();
      for (auto& g : groups) {
        for (auto& a : g->seqs) {
          if (a->done) continue;
          GenerationEvent e;
          e.kind = GenerationEvent::kError;
          e.error = absl::InternalError(absl::StrCat("generation failed: ", ex.what()));
          a->job->stream->Push(std::move(e));
        }
      }
      groups.clear();
      std::lock_guard<std::mutex> lock(mu_);
      publish(0);
    }
  }
  // Shutting down: whoever still waits gets an error.
  std::lock_guard<std::mutex> lock(mu_);
  auto fail = [](GenerationStream* s) {
    GenerationEvent e;
    e.kind = GenerationEvent::kError;
    e.error = absl::UnavailableError("serving is shutting down");
    s->Push(std::move(e));
  };
  for (auto& j : queue_) fail(j->stream.get());
  queue_.clear();
  for (auto& g : groups) {
    for (auto& a : g->seqs) fail(a->job->stream.get());
  }
}

}  // namespace streamlm
