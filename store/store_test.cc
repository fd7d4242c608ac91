#include "store/store.h"

#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::TempDir;

Snapshot MakeSnapshot(const std::string& id, size_t weight_bytes, char fill) {
  Snapshot s;
  s.meta.id = id;
  s.meta.origin = "learner";
  s.meta.lineage.parent = "snap-000000";
  s.meta.lineage.ranges.push_back({"streamlm.text", 0, 10, 20});
  s.weights.assign(weight_bytes, fill);
  for (size_t i = 0; i < weight_bytes; i += 4097) s.weights[i] = char(i % 251);
  s.tokenizer = "tok-" + id;
  return s;
}

TEST(StoreTest, SnapshotRoundTripsAcrossReopenWithChunkedWeights) {
  TempDir dir;
  Snapshot in = MakeSnapshot("snap-000001", (3 << 20) + 17, 'x');
  {
    auto store = Store::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->PutSnapshot(in, {kChampion}).ok());
  }
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok());
  auto out = (*store)->GetSnapshot("snap-000001");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->weights, in.weights);
  EXPECT_EQ(out->tokenizer, in.tokenizer);
  ASSERT_EQ(out->meta.lineage.ranges.size(), 1u);
  EXPECT_EQ(out->meta.lineage.ranges[0].end, 20);
  EXPECT_EQ(*(*store)->GetAlias(kChampion), "snap-000001");
}

TEST(StoreTest, CorruptChunkIsDetected) {
  TempDir dir;
  {
    auto store = Store::Open(dir.path());
    ASSERT_TRUE((*store)->PutSnapshot(MakeSnapshot("snap-000001", 5000, 'y')).ok());
  }
  {
    rocksdb::DB* db;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir.path(), &db).ok());
    std::string v;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), "snap/snap-000001/w/00000000", &v).ok());
    v[100] ^= 1;
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "snap/snap-000001/w/00000000", v).ok());
    delete db;
  }
  auto store = Store::Open(dir.path());
  auto out = (*store)->GetSnapshot("snap-000001");
  ASSERT_FALSE(out.ok());
  EXPECT_TRUE(absl::IsDataLoss(out.status())) << out.status();
}

TEST(StoreTest, CheckpointCommitsOffsetsWeightsAndSnapshotTogether) {
  TempDir dir;
  auto store = Store::Open(dir.path());
  LearnerCheckpoint big;
  big.step = 10;
  big.topic = "streamlm.text";
  big.next_offsets = {{0, 100}, {1, 7}};
  big.weights.assign(3 << 20, 'a');
  big.optimizer.assign(2 << 20, 'b');
  big.replay = "replay-1";
  ASSERT_TRUE((*store)->PutCheckpoint(big).ok());
  // A later, smaller checkpoint must not inherit the first one's chunks.
  LearnerCheckpoint small = big;
  small.step = 20;
  small.next_offsets = {{0, 150}, {1, 9}};
  small.weights.assign(1000, 'c');
  small.optimizer.assign(10, 'd');
  small.replay = "replay-2";
  small.state = {{"pending", {1, 2, 3}}};
  Snapshot snap = MakeSnapshot("snap-000002", 1000, 'c');
  ASSERT_TRUE((*store)->PutCheckpoint(small, &snap, {kCandidate}).ok());
  store->reset();

  auto reopened = Store::Open(dir.path());
  auto c = (*reopened)->GetCheckpoint();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->step, 20);
  EXPECT_EQ(c->next_offsets.at(0), 150);
  EXPECT_EQ(c->next_offsets.at(1), 9);
  EXPECT_EQ(c->weights, small.weights);
  EXPECT_EQ(c->optimizer, small.optimizer);
  EXPECT_EQ(c->replay, "replay-2");
  EXPECT_EQ(c->state["pending"].size(), 3u);
  EXPECT_EQ(*(*reopened)->GetAlias(kCandidate), "snap-000002");
  EXPECT_TRUE((*reopened)->GetSnapshot("snap-000002").ok());
}

TEST(StoreTest, MissingCheckpointIsNotFound) {
  TempDir dir;
  auto store = Store::Open(dir.path());
  EXPECT_TRUE(absl::IsNotFound((*store)->GetCheckpoint().status()));
}

