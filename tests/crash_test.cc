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
// The second test does the same to the roles as processes of their own
// (`learn`, `evaluate`, `serve`), killing one at a time while the others run.
//
// STREAMLM_CRASH_KILLS (default 10) sets the number of kills in each test,
// STREAMLM_CRASH_SEED (default: random) the moments; the seed is printed
// first so a failing run can be replayed. scripts/crash_test.sh N runs N.
#include <chrono>
#include <map>
#include <memory>
#include <cstdlib>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
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

// How often `needle` appears in the log at `path` (0 before it exists).
size_t CountInLog(const std::string& path, const std::string& needle) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return 0;
  size_t n = 0;
  for (size_t at = text->find(needle); at != std::string::npos; at = text->find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// The stream, produced in one chunk before each life: new texts, every 40th
// a repeat of an earlier new text, every 50th broken; feedback with every
// 10th record missing its response. Each key says what its record is
// (tests/util/stream_audit.h).
class CrashStream {
 public:
  static constexpr int kTexts = 200, kFeedback = 10;  // per chunk
  explicit CrashStream(KafkaProducer& producer) : producer_(producer) {}

  void ProduceChunk() {
    for (int n = 0; n < kTexts; ++n, ++next_text_) {
      const int i = next_text_;
      absl::Status s;
      // Record i goes to partition i % 2, a repeat to its original's: which
      // of two equal texts comes first is then fixed, so is the one rejected.
      if (i % 50 == 49) {
        s = producer_.Produce(testing::kText, absl::StrCat("bad-", i),
                              absl::StrCat("{\"text\": ", i), i % 2);
      } else if (i % 40 == 39) {
        // A text seen shortly before (maybe across a kill) or long before.
        const int of = docs_[i % 80 == 39 ? docs_.size() - 7 : docs_.size() / 2];
        s = producer_.Produce(testing::kText, absl::StrCat("dup-", i), testing::StreamRecord(of),
                              of % 2);
      } else {
        s = producer_.Produce(testing::kText, absl::StrCat("doc-", i), testing::StreamRecord(i),
                              i % 2);
        docs_.push_back(i);
      }
      ASSERT_TRUE(s.ok()) << s;
    }
    for (int n = 0; n < kFeedback; ++n, ++next_feedback_) {
      const int i = next_feedback_;
      Json f = {{"prompt", absl::StrCat("question ", i)}, {"rating", 1}};
      if (i % 10 != 9) f["response"] = absl::StrCat("answer ", i);
      ASSERT_TRUE(producer_.Produce(testing::kFeedback,
                                    absl::StrCat(i % 10 == 9 ? "bad-" : "fb-", i), f.dump())
                      .ok());
    }
    ASSERT_TRUE(producer_.Flush(10000).ok());
  }
  // What a learner that drained both topics has read of each.
  std::map<std::string, int64_t> Ends() const {
    return {{testing::kText, next_text_}, {testing::kFeedback, next_feedback_}};
  }

 private:
  KafkaProducer& producer_;
  int next_text_ = 0, next_feedback_ = 0;
  std::vector<int> docs_;  // indices of the new texts produced so far
};

// Each test: its seed and number of kills (printed first, for a replay), a
// separate `streamlm broker` with two partitions per topic, and the stream.
class CrashTest : public ::testing::Test {
 protected:
  void Start(const char* suite, int min_kills, const char* why) {
    seed_ = static_cast<uint64_t>(EnvInt("STREAMLM_CRASH_SEED", std::random_device()()));
    kills_ = static_cast<int>(EnvInt("STREAMLM_CRASH_KILLS", 10));
    ASSERT_GE(kills_, min_kills) << why;
    std::printf("%s: seed %llu, %d kills (replay: STREAMLM_CRASH_SEED=%llu "
                "STREAMLM_CRASH_KILLS=%d)\n",
                suite, static_cast<unsigned long long>(seed_), kills_,
                static_cast<unsigned long long>(seed_), kills_);
    std::fflush(stdout);
    RecordProperty("seed", std::to_string(seed_));
    rng_.seed(seed_);
    broker_ = testing::StartBroker(dir_.Sub("broker.log"), 2, &brokers_);
    ASSERT_FALSE(brokers_.empty()) << broker_->StderrTail();
    auto producer = KafkaProducer::Create(brokers_);
    ASSERT_TRUE(producer.ok()) << producer.status();
    producer_ = std::move(*producer);
    stream_ = std::make_unique<CrashStream>(*producer_);
  }
  // The store audit after the last life (tests/util/stream_audit.h), against
  // a chunk of the stream per kill.
  void Audit(const std::string& data_dir, const std::set<std::string>& served,
             testing::AuditFigures* f) {
    auto store = Store::Open(data_dir, /*read_only=*/true);
    ASSERT_TRUE(store.ok()) << store.status();
    *f = testing::AuditStream(store->get(), brokers_, kText, kFeedback, kRejects, served);
    EXPECT_EQ(f->text_records, int64_t{CrashStream::kTexts} * kills_);
    EXPECT_EQ(f->feedback_records, int64_t{CrashStream::kFeedback} * kills_);
  }
  double Uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng_);
  }

  TempDir dir_;
  uint64_t seed_ = 0;
  int kills_ = 0;
  std::mt19937_64 rng_;
  std::string brokers_;
  std::unique_ptr<testing::Subprocess> broker_;
  std::unique_ptr<KafkaProducer> producer_;
  std::unique_ptr<CrashStream> stream_;
};

