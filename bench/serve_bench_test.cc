// `streamlm bench serve` against a fake OpenAI-style server in this process
// whose answers, failures, delays and learner counter are known.
#include "bench/serve_bench.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "gtest/gtest.h"

namespace streamlm {
namespace {

TEST(ServeBenchTest, QuantileInterpolatesBetweenClosestRanks) {
  // numpy.quantile([4, 1, 3, 2], q): 0.5 -> 2.5, 0.9 -> 3.7, 0 -> 1, 1 -> 4.
  EXPECT_DOUBLE_EQ(Quantile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_NEAR(Quantile({4, 1, 3, 2}, 0.9), 3.7, 1e-12);
  EXPECT_DOUBLE_EQ(Quantile({4, 1, 3, 2}, 0.0), 1);
  EXPECT_DOUBLE_EQ(Quantile({4, 1, 3, 2}, 1.0), 4);
  EXPECT_DOUBLE_EQ(Quantile({}, 0.5), 0);
}

TEST(ServeBenchTest, PrometheusValueSumsLabelSetsAndSkipsLongerNames) {
  const std::string text =
      "# TYPE streamlm_learner_steps_total counter\n"
      "streamlm_learner_steps_total 12\n"
      "streamlm_learner_steps_total_extra 99\n"
      "streamlm_records_rejected_total{reason=\"duplicate\"} 2\n"
      "streamlm_records_rejected_total{reason=\"empty\"} 3 1700000000\n";
  EXPECT_DOUBLE_EQ(*PrometheusValue(text, "streamlm_learner_steps_total"), 12);
  EXPECT_DOUBLE_EQ(*PrometheusValue(text, "streamlm_records_rejected_total"), 5);
  EXPECT_TRUE(absl::IsNotFound(PrometheusValue(text, "streamlm_nothing").status()));
}

TEST(ServeBenchTest, ConsumeSseKeepsPartialLinesForLater) {
  std::string buffer = "data: {\"a\": 1}\n\ndata: {\"a\"";
  SseEvents events;
  ConsumeSse(&buffer, &events);
  ASSERT_EQ(events.events.size(), 1u);
  EXPECT_EQ(buffer, "data: {\"a\"");
  buffer += ": 2}\r\n\r\n: comment\ndata: not json\ndata: [DONE]\n\n";
  ConsumeSse(&buffer, &events);
  ASSERT_EQ(events.events.size(), 2u);
  EXPECT_EQ(events.events[1]["a"], 2);
  EXPECT_EQ(events.malformed, 1);
  EXPECT_TRUE(events.done);
  EXPECT_TRUE(buffer.empty());
}

TEST(ServeBenchTest, PromptsHaveTheWordCountAndDependOnlyOnTheSeed) {
  std::string corpus;
  for (int i = 0; i < 1000; ++i) corpus += "w" + std::to_string(i) + (i % 10 ? " " : "\n");
  auto a = BuildPrompts(corpus, 32, 20, 7), b = BuildPrompts(corpus, 32, 20, 7),
       c = BuildPrompts(corpus, 32, 20, 8);
  ASSERT_EQ(a.size(), 20u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (const std::string& p : a) EXPECT_EQ(std::count(p.begin(), p.end(), ' '), 31) << p;
}

TEST(ServeBenchTest, ParsesUrlsAndLevels) {
  auto hp = ParseHttpUrl("http://127.0.0.1:8080");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 8080);
  EXPECT_FALSE(ParseHttpUrl("127.0.0.1:8080").ok());
  EXPECT_FALSE(ParseHttpUrl("http://host").ok());
  EXPECT_EQ(*ParseConcurrencyList("1,2, 8"), (std::vector<int>{1, 2, 8}));
  EXPECT_FALSE(ParseConcurrencyList("1,0").ok());
  EXPECT_FALSE(ParseConcurrencyList("a").ok());
}

TEST(ServeBenchTest, CorpusRecordsCutWholeLinesUpToTheTotal) {
  std::string corpus = "aaaa\nbbbb\ncccc\n\ndddd\neeee\n";
  auto records = CorpusRecords(corpus, 1, 8, 1000);
  // Starts at document 1, wraps to document 0; records end at line ends.
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0], "dddd\neeee");
  EXPECT_EQ(records[1], "aaaa\nbbbb");
  EXPECT_EQ(records[2], "cccc");
  EXPECT_EQ(CorpusRecords(corpus, 0, 8, 5).size(), 1u);
}

// A fake server: every 4th completion fails with 503; the others take
// kDelayMs and report kTokens completion tokens; the learner counter grows
// by one every 10 ms.
constexpr int kDelayMs = 20;
constexpr int kTokens = 7;

class FakeServer {
 public:
  FakeServer() : start_(std::chrono::steady_clock::now()) {
    http_.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{}", "application/json");
    });
    http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - start_).count();
      res.set_content("streamlm_learner_steps_total " + std::to_string(ms / 10) + "\n",
                      "text/plain");
    });
    http_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      if (++calls_ % 4 == 0) {
        res.status = 503;
        res.set_content(R"({"error": {"message": "busy"}})", "application/json");
        return;
      }
      auto body = ParseJson(req.body);
      if (body.ok() && body->value("stream", false)) {
        res.set_chunked_content_provider(
            "text/event-stream", [](size_t, httplib::DataSink& sink) {
              std::this_thread::sleep_for(std::chrono::milliseconds(kDelayMs));
              std::string out;
              for (int i = 0; i < 3; ++i) {
                out += "data: {\"model\": \"snap-a\", \"choices\": [{\"text\": \"x\"}]}\n\n";
              }
              out += "data: {\"model\": \"snap-a\", \"choices\": [], \"usage\": "
                     "{\"prompt_tokens\": 4, \"completion_tokens\": 3}}\n\ndata: [DONE]\n\n";
              sink.write(out.data(), out.size());
              sink.done();
              return true;
            });
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(kDelayMs));
      res.set_content(
          Json({{"model", "snap-a"},
                {"choices", {{{"text", "x"}}}},
                {"usage", {{"prompt_tokens", 4}, {"completion_tokens", kTokens}}}})
              .dump(),
          "application/json");
    });
    port_ = http_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { http_.listen_after_bind(); });
  }
  ~FakeServer() {
    http_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server http_;
  std::chrono::steady_clock::time_point start_;
  std::atomic<int> calls_{0};
  int port_ = 0;
  std::thread thread_;
};

