// Broker outage: `streamlm broker` goes down for 30 s in the middle of a
// stream (SIGUSR1: clients disconnected, connections refused, the topics
// kept) and comes back (SIGUSR2). Meanwhile `streamlm run` keeps answering
// health checks and completions, shows the outage in /metrics
// (streamlm_kafka_consume_errors_total) and in its log at warning level;
// afterwards the learner resumes, and the store accounts for every record
// exactly once (tests/util/stream_audit.h): nothing lost, nothing repeated.
//
// Broker restart: `streamlm broker --journal DIR` is stopped in the middle
// of a stream and started again on the same port; it replays its journal,
// every record at its old offset, and the learner (reconnected, resuming at
// the offsets in its store) and serving go on: again every record counts
// exactly once.

#include <chrono>
#include <regex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/json_util.h"
#include "common/kafka.h"
#include "gtest/gtest.h"
#include "store/store.h"
#include "tests/util/run_process.h"
#include "tests/util/stream_audit.h"
#include "tests/util/stream_text.h"
#include "tests/util/free_port.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::TempDir;

using testing::kFeedback;
using testing::kRejects;
using testing::kText;

// The text stream both tests produce, as stream_audit.h expects it: every
// 50th text record bad, a feedback record with every 20th.
struct Stream {
  KafkaProducer* producer;
  int next = 0, feedback = 0;
  void Produce(int n) {
    for (int k = 0; k < n; ++k, ++next) {
      absl::Status s =
          next % 50 == 49
              ? producer->Produce(kText, absl::StrCat("bad-", next), "{\"text\": 7}")
              : producer->Produce(kText, absl::StrCat("doc-", next), testing::StreamRecord(next));
      ASSERT_TRUE(s.ok()) << s;
      if (k % 20 == 0) {
        Json f = {{"prompt", absl::StrCat("question ", next)},
                  {"response", absl::StrCat("answer ", next)},
                  {"rating", 1}};
        ASSERT_TRUE(producer->Produce(kFeedback, absl::StrCat("fb-", next), f.dump()).ok());
        ++feedback;
      }
    }
  }
};

// Waits until `run` consumed all of `stream`, stops it, and audits its
// store against the topics on `brokers`.
void DrainStopAndAudit(testing::RunProcess& run, httplib::Client& http, const Stream& stream,
                       const std::string& brokers, const std::string& data_dir,
                       testing::AuditFigures* f) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  ASSERT_TRUE(
      testing::WaitDrained(http, {{kText, stream.next}, {kFeedback, stream.feedback}}, deadline))
      << run.Tail();
  EXPECT_EQ(run.Finish(SIGTERM, 120000), 0) << run.Tail();
  auto store = Store::Open(data_dir, /*read_only=*/true);
  ASSERT_TRUE(store.ok()) << store.status();
  *f = testing::AuditStream(store->get(), brokers, kText, kFeedback, kRejects, run.served());
}