TEST_F(CrashTest, SigkillAtRandomMomentsLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(
      Start("crash suite", 3, "a kill during the bootstrap, training and an evaluation"));
  const std::string data_dir = dir_.Sub("store");
  std::set<std::string> served;
  int during_bootstrap = 0, during_evaluation = 0, while_training = 0;
  for (int life = 0; life < kills_; ++life) {
    ASSERT_NO_FATAL_FAILURE(stream_->ProduceChunk());
    const std::string log = dir_.Sub(absl::StrCat("run-", life, ".log"));
    testing::RunProcess run(brokers_, data_dir, log);
    // Life 0 dies in the bootstrap; then, in turn, during an evaluation, at a
    // random moment after start-up, and at a random moment from the start.
    if (life == 0) {
      ASSERT_TRUE(testing::WaitForLog(log, "bootstrapping one", 60)) << run.Tail();
      std::this_thread::sleep_for(std::chrono::duration<double>(Uniform(0.05, 0.5)));
    } else if (life % 3 == 1) {
      if (testing::WaitForLog(log, "evaluator: evaluating candidate", 60)) {
        std::this_thread::sleep_for(std::chrono::duration<double>(Uniform(0.0, 0.3)));
        ++during_evaluation;
      } else {
        ADD_FAILURE() << "no evaluation started in life " << life << ":\n" << run.Tail();
      }
    } else if (life % 3 == 2) {
      ASSERT_TRUE(run.WaitUp(std::chrono::steady_clock::now() + std::chrono::seconds(120)))
          << run.Tail();
      std::this_thread::sleep_for(std::chrono::duration<double>(Uniform(0.0, 4.0)));
      ++while_training;
    } else {
      std::this_thread::sleep_for(std::chrono::duration<double>(Uniform(0.5, 6.0)));
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
    const std::string log = dir_.Sub("run-final.log");
    testing::RunProcess run(brokers_, data_dir, log);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
    ASSERT_TRUE(run.WaitUp(deadline)) << run.Tail();
    httplib::Client http(run.endpoints().http_host, run.endpoints().http_port);
    http.set_read_timeout(10, 0);
    ASSERT_TRUE(
        testing::WaitDrained(http, stream_->Ends(), deadline))
        << "the last run did not drain the topics:\n" << run.Tail();
    EXPECT_EQ(run.Finish(SIGTERM, 120000), 0) << run.Tail();
    for (const std::string& id : run.served()) served.insert(id);
  }

  testing::AuditFigures f;
  ASSERT_NO_FATAL_FAILURE(Audit(data_dir, served, &f));
  std::printf("crash suite: seed %llu, %d kills (%d in the bootstrap, %d in an evaluation, %d "
              "while training) survived; %s; %zu models served\n",
              static_cast<unsigned long long>(seed_), kills_, during_bootstrap, during_evaluation,
              while_training, f.Summary().c_str(), served.size());
}

// The roles as processes of their own: `streamlm learn` owns the store,
// `streamlm evaluate` and `streamlm serve` follow it. One of them is killed
// in each life, in turn, while the other two run on: the learner in its
// bootstrap and then at random moments, the evaluator during an evaluation,
// a serving replica at a random moment; each is started again at once.
// Then all three drain and stop, and the same audit follows.
TEST_F(CrashTest, SigkillOfEachRoleProcessLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(
      Start("role crash suite", 4, "a kill in the bootstrap, then one of each role"));
  const std::string data_dir = dir_.Sub("store");

  const std::vector<std::string> roles = {"learn", "evaluate", "serve"};
  std::map<std::string, std::unique_ptr<testing::RunProcess>> procs;
  std::map<std::string, int> starts, killed;
  std::set<std::string> served;
  auto start = [&](const std::string& role) {
    if (auto it = procs.find(role); it != procs.end()) {
      for (const std::string& id : it->second->served()) served.insert(id);
    }
    const std::string log = dir_.Sub(absl::StrCat(role, "-", starts[role]++, ".log"));
    procs[role] = std::make_unique<testing::RunProcess>(brokers_, data_dir, log,
                                                        std::vector<std::string>{}, role);
  };
  auto kill = [&](const std::string& role) {
    EXPECT_EQ(procs[role]->Finish(SIGKILL, 10000), 128 + SIGKILL) << procs[role]->Tail();
    ++killed[role];
  };
  auto wait_up = [&](const std::string& role) {
    return procs[role]->WaitUp(std::chrono::steady_clock::now() + std::chrono::seconds(300));
  };

  // Life 0: the learner dies in its bootstrap, before the others exist.
  ASSERT_NO_FATAL_FAILURE(stream_->ProduceChunk());
  start("learn");
  ASSERT_TRUE(testing::WaitForLog(procs["learn"]->log(), "bootstrapping one", 60))
      << procs["learn"]->Tail();
  std::this_thread::sleep_for(std::chrono::duration<double>(Uniform(0.05, 0.5)));
  const std::string bootstrap_log = procs["learn"]->log();
  kill("learn");
  {
    const std::string text = testing::ReadTestFile(bootstrap_log);
    EXPECT_TRUE(!absl::StrContains(text, "learner consuming"))
        << "life 0 was not killed during the bootstrap:\n" << text;
  }
  std::printf("life 0: learn killed (bootstrap)\n");
  start("learn");
  ASSERT_TRUE(wait_up("learn")) << procs["learn"]->Tail();
  start("evaluate");
  start("serve");
  ASSERT_TRUE(wait_up("evaluate")) << procs["evaluate"]->Tail();
  ASSERT_TRUE(wait_up("serve")) << procs["serve"]->Tail();

  for (int life = 1; life < kills_; ++life) {
    const std::string& role = roles[(life - 1) % roles.size()];
    const std::string evaluating = "evaluator: evaluating candidate";
    const size_t evaluations = CountInLog(procs["evaluate"]->log(), evaluating);
    ASSERT_NO_FATAL_FAILURE(stream_->ProduceChunk());
    if (role == "evaluate") {
      // The next evaluation this process starts.
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
      while (CountInLog(procs[role]->log(), evaluating) == evaluations &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (CountInLog(procs[role]->log(), evaluating) == evaluations) {
        ADD_FAILURE() << "no evaluation started in life " << life << ":\n"
                      << procs[role]->Tail() << "\n" << procs["learn"]->Tail();
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(Uniform(0.0, 0.3)));
    } else {
      std::this_thread::sleep_for(std::chrono::duration<double>(Uniform(0.5, 6.0)));
    }
    // The other two keep running: the followers answer while the owner is
    // gone.
    kill(role);
    for (const std::string& other : roles) {
      if (other == role) continue;
      httplib::Client http(procs[other]->endpoints().http_host,
                           procs[other]->endpoints().http_port);
      http.set_read_timeout(10, 0);
      auto r = http.Get("/healthz");
      EXPECT_TRUE(r && r->status == 200) << other << " did not answer while " << role
                                         << " was down:\n" << procs[other]->Tail();
    }
    std::printf("life %d: %s killed\n", life, role.c_str());
    start(role);
    ASSERT_TRUE(wait_up(role)) << procs[role]->Tail();
  }
  ASSERT_FALSE(HasFailure());

  // The learner drains both topics; then all stop cleanly.
  httplib::Client http(procs["learn"]->endpoints().http_host,
                       procs["learn"]->endpoints().http_port);
  http.set_read_timeout(10, 0);
  ASSERT_TRUE(testing::WaitDrained(http, stream_->Ends(),
                                   std::chrono::steady_clock::now() + std::chrono::seconds(300)))
      << "the learner did not drain the topics:\n" << procs["learn"]->Tail();
  for (const char* role : {"serve", "evaluate", "learn"}) {
    EXPECT_EQ(procs[role]->Finish(SIGTERM, 120000), 0) << procs[role]->Tail();
    for (const std::string& id : procs[role]->served()) served.insert(id);
  }
  testing::AuditFigures f;
  ASSERT_NO_FATAL_FAILURE(Audit(data_dir, served, &f));
  std::printf("role crash suite: seed %llu, %d kills (learn %d, 1 of them in the bootstrap; "
              "evaluate %d, during an evaluation; serve %d) survived; %s; %zu models served\n",
              static_cast<unsigned long long>(seed_), kills_, killed["learn"], killed["evaluate"],
              killed["serve"], f.Summary().c_str(), served.size());
}

}  // namespace
}  // namespace streamlm
