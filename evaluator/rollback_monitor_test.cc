// RollbackMonitor with real parts: a RocksDB store on disk, a tiny model
// bootstrapped from the Brown corpus (the good previous champion), a damaged
// copy of it (noise added to every weight) promoted over it, and held-out
// stream records written as the learner writes them (PutCheckpoint with
// new_heldout). The monitor must roll the damaged champion back on the live
// stream loss, store and announce a `rolled_back` decision whose rule carries
// its interval; a healthy champion (the same weights, barely perturbed) must
// stay.
#include "evaluator/rollback.h"

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "learner/bootstrap.h"
#include "model/language_model.h"
#include "tests/util/heldout_stream.h"
#include "tests/util/snapshot_copy.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

Config Tiny(const std::string& data_dir) {
  Config c = testing::TinyConfig(data_dir);
  c.rollback.check_every_s = 0.1;
  c.rollback.min_stream_tokens = 300;
  c.rollback.max_stream_records = 64;
  c.rollback.max_stream_loss_increase = 0.05;
  return c;
}

// The seed of the noise on perturbed children's weights.
constexpr uint64_t kSeed = 7;

std::vector<std::string> UnseenDocuments(size_t n) { return testing::UnseenDocuments(0, n, 400); }

void AddHeldout(Store* store, const std::vector<std::string>& docs) {
  testing::AddHeldout(store, docs, "rollback_test");
}

// Promotes `candidate` as the evaluator does (a decision in the same commit).
Json Promote(Store* store, const std::string& candidate) {
  Json d = {{"time_ms", NowMs()},
            {"candidate", candidate},
            {"champion", *store->GetAlias(kChampion)},
            {"verdict", "promoted"},
            {"rules", Json::array()},
            {"reason", "test promotion"}};
  auto stored = store->AppendDecision(d, /*promote=*/true);
  EXPECT_TRUE(stored.ok()) << stored.status();
  return *stored;
}

const Json* RuleNamed(const Json& decision, const std::string& name) {
  for (const Json& r : decision["rules"]) {
    if (r.value("name", "") == name) return &r;
  }
  return nullptr;
}

