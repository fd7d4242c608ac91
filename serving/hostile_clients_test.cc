// Serving against hostile clients (README.md "Connections"): connections
// that are idle, send half a header, send a byte a second, or never send the
// body they announced must not delay health checks or well-behaved clients;
// they are closed by whole header/body deadlines; connections beyond
// serving.max_connections get a clear 503. Also: a body that is not UTF-8
// gets a 400 saying so, a known path with the wrong method a 405. Health
// checks are answered even at the connection limit.
//
// Expectations come from the issue (StreamLM issue 12, item 8) and HTTP:
// health within 1 s while 1,000 such connections are held; EOF within the
// configured deadline plus slack.
#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "common/config.h"
#include "common/json_util.h"
#include "gtest/gtest.h"
#include "model/language_model.h"
#include "model/model_config.h"
#include "model/tokenizer.h"
#include "tests/util/tiny_model.h"
#include "serving/server.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// 1,000 client sockets and as many server-side ones live in this process.
void RaiseFdLimit() {
  rlimit r;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &r), 0);
  if (r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &r), 0);
  }
  ASSERT_GE(r.rlim_cur, 2600u) << "this test needs ~2,100 descriptors (ulimit -n)";
}

// A connected TCP socket to 127.0.0.1:port (blocking connect), or -1.
int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads until the server closes `fd` (EOF or reset) or `timeout_ms` passes;
// true when closed. `data` gets what was read.
bool AwaitClose(int fd, int timeout_ms, std::string* data) {
  const auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[4096];
  while (Clock::now() < end) {
    pollfd p = {fd, POLLIN, 0};
    int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count());
    if (poll(&p, 1, std::max(left, 1)) <= 0) continue;
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      data->append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0 || errno == ECONNRESET) return true;
  }
  return false;
}

struct Timed {
  int status = -1;
  double ms = 0;
  std::string body;
  httplib::Headers headers;
};

// One request on a fresh connection, timed from connect to the whole answer.
Timed Request(int port, const std::string& method, const std::string& path,
              const std::string& body = "") {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(15, 0);
  c.set_read_timeout(30, 0);
  Timed t;
  const auto start = Clock::now();
  httplib::Result res = method == "GET"      ? c.Get(path.c_str())
                        : method == "DELETE" ? c.Delete(path.c_str())
                                             : c.Post(path.c_str(), body, "application/json");
  t.ms = MsSince(start);
  if (res) {
    t.status = res->status;
    t.body = res->body;
    t.headers = res->headers;
  }
  return t;
}

using testing::ModelSnapshot;
using testing::TinyModel;

class HostileClientsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    auto store = Store::Open(dir_->Sub("store"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = store->release();
    auto model = TinyModel();
    ASSERT_NE(model, nullptr);
    Snapshot snap = ModelSnapshot(*model, "snap-hostile");
    ASSERT_TRUE(store_->PutSnapshot(snap, {kChampion}).ok());
  }
  static void TearDownTestSuite() {
    delete store_;
    delete dir_;
  }

  void SetUp() override {
    RaiseFdLimit();
    ASSERT_NE(store_, nullptr);
  }

  static Config BaseConfig() {
    Config c;
    c.http = "127.0.0.1:0";
    c.serving.poll_ms = 60000;
    c.serving.threads = 1;
    c.serving.idle_threads = 1;
    return c;
  }

  std::unique_ptr<Server> StartServer(const Config& c) {
    auto server = std::make_unique<Server>(c, store_, &counters_);
    absl::Status s = server->Start();
    EXPECT_TRUE(s.ok()) << s;
    return server;
  }

  static testing::TempDir* dir_;
  static Store* store_;
  Counters counters_;
};

testing::TempDir* HostileClientsTest::dir_ = nullptr;
Store* HostileClientsTest::store_ = nullptr;

