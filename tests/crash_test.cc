// Crash suite: `streamlm run`, against a separate `streamlm broker`, is
// killed with SIGKILL at random moments (during the bootstrap, while the
// learner trains, during an evaluation) while text and feedback keep
// arriving on two partitions each. After the last kill it is started once
// more, drains both topics and stops with SIGTERM. The store must then
// account for every record exactly once (tests/util/stream_audit.h): every
// offset of every partition in exactly one lineage range, trained + held
// out + rejected = produced, each feedback record stored once, each reject
// on the rejects topic under its own position, every snapshot readable with
// its checksums, and only bootstrapped or promoted snapshots ever served.
//
// STREAMLM_CRASH_KILLS (default 10) sets the number of kills,
// STREAMLM_CRASH_SEED (default: random) the moments; the seed is printed
// first so a failing run can be replayed. scripts/crash_test.sh N runs N.
#include <chrono>
#include <cstdlib>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
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

using testing::kFeedback;
using testing::kRejects;
using testing::kText;

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  int64_t out;
  return v != nullptr && absl::SimpleAtoi(v, &out) ? out : fallback;
}

TEST(CrashTest, SigkillAtRandomMomentsLosesNothing) {
  const uint64_t seed = static_cast<uint64_t>(EnvInt("STREAMLM_CRASH_SEED", std::random_device()()));
  const int kills = static_cast<int>(EnvInt("STREAMLM_CRASH_KILLS", 10));
  ASSERT_GE(kills, 3) << "a kill during the bootstrap, training and an evaluation";
  std::printf("crash suite: seed %llu, %d kills (replay: STREAMLM_CRASH_SEED=%llu "
              "STREAMLM_CRASH_KILLS=%d)\n",
              static_cast<unsigned long long>(seed), kills,
              static_cast<unsigned long long>(seed), kills);
  std::fflush(stdout);
  RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto uniform = [&rng](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };

  TempDir dir;
  std::string brokers;
  auto broker = testing::StartBroker(dir.Sub("broker.log"), 2, &brokers);
  ASSERT_FALSE(brokers.empty()) << broker->StderrTail();
  auto producer = KafkaProducer::Create(brokers);
  ASSERT_TRUE(producer.ok()) << producer.status();

  // The stream, produced in one chunk before each life: new texts, every
  // 40th a repeat of an earlier new text, every 50th broken; feedback with every
  // 10th record missing its response.
  const int texts_per_life = 200, feedback_per_life = 10;
  int next_text = 0, next_feedback = 0;
  std::vector<int> docs;  // indices of the new texts produced so far
  auto produce_chunk = [&] {
    for (int n = 0; n < texts_per_life; ++n, ++next_text) {
      const int i = next_text;
      absl::Status s;
      // Record i goes to partition i % 2, a repeat to its original's: which
      // of two equal texts comes first is then fixed, so is the one rejected.
      if (i % 50 == 49) {
        s = (*producer)->Produce(kText, absl::StrCat("bad-", i), absl::StrCat("{\"text\": ", i),
                                 i % 2);
      } else if (i % 40 == 39) {
        // A text seen shortly before (maybe across a kill) or long before.
        const int of = docs[i % 80 == 39 ? docs.size() - 7 : docs.size() / 2];
        s = (*producer)->Produce(kText, absl::StrCat("dup-", i), testing::StreamRecord(of),
                                 of % 2);
      } else {
        s = (*producer)->Produce(kText, absl::StrCat("doc-", i), testing::StreamRecord(i), i % 2);
        docs.push_back(i);
      }
      ASSERT_TRUE(s.ok()) << s;
    }
    for (int n = 0; n < feedback_per_life; ++n, ++next_feedback) {
      const int i = next_feedback;
      Json f = {{"prompt", absl::StrCat("question ", i)}, {"rating", 1}};
      if (i % 10 != 9) f["response"] = absl::StrCat("answer ", i);
      ASSERT_TRUE((*producer)->Produce(kFeedback, absl::StrCat(i % 10 == 9 ? "bad-" : "fb-", i),
                                       f.dump()).ok());
    }
    ASSERT_TRUE((*producer)->Flush(10000).ok());
  };

  const std::string data_dir = dir.Sub("store");
  std::set<std::string> served;
  int during_bootstrap = 0, during_evaluation = 0, while_training = 0;
  for (int life = 0; life < kills; ++life) {
    produce_chunk();
    const std::string log = dir.Sub(absl::StrCat("run-", life, ".log"));
    testing::RunProcess run(brokers, data_dir, log);
    // Life 0 dies in the bootstrap; then, in turn, during an evaluation, at a
    // random moment after start-up, and at a random moment from the start.
    if (life == 0) {
      ASSERT_TRUE(testing::WaitForLog(log, "bootstrapping one", 60)) << run.Tail();
      std::this_thread::sleep_for(std::chrono::duration<double>(uniform(0.05, 0.5)));
    } else if (life % 3 == 1) {
      if (testing::WaitForLog(log, "evaluator: evaluating candidate", 60)) {
        std::this_thread::sleep_for(std::chrono::duration<double>(uniform(0.0, 0.3)));
        ++during_evaluation;
      } else {
        ADD_FAILURE() << "no evaluation started in life " << life << ":\n" << run.Tail();
      }
    } else if (life % 3 == 2) {
      ASSERT_TRUE(run.WaitUp(std::chrono::steady_clock::now() + std::chrono::seconds(120)))
          << run.Tail();
      std::this_thread::sleep_for(std::chrono::duration<double>(uniform(0.0, 4.0)));
      ++while_training;
    } else {
      std::this_thread::sleep_for(std::chrono::duration<double>(uniform(0.5, 6.0)));
      ++while_training;
    }
    EXPECT_EQ(run.Finish(SIGKILL, 10000), 128 + SIGKILL) << run.Tail();
    if (life == 0) {
      // The bootstrap was under way and had not finished.
      const std::string text = testing::ReadTestFile(log);
      EXPECT_TRUE(absl::StrContains(text, "bootstrap") &&
                  !absl::StrContains(text, "learner consuming"))
          << "life 0 was not killed during the bootstrap:\n" << text;
      ++during_bootstrap;
    }
    for (const std::string& id : run.served()) served.insert(id);
    std::printf("life %d: killed (%s)\n", life,
                life == 0 ? "bootstrap" : life % 3 == 1 ? "evaluation" : "training");
  }
  ASSERT_FALSE(HasFailure());

  // The last life drains both topics and stops cleanly.
  {
    const std::string log = dir.Sub("run-final.log");
    testing::RunProcess run(brokers, data_dir, log);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
    ASSERT_TRUE(run.WaitUp(deadline)) << run.Tail();
    httplib::Client http(run.endpoints().http_host, run.endpoints().http_port);
    http.set_read_timeout(10, 0);
    ASSERT_TRUE(
        testing::WaitDrained(http, {{kText, next_text}, {kFeedback, next_feedback}}, deadline))
        << "the last run did not drain the topics:\n" << run.Tail();
    EXPECT_EQ(run.Finish(SIGTERM, 120000), 0) << run.Tail();
    for (const std::string& id : run.served()) served.insert(id);
  }

  auto store = Store::Open(data_dir, /*read_only=*/true);
  ASSERT_TRUE(store.ok()) << store.status();
  testing::AuditFigures f =
      testing::AuditStream(store->get(), brokers, kText, kFeedback, kRejects, served);
  EXPECT_EQ(f.text_records, int64_t{texts_per_life} * kills);
  EXPECT_EQ(f.feedback_records, int64_t{feedback_per_life} * kills);
  std::printf("crash suite: seed %llu, %d kills (%d in the bootstrap, %d in an evaluation, %d "
              "while training) survived; %s; %zu models served\n",
              static_cast<unsigned long long>(seed), kills, during_bootstrap, during_evaluation,
              while_training, f.Summary().c_str(), served.size());
}

}  // namespace
}  // namespace streamlm
