// Snapshot transfer (admin_api.h): a replica's store gets the owner's
// champion over HTTP, byte for byte; an interrupted fetch resumes from the
// chunks it kept; a chunk damaged on the way is caught by its CRC-32 and
// fetched again; errors name what was wrong.
#include <httplib.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "serving/admin_api.h"
#include "store/store.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::TempDir;

// An HTTP server on 127.0.0.1 running `routes` in the background.
class TestServer {
 public:
  template <typename Routes>
  explicit TestServer(Routes routes) {
    routes(http_);
    port_ = http_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { http_.listen_after_bind(); });
  }
  ~TestServer() {
    http_.stop();
    if (thread_.joinable()) thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server http_;
  int port_ = 0;
  std::thread thread_;
};

Snapshot MakeSnapshot(const std::string& id, size_t bytes) {
  Snapshot s;
  s.meta.id = id;
  s.meta.origin = "learner";
  s.meta.model_config = {{"family", "gpt"}, {"d_model", 32}};
  s.meta.lineage.parent = "snap-000001";
  s.meta.lineage.ranges.push_back({"streamlm.text", 0, 0, 40});
  s.weights.resize(bytes);
  for (size_t i = 0; i < bytes; ++i) s.weights[i] = static_cast<char>((i * 131 + 7) % 251);
  s.tokenizer = "tokenizer of " + id;
  return s;
}

class SnapshotTransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto owner = Store::Open(dir_.Sub("owner"));
    ASSERT_TRUE(owner.ok()) << owner.status();
    owner_ = std::move(*owner);
    snap_ = MakeSnapshot("snap-000002", (3 << 20) + 12345);  // 4 chunks
    ASSERT_TRUE(owner_->PutSnapshot(snap_, {kChampion}).ok());
    auto replica = Store::Open(dir_.Sub("replica"));
    ASSERT_TRUE(replica.ok()) << replica.status();
    replica_ = std::move(*replica);
  }
  // The owner's routes behind a bearer token.
  void Routes(httplib::Server& h) {
    RegisterSnapshotTransfer(h, owner_.get(),
                             [](const httplib::Request& req, httplib::Response& res) {
                               if (req.get_header_value("Authorization") == "Bearer t0ken") {
                                 return true;
                               }
                               res.status = 401;
                               res.set_content(R"({"error": {"message": "bad token"}})",
                                               "application/json");
                               return false;
                             });
  }
  TempDir dir_;
  std::unique_ptr<Store> owner_;
  std::unique_ptr<Store> replica_;
  Snapshot snap_;
};

TEST_F(SnapshotTransferTest, TheReplicaGetsTheChampionByteForByteOnce) {
  TestServer server([this](httplib::Server& h) { Routes(h); });
  FetchStats stats;
  auto id = SyncChampion(server.url(), "t0ken", replica_.get(), dir_.Sub("partial"), &stats);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, "snap-000002");
  EXPECT_EQ(stats.chunks_fetched, 4);
  EXPECT_EQ(stats.chunks_reused, 0);
  EXPECT_EQ(*replica_->GetAlias(kChampion), "snap-000002");
  auto got = replica_->GetSnapshot("snap-000002");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->weights, snap_.weights);
  EXPECT_EQ(got->tokenizer, snap_.tokenizer);
  EXPECT_EQ(got->meta.model_config, snap_.meta.model_config);
  EXPECT_EQ(got->meta.lineage.parent, "snap-000001");
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("partial/snap-000002")));

  // The same champion again: nothing fetched.
  FetchStats again;
  ASSERT_TRUE(SyncChampion(server.url(), "t0ken", replica_.get(), dir_.Sub("partial"), &again)
                  .ok());
  EXPECT_EQ(again.chunks_fetched, 0);
  // A new champion at the owner: fetched.
  ASSERT_TRUE(owner_->PutSnapshot(MakeSnapshot("snap-000003", 1000), {kChampion}).ok());
  id = SyncChampion(server.url(), "t0ken", replica_.get(), dir_.Sub("partial"), &again);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*replica_->GetAlias(kChampion), "snap-000003");
  EXPECT_EQ(again.chunks_fetched, 1);
}

