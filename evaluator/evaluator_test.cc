// Evaluator with real parts: a RocksDB store on disk, a tiny model
// bootstrapped from the Brown corpus (the champion), a damaged copy of it
// (noise on every weight) as the candidate, and held-out stream records
// written as the learner writes them (PutCheckpoint with new_heldout).
// Checks the sequential test's looks, an imported champion without a base
// set, and base sets from `import-hf --base-corpus` files judged per file.
#include "evaluator/evaluator.h"

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>

#include "absl/strings/str_split.h"
#include "common/broker.h"
#include "common/kafka.h"
#include "common/metrics.h"
#include "evaluator/verdicts.h"
#include "gtest/gtest.h"
#include "learner/bootstrap.h"
#include "model/language_model.h"
#include "tests/util/heldout_stream.h"
#include "tests/util/snapshot_copy.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::AddHeldout;
using testing::CopySnapshot;
using testing::UnseenDocuments;

// The seed of the noise on damaged candidates' weights.
constexpr uint64_t kSeed = 11;

const Json* RuleNamed(const Json& decision, const std::string& name) {
  for (const Json& r : decision["rules"]) {
    if (r.value("name", "") == name) return &r;
  }
  return nullptr;
}

class EvaluatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ConfigureTorchThreads(0);
    auto opened = Store::Open(dir_.Sub("store"));
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(*opened);
    config_ = testing::TinyConfig(dir_.Sub("store"));
    auto boot = RunBootstrap(config_, store_.get(), [](const std::string&) {});
    ASSERT_TRUE(boot.ok()) << boot.status();
    champion_ = boot->snapshot_id;
  }
  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  Config config_;
  std::string champion_;
};

TEST_F(EvaluatorTest, AHeldCandidateIsLookedAtAgainWhenMoreEvidenceArrives) {
  const std::string candidate = CopySnapshot(store_.get(), champion_, store_.get(), 0.5, kSeed);
  // Too few held-out tokens at first: held, awaiting evidence (forgetting
  // allowed, so that only the stream decides).
  config_.gate.max_forgetting = 100;
  config_.eval.min_stream_tokens = 1500;
  config_.eval.recheck_records = 40;
  AddHeldout(store_.get(), UnseenDocuments(0, 6));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Json> decisions;
  Evaluator evaluator(config_, store_.get(), nullptr, [&](const Json& d) {
    std::lock_guard<std::mutex> lock(mu);
    decisions.push_back(d);
    cv.notify_all();
  });
  evaluator.Start();
  evaluator.Submit(candidate);
  auto wait_for = [&](size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(120), [&] { return decisions.size() >= n; });
  };
  ASSERT_TRUE(wait_for(1));
  EXPECT_EQ(decisions[0]["verdict"], "held") << decisions[0].dump();
  EXPECT_EQ(decisions[0]["look"], 1);
  EXPECT_DOUBLE_EQ(decisions[0]["alpha"].get<double>(), 0.025);
  EXPECT_NE(decisions[0]["reason"].get<std::string>().find("held-out stream tokens"),
            std::string::npos);
  // Fewer than eval.recheck_records new records: no second look yet.
  AddHeldout(store_.get(), UnseenDocuments(6, 20));
  std::this_thread::sleep_for(std::chrono::seconds(3));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(decisions.size(), 1u);
  }
  // Enough: the worker looks again by itself, at a smaller share of alpha.
  AddHeldout(store_.get(), UnseenDocuments(26, 30));
  ASSERT_TRUE(wait_for(2));
  evaluator.Stop();
  const Json& second = decisions[1];
  EXPECT_EQ(second["candidate"], candidate);
  EXPECT_EQ(second["look"], 2);
  EXPECT_DOUBLE_EQ(second["alpha"].get<double>(), 0.0125);
  EXPECT_EQ(second["verdict"], "rejected") << second["reason"];  // the damage is plain
  const Json* adaptation = RuleNamed(second, "adaptation");
  ASSERT_NE(adaptation, nullptr);
  EXPECT_DOUBLE_EQ((*adaptation)["ci_level"].get<double>(), 0.9875);
  EXPECT_GT((*adaptation)["ci"][0].get<double>(), 0.0);  // confidently worse
  EXPECT_EQ(*store_->GetAlias(kChampion), champion_);
}

