// Roles as processes (issue 11), every one a process of its own around a
// separate `streamlm broker`: `streamlm learn` owns the store on a data
// dir; `streamlm evaluate` follows it (a RocksDB secondary), judges the
// candidates the learner announces and proposes verdicts, which the learner
// commits as decisions; two `streamlm serve` replicas follow the store and
// the decisions topic; a third has a directory of its own and fetches each
// champion from the learner over HTTP (`--snapshots-from`). Text is
// produced, a candidate is promoted, and every replica switches, driven by
// the decision record (their store poll is an hour), while clients send
// completions to them without one failing.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/json_util.h"
#include "common/kafka.h"
#include "gtest/gtest.h"
#include "store/store.h"
#include "tests/util/run_process.h"
#include "tests/util/stream_audit.h"
#include "tests/util/stream_text.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::TempDir;

// Sends completions to `port` until `stop`; counts answers and failures.
struct Client {
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::string first_failure;
  std::thread thread;
  void Start(const std::string& host, int port, const std::atomic<bool>* stop) {
    thread = std::thread([this, host, port, stop] {
      httplib::Client http(host, port);
      http.set_read_timeout(60, 0);
      while (!*stop) {
        auto r = http.Post("/v1/completions", R"({"prompt": "the stream", "max_tokens": 4})",
                           "application/json");
        if (r && r->status == 200) {
          ++ok;
        } else {
          if (failed++ == 0) {
            first_failure = r ? absl::StrCat(r->status, " ", r->body)
                              : absl::StrCat("no answer: ", httplib::to_string(r.error()));
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
};

TEST(RolesTest, LearnEvaluateAndServeProcessesPromoteAndEveryReplicaSwitches) {
  TempDir dir;
  std::string brokers;
  auto broker = testing::StartBroker(dir.Sub("broker.log"), 2, &brokers);
  ASSERT_FALSE(brokers.empty()) << broker->StderrTail();
  const std::string data_dir = dir.Sub("store");
  // The learner bootstraps a champion first (its banner comes after).
  testing::RunProcess owner(brokers, data_dir, dir.Sub("learn.log"), {}, "learn");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  ASSERT_TRUE(owner.WaitUp(deadline)) << owner.Tail();
  // The test reads the store as one more follower.
  auto view = Store::OpenFollower(data_dir, dir.Sub("test-follower"));
  ASSERT_TRUE(view.ok()) << view.status();
  auto store_champion = [&view] {
    EXPECT_TRUE((*view)->CatchUp().ok());
    return (*view)->GetAlias(kChampion).value_or("");
  };
  const std::string bootstrap_champion = store_champion();
  ASSERT_FALSE(bootstrap_champion.empty());
  const std::set<std::string> first = {bootstrap_champion};
  testing::RunProcess evaluator(brokers, data_dir, dir.Sub("evaluate.log"), {}, "evaluate");
  ASSERT_TRUE(evaluator.WaitUp(deadline)) << evaluator.Tail();

  // The replicas: two on the owner's data dir, one with a directory of its
  // own that fetches champions from the owner over HTTP (as on another
  // host); all with a store poll they never reach.
  std::vector<std::unique_ptr<testing::RunProcess>> replicas;
  for (int r = 0; r < 2; ++r) {
    replicas.push_back(std::make_unique<testing::RunProcess>(
        brokers, data_dir, dir.Sub(absl::StrCat("serve", r, ".log")),
        std::vector<std::string>{"--serving.poll-ms", "3600000"}, "serve"));
  }
  const std::string owner_url = absl::StrCat("http://", owner.endpoints().http_host, ":",
                                             owner.endpoints().http_port);
  replicas.push_back(std::make_unique<testing::RunProcess>(
      brokers, dir.Sub("remote"), dir.Sub("remote.log"),
      std::vector<std::string>{"--serving.poll-ms", "3600000", "--snapshots-from", owner_url},
      "serve"));
  for (auto& r : replicas) {
    ASSERT_TRUE(r->WaitUp(std::chrono::steady_clock::now() + std::chrono::seconds(60)))
        << r->Tail();
    EXPECT_EQ(r->endpoints().kafka, brokers);
  }
  {  // A replica cannot move the champion: that is the owner's write.
    httplib::Client http(replicas[0]->endpoints().http_host, replicas[0]->endpoints().http_port);
    Json body = {{"snapshot", bootstrap_champion}};
    auto r = http.Post("/v1/admin/promote", body.dump(), "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 409) << r->body;
    EXPECT_NE(r->body.find("another process owns"), std::string::npos) << r->body;
  }
  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<Client>> clients;
  for (auto& r : replicas) {
    for (int k = 0; k < 2; ++k) {
      clients.push_back(std::make_unique<Client>());
      clients.back()->Start(r->endpoints().http_host, r->endpoints().http_port, &stop);
    }
  }
  // Clients stop before the processes they talk to, however the test ends.
  struct StopClients {
    std::atomic<bool>* stop;
    std::vector<std::unique_ptr<Client>>* clients;
    ~StopClients() {
      *stop = true;
      for (auto& c : *clients) {
        if (c->thread.joinable()) c->thread.join();
      }
    }
  } stop_clients{&stop, &clients};
  // Both answer with the owner's champion before anything is promoted.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  for (auto& r : replicas) EXPECT_EQ(r->served(), first) << r->Tail();

  auto producer = KafkaProducer::Create(brokers);
  ASSERT_TRUE(producer.ok()) << producer.status();
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE((*producer)
                    ->Produce(testing::kText, absl::StrCat("doc-", i), testing::StreamRecord(i))
                    .ok());
  }
  ASSERT_TRUE((*producer)->Flush(10000).ok());

  // A promotion in the owner; then every replica serves a promoted model
  // (promotions come fast here, so a replica may skip some).
  auto promoted = [&](testing::RunProcess& p) {
    auto ids = p.served();
    ids.erase(bootstrap_champion);
    return !ids.empty();
  };
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (store_champion() == bootstrap_champion && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_NE(store_champion(), bootstrap_champion)
      << "no promotion: " << owner.Tail() << "\n" << evaluator.Tail();
  const auto promoted_at = std::chrono::steady_clock::now();
  std::vector<double> switch_s(replicas.size(), -1);
  deadline = promoted_at + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    bool all = true;
    for (size_t r = 0; r < replicas.size(); ++r) {
      if (switch_s[r] < 0 && promoted(*replicas[r])) {
        switch_s[r] = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                    promoted_at).count();
      }
      all &= switch_s[r] >= 0;
    }
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (size_t r = 0; r < replicas.size(); ++r) {
    EXPECT_GE(switch_s[r], 0) << "replica " << r << " did not switch\n" << replicas[r]->Tail();
  }
  // Once the stream is drained (no more candidates), every replica serves
  // the store's last champion.
  httplib::Client owner_http(owner.endpoints().http_host, owner.endpoints().http_port);
  ASSERT_TRUE(testing::WaitDrained(owner_http, {{testing::kText, 300}},
                                   std::chrono::steady_clock::now() + std::chrono::seconds(300)))
      << owner.Tail();
  auto served_now = [](testing::RunProcess& p) {
    httplib::Client http(p.endpoints().http_host, p.endpoints().http_port);
    auto m = http.Get("/v1/models");
    if (!m || m->status != 200) return std::string();
    auto j = ParseJson(m->body);
    return j.ok() ? (*j)["data"][0]["id"].get<std::string>() : std::string();
  };
  std::string champion;
  int agreeing = 0;  // consecutive looks with every replica on the store's champion
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (agreeing < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    const std::string id = store_champion();
    bool all = id == champion;
    champion = id;
    for (auto& r : replicas) all &= served_now(*r) == champion;
    agreeing = all ? agreeing + 1 : 0;
  }
  for (auto& r : replicas) EXPECT_EQ(served_now(*r), champion) << r->Tail();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  stop = true;
  for (auto& c : clients) c->thread.join();  // before their counts are read
  int answered = 0;
  for (auto& c : clients) {
    EXPECT_EQ(c->failed, 0) << c->first_failure;
    EXPECT_GT(c->ok, 0);
    answered += c->ok;
  }
  // The switch came from the decisions topic: a catch-up was counted.
  for (auto& r : replicas) {
    httplib::Client http(r->endpoints().http_host, r->endpoints().http_port);
    EXPECT_GE(testing::MetricValue(http, "streamlm_follower_catch_ups_total"), 1);
  }
  // The promotion came from the evaluator process's verdict, committed by
  // the learner once.
  httplib::Client evaluator_http(evaluator.endpoints().http_host,
                                 evaluator.endpoints().http_port);
  EXPECT_GE(testing::MetricValue(evaluator_http, "streamlm_evaluator_candidates_total"), 1);
  EXPECT_GE(testing::MetricValue(owner_http, "streamlm_verdicts_total{reason=\"committed\"}"), 1);
  ASSERT_TRUE((*view)->CatchUp().ok());
  auto decisions = (*view)->ListDecisions(0);
  ASSERT_TRUE(decisions.ok()) << decisions.status();
  std::set<std::string> verdict_ids;
  int promotions = 0;
  for (const Json& d : *decisions) {
    EXPECT_TRUE(d.contains("verdict_id")) << d.dump();
    EXPECT_TRUE(verdict_ids.insert(d.value("verdict_id", "")).second) << "committed twice: "
                                                                      << d.dump();
    promotions += d.value("verdict", "") == "promoted";
  }
  EXPECT_GE(promotions, 1);
  view->reset();
  for (auto& r : replicas) EXPECT_EQ(r->Finish(SIGTERM, 30000), 0) << r->Tail();
  EXPECT_EQ(evaluator.Finish(SIGTERM, 120000), 0) << evaluator.Tail();
  EXPECT_EQ(owner.Finish(SIGTERM, 120000), 0) << owner.Tail();
  // Followers clean up their RocksDB secondary directories.
  EXPECT_TRUE(!std::filesystem::exists(data_dir + "/followers") ||
              std::filesystem::is_empty(data_dir + "/followers"));
  std::printf("roles: serve replicas switched %.2f s, %.2f s (same data dir) and %.2f s "
              "(--snapshots-from) after the first promotion and ended on the last champion "
              "%s; %zu decisions from the evaluate process (%d promotions); %d completions "
              "answered meanwhile, none failed\n",
              switch_s[0], switch_s[1], switch_s[2], champion.c_str(), decisions->size(),
              promotions, answered);
}

}  // namespace
}  // namespace streamlm
