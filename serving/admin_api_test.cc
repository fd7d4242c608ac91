// The admin promote/rollback routes on an in-process HTTP server over a temp
// store (no model: the refresh hook is a fake), and PostAdmin against them.
#include "serving/admin_api.h"

#include <httplib.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

class AdminApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::Open(dir_.Sub("store"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    for (int i = 0; i < 2; ++i) {
      Snapshot s;
      s.meta.id = *store_->NewSnapshotId();
      s.meta.origin = "learner";
      s.weights = "w";
      s.tokenizer = "t";
      ASSERT_TRUE(store_->PutSnapshot(s, i == 0 ? std::vector<std::string>{kChampion}
                                                : std::vector<std::string>{}).ok());
      ids_.push_back(s.meta.id);
    }
    RegisterAdminApi(
        http_, store_.get(),
        [this](const httplib::Request& req, httplib::Response& res) {
          if (req.get_header_value("Authorization") == "Bearer t0ken") return true;
          res.status = 401;
          return false;
        },
        [this] {
          ++refreshes_;
          auto id = store_->GetAlias(kChampion);
          std::lock_guard<std::mutex> lock(fail_mu_);
          if (id.ok() && *id == fail_to_load_) return absl::InternalError("weights are corrupt");
          return absl::OkStatus();
        },
        [this](const Json& d) {
          // Handlers run on the server's connection threads.
          std::lock_guard<std::mutex> lock(announced_mu_);
          announced_.push_back(d);
        });
    port_ = http_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { http_.listen_after_bind(); });
  }
  void TearDown() override {
    http_.stop();
    if (thread_.joinable()) thread_.join();
  }

  httplib::Result Post(const std::string& path, const std::string& body) {
    httplib::Client c("127.0.0.1", port_);
    return c.Post(path.c_str(), {{"Authorization", "Bearer t0ken"}}, body, "application/json");
  }
  std::string Address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string Alias(const char* a) {
    auto id = store_->GetAlias(a);
    return id.ok() ? *id : "";
  }

  testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::vector<std::string> ids_;
  httplib::Server http_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<int> refreshes_{0};
  // Written by the test, read on the server's connection threads (the
  // request in between orders them only through sockets).
  std::mutex fail_mu_;
  std::string fail_to_load_;  // GUARDED_BY(fail_mu_)
  std::mutex announced_mu_;
  std::vector<Json> announced_;  // GUARDED_BY(announced_mu_) decisions passed to on_decision
  std::vector<Json> Announced() {
    std::lock_guard<std::mutex> lock(announced_mu_);
    return announced_;
  }
};

void ExpectOpenAiError(const httplib::Result& res, int status, const std::string& mentions) {
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, status) << res->body;
  auto j = ParseJson(res->body);
  ASSERT_TRUE(j.ok()) << res->body;
  const Json& e = (*j)["error"];
  for (const char* f : {"message", "type", "param", "code"}) EXPECT_TRUE(e.contains(f)) << f;
  EXPECT_NE(e["message"].get<std::string>().find(mentions), std::string::npos) << res->body;
}

