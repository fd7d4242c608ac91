// Serving swaps its model under load without a failed request: clients send
// completions without pause while the champion alias moves back and forth
// between two snapshots and the server swaps to each (RefreshChampion, as a
// decision record makes it). Every request is answered 200 by one of the
// two models, and both answer. No broker: this test also runs under
// ThreadSanitizer (scripts/test.sh --sanitize thread), which Kafka-using
// tests cannot (README "Reliability").
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/json_util.h"
#include "gtest/gtest.h"
#include "serving/server.h"
#include "tests/util/temp_dir.h"
#include "tests/util/tiny_model.h"

namespace streamlm {
namespace {

constexpr int kClients = 4;
constexpr int kSwaps = 20;

TEST(SwapTest, ConcurrentRequestsDuringSwapsAllSucceed) {
  testing::TempDir dir;
  auto store = Store::Open(dir.Sub("store"));
  ASSERT_TRUE(store.ok()) << store.status();
  auto model = testing::TinyByteModel();  // no SentencePiece: runs under TSan too
  ASSERT_NE(model, nullptr);
  Snapshot a = testing::ModelSnapshot(*model, "snap-a");
  ASSERT_TRUE((*store)->PutSnapshot(a, {kChampion}).ok());
  Snapshot b = a;
  b.meta.id = "snap-b";
  ASSERT_TRUE((*store)->PutSnapshot(b, {}).ok());

  Config c;
  c.http = "127.0.0.1:0";
  c.serving.poll_ms = 3600 * 1000;  // swaps come from RefreshChampion only
  c.serving.threads = 2;
  Counters counters;
  Server server(c, store->get(), &counters);
  ASSERT_TRUE(server.Start().ok());

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::set<std::string> answered_by;  // GUARDED_BY(mu)
  std::string first_failure;          // GUARDED_BY(mu)
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      httplib::Client http("127.0.0.1", server.port());
      http.set_read_timeout(60, 0);
      const std::string body =
          absl::StrCat(R"({"prompt": "the harbour )", i, R"(", "max_tokens": 3})");
      while (!stop) {
        auto r = http.Post("/v1/completions", body, "application/json");
        auto j = r && r->status == 200 ? ParseJson(r->body) : absl::StatusOr<Json>(Json());
        std::lock_guard<std::mutex> lock(mu);
        if (j.ok() && j->contains("model")) {
          ++ok;
          answered_by.insert((*j)["model"].get<std::string>());
        } else if (failed++ == 0) {
          first_failure = r ? absl::StrCat(r->status, " ", r->body)
                            : absl::StrCat("no answer: ", httplib::to_string(r.error()));
        }
      }
    });
  }
  int swaps = 0;
  for (int i = 0; i < kSwaps; ++i) {
    const std::string next = i % 2 == 0 ? "snap-b" : "snap-a";
    ASSERT_TRUE((*store)->SetAlias(kChampion, next).ok());
    const int before = ok.load();
    absl::Status s = server.RefreshChampion();
    ASSERT_TRUE(s.ok()) << s;
    ++swaps;
    // Requests keep being answered between swaps.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (ok.load() < before + kClients && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  stop = true;
  for (auto& t : clients) t.join();
  server.Stop();
  std::printf("swaps: %d swaps under %d clients; %d completions answered, %d failed\n", swaps,
              kClients, ok.load(), failed.load());
  EXPECT_EQ(failed.load(), 0) << first_failure;
  EXPECT_GE(ok.load(), kSwaps * kClients);
  EXPECT_EQ(answered_by, (std::set<std::string>{"snap-a", "snap-b"}));
}

}  // namespace
}  // namespace streamlm