TEST(StoreTest, PromoteMovesPreviousAndRollbackSwapsBack) {
  TempDir dir;
  auto store = Store::Open(dir.path());
  ASSERT_TRUE((*store)->PutSnapshot(MakeSnapshot("a", 10, 'a'), {kChampion}).ok());
  ASSERT_TRUE((*store)->PutSnapshot(MakeSnapshot("b", 10, 'b')).ok());
  EXPECT_TRUE(absl::IsNotFound((*store)->GetAlias(kPrevious).status()));
  EXPECT_FALSE((*store)->Promote("missing").ok());
  ASSERT_TRUE((*store)->Promote("b").ok());
  EXPECT_EQ(*(*store)->GetAlias(kChampion), "b");
  EXPECT_EQ(*(*store)->GetAlias(kPrevious), "a");
  ASSERT_TRUE((*store)->Rollback().ok());
  EXPECT_EQ(*(*store)->GetAlias(kChampion), "a");
  EXPECT_EQ(*(*store)->GetAlias(kPrevious), "b");
}

TEST(StoreTest, DecisionLogIsAppendOnlyNewestFirstAndAppliesPromotion) {
  TempDir dir;
  {
    auto store = Store::Open(dir.path());
    ASSERT_TRUE((*store)->PutSnapshot(MakeSnapshot("a", 10, 'a'), {kChampion}).ok());
    ASSERT_TRUE((*store)->PutSnapshot(MakeSnapshot("b", 10, 'b')).ok());
    auto d1 = (*store)->AppendDecision({{"candidate", "b"}, {"verdict", "rejected"}}, false);
    ASSERT_TRUE(d1.ok());
    EXPECT_EQ((*d1)["id"], "dec-000001");
    EXPECT_EQ(*(*store)->GetAlias(kChampion), "a");
    auto d2 = (*store)->AppendDecision({{"candidate", "b"}, {"verdict", "promoted"}}, true);
    ASSERT_TRUE(d2.ok());
    EXPECT_EQ(*(*store)->GetAlias(kChampion), "b");
    EXPECT_EQ(*(*store)->GetAlias(kPrevious), "a");
  }
  auto store = Store::Open(dir.path(), /*read_only=*/true);
  ASSERT_TRUE(store.ok()) << store.status();
  auto all = (*store)->ListDecisions();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0]["id"], "dec-000002");
  EXPECT_EQ((*all)[0]["verdict"], "promoted");
  EXPECT_EQ((*all)[1]["id"], "dec-000001");
  EXPECT_EQ((*store)->ListDecisions(1)->size(), 1u);
  EXPECT_FALSE((*store)->AppendDecision({}, false).ok());  // read-only
}

TEST(StoreTest, HeldoutWindowKeepsNewestRecords) {
  TempDir dir;
  auto store = Store::Open(dir.path());
  (*store)->set_heldout_window(5);
  LearnerCheckpoint c;
  for (int round = 0; round < 3; ++round) {
    c.new_heldout.clear();
    for (int i = 0; i < 3; ++i) c.new_heldout.push_back(std::to_string(round * 3 + i));
    ASSERT_TRUE((*store)->PutCheckpoint(c).ok());
  }
  auto held = (*store)->GetHeldout(100);
  ASSERT_TRUE(held.ok());
  ASSERT_EQ(held->size(), 5u);
  EXPECT_EQ(held->front(), "4");
  EXPECT_EQ(held->back(), "8");
  EXPECT_EQ((*store)->GetHeldout(2)->front(), "7");
}

TEST(StoreTest, FeedbackIsKeyedByPositionSoReplaysDoNotDuplicate) {
  TempDir dir;
  {
    auto store = Store::Open(dir.path());
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->PutFeedback({{1, 10, {{"prompt", "b"}}},
                                       {0, 12, {{"prompt", "a2"}}},
                                       {0, 9, {{"prompt", "a1"}}}}).ok());
    // Consumed again after a restart: same positions, same keys.
    ASSERT_TRUE((*store)->PutFeedback({{0, 12, {{"prompt", "a2"}}}, {1, 11, {{"prompt", "c"}}}}).ok());
  }
  auto store = Store::Open(dir.path(), /*read_only=*/true);
  ASSERT_TRUE(store.ok());
  auto all = (*store)->ListFeedback();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 4u);
  std::vector<std::string> prompts;
  for (const auto& e : *all) prompts.push_back(e.record["prompt"]);
  EXPECT_EQ(prompts, (std::vector<std::string>{"a1", "a2", "b", "c"}));  // partition, offset order
  EXPECT_EQ((*all)[1].partition, 0);
  EXPECT_EQ((*all)[1].offset, 12);
  EXPECT_EQ((*store)->ListFeedback(2)->size(), 2u);
}

TEST(StoreTest, SecondWriterGetsClearError) {
  TempDir dir;
  auto first = Store::Open(dir.path());
  ASSERT_TRUE(first.ok());
  auto second = Store::Open(dir.path());
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(dir.path()), std::string::npos);
}

}  // namespace
}  // namespace streamlm