TEST_F(AdminApiTest, PromoteMovesAliasesThenRefreshesServing) {
  auto res = Post("/v1/admin/promote", Json({{"snapshot", ids_[1]}}).dump());
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(*ParseJson(res->body),
            Json({{"object", "champion"}, {"champion", ids_[1]}, {"previous", ids_[0]}}));
  EXPECT_EQ(Alias(kChampion), ids_[1]);
  EXPECT_EQ(Alias(kPrevious), ids_[0]);
  EXPECT_EQ(refreshes_, 1);
  // On record as a decision, and announced (for the decisions topic).
  auto promotions = store_->ListDecisions();
  ASSERT_TRUE(promotions.ok());
  ASSERT_EQ(promotions->size(), 1u);
  EXPECT_EQ(promotions->front()["verdict"], "promoted");
  EXPECT_EQ(promotions->front()["candidate"], ids_[1]);
  EXPECT_EQ(promotions->front()["champion"], ids_[0]);
  EXPECT_EQ(promotions->front()["trigger"], "manual");
  const std::vector<Json> announced = Announced();
  ASSERT_EQ(announced.size(), 1u);
  EXPECT_EQ(announced[0]["id"], promotions->front()["id"]);

  res = Post("/v1/admin/rollback", "");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(*ParseJson(res->body),
            Json({{"object", "champion"}, {"champion", ids_[0]}, {"previous", ids_[1]}}));
  EXPECT_EQ(refreshes_, 2);
  // The rollback is on record, as an automatic one would be.
  auto decisions = store_->ListDecisions();
  ASSERT_TRUE(decisions.ok());
  ASSERT_EQ(decisions->size(), 2u);
  const Json& d = decisions->front();
  EXPECT_EQ(d["verdict"], "rolled_back");
  EXPECT_EQ(d["champion"], ids_[1]);
  EXPECT_EQ(d["candidate"], ids_[0]);
  EXPECT_EQ(d["reason"].get<std::string>().rfind("manual", 0), 0u) << d["reason"];
  const std::vector<Json> after_rollback = Announced();
  ASSERT_EQ(after_rollback.size(), 2u);
  EXPECT_EQ(after_rollback[1]["id"], d["id"]);
  res = Post("/v1/admin/rollback", "{}");  // an empty object is a body too
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(Alias(kChampion), ids_[1]);
}

TEST_F(AdminApiTest, BadRequestsChangeNothing) {
  ExpectOpenAiError(Post("/v1/admin/promote", R"({"snapshot": "snap-424242"})"), 404,
                    "snap-424242");
  for (const char* body : {"", "nope", "[]", "{}", R"({"snapshot": ""})", R"({"snapshot": 3})"}) {
    ExpectOpenAiError(Post("/v1/admin/promote", body), 400, "snapshot");
  }
  ExpectOpenAiError(Post("/v1/admin/rollback", "[1, 2]"), 400, "JSON object");
  // No previous champion yet.
  ExpectOpenAiError(Post("/v1/admin/rollback", ""), 409, "previous");
  httplib::Client anonymous("127.0.0.1", port_);
  auto res = anonymous.Post("/v1/admin/promote", Json({{"snapshot", ids_[1]}}).dump(),
                            "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(Alias(kChampion), ids_[0]);
  EXPECT_EQ(Alias(kPrevious), "");
  EXPECT_EQ(refreshes_, 0);
}

TEST_F(AdminApiTest, AFailedLoadIsReportedWithTheAliasItLeft) {
  {
    std::lock_guard<std::mutex> lock(fail_mu_);
    fail_to_load_ = ids_[1];
  }
  ExpectOpenAiError(Post("/v1/admin/promote", Json({{"snapshot", ids_[1]}}).dump()), 500,
                    "weights are corrupt");
  EXPECT_EQ(Alias(kChampion), ids_[1]);  // the alias moved; serving keeps retrying
}

TEST_F(AdminApiTest, PostAdminMapsAnswersToStatuses) {
  auto ok = PostAdmin(Address(), "/v1/admin/promote", {{"snapshot", ids_[1]}}, "t0ken");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)["champion"], ids_[1]);
  auto missing = PostAdmin(Address(), "/v1/admin/promote", {{"snapshot", "snap-9"}}, "t0ken");
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_NE(missing.status().message().find("snap-9"), std::string::npos);
  EXPECT_TRUE(absl::IsPermissionDenied(
      PostAdmin(Address(), "/v1/admin/rollback", Json::object(), "wrong").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      PostAdmin("127.0.0.1:0", "/v1/admin/rollback", Json::object(), "").status()));
  EXPECT_TRUE(absl::IsUnavailable(
      PostAdmin("127.0.0.1:1", "/v1/admin/rollback", Json::object(), "").status()));
}

}  // namespace
}  // namespace streamlm