TEST(RollbackMonitorTest, RollsBackADamagedChampionAndKeepsAHealthyOne) {
  ConfigureTorchThreads(0);
  testing::TempDir dir;
  auto opened = Store::Open(dir.path());
  ASSERT_TRUE(opened.ok()) << opened.status();
  Store* store = opened->get();
  Config config = Tiny(dir.path());
  auto boot = RunBootstrap(config, store, [](const std::string&) {});
  ASSERT_TRUE(boot.ok()) << boot.status();
  const std::string good = boot->snapshot_id;
  std::vector<std::string> docs = UnseenDocuments(100);

  // Held-out records from before the promotion do not count.
  AddHeldout(store, {docs.begin(), docs.begin() + 10});

  std::mutex mu;
  std::condition_variable cv;
  std::vector<Json> announced;
  RollbackMonitor monitor(config, store, /*decisions=*/nullptr, /*counts=*/nullptr,
                          [&](const Json& d) {
                            std::lock_guard<std::mutex> lock(mu);
                            announced.push_back(d);
                            cv.notify_all();
                          });

  // 1. A damaged champion: promoted, then held-out records arrive; the
  // monitor's own thread rolls it back.
  const std::string damaged = testing::PerturbedChild(store, good, 0.5, kSeed);
  monitor.OnDecision(Promote(store, damaged));  // the watch starts here
  ASSERT_EQ(*store->GetAlias(kChampion), damaged);
  AddHeldout(store, {docs.begin() + 10, docs.begin() + 50});
  monitor.Start();
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(120), [&] { return !announced.empty(); }))
        << "no rollback within 120 s; last: " << monitor.last_result().reason;
  }
  monitor.Stop();
  EXPECT_EQ(*store->GetAlias(kChampion), good);
  EXPECT_EQ(*store->GetAlias(kPrevious), damaged);
  auto decisions = store->ListDecisions(1);
  ASSERT_TRUE(decisions.ok());
  ASSERT_EQ(decisions->size(), 1u);
  const Json& d = decisions->front();
  EXPECT_EQ(d["id"], announced.front()["id"]);
  EXPECT_EQ(d["verdict"], "rolled_back");
  EXPECT_EQ(d["champion"], damaged);
  EXPECT_EQ(d["candidate"], good);
  EXPECT_NE(d["reason"].get<std::string>().find("held-out stream records"), std::string::npos)
      << d["reason"];
  const Json* rule = RuleNamed(d, "live_stream_loss");
  ASSERT_NE(rule, nullptr) << d.dump();
  EXPECT_EQ((*rule)["passed"], false);
  ASSERT_TRUE(rule->contains("ci95"));
  EXPECT_GT((*rule)["ci95"][0].get<double>(), 0.05);  // wholly above the tolerance
  EXPECT_LE((*rule)["ci95"][0].get<double>(), (*rule)["observed"].get<double>());
  // Only the 40 records since the promotion were scored.
  EXPECT_EQ(d["metrics"]["rollback"]["stream_loss"]["delta"]["sequences"], 40);
  // The rates had no serving counts: not judged.
  EXPECT_EQ((*RuleNamed(d, "serving_errors"))["passed"], true);
  EXPECT_FALSE(RuleNamed(d, "serving_errors")->contains("ci95"));

  // The restored champion is not judged against the one it replaced.
  auto again = monitor.CheckOnce();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->has_value());
  EXPECT_EQ(*store->GetAlias(kChampion), good);

  // 2. A healthy champion (tiny perturbation): nothing rolls back.
  const std::string healthy = testing::PerturbedChild(store, good, 1e-4, kSeed);
  monitor.OnDecision(Promote(store, healthy));
  AddHeldout(store, {docs.begin() + 50, docs.begin() + 100});
  auto checked = monitor.CheckOnce();
  ASSERT_TRUE(checked.ok()) << checked.status();
  EXPECT_FALSE(checked->has_value()) << (*checked)->dump();
  EXPECT_EQ(*store->GetAlias(kChampion), healthy);
  RollbackResult last = monitor.last_result();
  ASSERT_EQ(last.rules.size(), 3u);
  EXPECT_EQ(last.rules[2].name, "live_stream_loss");
  EXPECT_TRUE(last.rules[2].has_ci) << last.reason;  // judged, with enough evidence
  EXPECT_TRUE(last.rules[2].passed);
  EXPECT_LT(last.rules[2].ci_high, 0.05);
  EXPECT_EQ(last.metrics["stream_loss"]["delta"]["sequences"], 50);
  int rolled_back = 0;
  auto all = store->ListDecisions();
  ASSERT_TRUE(all.ok());
  for (const Json& x : *all) rolled_back += x["verdict"] == "rolled_back";
  EXPECT_EQ(rolled_back, 1);
}

// Serving counts alone: a champion whose requests fail far more often than
// the previous champion's is rolled back, naming the error rate.
TEST(RollbackMonitorTest, RollsBackOnServingErrors) {
  ConfigureTorchThreads(0);
  testing::TempDir dir;
  auto opened = Store::Open(dir.path());
  ASSERT_TRUE(opened.ok()) << opened.status();
  Store* store = opened->get();
  Config config = Tiny(dir.path());
  config.bootstrap.steps = 10;
  auto boot = RunBootstrap(config, store, [](const std::string&) {});
  ASSERT_TRUE(boot.ok()) << boot.status();
  const std::string first = boot->snapshot_id;
  const std::string second = testing::PerturbedChild(store, first, 1e-4, kSeed);
  Promote(store, second);
  std::map<std::string, ServingCounts> counts = {{first, {500, 5, 0, 0}},
                                                 {second, {500, 60, 0, 0}}};
  RollbackMonitor monitor(config, store, nullptr,
                          [&](const std::string& id) { return counts[id]; }, nullptr);
  auto result = monitor.CheckOnce();
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(result->has_value());
  const Json& d = **result;
  EXPECT_EQ(d["verdict"], "rolled_back");
  EXPECT_EQ(*store->GetAlias(kChampion), first);
  const Json* rule = RuleNamed(d, "serving_errors");
  ASSERT_NE(rule, nullptr);
  EXPECT_EQ((*rule)["passed"], false);
  const Estimate e = ProportionDelta(60, 500, 5, 500);
  EXPECT_NEAR((*rule)["ci95"][0].get<double>(), e.ci_low, 1e-12);
  EXPECT_NE(d["reason"].get<std::string>().find("error rate"), std::string::npos);
  EXPECT_EQ(d["metrics"]["rollback"]["error_rate"]["champion"]["count"], 60);
}

}  // namespace
}  // namespace streamlm