TEST(BrokerOutageTest, ABrokerRestartedWithItsJournalLosesNothing) {
  TempDir dir;
  const int port = testing::FreePort();
  ASSERT_GT(port, 0);
  auto start_broker = [&](const std::string& log) {
    return std::make_unique<testing::Subprocess>(
        std::vector<std::string>{testing::StreamlmBinary(), "broker", "--config",
                                 testing::SourceDir() + "/tests/data/tiny.yaml",
                                 "--broker.partitions", "2", "--port", std::to_string(port),
                                 "--journal", dir.Sub("journal")},
        log);
  };
  auto broker = start_broker(dir.Sub("broker.log"));
  std::string brokers;
  ASSERT_TRUE(broker->ReadLine(&brokers, 30000)) << broker->StderrTail();
  auto producer = KafkaProducer::Create(brokers);
  ASSERT_TRUE(producer.ok()) << producer.status();
  Stream stream{producer->get()};
  auto produce = [&stream](int n) { stream.Produce(n); };
  const std::string data_dir = dir.Sub("store");
  testing::RunProcess run(brokers, data_dir, dir.Sub("run.log"));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  ASSERT_TRUE(run.WaitUp(deadline)) << run.Tail();
  httplib::Client http(run.endpoints().http_host, run.endpoints().http_port);
  http.set_connection_timeout(1, 0);
  http.set_read_timeout(10, 0);
  produce(300);
  ASSERT_TRUE((*producer)->Flush(10000).ok());
  // In the middle of the stream: some of it consumed, not all.
  const std::string position = "streamlm_kafka_position_records{topic=\"streamlm.text\"}";
  while (testing::MetricValue(http, position) < 30 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double consumed_at_stop = testing::MetricValue(http, position);
  EXPECT_EQ(broker->Stop(SIGTERM, 60000), 0) << broker->StderrTail();
  // Serving answers while there is no broker.
  auto c = http.Post("/v1/completions", R"({"prompt": "the learner", "max_tokens": 4})",
                     "application/json");
  EXPECT_TRUE(c && c->status == 200) << "a completion failed while the broker was away";
  std::this_thread::sleep_for(std::chrono::seconds(2));
  broker = start_broker(dir.Sub("broker2.log"));
  std::string again;
  ASSERT_TRUE(broker->ReadLine(&again, 60000)) << broker->StderrTail();
  EXPECT_EQ(again, brokers);
  EXPECT_TRUE(testing::WaitForLog(
      dir.Sub("broker2.log"), absl::StrCat(stream.next + stream.feedback, " records replayed"), 10))
      << broker->StderrTail();
  // The same producer goes on (it reconnects), and so does the learner.
  produce(200);
  ASSERT_TRUE((*producer)->Flush(60000).ok());
  testing::AuditFigures f;
  DrainStopAndAudit(run, http, stream, brokers, data_dir, &f);
  if (HasFatalFailure()) return;
  EXPECT_EQ(f.text_records, 500);
  std::printf(
      "broker restart: stopped with %.0f of 300 text records consumed, restarted from "
      "its journal; %s\n",
      consumed_at_stop, f.Summary().c_str());
}

TEST(BrokerOutageTest, LearnerWaitsServingAnswersNothingLostOrRepeated) {
  TempDir dir;
  std::string brokers;
  auto broker = testing::StartBroker(dir.Sub("broker.log"), 2, &brokers);
  ASSERT_FALSE(brokers.empty()) << broker->StderrTail();
  auto producer = KafkaProducer::Create(brokers);
  ASSERT_TRUE(producer.ok()) << producer.status();
  Stream stream{producer->get()};
  auto produce = [&stream](int n) { stream.Produce(n); };
  produce(300);
  ASSERT_TRUE((*producer)->Flush(10000).ok());

  const std::string data_dir = dir.Sub("store");
  const std::string log = dir.Sub("run.log");
  testing::RunProcess run(brokers, data_dir, log);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  ASSERT_TRUE(run.WaitUp(deadline)) << run.Tail();
  httplib::Client http(run.endpoints().http_host, run.endpoints().http_port);
  http.set_connection_timeout(1, 0);
  http.set_read_timeout(10, 0);
  ASSERT_TRUE(
      testing::WaitDrained(http, {{kText, stream.next}, {kFeedback, stream.feedback}}, deadline))
      << run.Tail();
  const double errors_before =
      testing::MetricValue(http, "streamlm_kafka_consume_errors_total{topic=\"streamlm.text\"}");

  // 30 s down. Text produced meanwhile waits in the producer's queue.
  broker->Signal(SIGUSR1);
  ASSERT_TRUE(testing::WaitForLog(dir.Sub("broker.log"), "is DOWN", 10));
  const auto outage_end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  produce(100);
  int health_checks = 0, completions = 0;
  double slowest_health_s = 0;
  while (std::chrono::steady_clock::now() < outage_end) {
    auto t0 = std::chrono::steady_clock::now();
    auto h = http.Get("/healthz");
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    slowest_health_s = std::max(slowest_health_s, took);
    ASSERT_TRUE(h && h->status == 200) << "health check failed during the outage";
    ++health_checks;
    if (health_checks % 4 == 0) {
      auto c = http.Post("/v1/completions", R"({"prompt": "the learner", "max_tokens": 4})",
                         "application/json");
      ASSERT_TRUE(c && c->status == 200) << "completion failed during the outage";
      ++completions;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_LT(slowest_health_s, 1.0);
  // The outage shows: counted on /metrics, logged at warning level.
  const double errors_during =
      testing::MetricValue(http, "streamlm_kafka_consume_errors_total{topic=\"streamlm.text\"}");
  EXPECT_GT(errors_during, std::max(errors_before, 0.0)) << run.Tail();
  EXPECT_TRUE(std::regex_search(testing::ReadTestFile(log),
                                std::regex("\nW [^\n]*consuming streamlm\\.text failed")))
      << run.Tail();

  broker->Signal(SIGUSR2);
  ASSERT_TRUE(testing::WaitForLog(dir.Sub("broker.log"), "up again", 10));
  ASSERT_TRUE((*producer)->Flush(60000).ok());
  produce(200);
  ASSERT_TRUE((*producer)->Flush(10000).ok());
  testing::AuditFigures f;
  DrainStopAndAudit(run, http, stream, brokers, data_dir, &f);
  if (HasFatalFailure()) return;
  EXPECT_EQ(f.text_records, 600);
  std::printf(
      "broker outage: 30 s down; %d health checks (slowest %.3f s) and %d completions "
      "answered meanwhile; %.0f consume errors counted; %s\n",
      health_checks, slowest_health_s, completions, errors_during - std::max(errors_before, 0.0),
      f.Summary().c_str());
}

}  // namespace
}  // namespace streamlm