TEST_F(SnapshotTransferTest, AnInterruptedFetchResumesFromTheChunksItKept) {
  TestServer server([this](httplib::Server& h) { Routes(h); });
  // Left by a fetch that was cut short: chunks 0 and 1 whole, chunk 2 torn.
  const std::string partial = dir_.Sub("partial/snap-000002");
  std::filesystem::create_directories(partial);
  ASSERT_TRUE(WriteStringToFile(partial + "/chunk-0", snap_.weights.substr(0, 1 << 20)).ok());
  ASSERT_TRUE(
      WriteStringToFile(partial + "/chunk-1", snap_.weights.substr(1 << 20, 1 << 20)).ok());
  ASSERT_TRUE(WriteStringToFile(partial + "/chunk-2", snap_.weights.substr(2 << 20, 1000)).ok());
  FetchStats stats;
  auto snap = FetchSnapshot(server.url(), "snap-000002", "t0ken", dir_.Sub("partial"), &stats);
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_EQ(stats.chunks_reused, 2);
  EXPECT_EQ(stats.chunks_fetched, 2);
  EXPECT_EQ(snap->weights, snap_.weights);
}

TEST_F(SnapshotTransferTest, AChunkDamagedOnTheWayIsFetchedAgain) {
  TestServer owner([this](httplib::Server& h) { Routes(h); });
  // A proxy that flips one byte of the first chunk it forwards.
  std::atomic<int> damaged{0};
  const std::string owner_url = owner.url();
  TestServer proxy([&](httplib::Server& h) {
    h.Get(R"(/.*)", [&](const httplib::Request& req, httplib::Response& res) {
      httplib::Client client(owner_url);
      auto r = client.Get(req.path.c_str(), req.headers);
      ASSERT_TRUE(r);
      res.status = r->status;
      std::string body = r->body;
      if (absl::StrContains(req.path, "/chunks/") && damaged++ == 0) body[12345] ^= 0x10;
      for (const auto& [k, v] : r->headers) {
        if (absl::StartsWith(k, "X-StreamLM")) res.set_header(k, v);
      }
      res.set_content(body, r->get_header_value("Content-Type"));
    });
  });
  FetchStats stats;
  auto snap = FetchSnapshot(proxy.url(), "champion", "t0ken", dir_.Sub("partial"), &stats);
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_EQ(snap->meta.id, "snap-000002");
  EXPECT_EQ(snap->weights, snap_.weights);
  EXPECT_EQ(stats.retries, 1);
  EXPECT_EQ(stats.chunks_fetched, 4);
}

TEST_F(SnapshotTransferTest, ErrorsNameWhatWasWrong) {
  TestServer server([this](httplib::Server& h) { Routes(h); });
  auto missing = FetchSnapshot(server.url(), "snap-000999", "t0ken", dir_.Sub("partial"));
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_TRUE(absl::StrContains(missing.status().message(), "snap-000999"))
      << missing.status();
  auto denied = SyncChampion(server.url(), "wrong", replica_.get(), dir_.Sub("partial"));
  EXPECT_TRUE(absl::IsPermissionDenied(denied.status())) << denied.status();
  EXPECT_TRUE(absl::IsNotFound(replica_->GetAlias(kChampion).status()));
  auto nobody = SyncChampion("http://127.0.0.1:1", "t0ken", replica_.get(), dir_.Sub("partial"));
  EXPECT_TRUE(absl::IsUnavailable(nobody.status())) << nobody.status();
  httplib::Client raw(server.url());
  auto past_end = raw.Get("/v1/admin/snapshots/snap-000002/chunks/4",
                          {{"Authorization", "Bearer t0ken"}});
  ASSERT_TRUE(past_end);
  EXPECT_EQ(past_end->status, 404);
}

}  // namespace
}  // namespace streamlm
