// Hot swap under load, through the real binary: `streamlm run` with the tiny
// model; text produced so the learner writes candidate snapshots; a gate no
// candidate can pass, so only the admin API moves the champion. Then 4
// clients send completions back to back for 60 s while another thread
// promotes a different snapshot every ~10 s through POST /v1/admin/promote.
// No request may fail, and each must be answered by exactly one snapshot:
// the `model` it names (in every SSE chunk, when streaming) is one of the
// promoted snapshots, and its greedy text is that snapshot's greedy text for
// the prompt, measured alone before the load started.
// Also: `streamlm promote` / `rollback` on the CLI while `run` holds the
// store go through the admin API, and the API's errors.
#include <httplib.h>

#include <atomic>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "bench/serve_bench.h"
#include "common/json_util.h"
#include "common/kafka.h"
#include "gtest/gtest.h"
#include "tests/util/stream_text.h"
#include "tests/util/subprocess.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::Subprocess;
using testing::TempDir;

constexpr int kClients = 4;
constexpr int kLoadSeconds = 60;
constexpr int kPromoteEverySeconds = 10;
const char* const kPrompts[] = {"the learner", "entry 7: the kafka broker", "the evaluator checks"};

// Runs `streamlm ARGS...` to completion; returns its exit code and stdout.
int RunCli(const std::vector<std::string>& args, const std::string& stderr_path,
           std::string* out) {
  std::vector<std::string> argv = {testing::StreamlmBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess proc(argv, stderr_path);
  out->clear();
  std::string line;
  while (proc.ReadLine(&line, 120000)) *out += line + "\n";
  return proc.Wait(120000);
}

class SwapUnderLoadTest : public ::testing::Test {
 protected:
  // One server for the suite: bootstrapping even the tiny model takes a while.
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    data_dir_ = dir_->Sub("store");
    proc_ = new Subprocess(
        {testing::StreamlmBinary(), "run", "--config",
         testing::SourceDir() + "/tests/data/tiny.yaml", "--data-dir", data_dir_,
         // No candidate can pass: only the admin API moves the champion.
         "--gate.min-adaptation", "100",
         // Every snapshot stays promotable (retention has its own tests).
         "--store.keep-snapshots", "100000"},
        dir_->Sub("stderr.log"));
    std::regex kafka_re(R"(^\s+kafka\s+(\S+))"), http_re(R"(^\s+http\s+http://([^:]+):(\d+))");
    std::string line;
    while (proc_->ReadLine(&line, 300000)) {
      std::smatch m;
      if (std::regex_search(line, m, kafka_re)) kafka_ = m[1];
      if (std::regex_search(line, m, http_re)) {
        host_ = m[1];
        port_ = std::stoi(m[2]);
        break;
      }
    }
  }
  static void TearDownTestSuite() {
    if (proc_ != nullptr) {
      int code = proc_->Stop(SIGTERM, 60000);
      EXPECT_EQ(code, 0) << proc_->StderrTail();
    }
    delete proc_;
    delete dir_;
    proc_ = nullptr;
    dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_GT(port_, 0) << "no banner from streamlm run\n" << proc_->StderrTail();
  }

  static std::string HttpAddress() { return host_ + ":" + std::to_string(port_); }

  static httplib::Client Client() {
    httplib::Client c(host_, port_);
    c.set_read_timeout(120, 0);
    return c;
  }

  static std::string Champion() {
    auto res = Client().Get("/v1/models");
    if (!res || res->status != 200) return "";
    auto j = ParseJson(res->body);
    if (!j.ok() || (*j)["data"].empty()) return "";
    return (*j)["data"][0]["id"];
  }

  static double Swaps() {
    auto res = Client().Get("/metrics");
    if (!res) return -1;
    auto v = PrometheusValue(res->body, "streamlm_serving_model_swaps_total");
    return v.ok() ? *v : 0;
  }

  // Snapshot ids the server knows: GET /v1/admin/snapshots where it exists,
  // else the candidates and champions named by GET /v1/admin/decisions.
  static std::vector<std::string> SnapshotIds() {
    std::vector<std::string> ids;
    auto res = Client().Get("/v1/admin/snapshots");
    if (res && res->status == 200) {
      auto j = ParseJson(res->body);
      if (j.ok() && j->is_array()) {
        for (const Json& s : *j) ids.push_back(s["id"]);
        return ids;
      }
    }
    res = Client().Get("/v1/admin/decisions?limit=0");
    if (!res || res->status != 200) return ids;
    auto j = ParseJson(res->body);
    if (!j.ok() || !j->is_array()) return ids;
    std::set<std::string> seen;
    for (const Json& d : *j) {
      for (const char* f : {"champion", "candidate"}) {
        if (d.contains(f) && d[f].is_string() && seen.insert(d[f]).second) ids.push_back(d[f]);
      }
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  static Json Promote(const std::string& id) {
    auto res = Client().Post("/v1/admin/promote", Json({{"snapshot", id}}).dump(),
                             "application/json");
    if (!res) return {{"transport_error", httplib::to_string(res.error())}};
    Json out = {{"status", res->status}};
    auto j = ParseJson(res->body);
    out["body"] = j.ok() ? *j : Json(res->body);
    return out;
  }

  // Produces text until the store holds at least `n` snapshots.
  static std::vector<std::string> AwaitSnapshots(size_t n) {
    auto producer = KafkaProducer::Create(kafka_);
    EXPECT_TRUE(producer.ok()) << producer.status();
    if (!producer.ok()) return {};
    static int next_record = 0;
    std::vector<std::string> ids;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
    while (std::chrono::steady_clock::now() < deadline) {
      ids = SnapshotIds();
      if (ids.size() >= n) break;
      for (int i = 0; i < 100; ++i) {
        EXPECT_TRUE((*producer)->Produce("streamlm.text", "",
                                         testing::StreamRecord(next_record++)).ok());
      }
      EXPECT_TRUE((*producer)->Flush(10000).ok());
      std::this_thread::sleep_for(std::chrono::seconds(2));
    }
    return ids;
  }

  static TempDir* dir_;
  static std::string data_dir_;
  static Subprocess* proc_;
  static std::string kafka_, host_;
  static int port_;
};

TempDir* SwapUnderLoadTest::dir_ = nullptr;
std::string SwapUnderLoadTest::data_dir_;
Subprocess* SwapUnderLoadTest::proc_ = nullptr;
std::string SwapUnderLoadTest::kafka_;
std::string SwapUnderLoadTest::host_;
int SwapUnderLoadTest::port_ = 0;

TEST_F(SwapUnderLoadTest, AdminApiAndCliPromoteAndRollbackWhileRunning) {
  const std::string bootstrap_id = Champion();
  ASSERT_FALSE(bootstrap_id.empty());
  std::vector<std::string> ids = AwaitSnapshots(2);
  ASSERT_GE(ids.size(), 2u) << proc_->StderrTail();
  std::string other = ids[0] == bootstrap_id ? ids[1] : ids[0];

  // Errors, in OpenAI's error shape.
  httplib::Client c = Client();
  auto res = c.Post("/v1/admin/promote", R"({"snapshot": "snap-999999"})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  Json err = *ParseJson(res->body);
  EXPECT_NE(err["error"]["message"].get<std::string>().find("snap-999999"), std::string::npos);
  EXPECT_EQ(err["error"]["param"], "snapshot");
  EXPECT_TRUE(err["error"].contains("type") && err["error"].contains("code"));
  for (const char* bad : {"not json", "[1]", "{}", R"({"snapshot": 5})"}) {
    res = c.Post("/v1/admin/promote", bad, "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << bad;
    EXPECT_TRUE(ParseJson(res->body)->contains("error")) << res->body;
  }
  res = c.Post("/v1/admin/rollback", "not json", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(Champion(), bootstrap_id);  // nothing moved

  // The CLI, with the store locked by `run`, goes through the admin API; the
  // served model has changed when it returns.
  std::string out;
  int code = RunCli({"promote", other, "--data-dir", data_dir_, "--http", HttpAddress()},
                    dir_->Sub("cli1.log"), &out);
  ASSERT_EQ(code, 0) << out << testing::ReadTestFile(dir_->Sub("cli1.log"));
  EXPECT_EQ(out, "champion: " + other + "\n");
  EXPECT_NE(testing::ReadTestFile(dir_->Sub("cli1.log")).find("admin API"), std::string::npos);
  EXPECT_EQ(Champion(), other);

  code = RunCli({"rollback", "--data-dir", data_dir_, "--http", HttpAddress()},
                dir_->Sub("cli2.log"), &out);
  ASSERT_EQ(code, 0) << out << testing::ReadTestFile(dir_->Sub("cli2.log"));
  EXPECT_EQ(out, "champion: " + bootstrap_id + "\n");
  EXPECT_EQ(Champion(), bootstrap_id);

  // An unknown snapshot fails the CLI with the server's reason.
  code = RunCli({"promote", "snap-999999", "--data-dir", data_dir_, "--http", HttpAddress()},
                dir_->Sub("cli3.log"), &out);
  EXPECT_NE(code, 0);
  EXPECT_NE(testing::ReadTestFile(dir_->Sub("cli3.log")).find("snap-999999"), std::string::npos);
  EXPECT_EQ(Champion(), bootstrap_id);

  // Rollback over HTTP answers with the aliases.
  res = c.Post("/v1/admin/promote", Json({{"snapshot", other}}).dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  res = c.Post("/v1/admin/rollback", "", "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  Json j = *ParseJson(res->body);
  EXPECT_EQ(j["champion"], bootstrap_id);
  EXPECT_EQ(j["previous"], other);
  EXPECT_EQ(Champion(), bootstrap_id);
}

// What one client saw of one request.
struct Answer {
  int prompt = 0;
  bool streamed = false;
  std::string model;
  std::string text;
  std::string problem;  // empty when the request succeeded and was consistent
};

// One completion; streamed answers are reassembled from their chunks.
Answer Complete(httplib::Client& client, int prompt, bool stream) {
  Answer a;
  a.prompt = prompt;
  a.streamed = stream;
  Json body = {{"prompt", kPrompts[prompt]}, {"max_tokens", 8}, {"temperature", 0}};
  if (stream) body["stream"] = true;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  std::string sse;
  SseEvents events;
  if (stream) {
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      sse.append(data, n);
      ConsumeSse(&sse, &events);
      return true;
    };
  }
  auto res = client.send(req);
  if (!res) {
    a.problem = "transport error " + httplib::to_string(res.error());
    return a;
  }
  if (res->status != 200) {
    a.problem = "status " + std::to_string(res->status) + ": " + res->body;
    return a;
  }
  if (!stream) {
    auto j = ParseJson(res->body);
    if (!j.ok() || !(*j)["model"].is_string() || !(*j)["choices"][0]["text"].is_string()) {
      a.problem = "bad body: " + res->body;
      return a;
    }
    a.model = (*j)["model"];
    a.text = (*j)["choices"][0]["text"];
    return a;
  }
  if (!events.done || events.malformed > 0 || events.events.empty()) {
    a.problem = "incomplete or malformed stream";
    return a;
  }
  for (const Json& e : events.events) {
    std::string m = e.value("model", "");
    if (a.model.empty()) a.model = m;
    if (m != a.model) {
      a.problem = "one stream named two models: " + a.model + " and " + m;
      return a;
    }
    if (e.contains("choices") && !e["choices"].empty()) {
      a.text += e["choices"][0].value("text", "");
    }
  }
  return a;
}

TEST_F(SwapUnderLoadTest, NoRequestFailsAndEachIsServedByOneSnapshot) {
  std::vector<std::string> ids = AwaitSnapshots(3);
  ASSERT_GE(ids.size(), 2u) << proc_->StderrTail();
  if (ids.size() > 3) ids.resize(3);

  // Streaming is being added to the server; use it where it is there.
  httplib::Client probe = Client();
  auto streaming = probe.Post(
      "/v1/completions", R"({"prompt": "a", "max_tokens": 1, "stream": true})", "application/json");
  ASSERT_TRUE(streaming);
  const bool can_stream = streaming->status == 200;
  RecordProperty("streamed", can_stream ? "yes" : "no (server answers stream: true with " +
                                                      std::to_string(streaming->status) + ")");

  // Each snapshot's greedy answers, alone, before the load.
  std::map<std::string, std::vector<std::string>> reference;
  for (const std::string& id : ids) {
    Json p = Promote(id);
    ASSERT_EQ(p["status"], 200) << p.dump();
    for (int i = 0; i < 3; ++i) {
      Answer a = Complete(probe, i, false);
      ASSERT_TRUE(a.problem.empty()) << a.problem;
      ASSERT_EQ(a.model, id);
      reference[id].push_back(a.text);
    }
  }
  const double swaps_before = Swaps();

  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<Answer> answers;  // GUARDED_BY(mu)
  std::vector<std::thread> clients;
  for (int k = 0; k < kClients; ++k) {
    clients.emplace_back([&, k] {
      httplib::Client client = Client();
      client.set_keep_alive(true);
      for (int n = 0; !stop; ++n) {
        Answer a = Complete(client, (k + n) % 3, can_stream && k % 2 == 1);
        std::lock_guard<std::mutex> lock(mu);
        answers.push_back(std::move(a));
      }
    });
  }
  std::vector<std::string> promoted;
  std::vector<std::string> promote_problems;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 1; std::chrono::steady_clock::now() - start <
                  std::chrono::seconds(kLoadSeconds - kPromoteEverySeconds / 2);
       ++i) {
    std::this_thread::sleep_until(start + std::chrono::seconds(i * kPromoteEverySeconds) -
                                  std::chrono::seconds(kPromoteEverySeconds / 2));
    const std::string& id = ids[i % ids.size()];
    Json p = Promote(id);
    if (p["status"] != 200 || p["body"]["champion"] != id) {
      promote_problems.push_back(p.dump());
      continue;
    }
    promoted.push_back(id);
    // The swap is done when the promotion is answered.
    std::string now = Champion();
    if (now != id) promote_problems.push_back("after promoting " + id + " /v1/models says " + now);
  }
  std::this_thread::sleep_until(start + std::chrono::seconds(kLoadSeconds));
  stop = true;
  for (std::thread& t : clients) t.join();
  const double swaps_after = Swaps();

  EXPECT_TRUE(promote_problems.empty()) << promote_problems.front();
  EXPECT_GE(promoted.size(), 4u);
  EXPECT_GE(swaps_after - swaps_before, 4) << swaps_before << " -> " << swaps_after;
  std::set<std::string> allowed(ids.begin(), ids.end());
  std::map<std::string, int> by_model;
  int failed = 0, streamed = 0;
  for (const Answer& a : answers) {
    streamed += a.streamed ? 1 : 0;
    if (!a.problem.empty()) {
      if (++failed <= 5) ADD_FAILURE() << "request failed: " << a.problem;
      continue;
    }
    ++by_model[a.model];
    EXPECT_EQ(allowed.count(a.model), 1u) << a.model << " was never promoted";
    if (allowed.count(a.model)) {
      EXPECT_EQ(a.text, reference[a.model][a.prompt])
          << "answer naming " << a.model << " for '" << kPrompts[a.prompt]
          << "' is not that snapshot's greedy text" << (a.streamed ? " (streamed)" : "");
    }
  }
  EXPECT_EQ(failed, 0) << "of " << answers.size();
  EXPECT_GE(by_model.size(), 2u);
  EXPECT_GT(answers.size(), static_cast<size_t>(4 * kClients));
  if (can_stream) {
    EXPECT_GT(streamed, 0);
  }
  std::string summary;
  for (const auto& [m, n] : by_model) summary += m + "=" + std::to_string(n) + " ";
  RecordProperty("answers_by_model", summary);
  std::printf("%zu answers (%d streamed), %zu promotions, swaps %g -> %g, by model: %s\n",
              answers.size(), streamed, promoted.size(), swaps_before, swaps_after,
              summary.c_str());
}

}  // namespace
}  // namespace streamlm
