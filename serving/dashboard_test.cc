// RegisterDashboard over a real socket: the page and its assets come back
// byte for byte with their content types and cache validators, unknown
// assets are 404, and /v1/admin/snapshots lists a temp store's snapshots
// with aliases, behind the admin check.
#include "serving/dashboard.h"

#include <httplib.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include "gtest/gtest.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::TempDir;

std::string ReadSource(const std::string& rel) {
  std::ifstream in(testing::SourceDir() + "/" + rel, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::Open(dir_.Sub("store"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    RegisterDashboard(http_, store_.get(),
                      [this](const httplib::Request& req, httplib::Response& res) {
                        if (req.get_header_value("Authorization") == "Bearer s3cret" ||
                            !require_token_) {
                          return true;
                        }
                        res.status = 401;
                        res.set_content("{\"error\":{}}", "application/json");
                        return false;
                      });
    port_ = http_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    // The socket listens once bound; connections queue until the loop accepts.
    thread_ = std::thread([this] { http_.listen_after_bind(); });
  }
  void TearDown() override {
    http_.stop();
    if (thread_.joinable()) thread_.join();
  }
  void PutSnapshot(const std::string& id, const std::string& parent, int64_t step,
                   const std::vector<std::string>& aliases) {
    Snapshot s;
    s.meta.id = id;
    s.meta.created_ms = 1700000000000 + step;
    s.meta.origin = parent.empty() ? "bootstrap" : "learner";
    s.meta.model_config = {{"family", "gpt"}};
    s.meta.lineage.parent = parent;
    s.meta.lineage.step = step;
    s.meta.lineage.records_trained = step * 4;
    s.weights = "w";
    s.tokenizer = "t";
    ASSERT_TRUE(store_->PutSnapshot(s, aliases).ok());
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  httplib::Server http_;
  std::thread thread_;
  int port_ = 0;
  // Set by a test body, read by the server's connection threads (their
  // ordering goes through a socket, which TSan does not see).
  std::atomic<bool> require_token_{false};
};

TEST_F(DashboardTest, ServesEmbeddedPageAndAssets) {
  httplib::Client c("127.0.0.1", port_);
  const std::string page = ReadSource("serving/ui/index.html");
  ASSERT_FALSE(page.empty());
  for (const char* path : {"/ui", "/ui/", "/ui/index.html"}) {
    auto res = c.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 200) << path;
    EXPECT_EQ(res->body, page) << path;
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/html; charset=utf-8");
    EXPECT_EQ(res->get_header_value("Cache-Control"), "no-cache");
  }
  struct Case {
    const char* rel;
    const char* type;
  };
  for (const Case& k : {Case{"dashboard.js", "text/javascript; charset=utf-8"},
                        Case{"dashboard.css", "text/css; charset=utf-8"},
                        Case{"vendor/chart.umd.min.js", "text/javascript; charset=utf-8"},
                        Case{"vendor/LICENSE.chartjs", "text/plain; charset=utf-8"}}) {
    auto res = c.Get(std::string("/ui/") + k.rel);
    ASSERT_TRUE(res) << k.rel;
    EXPECT_EQ(res->status, 200) << k.rel;
    EXPECT_EQ(res->body, ReadSource(std::string("serving/ui/") + k.rel)) << k.rel;
    EXPECT_EQ(res->get_header_value("Content-Type"), k.type) << k.rel;
  }
  auto vendor = c.Get("/ui/vendor/chart.umd.min.js");
  ASSERT_TRUE(vendor);
  EXPECT_NE(vendor->body.find("Chart.js v4"), std::string::npos);
  EXPECT_EQ(vendor->get_header_value("Cache-Control"), "public, max-age=86400");
}

TEST_F(DashboardTest, RevalidatesWithEtag) {
  httplib::Client c("127.0.0.1", port_);
  auto first = c.Get("/ui/dashboard.js");
  ASSERT_TRUE(first);
  std::string etag = first->get_header_value("ETag");
  ASSERT_EQ(etag.size(), 18u);  // a quoted 64-bit hex hash
  auto again = c.Get("/ui/dashboard.js", {{"If-None-Match", etag}});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 304);
  EXPECT_TRUE(again->body.empty());
  auto other = c.Get("/ui/dashboard.js", {{"If-None-Match", "\"0000000000000000\""}});
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 200);
}

TEST_F(DashboardTest, UnknownAssetIs404) {
  httplib::Client c("127.0.0.1", port_);
  for (const char* path : {"/ui/nope.js", "/ui/../CMakeLists.txt", "/ui/vendor/",
                           "/ui/%2e%2e/dashboard.cc"}) {
    auto res = c.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 404) << path;
  }
}

TEST_F(DashboardTest, SnapshotsListLineageAndAliases) {
  PutSnapshot("snap-000001", "", 0, {kPrevious});
  PutSnapshot("snap-000002", "snap-000001", 15, {kChampion});
  PutSnapshot("snap-000003", "snap-000002", 30, {kCandidate});
  httplib::Client c("127.0.0.1", port_);
  auto res = c.Get("/v1/admin/snapshots");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  auto list = ParseJson(res->body);
  ASSERT_TRUE(list.ok() && list->is_array()) << res->body;
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ((*list)[0]["id"], "snap-000001");
  EXPECT_EQ((*list)[0]["aliases"], "previous");
  EXPECT_EQ((*list)[0]["origin"], "bootstrap");
  EXPECT_EQ((*list)[1]["lineage"]["parent"], "snap-000001");
  EXPECT_EQ((*list)[1]["lineage"]["step"], 15);
  EXPECT_EQ((*list)[1]["lineage"]["records_trained"], 60);
  EXPECT_EQ((*list)[1]["aliases"], "champion");
  EXPECT_EQ((*list)[2]["aliases"], "candidate");
  EXPECT_EQ((*list)[2]["created_ms"], 1700000000030);

  // Two aliases on one snapshot are both named.
  ASSERT_TRUE(store_->SetAlias(kCandidate, "snap-000002").ok());
  res = c.Get("/v1/admin/snapshots");
  ASSERT_TRUE(res);
  list = ParseJson(res->body);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ((*list)[1]["aliases"], "champion,candidate");
  EXPECT_EQ((*list)[2]["aliases"], "");
}

TEST_F(DashboardTest, SnapshotsNeedAdmin) {
  require_token_ = true;
  PutSnapshot("snap-000001", "", 0, {kChampion});
  httplib::Client c("127.0.0.1", port_);
  auto res = c.Get("/v1/admin/snapshots");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(res->body.find("snap-000001"), std::string::npos);
  res = c.Get("/v1/admin/snapshots", {{"Authorization", "Bearer s3cret"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("snap-000001"), std::string::npos);
  // The page itself is public: it asks for the token when the API says 401.
  res = c.Get("/ui");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

}  // namespace
}  // namespace streamlm