// A run killed before (or while) judging its candidate leaves the
// `candidate` alias without a decision; the next evaluator judges it without
// being told, and leaves alone a candidate that was already decided.
TEST_F(EvaluatorTest, ACandidateLeftUndecidedIsJudgedOnStart) {
  const std::string candidate = CopySnapshot(store_.get(), champion_, store_.get(), 0.5, kSeed,
                                             {kCandidate});
  config_.gate.max_forgetting = 100;
  AddHeldout(store_.get(), UnseenDocuments(0, 30));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Json> decisions;
  auto on_decision = [&](const Json& d) {
    std::lock_guard<std::mutex> lock(mu);
    decisions.push_back(d);
    cv.notify_all();
  };
  {
    Evaluator evaluator(config_, store_.get(), nullptr, on_decision);
    evaluator.Start();  // nothing submitted
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(120), [&] { return !decisions.empty(); }));
    lock.unlock();
    evaluator.Stop();
  }
  ASSERT_EQ(decisions.size(), 1u);
  EXPECT_EQ(decisions[0]["candidate"], candidate);
  EXPECT_EQ(decisions[0]["verdict"], "rejected") << decisions[0]["reason"];
  {
    Evaluator evaluator(config_, store_.get(), nullptr, on_decision);
    evaluator.Start();
    std::this_thread::sleep_for(std::chrono::seconds(3));
    evaluator.Stop();
  }
  EXPECT_EQ(decisions.size(), 1u) << "a decided candidate was judged again";
}

TEST_F(EvaluatorTest, AnImportedChampionWithoutABaseSetIsReportedThenGetsOneFromTheStream) {
  testing::TempDir other;
  auto imported_store = Store::Open(other.Sub("store"));
  ASSERT_TRUE(imported_store.ok());
  Store* store = imported_store->get();
  const std::string imported = CopySnapshot(store_.get(), champion_, store, 0, kSeed, {kChampion});
  const std::string candidate = CopySnapshot(store, imported, store, 0.5, kSeed);
  Config config = config_;
  config.data_dir = other.Sub("store");
  AddHeldout(store, UnseenDocuments(0, 20));
  Evaluator evaluator(config, store, nullptr, nullptr);
  auto first = evaluator.Evaluate(candidate);
  ASSERT_TRUE(first.ok()) << first.status();
  // Confidently worse on the stream: rejected, and the reason says what
  // could not be judged instead of a made-up forgetting figure.
  EXPECT_EQ((*first)["verdict"], "rejected") << (*first)["reason"];
  const std::string reason = (*first)["reason"];
  EXPECT_NE(reason.find("no base evaluation set"), std::string::npos) << reason;
  EXPECT_EQ(reason.find("+0.0000"), std::string::npos) << reason;
  EXPECT_EQ((*first)["metrics"]["base_loss"]["origin"], "none: no base evaluation set");
  EXPECT_EQ((*RuleNamed(*first, "forgetting"))["metric"], "base_eval_set");
  // 80 more records: the oldest half of the window's 100 becomes the base set.
  AddHeldout(store, UnseenDocuments(20, 80));
  auto second = evaluator.Evaluate(candidate);
  ASSERT_TRUE(second.ok()) << second.status();
  auto base = store->GetEvalSet(kBaseEvalSet);
  ASSERT_TRUE(base.ok());
  auto docs = ParseJson(*base);
  ASSERT_TRUE(docs.ok());
  ASSERT_EQ(docs->size(), 50u);
  EXPECT_EQ((*docs)[0]["text"], UnseenDocuments(0, 1)[0]);
  EXPECT_EQ((*docs)[0]["source"], "first stream records");
  const Json& metrics = (*second)["metrics"];
  EXPECT_NE(metrics["base_loss"]["origin"].get<std::string>().find("the first 50 held-out"),
            std::string::npos);
  EXPECT_GT(metrics["base_loss"]["delta"]["tokens"].get<int64_t>(), 0);
  // Set aside as the base set, those records no longer count as stream evidence.
  EXPECT_EQ(metrics["stream_loss"]["delta"]["sequences"], 50);
  EXPECT_EQ((*second)["verdict"], "rejected") << (*second)["reason"];
}