constexpr char kHalfHeader[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";

// The issue's reproduction: 20 connections that send half a request header
// and wait. Before the fix the HTTP pool (max_batch + max_queue + 8 = 20
// workers here) was held by them and /healthz waited ~10 s.
TEST_F(HostileClientsTest, TwentyHalfHeadersDoNotDelayHealth) {
  Config c = BaseConfig();
  c.serving.max_batch = 4;
  c.serving.max_queue = 8;
  auto server = StartServer(c);
  std::vector<int> fds;
  for (int i = 0; i < 20; ++i) {
    int fd = Connect(server->port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, kHalfHeader));
    fds.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (int i = 0; i < 3; ++i) {
    Timed t = Request(server->port(), "GET", "/healthz");
    std::printf("healthz with 20 half-header connections: status %d in %.1f ms\n", t.status, t.ms);
    EXPECT_EQ(t.status, 200);
    EXPECT_LT(t.ms, 1000);
  }
  for (int fd : fds) close(fd);
}

// 1,000 connections of four hostile kinds held at once.
TEST_F(HostileClientsTest, ThousandHostileConnections) {
  constexpr int kPerKind = 250;
  constexpr int kHeld = 4 * kPerKind;
  constexpr int kLimit = kHeld + 10;
#ifdef STREAMLM_SANITIZED
  // Opening 1,000 connections takes about 4 s under ThreadSanitizer, so the
  // deadlines (and the slack on them) are longer there.
  constexpr double kHeaderTimeoutS = 15, kBodyTimeoutS = 15, kSlackMs = 5000;
#else
  constexpr double kHeaderTimeoutS = 6, kBodyTimeoutS = 6, kSlackMs = 2500;
#endif
  Config c = BaseConfig();
  c.serving.max_connections = kLimit;
  c.serving.header_timeout_s = kHeaderTimeoutS;
  c.serving.body_timeout_s = kBodyTimeoutS;
  auto server = StartServer(c);
  const int port = server->port();

  enum Kind { kIdle, kHalfHeaderKind, kSlow, kNoBody };
  struct Conn {
    int fd;
    Kind kind;
    Clock::time_point opened;
  };
  std::vector<Conn> conns;
  const std::string slow_request =
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + std::string(200, 'a') +
      "\r\n\r\n";
  const std::string no_body =
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Content-Length: 64\r\n\r\n";
  for (int i = 0; i < kHeld; ++i) {
    const Kind kind = static_cast<Kind>(i % 4);
    int fd = Connect(port);
    ASSERT_GE(fd, 0) << "connection " << i << ": " << strerror(errno);
    const auto opened = Clock::now();
    if (kind == kHalfHeaderKind) ASSERT_TRUE(SendAll(fd, kHalfHeader));
    if (kind == kSlow) ASSERT_TRUE(SendAll(fd, slow_request.substr(0, 1)));
    if (kind == kNoBody) ASSERT_TRUE(SendAll(fd, no_body));
    conns.push_back({fd, kind, opened});
  }
  // The slow ones send one more byte every second (never finishing).
  std::atomic<bool> stop_slow{false};
  std::thread slow([&] {
    for (size_t pos = 1; !stop_slow && pos < slow_request.size(); ++pos) {
      for (int waited = 0; waited < 10 && !stop_slow; ++waited) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      for (const Conn& k : conns) {
        if (k.kind == kSlow) send(k.fd, slow_request.data() + pos, 1, MSG_NOSIGNAL);
      }
    }
  });
  // Stopped and joined on every way out, an assertion's early return too.
  absl::Cleanup stop_slow_thread = [&] {
    stop_slow = true;
    if (slow.joinable()) slow.join();
  };

  // All of them are being served (held), as /metrics reports (its own
  // connection included).
  auto open_now = [port] {
    Timed m = Request(port, "GET", "/metrics");
    size_t at = m.body.find("\nstreamlm_http_connections_open ");
    return at == std::string::npos ? -1.0 : std::stod(m.body.substr(at + 32));
  };
  double open_connections = 0;
  for (int tries = 0; tries < 100 && open_connections != kHeld + 1; ++tries) {
    open_connections = open_now();
    if (open_connections != kHeld + 1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(open_connections, kHeld + 1);
  // Health answers in time, several times.
  double worst_ms = 0;
  for (int i = 0; i < 5; ++i) {
    for (const char* path : {"/healthz", "/readyz"}) {
      Timed t = Request(port, "GET", path);
      EXPECT_EQ(t.status, 200) << path << " " << t.body;
      EXPECT_LT(t.ms, 1000) << path;
      worst_ms = std::max(worst_ms, t.ms);
    }
  }
  std::printf("health with %d hostile connections held: worst of 10 in %.1f ms\n", kHeld, worst_ms);

  // Fill up to the limit; the next connection gets a clear refusal.
  EXPECT_EQ(open_now(), kHeld + 1) << "a held connection was closed early";
  // Let the server see that /metrics connection close, or it would still
  // count when the fillers arrive (the last filler would be refused).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::vector<int> fillers;
  for (int i = 0; i < kLimit - kHeld; ++i) {
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    fillers.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_LT(MsSince(conns.front().opened), kHeaderTimeoutS * 1000 - 2500)
      << "too slow to test the limit before the deadlines close the held connections";
  {
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    SendAll(fd, "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    std::string answer;
    const auto start = Clock::now();
    EXPECT_TRUE(AwaitClose(fd, 3000, &answer));
    EXPECT_LT(MsSince(start), 1000);
    EXPECT_EQ(answer.rfind("HTTP/1.1 503", 0), 0u) << answer;
    EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
    EXPECT_NE(answer.find("serving.max_connections"), std::string::npos) << answer;
    auto body = ParseJson(answer.substr(answer.find("\r\n\r\n") + 4));
    ASSERT_TRUE(body.ok()) << answer;
    EXPECT_EQ((*body)["error"]["code"], "too_many_connections");
    close(fd);
  }
  {
    // One that sends nothing is refused too, once its request line is late.
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    std::string answer;
    EXPECT_TRUE(AwaitClose(fd, 4000, &answer));
    EXPECT_EQ(answer.rfind("HTTP/1.1 503", 0), 0u) << answer;
    close(fd);
  }
  // Health checks are still answered at the limit.
  for (const char* path : {"/healthz", "/readyz"}) {
    Timed t = Request(port, "GET", path);
    EXPECT_EQ(t.status, 200) << path << " at the limit: " << t.body;
    EXPECT_LT(t.ms, 1000) << path << " at the limit";
    std::printf("%s at the connection limit: status %d in %.1f ms\n", path, t.status, t.ms);
    if (std::string(path) == "/readyz") {
      auto j = ParseJson(t.body);
      ASSERT_TRUE(j.ok()) << t.body;
      EXPECT_EQ((*j)["model"], "snap-hostile");
    }
  }
  {
    Timed m = Request(port, "GET", "/metrics");
    EXPECT_EQ(m.status, 503) << "/metrics is not a health check";
  }
  // All of that happened while the held connections were still open.
  EXPECT_LT(MsSince(conns.front().opened), kHeaderTimeoutS * 1000);
  for (int fd : fillers) {
    char c;
    EXPECT_EQ(recv(fd, &c, 1, MSG_DONTWAIT), -1) << "a filler was answered: it was refused";
    close(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  // A well-behaved completion still succeeds.
  Timed done = Request(port, "POST", "/v1/completions",
                       R"({"prompt": "the ship", "max_tokens": 4, "temperature": 0})");
  EXPECT_EQ(done.status, 200) << done.body;
  auto j = ParseJson(done.body);
  ASSERT_TRUE(j.ok()) << done.body;
  EXPECT_EQ((*j)["object"], "text_completion");
  std::printf("completion with hostile connections held: %.1f ms\n", done.ms);

  // Every hostile connection is closed by its deadline (plus slack); those
  // that had begun a request are told why.
  const double slack_ms = kSlackMs;
  std::vector<bool> closed(conns.size(), false);
  std::vector<std::string> got(conns.size());
  std::vector<double> closed_after_ms(conns.size(), 0);
  const auto give_up =
      Clock::now() + std::chrono::milliseconds(static_cast<int>(kHeaderTimeoutS * 1000 + slack_ms));
  size_t open = conns.size();
  char buf[4096];
  while (open > 0 && Clock::now() < give_up) {
    std::vector<pollfd> fds;
    std::vector<size_t> which;
    for (size_t i = 0; i < conns.size(); ++i) {
      if (closed[i]) continue;
      fds.push_back({conns[i].fd, POLLIN, 0});
      which.push_back(i);
    }
    if (poll(fds.data(), fds.size(), 100) <= 0) continue;
    for (size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      const size_t i = which[k];
      ssize_t n = recv(conns[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) {
        got[i].append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno == ECONNRESET) {
        closed[i] = true;
        closed_after_ms[i] = MsSince(conns[i].opened);
        --open;
      }
    }
  }
  std::move(stop_slow_thread).Invoke();
  const double deadline_ms[] = {kHeaderTimeoutS * 1000, kHeaderTimeoutS * 1000,
                                kHeaderTimeoutS * 1000, kBodyTimeoutS * 1000};
  double latest_ms = 0;
  for (size_t i = 0; i < conns.size(); ++i) {
    const Kind kind = conns[i].kind;
    EXPECT_TRUE(closed[i]) << "connection " << i << " of kind " << kind << " still open";
    if (!closed[i]) continue;
    latest_ms = std::max(latest_ms, closed_after_ms[i]);
    // Not before its deadline (they were all held while health was checked).
    EXPECT_GE(closed_after_ms[i], deadline_ms[kind] - 100) << "kind " << kind;
    EXPECT_LE(closed_after_ms[i], deadline_ms[kind] + slack_ms) << "kind " << kind;
    if (kind == kIdle) EXPECT_EQ(got[i], "") << "an idle connection is closed without a word";
    if (kind == kHalfHeaderKind) {
      EXPECT_EQ(got[i].rfind("HTTP/1.1 408", 0), 0u) << got[i];
      EXPECT_NE(got[i].find("serving.header_timeout_s"), std::string::npos) << got[i];
    }
    if (kind == kNoBody) {
      EXPECT_EQ(got[i].rfind("HTTP/1.1 408", 0), 0u) << got[i];
      EXPECT_NE(got[i].find("serving.body_timeout_s"), std::string::npos) << got[i];
    }
  }
  std::printf("hostile connections closed %.0f ms after opening at the latest (deadline %.0f ms)\n",
              latest_ms, kHeaderTimeoutS * 1000);
  for (const Conn& k : conns) close(k.fd);
  // Health once the flood is gone, and the gauge back down.
  EXPECT_EQ(Request(port, "GET", "/healthz").status, 200);
}

// Half-closed connections (the client shut its sending side mid-header, or
// before sending anything) are let go at once, not held to the deadline.
TEST_F(HostileClientsTest, HalfClosedConnectionsAreReleasedAtOnce) {
  Config c = BaseConfig();
  c.serving.header_timeout_s = 30;
  auto server = StartServer(c);
  std::vector<int> fds;
  for (int i = 0; i < 50; ++i) {
    int fd = Connect(server->port());
    ASSERT_GE(fd, 0);
    if (i % 2 == 0) ASSERT_TRUE(SendAll(fd, kHalfHeader));
    ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
    fds.push_back(fd);
  }
  for (int fd : fds) {
    std::string got;
    EXPECT_TRUE(AwaitClose(fd, 3000, &got)) << "held although the client half-closed";
    close(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // threads finish after close
  Timed m = Request(server->port(), "GET", "/metrics");
  EXPECT_NE(m.body.find("\nstreamlm_http_connections_open 1\n"), std::string::npos) << m.body;
}

TEST_F(HostileClientsTest, BodyThatIsNotUtf8Is400) {
  auto server = StartServer(BaseConfig());
  for (const char* path : {"/v1/completions", "/v1/chat/completions", "/v1/tokenize"}) {
    // 0xff never occurs in UTF-8; 0xc0 0xaf is an overlong '/'.
    for (const std::string& body :
         {std::string("{\"prompt\": \"ship \xff\"}"),
          std::string("{\"messages\": [{\"role\": \"user\", \"content\": \"\xc0\xaf\"}]}")}) {
      Timed t = Request(server->port(), "POST", path, body);
      EXPECT_EQ(t.status, 400) << path;
      auto j = ParseJson(t.body);
      ASSERT_TRUE(j.ok()) << t.body;
      const std::string message = (*j)["error"]["message"];
      EXPECT_NE(message.find("not valid UTF-8"), std::string::npos) << message;
      EXPECT_EQ((*j)["error"]["type"], "invalid_request_error");
    }
  }
  // Valid UTF-8 beyond ASCII is fine.
  Timed ok = Request(server->port(), "POST", "/v1/tokenize",
                     "{\"prompt\": \"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x9a\xa2\"}");
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST_F(HostileClientsTest, WrongMethodIs405WithAllow) {
  auto server = StartServer(BaseConfig());
  struct Case {
    const char* method;
    const char* path;
    const char* allow;
  };
  for (const Case& k :
       {Case{"GET", "/v1/chat/completions", "POST"}, Case{"GET", "/v1/completions", "POST"},
        Case{"DELETE", "/healthz", "GET, HEAD"}, Case{"POST", "/readyz", "GET, HEAD"},
        Case{"GET", "/v1/admin/promote", "POST"}, Case{"POST", "/ui/dashboard.js", "GET, HEAD"}}) {
    Timed t = Request(server->port(), k.method, k.path, "{}");
    EXPECT_EQ(t.status, 405) << k.method << " " << k.path << ": " << t.body;
    auto allow = t.headers.find("Allow");
    ASSERT_NE(allow, t.headers.end()) << k.method << " " << k.path;
    EXPECT_EQ(allow->second, k.allow) << k.path;
    auto j = ParseJson(t.body);
    ASSERT_TRUE(j.ok()) << t.body;
    EXPECT_EQ((*j)["error"]["code"], "method_not_allowed");
    EXPECT_NE((*j)["error"]["message"].get<std::string>().find(k.method), std::string::npos);
  }
  // A path that does not exist is still 404.
  EXPECT_EQ(Request(server->port(), "GET", "/v1/nothing").status, 404);
  EXPECT_EQ(Request(server->port(), "DELETE", "/v1/nothing").status, 404);
}

TEST(HostileClientsConfigTest, BadLimitsNameTheKey) {
  Config c;
  for (const auto& kv : {std::pair<std::string, std::string>{"serving.max_connections", "0"},
                         {"serving.header_timeout_s", "-1"},
                         {"serving.body_timeout_s", "soon"}}) {
    absl::Status s = SetConfigValue(c, kv.first, kv.second);
    EXPECT_FALSE(s.ok()) << kv.first;
    EXPECT_NE(std::string(s.message()).find(kv.first), std::string::npos) << s;
  }
  ASSERT_TRUE(SetConfigValue(c, "serving.max_connections", "2000").ok());
  ASSERT_TRUE(SetConfigValue(c, "serving.header_timeout_s", "2.5").ok());
  EXPECT_EQ(c.serving.max_connections, 2000);
  EXPECT_EQ(c.serving.header_timeout_s, 2.5);
}

}  // namespace
}  // namespace streamlm
