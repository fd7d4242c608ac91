// Server without a model: the admin token rule (open on loopback only,
// closed elsewhere unless serving.admin_token is set), OpenAI error objects
// for routes that do not exist and for generation before a champion exists.
#include "serving/server.h"

#include <httplib.h>

#include "common/json_util.h"
#include "gtest/gtest.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

struct Running {
  std::unique_ptr<Store> store;
  Counters counters;
  std::unique_ptr<Server> server;
};

std::unique_ptr<Running> Start(const std::string& dir, const std::string& http,
                               const std::string& token) {
  auto r = std::make_unique<Running>();
  auto store = Store::Open(dir);
  EXPECT_TRUE(store.ok()) << store.status();
  r->store = std::move(*store);
  Config c;
  c.http = http;
  c.serving_admin_token = token;
  r->server = std::make_unique<Server>(c, r->store.get(), &r->counters);
  absl::Status s = r->server->Start();
  EXPECT_TRUE(s.ok()) << s;
  return r;
}

int Status(int port, const std::string& path, const std::string& bearer = "",
           std::string* body = nullptr) {
  httplib::Client c("127.0.0.1", port);
  httplib::Headers h;
  if (!bearer.empty()) h.emplace("Authorization", "Bearer " + bearer);
  auto res = c.Get(path, h);
  if (!res) return -1;
  if (body != nullptr) *body = res->body;
  return res->status;
}

TEST(ServerTest, AdminApiIsOpenOnLoopbackOnly) {
  testing::TempDir dir;
  {
    auto r = Start(dir.Sub("a"), "127.0.0.1:0", "");
    EXPECT_EQ(Status(r->server->port(), "/v1/admin/decisions"), 200);
  }
  {
    // Listening on every interface without a token: the admin API refuses.
    auto r = Start(dir.Sub("b"), "0.0.0.0:0", "");
    std::string body;
    EXPECT_EQ(Status(r->server->port(), "/v1/admin/decisions", "", &body), 401);
    auto j = ParseJson(body);
    ASSERT_TRUE(j.ok());
    EXPECT_EQ((*j)["error"]["code"], "admin_token_required");
    EXPECT_EQ(Status(r->server->port(), "/v1/admin/snapshots"), 401);
    // The public API still answers.
    EXPECT_EQ(Status(r->server->port(), "/healthz"), 200);
  }
  {
    auto r = Start(dir.Sub("c"), "0.0.0.0:0", "s3cret");
    EXPECT_EQ(Status(r->server->port(), "/v1/admin/decisions"), 401);
    EXPECT_EQ(Status(r->server->port(), "/v1/admin/decisions", "wrong"), 401);
    EXPECT_EQ(Status(r->server->port(), "/v1/admin/decisions", "s3cret"), 200);
  }
}

TEST(ServerTest, ErrorsAreOpenAiErrorObjects) {
  testing::TempDir dir;
  auto r = Start(dir.Sub("s"), "127.0.0.1:0", "");
  std::string body;
  EXPECT_EQ(Status(r->server->port(), "/v1/nothing", "", &body), 404);
  auto j = ParseJson(body);
  ASSERT_TRUE(j.ok()) << body;
  EXPECT_TRUE((*j)["error"].contains("message"));
  httplib::Client c("127.0.0.1", r->server->port());
  auto res = c.Post("/v1/completions", R"({"prompt": "x"})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);  // no champion yet
  EXPECT_EQ((*ParseJson(res->body))["error"]["type"], "server_error");
  res = c.Post("/v1/completions", "[1, 2", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  // A second server cannot share the port (no SO_REUSEPORT).
  Config c2;
  c2.http = "127.0.0.1:" + std::to_string(r->server->port());
  Counters counters;
  Server second(c2, r->store.get(), &counters);
  EXPECT_FALSE(second.Start().ok());
}

}  // namespace
}  // namespace streamlm