std::string WriteCorpus() {
  std::string path = ::testing::TempDir() + "/serve_bench_corpus.txt";
  std::ofstream out(path);
  for (int i = 0; i < 500; ++i) out << "word" << i << (i % 12 ? " " : ".\n");
  return path;
}

TEST(ServeBenchTest, CountsRequestsFailuresTokensAndLearnerSteps) {
  FakeServer server;
  ServeBenchOptions o;
  o.url = server.url();
  o.concurrency = {1, 2};
  o.duration_s = 1.0;
  o.warmup_s = 0.2;
  o.learner_idle_s = 0.5;
  o.corpus_path = WriteCorpus();
  auto result = RunServeBench(o);
  ASSERT_TRUE(result.ok()) << result.status();
  const Json& levels = (*result)["levels"];
  ASSERT_EQ(levels.size(), 3u) << result->dump();
  EXPECT_EQ(levels[0]["concurrency"], 0);
  for (const Json& l : levels) {
    // 100 steps/s by construction; wide bounds for a loaded machine.
    EXPECT_GT(l["learner_steps_per_s"].get<double>(), 50) << l.dump();
    EXPECT_LT(l["learner_steps_per_s"].get<double>(), 150) << l.dump();
  }
  for (int i = 1; i <= 2; ++i) {
    const Json& l = levels[i];
    EXPECT_EQ(l["concurrency"], i);
    int64_t requests = l["requests"], failures = l["failures"];
    // At most 1 s / 20 ms per client; at least a few even when slow.
    EXPECT_GT(requests, 8) << l.dump();
    EXPECT_LE(requests, 55 * i) << l.dump();
    EXPECT_GT(failures, 0);
    EXPECT_EQ(l["failures_by"], Json({{"503", failures}}));
    EXPECT_EQ(l["completion_tokens"].get<int64_t>(), kTokens * (requests - failures));
    EXPECT_EQ(l["prompt_tokens"].get<int64_t>(), 4 * (requests - failures));
    EXPECT_GE(l["latency_s"]["p50"].get<double>(), kDelayMs / 1000.0);
    EXPECT_EQ(l["models"], Json({{"snap-a", requests - failures}}));
  }
  EXPECT_TRUE((*result)["ratios"].contains("tokens_per_s_c2_vs_c1"));
  EXPECT_TRUE((*result)["ratios"].contains("learner_steps_c2_vs_idle"));
}

TEST(ServeBenchTest, StreamingReadsUsageChunkAndTimeToFirstToken) {
  FakeServer server;
  ServeBenchOptions o;
  o.url = server.url();
  o.concurrency = {2};
  o.duration_s = 1.0;
  o.warmup_s = 0.1;
  o.stream = true;
  o.corpus_path = WriteCorpus();
  auto result = RunServeBench(o);
  ASSERT_TRUE(result.ok()) << result.status();
  const Json& l = (*result)["levels"][0];
  int64_t ok = l["requests"].get<int64_t>() - l["failures"].get<int64_t>();
  EXPECT_GT(ok, 4) << l.dump();
  EXPECT_EQ(l["completion_tokens"].get<int64_t>(), 3 * ok);
  EXPECT_EQ(l["usage_missing"], 0);
  EXPECT_GE(l["ttft_s"]["p50"].get<double>(), kDelayMs / 1000.0);
  EXPECT_LE(l["ttft_s"]["p50"].get<double>(), l["latency_s"]["p50"].get<double>() + 1e-9);
}

TEST(ServeBenchTest, NoServerIsAnError) {
  ServeBenchOptions o;
  o.url = "http://127.0.0.1:1";
  o.corpus_path = WriteCorpus();
  EXPECT_TRUE(absl::IsUnavailable(RunServeBench(o).status()));
}

}  // namespace
}  // namespace streamlm