TEST_F(EvaluatorTest, BaseCorpusFilesAreBaseSetsJudgedOneByOne) {
  // Two files of unseen documents (blank-line separated), as for
  // `import-hf --base-corpus`.
  const std::vector<std::string> a = UnseenDocuments(0, 60), b = UnseenDocuments(60, 60);
  config_.bootstrap.heldout_fraction = 0.1;  // 1 in 10 documents: i % 10 == 5
  for (const auto& [name, docs] : {std::pair{"manuals.txt", a}, std::pair{"letters.txt", b}}) {
    std::ofstream out(dir_.Sub(name));
    for (const std::string& d : docs) out << d << "\n\n";
  }
  auto summary = WriteBaseCorpus(config_, {dir_.Sub("manuals.txt"), dir_.Sub("letters.txt")},
                                 store_.get());
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_NE(summary->find("manuals.txt (6 of 60 documents held out)"), std::string::npos)
      << *summary;
  auto seed = store_->GetEvalSet(kReplaySeedSet);
  ASSERT_TRUE(seed.ok());
  // The replay seed is the paragraphs (lines) of the documents not held out.
  size_t lines = 0;
  for (const auto* docs : {&a, &b}) {
    for (size_t i = 0; i < docs->size(); ++i) {
      if (i % 10 == 5) continue;
      for (absl::string_view l : absl::StrSplit((*docs)[i], '\n', absl::SkipEmpty())) {
        lines += !l.empty();
      }
    }
  }
  EXPECT_EQ(ParseJson(*seed)->size(), lines);
  const std::string candidate = CopySnapshot(store_.get(), champion_, store_.get(), 0.5, kSeed);
  AddHeldout(store_.get(), UnseenDocuments(120, 20));
  config_.gate.min_slice_tokens = 100;
  Evaluator evaluator(config_, store_.get(), nullptr, nullptr);
  auto d = evaluator.Evaluate(candidate);
  ASSERT_TRUE(d.ok()) << d.status();
  const Json& slices = (*d)["metrics"]["slices"]["base"];
  ASSERT_EQ(slices.size(), 2u) << (*d)["metrics"].dump();
  std::set<std::string> names;
  for (const Json& s : slices) names.insert(s["source"].get<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{"letters.txt", "manuals.txt"}));
  int slice_rules = 0;
  for (const Json& r : (*d)["rules"]) slice_rules += r["name"] == "slice_forgetting";
  EXPECT_EQ(slice_rules, 2);
  EXPECT_NE((*d)["metrics"]["base_loss"]["origin"].get<std::string>().find("base corpus"),
            std::string::npos);
  EXPECT_EQ((*d)["verdict"], "rejected");
}

// A separate evaluator (`streamlm evaluate`) proposes verdicts that the
// store's owner commits later. When it proposes a promotion and judges the
// next candidate before the owner has committed it, that candidate is
// judged against the old champion. If it is rejected, the owner finds the
// rejection stale and never stores it, so the learner never resets and goes
// on from it: the candidates that follow must be judged against the new
// champion, not refused as descendants of a rejected line (the crash suite
// found an evaluator that refused the learner's line until it restarted).
TEST_F(EvaluatorTest, ARejectionTheOwnerFoundStaleDoesNotBlockTheLearnersLine) {
  config_.gate.max_forgetting = 100;
  ASSERT_EQ(config_.learner.on_rejection, "reset");
  AddHeldout(store_.get(), UnseenDocuments(0, 30));
  const std::string promoted = CopySnapshot(store_.get(), champion_, store_.get(), 0.001, kSeed);
  const std::string damaged = CopySnapshot(store_.get(), promoted, store_.get(), 0.5, kSeed);
  const std::string next = CopySnapshot(store_.get(), damaged, store_.get(), 0.001, kSeed + 1);
  auto broker = EmbeddedBroker::Start(0, {config_.topic_verdicts}, 1);
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto producer = KafkaProducer::Create((*broker)->bootstrap());
  ASSERT_TRUE(producer.ok()) << producer.status();
  auto follower = Store::OpenFollower(dir_.Sub("store"), dir_.Sub("follower"));
  ASSERT_TRUE(follower.ok()) << follower.status();
  Evaluator evaluator(config_, follower->get(), nullptr, nullptr);
  evaluator.set_verdict_producer(producer->get());
  auto first = evaluator.Evaluate(damaged);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ((*first)["verdict"], "rejected") << (*first)["reason"];
  EXPECT_EQ((*first)["champion"], champion_);
  // The owner commits the promotion proposed before, then the rejection,
  // which it finds stale.
  ASSERT_TRUE(store_->Promote(promoted).ok());
  Counters counters;
  VerdictCommitter committer(store_.get(), &counters);
  ASSERT_TRUE(committer.Load().ok());
  auto committed = committer.Commit(*first);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_FALSE(committed->has_value()) << "the rejection was committed";
  auto second = evaluator.Evaluate(next);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ((*second)["candidate"], next);
  EXPECT_EQ((*second)["champion"], promoted);
}

}  // namespace
}  // namespace streamlm
