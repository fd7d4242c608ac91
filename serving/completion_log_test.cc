// CompletionLog: capacity (oldest forgotten first), expiry on an injected
// clock, "expired" vs "unknown" errors, capture off at capacity 0, and
// concurrent use.
#include "serving/completion_log.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace streamlm {
namespace {

CompletionRecord Rec(const std::string& id, const std::string& prompt = "p",
                     const std::string& response = "r") {
  CompletionRecord r;
  r.id = id;
  r.prompt = prompt;
  r.response = response;
  r.snapshot = "snap-000001";
  return r;
}

// A clock the test moves by hand.
struct FakeClock {
  std::atomic<int64_t> ms{1000000};
  CompletionLog::Clock fn() {
    return [this] { return ms.load(); };
  }
};

TEST(CompletionLogTest, RemembersWhatWasAdded) {
  FakeClock clock;
  CompletionLog log(10, 60, clock.fn());
  ASSERT_TRUE(log.Add(Rec("cmpl-1", "the prompt", "the answer")).ok());
  clock.ms += 1500;
  auto got = log.Get("cmpl-1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->id, "cmpl-1");
  EXPECT_EQ(got->prompt, "the prompt");
  EXPECT_EQ(got->response, "the answer");
  EXPECT_EQ(got->snapshot, "snap-000001");
  EXPECT_EQ(got->created_ms, 1000000);  // the clock when added
  EXPECT_EQ(log.size(), 1u);
}

TEST(CompletionLogTest, UnknownIdIsNotFoundSayingUnknown) {
  CompletionLog log(10, 60);
  auto got = log.Get("cmpl-nope");
  ASSERT_FALSE(got.ok());
  EXPECT_TRUE(absl::IsNotFound(got.status()));
  EXPECT_FALSE(CompletionLog::IsExpired(got.status()));
  EXPECT_NE(got.status().message().find("unknown"), std::string::npos) << got.status();
  EXPECT_NE(got.status().message().find("cmpl-nope"), std::string::npos);
}

TEST(CompletionLogTest, OldestIsEvictedFirst) {
  FakeClock clock;
  CompletionLog log(2, 60, clock.fn());
  ASSERT_TRUE(log.Add(Rec("a")).ok());
  ASSERT_TRUE(log.Add(Rec("b")).ok());
  ASSERT_TRUE(log.Add(Rec("c")).ok());
  EXPECT_EQ(log.size(), 2u);
  auto a = log.Get("a");
  ASSERT_FALSE(a.ok());
  EXPECT_FALSE(CompletionLog::IsExpired(a.status()));
  EXPECT_NE(a.status().message().find("unknown"), std::string::npos) << a.status();
  EXPECT_TRUE(log.Get("b").ok());
  EXPECT_TRUE(log.Get("c").ok());
  ASSERT_TRUE(log.Add(Rec("d")).ok());
  EXPECT_FALSE(log.Get("b").ok());
  EXPECT_TRUE(log.Get("c").ok());
  EXPECT_TRUE(log.Get("d").ok());
}

TEST(CompletionLogTest, EntriesExpireAfterTtl) {
  FakeClock clock;
  CompletionLog log(10, 2.5, clock.fn());
  ASSERT_TRUE(log.Add(Rec("old")).ok());
  clock.ms += 2500;  // exactly the ttl: still accepted
  EXPECT_TRUE(log.Get("old").ok());
  clock.ms += 1;
  auto got = log.Get("old");
  ASSERT_FALSE(got.ok());
  EXPECT_TRUE(absl::IsNotFound(got.status()));
  EXPECT_TRUE(CompletionLog::IsExpired(got.status()));
  EXPECT_NE(got.status().message().find("expired"), std::string::npos) << got.status();
  EXPECT_EQ(got.status().message().find("unknown"), std::string::npos) << got.status();

  // A later Add frees the expired entry's texts but it still reads as
  // expired (not unknown), and a fresh entry is served.
  ASSERT_TRUE(log.Add(Rec("new")).ok());
  EXPECT_TRUE(CompletionLog::IsExpired(log.Get("old").status()));
  auto fresh = log.Get("new");
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->response, "r");
  EXPECT_EQ(log.size(), 2u);
}

TEST(CompletionLogTest, ExpiredEntriesAreEvictedLikeOthers) {
  FakeClock clock;
  CompletionLog log(2, 1, clock.fn());
  ASSERT_TRUE(log.Add(Rec("a")).ok());
  clock.ms += 5000;
  ASSERT_TRUE(log.Add(Rec("b")).ok());
  ASSERT_TRUE(log.Add(Rec("c")).ok());  // evicts "a" (expired)
  auto a = log.Get("a");
  EXPECT_FALSE(CompletionLog::IsExpired(a.status()));
  EXPECT_NE(a.status().message().find("unknown"), std::string::npos);
  EXPECT_TRUE(log.Get("b").ok());
  EXPECT_TRUE(log.Get("c").ok());
  clock.ms += 1001;
  ASSERT_TRUE(log.Add(Rec("d")).ok());  // frees b and c, evicts b
  EXPECT_NE(log.Get("b").status().message().find("unknown"), std::string::npos);
  EXPECT_TRUE(CompletionLog::IsExpired(log.Get("c").status()));
  EXPECT_TRUE(log.Get("d").ok());
}

TEST(CompletionLogTest, CapacityZeroCapturesNothing) {
  CompletionLog log(0, 60);
  EXPECT_TRUE(log.Add(Rec("a")).ok());
  EXPECT_EQ(log.size(), 0u);
  auto got = log.Get("a");
  ASSERT_FALSE(got.ok());
  EXPECT_TRUE(absl::IsNotFound(got.status()));
  EXPECT_NE(got.status().message().find("completion_log_size"), std::string::npos);
}

TEST(CompletionLogTest, DuplicateIdIsRefusedAndKeepsTheFirst) {
  CompletionLog log(10, 60);
  ASSERT_TRUE(log.Add(Rec("a", "p1", "r1")).ok());
  absl::Status s = log.Add(Rec("a", "p2", "r2"));
  EXPECT_TRUE(absl::IsAlreadyExists(s)) << s;
  auto got = log.Get("a");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->response, "r1");
  EXPECT_EQ(log.size(), 1u);
}

TEST(CompletionLogTest, ConcurrentAddsAndGetsStayBounded) {
  CompletionLog log(64, 3600);
  constexpr int kThreads = 4, kPerThread = 2000;
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string id = absl::StrCat("t", t, "-", i);
        if (!log.Add(Rec(id, "p" + id, "r" + id)).ok()) ++bad;
        auto got = log.Get(id);
        // Another thread may have evicted it already; if present it is ours.
        if (got.ok() && got->response != "r" + id) ++bad;
        if (log.size() > 64) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(log.size(), 64u);
}

}  // namespace
}  // namespace streamlm
