// Data-parallel learners as processes: `streamlm learn --world-size 2`
// ranks 0 and 1 around a separate `streamlm broker` with two partitions.
// Each rank reads only its partition; rank 0's store gets candidates whose
// lineage covers both; SIGTERM to rank 1 stops both, each exiting 0, and
// rank 0's final checkpoint holds every offset of both partitions.

#include <chrono>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/kafka.h"
#include "gtest/gtest.h"
#include "store/store.h"
#include "tests/util/run_process.h"
#include "tests/util/stream_text.h"
#include "tests/util/free_port.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

constexpr int kRecords = 200;  // 100 per partition


TEST(LearnRanksTest, TwoLearnProcessesShareTheStreamAndStopTogether) {
  testing::TempDir dir;
  std::string brokers;
  auto broker = testing::StartBroker(dir.Sub("broker.log"), 2, &brokers);
  ASSERT_FALSE(brokers.empty()) << broker->StderrTail();
  const std::string data_dir = dir.Sub("store");
  const std::string master = absl::StrCat("127.0.0.1:", testing::FreePort());
  auto ranks = [&](int rank) {
    return std::vector<std::string>{"--world-size", "2", "--rank", std::to_string(rank),
                                    "--master", master, "--learner.snapshot-every-steps", "4"};
  };
  // Rank 0 bootstraps a champion first; rank 1 waits for it at --master.
  testing::RunProcess rank0(brokers, data_dir, dir.Sub("rank0.log"), ranks(0), "learn");
  testing::RunProcess rank1(brokers, dir.Sub("rank1-dir"), dir.Sub("rank1.log"), ranks(1),
                            "learn");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  ASSERT_TRUE(rank0.WaitUp(deadline)) << rank0.Tail();
  ASSERT_TRUE(rank1.WaitUp(deadline)) << rank1.Tail();

  auto producer = KafkaProducer::Create(brokers);
  ASSERT_TRUE(producer.ok());
  for (int i = 0; i < kRecords; ++i) {
    ASSERT_TRUE((*producer)->Produce("streamlm.text", "", testing::StreamRecord(i), i % 2).ok());
  }
  ASSERT_TRUE((*producer)->Flush(10000).ok());

  httplib::Client http0(rank0.endpoints().http_host, rank0.endpoints().http_port);
  httplib::Client http1(rank1.endpoints().http_host, rank1.endpoints().http_port);
  const std::string consumed = "streamlm_records_consumed_total";
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(180);
  while (std::chrono::steady_clock::now() < until &&
         !(testing::MetricValue(http0, consumed) >= kRecords / 2 &&
           testing::MetricValue(http1, consumed) >= kRecords / 2 &&
           testing::MetricValue(http1, "streamlm_learner_steps_total") >= 4)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  // Each rank read its own partition only.
  EXPECT_EQ(testing::MetricValue(http0, consumed), kRecords / 2);
  EXPECT_EQ(testing::MetricValue(http1, consumed), kRecords / 2);
  const double steps0 = testing::MetricValue(http0, "streamlm_learner_steps_total");
  const double steps1 = testing::MetricValue(http1, "streamlm_learner_steps_total");
  EXPECT_GE(steps1, 4) << rank1.Tail();
  ASSERT_TRUE(testing::WaitForLog(rank0.log(), ", candidate snap-", 60)) << rank0.Tail();

  // SIGTERM to rank 1 stops both, through rank 0's final checkpoint.
  EXPECT_EQ(rank1.Finish(SIGTERM, 120000), 0) << rank1.Tail();
  EXPECT_EQ(rank0.Finish(0, 120000), 0) << rank0.Tail();

  auto store = Store::Open(data_dir, /*read_only=*/true);
  ASSERT_TRUE(store.ok()) << store.status();
  auto c = (*store)->GetCheckpoint();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->next_offsets,
            (std::map<int32_t, int64_t>{{0, kRecords / 2}, {1, kRecords / 2}}));
  EXPECT_EQ(c->state.value("world_size", 0), 2);
  EXPECT_TRUE(c->state["ranks"].contains("1"));
  auto snapshots = (*store)->ListSnapshots();
  ASSERT_TRUE(snapshots.ok());
  std::set<int32_t> partitions;
  int64_t accounted = 0;
  for (const SnapshotMeta& m : *snapshots) {
    for (const OffsetRange& r : m.lineage.ranges) partitions.insert(r.partition);
    accounted += m.lineage.records_trained + m.lineage.records_heldout +
                 m.lineage.records_rejected;
  }
  accounted += c->state["since_snapshot"].value("records_trained", int64_t{0}) +
               c->state["since_snapshot"].value("records_heldout", int64_t{0}) +
               c->state["since_snapshot"].value("records_rejected", int64_t{0});
  EXPECT_EQ(partitions, (std::set<int32_t>{0, 1}));
  EXPECT_EQ(accounted, kRecords) << "trained + held out + rejected over both ranks";
  std::printf("learn ranks: 2 processes, %g and %g records consumed, %g steps on each "
              "(rank 0 counts feedback steps too: %g), %lld records accounted in rank 0's "
              "store; both exited 0 on SIGTERM to rank 1\n",
              static_cast<double>(kRecords / 2), static_cast<double>(kRecords / 2), steps1,
              steps0, static_cast<long long>(accounted));
}

}  // namespace
}  // namespace streamlm
