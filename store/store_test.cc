#include "store/store.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <map>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/transaction_log.h"
#include "rocksdb/write_batch.h"
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

TEST(StoreTest, AWriteIntoTheFreeSpaceReserveIsRefusedAndNothingChanges) {
  TempDir dir;
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->PutSnapshot(MakeSnapshot("snap-000001", 5000, 'a'), {kChampion}).ok());
  struct statvfs fs;
  ASSERT_EQ(statvfs(dir.path().c_str(), &fs), 0);
  const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  // A reserve just above what is free: the next write cannot leave it.
  (*store)->set_min_free_bytes(free_bytes + (64 << 20));
  absl::Status s = (*store)->PutSnapshot(MakeSnapshot("snap-000002", 5000, 'b'), {kChampion});
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("no space left on device"), std::string::npos) << s;
  EXPECT_NE(s.message().find(dir.path()), std::string::npos) << s;
  EXPECT_EQ(*(*store)->GetAlias(kChampion), "snap-000001");
  EXPECT_TRUE(absl::IsNotFound((*store)->GetSnapshot("snap-000002").status()));
  (*store)->set_min_free_bytes(0);
  EXPECT_TRUE((*store)->PutSnapshot(MakeSnapshot("snap-000002", 5000, 'b'), {kChampion}).ok());
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

// A follower (RocksDB secondary) on the same directory sees the owner's
// commits only after CatchUp, flushed (3 MiB of weights) or still in the
// owner's log, and cannot write.
TEST(StoreTest, AFollowerSeesTheOwnersCommitsAfterCatchUpAndCannotWrite) {
  TempDir dir;
  auto owner = Store::Open(dir.Sub("store"));
  ASSERT_TRUE(owner.ok()) << owner.status();
  ASSERT_TRUE((*owner)->PutSnapshot(MakeSnapshot("snap-000001", 5000, 'a'), {kChampion}).ok());
  auto follower = Store::OpenFollower(dir.Sub("store"), dir.Sub("follower"));
  ASSERT_TRUE(follower.ok()) << follower.status();
  EXPECT_EQ(*(*follower)->GetAlias(kChampion), "snap-000001");

  const Snapshot big = MakeSnapshot("snap-000002", (3 << 20) + 5, 'b');
  ASSERT_TRUE((*owner)->PutSnapshot(big).ok());
  auto decision = (*owner)->AppendDecision(
      {{"candidate", "snap-000002"}, {"champion", "snap-000001"}, {"verdict", "promoted"}},
      /*promote=*/true);
  ASSERT_TRUE(decision.ok()) << decision.status();
  // Not yet caught up: the state of the moment it opened.
  EXPECT_EQ(*(*follower)->GetAlias(kChampion), "snap-000001");
  EXPECT_TRUE(absl::IsNotFound((*follower)->GetSnapshot("snap-000002").status()));

  ASSERT_TRUE((*follower)->CatchUp().ok());
  EXPECT_EQ(*(*follower)->GetAlias(kChampion), "snap-000002");
  EXPECT_EQ(*(*follower)->GetAlias(kPrevious), "snap-000001");
  auto got = (*follower)->GetSnapshot("snap-000002");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->weights, big.weights);
  auto decisions = (*follower)->ListDecisions();
  ASSERT_TRUE(decisions.ok());
  ASSERT_EQ(decisions->size(), 1u);
  EXPECT_EQ((*decisions)[0].value("candidate", ""), "snap-000002");

  // The same after the owner closes.
  ASSERT_TRUE((*owner)->SetAlias(kCandidate, "snap-000001").ok());
  owner->reset();
  ASSERT_TRUE((*follower)->CatchUp().ok());
  EXPECT_EQ(*(*follower)->GetAlias(kCandidate), "snap-000001");

  absl::Status write = (*follower)->SetAlias(kChampion, "snap-000001");
  EXPECT_TRUE(absl::IsFailedPrecondition(write)) << write;
  EXPECT_TRUE(absl::IsFailedPrecondition(
      (*Store::Open(dir.Sub("store")))->CatchUp()));  // the owner has nothing to catch up with
}

TEST(StoreTest, FollowingAStoreThatDoesNotExistSaysSo) {
  TempDir dir;
  auto follower = Store::OpenFollower(dir.Sub("none"), dir.Sub("follower"));
  ASSERT_FALSE(follower.ok());
  EXPECT_NE(follower.status().message().find(dir.Sub("none")), std::string::npos)
      << follower.status();
}

// ---- Weights written once, retention, held-out sources (issue 10) ----

// Every key and value of the raw database.
std::map<std::string, std::string> DumpDb(rocksdb::DB* db) {
  std::map<std::string, std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    out[it->key().ToString()] = it->value().ToString();
  }
  return out;
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// Keys and value bytes stored under `prefix`.
std::pair<size_t, size_t> CountUnder(rocksdb::DB* db, const std::string& prefix) {
  size_t keys = 0, bytes = 0;
  for (const auto& [k, v] : DumpDb(db)) {
    if (StartsWith(k, prefix)) {
      ++keys;
      bytes += v.size();
    }
  }
  return {keys, bytes};
}

// A learner checkpoint whose weights are the snapshot's, as the learner
// writes them.
LearnerCheckpoint CheckpointOf(const Snapshot& snap, int64_t step) {
  LearnerCheckpoint c;
  c.step = step;
  c.topic = "streamlm.text";
  c.next_offsets = {{0, step * 10}};
  c.weights = snap.weights;
  c.optimizer.assign(3000, 'o');
  c.replay = "replay";
  return c;
}

// A chain of learner snapshots: "s1" <- "s2" <- ... (ids sort in creation
// order, as NewSnapshotId's do when below 10).
Snapshot Chained(int n, size_t weight_bytes = 5000) {
  Snapshot s = MakeSnapshot("s" + std::to_string(n), weight_bytes, char('a' + n));
  s.meta.lineage.parent = n > 1 ? "s" + std::to_string(n - 1) : "";
  s.meta.lineage.step = n * 10;
  return s;
}

TEST(StoreRetentionTest, CheckpointSharingSnapshotWeightsWritesThemOnce) {
  TempDir dir;
  const size_t weight_bytes = (2 << 20) + 12345;  // three 1 MiB chunks
  const size_t chunk_bytes = weight_bytes + 3 * 4;  // each chunk has a CRC-32
  Snapshot snap = MakeSnapshot("snap-000001", weight_bytes, 'w');
  {
    auto store = Store::Open(dir.path());
    ASSERT_TRUE(store.ok()) << store.status();
    LearnerCheckpoint c = CheckpointOf(snap, 1);
    ASSERT_TRUE((*store)->PutCheckpoint(c, &snap, {kCandidate}).ok());
    rocksdb::DB* db = (*store)->db_for_testing();
    EXPECT_EQ(CountUnder(db, "ckpt/learner/w/"), std::make_pair(size_t{0}, size_t{0}));
    EXPECT_EQ(CountUnder(db, "snap/snap-000001/w/"), std::make_pair(size_t{3}, chunk_bytes));
    // Everything stored is 1x the weights plus small keys (optimizer 3000 B).
    size_t total = 0;
    for (const auto& [k, v] : DumpDb(db)) total += v.size();
    EXPECT_LT(total, chunk_bytes + 8000);

    // A checkpoint without snapshot (the learner trained on) has its own copy.
    LearnerCheckpoint later = c;
    later.step = 2;
    later.weights.assign(5000, 'z');
    ASSERT_TRUE((*store)->PutCheckpoint(later).ok());
    EXPECT_EQ(CountUnder(db, "ckpt/learner/w/"), std::make_pair(size_t{1}, size_t{5004}));
    auto got = (*store)->GetCheckpoint();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->weights, later.weights);
    // And back to sharing: the own copy is gone in the same commit.
    Snapshot snap2 = MakeSnapshot("snap-000002", 7000, 'v');
    LearnerCheckpoint third = CheckpointOf(snap2, 3);
    ASSERT_TRUE((*store)->PutCheckpoint(third, &snap2, {kCandidate}).ok());
    EXPECT_EQ(CountUnder(db, "ckpt/learner/w/").first, 0u);
  }
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  auto c = (*store)->GetCheckpoint();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->step, 3);
  EXPECT_EQ(c->weights, MakeSnapshot("snap-000002", 7000, 'v').weights);
  EXPECT_EQ(c->optimizer, std::string(3000, 'o'));
  EXPECT_EQ(c->next_offsets.at(0), 30);
}

TEST(StoreRetentionTest, CorruptSharedChunkIsDataLossForTheCheckpoint) {
  TempDir dir;
  Snapshot snap = MakeSnapshot("snap-000001", 5000, 'w');
  {
    auto store = Store::Open(dir.path());
    ASSERT_TRUE((*store)->PutCheckpoint(CheckpointOf(snap, 1), &snap, {kCandidate}).ok());
    ASSERT_TRUE((*store)->GetCheckpoint().ok());
  }
  {
    rocksdb::DB* db;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir.path(), &db).ok());
    std::string v;
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), "snap/snap-000001/w/00000000", &v).ok());
    v[200] ^= 4;
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "snap/snap-000001/w/00000000", v).ok());
    delete db;
  }
  auto store = Store::Open(dir.path());
  auto c = (*store)->GetCheckpoint();
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(absl::IsDataLoss(c.status())) << c.status();
  EXPECT_TRUE(absl::IsDataLoss((*store)->GetSnapshot("snap-000001").status()));
}

TEST(StoreRetentionTest, KeepsAliasesCheckpointAndNewestNOnly) {
  TempDir dir;
  {
    auto store = Store::Open(dir.path());
    ASSERT_TRUE(store.ok());
    (*store)->set_keep_snapshots(2);
    ASSERT_TRUE((*store)->PutSnapshot(Chained(1), {kChampion}).ok());
    for (int n = 2; n <= 6; ++n) {
      Snapshot s = Chained(n);
      ASSERT_TRUE((*store)->PutCheckpoint(CheckpointOf(s, n), &s, {kCandidate}).ok());
      if (n == 3) {
        auto d = (*store)->AppendDecision({{"candidate", "s3"}, {"verdict", "promoted"}}, true);
        ASSERT_TRUE(d.ok()) << d.status();
      }
    }
    // champion s3, previous s1, candidate and checkpoint s6, newest 2: s5, s6.
    EXPECT_EQ(*(*store)->GetAlias(kChampion), "s3");
    EXPECT_EQ(*(*store)->GetAlias(kPrevious), "s1");
  }
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok());
  for (const std::string id : {"s1", "s3", "s5", "s6"}) {
    auto s = (*store)->GetSnapshot(id);
    ASSERT_TRUE(s.ok()) << id << ": " << s.status();
    EXPECT_EQ(s->weights, Chained(id[1] - '0').weights) << id;
    EXPECT_EQ(s->tokenizer, "tok-" + id);
  }
  rocksdb::DB* db = (*store)->db_for_testing();
  for (const std::string id : {"s2", "s4"}) {
    auto s = (*store)->GetSnapshot(id);
    EXPECT_TRUE(absl::IsNotFound(s.status())) << id << ": " << s.status();
    EXPECT_NE(s.status().message().find("store.keep_snapshots"), std::string::npos)
        << s.status();
    EXPECT_EQ(CountUnder(db, "snap/" + id + "/w/").first, 0u) << id;
    EXPECT_EQ(CountUnder(db, "snap/" + id + "/tok").first, 0u) << id;
    auto meta = (*store)->GetSnapshotMeta(id);
    ASSERT_TRUE(meta.ok()) << meta.status();
    EXPECT_FALSE(meta->weights_retained);
    // Neither an alias nor a promotion may point at weights that are gone.
    EXPECT_TRUE(absl::IsFailedPrecondition((*store)->SetAlias(kCandidate, id)));
    EXPECT_TRUE(absl::IsFailedPrecondition((*store)->Promote(id)));
  }
  auto all = (*store)->ListSnapshots();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 6u);
  std::string retained;
  for (const SnapshotMeta& m : *all) retained += m.weights_retained ? "1" : "0";
  EXPECT_EQ(retained, "101011");  // s1..s6
  // The lineage chain is still walkable from the newest to the root.
  std::vector<std::string> chain;
  for (std::string id = "s6"; !id.empty();) {
    auto meta = (*store)->GetSnapshotMeta(id);
    ASSERT_TRUE(meta.ok()) << meta.status();
    chain.push_back(id);
    EXPECT_EQ(meta->lineage.step, (id[1] - '0') * 10);
    id = meta->lineage.parent;
  }
  EXPECT_EQ(chain, (std::vector<std::string>{"s6", "s5", "s4", "s3", "s2", "s1"}));
  // Metrics merged into a deleted snapshot keep it marked deleted.
  ASSERT_TRUE((*store)->MergeSnapshotMetrics("s2", {{"note", 1}}).ok());
  EXPECT_FALSE((*store)->GetSnapshotMeta("s2")->weights_retained);
}

TEST(StoreRetentionTest, CheckpointRetainListPinsOlderSnapshots) {
  TempDir dir;
  auto store = Store::Open(dir.path());
  (*store)->set_keep_snapshots(1);
  ASSERT_TRUE((*store)->PutSnapshot(Chained(1), {kChampion}).ok());
  Snapshot s2 = Chained(2);
  ASSERT_TRUE((*store)->PutCheckpoint(CheckpointOf(s2, 2), &s2, {kCandidate}).ok());
  Snapshot s3 = Chained(3);
  LearnerCheckpoint c3 = CheckpointOf(s3, 3);
  c3.retain_snapshots = {"s2"};  // e.g. the feedback reference model
  ASSERT_TRUE((*store)->PutCheckpoint(c3, &s3, {kCandidate}).ok());
  EXPECT_TRUE((*store)->GetSnapshot("s2").ok());
  EXPECT_EQ((*store)->GetCheckpoint()->retain_snapshots, std::vector<std::string>{"s2"});
  // The next checkpoint no longer pins it: gone in that commit.
  Snapshot s4 = Chained(4);
  ASSERT_TRUE((*store)->PutCheckpoint(CheckpointOf(s4, 4), &s4, {kCandidate}).ok());
  EXPECT_TRUE(absl::IsNotFound((*store)->GetSnapshot("s2").status()));
  EXPECT_TRUE(absl::IsNotFound((*store)->GetSnapshot("s3").status()));
  EXPECT_TRUE((*store)->GetSnapshot("s1").ok());  // champion
  EXPECT_TRUE((*store)->GetSnapshot("s4").ok());
}

TEST(StoreRetentionTest, SharedCheckpointWeightsOutliveAliasesAndNewestN) {
  TempDir dir;
  auto store = Store::Open(dir.path());
  (*store)->set_keep_snapshots(1);
  ASSERT_TRUE((*store)->PutSnapshot(Chained(1), {kChampion}).ok());
  Snapshot s2 = Chained(2);
  ASSERT_TRUE((*store)->PutCheckpoint(CheckpointOf(s2, 2), &s2, {kCandidate}).ok());
  ASSERT_TRUE((*store)->SetAlias(kCandidate, "s1").ok());
  ASSERT_TRUE((*store)->PutSnapshot(Chained(3)).ok());  // e.g. an import
  // s2 is no alias and not the newest, but the checkpoint reads its weights.
  auto c = (*store)->GetCheckpoint();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->weights, s2.weights);
  EXPECT_TRUE((*store)->GetSnapshot("s2").ok());
  // A checkpoint with weights of its own releases s2 in the same commit.
  LearnerCheckpoint own = CheckpointOf(s2, 3);
  own.weights = "trained further";
  ASSERT_TRUE((*store)->PutCheckpoint(own).ok());
  EXPECT_TRUE(absl::IsNotFound((*store)->GetSnapshot("s2").status()));
  EXPECT_EQ((*store)->GetCheckpoint()->weights, "trained further");
}

// Collects what one WAL write batch did.
class BatchRecorder : public rocksdb::WriteBatch::Handler {
 public:
  void Put(const rocksdb::Slice& key, const rocksdb::Slice&) override {
    puts.push_back(key.ToString());
  }
  void Delete(const rocksdb::Slice& key) override { deletes.push_back(key.ToString()); }
  rocksdb::Status DeleteRangeCF(uint32_t, const rocksdb::Slice& begin,
                                const rocksdb::Slice&) override {
    range_deletes.push_back(begin.ToString());
    return rocksdb::Status::OK();
  }
  std::vector<std::string> puts, deletes, range_deletes;
};

TEST(StoreRetentionTest, GarbageIsCollectedInTheCommitThatMakesItGarbage) {
  TempDir dir;
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok());
  (*store)->set_keep_snapshots(1);
  rocksdb::DB* db = (*store)->db_for_testing();
  ASSERT_TRUE((*store)->PutSnapshot(Chained(1), {kChampion}).ok());
  ASSERT_TRUE((*store)->PutEvalSet(kBaseEvalSet, "[\"doc\"]").ok());
  Snapshot s2 = Chained(2, (1 << 20) + 5);  // two chunks
  ASSERT_TRUE((*store)->PutCheckpoint(CheckpointOf(s2, 2), &s2, {kCandidate}).ok());
  const std::map<std::string, std::string> before = DumpDb(db);
  ASSERT_EQ(CountUnder(db, "snap/s2/w/").first, 2u);
  const rocksdb::SequenceNumber seq = db->GetLatestSequenceNumber();

  Snapshot s3 = Chained(3);
  ASSERT_TRUE((*store)->PutCheckpoint(CheckpointOf(s3, 3), &s3, {kCandidate}).ok());

  // One write batch: the new snapshot, the checkpoint and s2's deletion.
  std::unique_ptr<rocksdb::TransactionLogIterator> wal;
  ASSERT_TRUE(db->GetUpdatesSince(seq + 1, &wal).ok());
  int batches = 0;
  BatchRecorder rec;
  for (; wal->Valid(); wal->Next()) {
    rocksdb::BatchResult b = wal->GetBatch();
    ++batches;
    ASSERT_TRUE(b.writeBatchPtr->Iterate(&rec).ok());
  }
  EXPECT_EQ(batches, 1);
  EXPECT_NE(std::find(rec.range_deletes.begin(), rec.range_deletes.end(), "snap/s2/w/"),
            rec.range_deletes.end());
  EXPECT_NE(std::find(rec.puts.begin(), rec.puts.end(), "snap/s3/w/00000000"), rec.puts.end());
  EXPECT_NE(std::find(rec.puts.begin(), rec.puts.end(), "ckpt/learner/state"), rec.puts.end());

  // What changed: s2's weights, tokenizer and index entry went, its metadata
  // says so; s3, the checkpoint and the candidate alias were written. Nothing
  // else moved.
  const std::map<std::string, std::string> after = DumpDb(db);
  std::set<std::string> removed, added, changed;
  for (const auto& [k, v] : before) {
    auto it = after.find(k);
    if (it == after.end()) {
      removed.insert(k);
    } else if (it->second != v) {
      changed.insert(k);
    }
  }
  for (const auto& [k, v] : after) {
    if (before.count(k) == 0) added.insert(k);
  }
  EXPECT_EQ(removed, (std::set<std::string>{"snap/s2/w/00000000", "snap/s2/w/00000001",
                                            "snap/s2/tok", "retained/s2"}));
  EXPECT_EQ(added, (std::set<std::string>{"snap/s3/meta", "snap/s3/tok", "snap/s3/w/00000000",
                                          "retained/s3"}));
  for (const std::string& k : changed) {
    EXPECT_TRUE(k == "snap/s2/meta" || k == "alias/candidate" || StartsWith(k, "ckpt/learner/"))
        << k;
  }
  EXPECT_EQ(changed.count("snap/s2/meta"), 1u);
  auto meta = ParseJson(after.at("snap/s2/meta"));
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ((*meta)["weights_retained"], false);
  EXPECT_EQ((*meta)["lineage"]["parent"], "s1");
}

TEST(StoreRetentionTest, RollbackAndAliasChangesRunRetentionToo) {
  TempDir dir;
  auto store = Store::Open(dir.path());
  for (int n = 1; n <= 4; ++n) {
    ASSERT_TRUE((*store)->PutSnapshot(Chained(n), n == 1 ? std::vector<std::string>{kChampion}
                                                         : std::vector<std::string>{})
                    .ok());
  }
  ASSERT_TRUE((*store)->Promote("s2").ok());  // champion s2, previous s1
  (*store)->set_keep_snapshots(1);           // takes effect at the next commit
  EXPECT_TRUE((*store)->GetSnapshot("s3").ok());
  auto d = (*store)->AppendRollback({{"verdict", "rolled_back"}, {"champion", "s2"}});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(absl::IsNotFound((*store)->GetSnapshot("s3").status()));
  for (const std::string id : {"s1", "s2", "s4"}) EXPECT_TRUE((*store)->GetSnapshot(id).ok()) << id;
  // Moving an alias off a snapshot outside the newest 1 drops it.
  ASSERT_TRUE((*store)->SetAlias(kCandidate, "s1").ok());  // s1 is champion
  ASSERT_TRUE((*store)->Rollback().ok());                  // champion s2, previous s1
  ASSERT_TRUE((*store)->Promote("s4").ok());               // champion s4, previous s2
  EXPECT_TRUE((*store)->GetSnapshot("s1").ok());           // still the candidate
  ASSERT_TRUE((*store)->SetAlias(kCandidate, "s4").ok());
  EXPECT_TRUE(absl::IsNotFound((*store)->GetSnapshot("s1").status()));
  EXPECT_TRUE((*store)->GetSnapshot("s2").ok());
}

TEST(StoreRetentionTest, ARetentionCommitDuringGetSnapshotDoesNotTearIt) {
  TempDir dir;
  auto store = Store::Open(dir.path());
  Store* st = store->get();
  st->set_keep_snapshots(1);
  ASSERT_TRUE(st->PutSnapshot(Chained(1), {kChampion}).ok());
  Snapshot s2 = Chained(2, (1 << 20) + 9);
  ASSERT_TRUE(st->PutCheckpoint(CheckpointOf(s2, 2), &s2, {kCandidate}).ok());
  // Between GetSnapshot's reads, a commit makes s2 garbage and deletes it.
  bool fired = false;
  st->set_read_hook_for_testing([&] {
    if (fired) return;
    fired = true;
    Snapshot s3 = Chained(3);
    ASSERT_TRUE(st->PutCheckpoint(CheckpointOf(s3, 3), &s3, {kCandidate}).ok());
  });
  auto got = st->GetSnapshot("s2");
  ASSERT_TRUE(fired);
  ASSERT_TRUE(got.ok()) << got.status();  // the state it started reading
  EXPECT_EQ(got->weights, s2.weights);
  st->set_read_hook_for_testing(nullptr);
  EXPECT_TRUE(absl::IsNotFound(st->GetSnapshot("s2").status()));
}

// Readers racing retention see a snapshot whole or deleted by retention,
// never half-deleted; the checkpoint always reads.
TEST(StoreRetentionTest, ConcurrentReadsNeverSeeAHalfDeletedSnapshot) {
  TempDir dir;
  auto store = Store::Open(dir.path());
  (*store)->set_keep_snapshots(1);
  Store* st = store->get();
  ASSERT_TRUE(st->PutSnapshot(MakeSnapshot("r000", 100, 'r'), {kChampion}).ok());
  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, deleted{0};
  std::vector<std::string> errors;
  std::thread reader([&] {
    while (!done) {
      auto all = st->ListSnapshots();
      if (!all.ok()) {
        errors.push_back(all.status().ToString());
        return;
      }
      for (const SnapshotMeta& m : *all) {
        auto s = st->GetSnapshot(m.id);
        ++reads;
        if (absl::IsNotFound(s.status()) &&
            s.status().message().find("store.keep_snapshots") != std::string::npos) {
          ++deleted;
        } else if (!s.ok()) {
          errors.push_back(m.id + ": " + s.status().ToString());
        }
      }
      auto c = st->GetCheckpoint();
      if (!c.ok() && !absl::IsNotFound(c.status())) errors.push_back(c.status().ToString());
    }
  });
  for (int i = 1; i <= 40; ++i) {
    Snapshot s = MakeSnapshot(absl::StrFormat("r%03d", i), (2 << 20) + 1, char('a' + i % 26));
    ASSERT_TRUE(st->PutCheckpoint(CheckpointOf(s, i), &s, {kCandidate}).ok());
  }
  done = true;
  reader.join();
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ((*st->ListSnapshots()).size(), 41u);
  std::cout << reads << " concurrent reads, " << deleted << " saw retention\n";
}

TEST(StoreTest, AppendRollbackSwapsChampionAndPreviousWithTheDecision) {
  TempDir dir;
  auto store = Store::Open(dir.path());
  ASSERT_TRUE((*store)->PutSnapshot(MakeSnapshot("a", 10, 'a'), {kChampion}).ok());
  ASSERT_TRUE((*store)->PutSnapshot(MakeSnapshot("b", 10, 'b')).ok());
  auto none = (*store)->AppendRollback({{"verdict", "rolled_back"}});
  EXPECT_TRUE(absl::IsFailedPrecondition(none.status())) << none.status();
  ASSERT_TRUE((*store)->Promote("b").ok());
  auto moved = (*store)->AppendRollback({{"verdict", "rolled_back"}, {"champion", "a"}});
  EXPECT_TRUE(absl::IsFailedPrecondition(moved.status())) << moved.status();
  EXPECT_EQ(*(*store)->GetAlias(kChampion), "b");
  EXPECT_TRUE((*store)->ListDecisions()->empty());

  auto d = (*store)->AppendRollback(
      {{"verdict", "rolled_back"}, {"champion", "b"}, {"reason", "stream loss rose"}});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)["id"], "dec-000001");
  EXPECT_EQ((*d)["candidate"], "a");
  EXPECT_EQ(*(*store)->GetAlias(kChampion), "a");
  EXPECT_EQ(*(*store)->GetAlias(kPrevious), "b");
  auto stored = (*store)->ListDecisions();
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0]["id"], "dec-000001");
  EXPECT_EQ((*stored)[0]["verdict"], "rolled_back");
  EXPECT_EQ((*stored)[0]["champion"], "b");
  EXPECT_EQ((*stored)[0]["reason"], "stream loss rose");
}

TEST(StoreRetentionTest, StoresWrittenBeforeRetentionAreIndexedAndCollected) {
  TempDir dir;
  {
    auto store = Store::Open(dir.path());
    for (int n = 1; n <= 3; ++n) {
      ASSERT_TRUE((*store)->PutSnapshot(Chained(n), n == 1 ? std::vector<std::string>{kChampion}
                                                           : std::vector<std::string>{})
                      .ok());
    }
  }
  {  // Make it look like an old store: no index, no weights_retained field.
    rocksdb::DB* db;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir.path(), &db).ok());
    for (const auto& [k, v] : DumpDb(db)) {
      if (StartsWith(k, "retained/") || StartsWith(k, "format/")) {
        ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), k).ok());
      } else if (StartsWith(k, "snap/") && k.size() > 5 && k.substr(k.size() - 5) == "/meta") {
        Json j = *ParseJson(v);
        j.erase("weights_retained");
        ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), k, j.dump()).ok());
      }
    }
    delete db;
  }
  {
    auto ro = Store::Open(dir.path(), /*read_only=*/true);
    ASSERT_TRUE(ro.ok()) << ro.status();
    auto s2 = (*ro)->GetSnapshot("s2");  // a consistent read on a read-only store
    ASSERT_TRUE(s2.ok()) << s2.status();
    EXPECT_TRUE(s2->meta.weights_retained);
  }
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok());
  (*store)->set_keep_snapshots(1);
  ASSERT_TRUE((*store)->PutSnapshot(Chained(4)).ok());
  EXPECT_TRUE((*store)->GetSnapshot("s1").ok());
  EXPECT_TRUE(absl::IsNotFound((*store)->GetSnapshot("s2").status()));
  EXPECT_TRUE(absl::IsNotFound((*store)->GetSnapshot("s3").status()));
  EXPECT_TRUE((*store)->GetSnapshot("s4").ok());
}

TEST(StoreTest, HeldoutRecordsKeepTheirSourceAndLegacyValuesStillRead) {
  TempDir dir;
  {  // Values as stores before sources wrote them: the raw text.
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* db;
    ASSERT_TRUE(rocksdb::DB::Open(options, dir.path(), &db).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "heldout/000000000001", "old plain").ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "heldout/000000000002", "\xc3\xa9t\xc3\xa9").ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "counter/heldout", "2").ok());
    delete db;
  }
  auto store = Store::Open(dir.path());
  ASSERT_TRUE(store.ok()) << store.status();
  LearnerCheckpoint c;
  c.new_heldout = {"from the web", "no source", "", "from a forum"};
  c.new_heldout_sources = {"web", "", "empty-text", "forum/\xff\x01"};
  ASSERT_TRUE((*store)->PutCheckpoint(c).ok());
  LearnerCheckpoint unknown;
  unknown.new_heldout = {"\xff\x01 looks like a header"};  // sources unknown
  ASSERT_TRUE((*store)->PutCheckpoint(unknown).ok());

  auto records = (*store)->GetHeldoutRecords(100);
  ASSERT_TRUE(records.ok()) << records.status();
  std::vector<std::pair<std::string, std::string>> got;
  for (const HeldoutRecord& r : *records) got.emplace_back(r.text, r.source);
  EXPECT_EQ(got, (std::vector<std::pair<std::string, std::string>>{
                     {"old plain", ""},
                     {"\xc3\xa9t\xc3\xa9", ""},
                     {"from the web", "web"},
                     {"no source", ""},
                     {"", "empty-text"},
                     {"from a forum", "forum/\xff\x01"},
                     {"\xff\x01 looks like a header", ""}}));
  auto texts = (*store)->GetHeldout(3);
  ASSERT_TRUE(texts.ok());
  EXPECT_EQ(*texts, (std::vector<std::string>{"", "from a forum", "\xff\x01 looks like a header"}));

  LearnerCheckpoint mismatched;
  mismatched.new_heldout = {"a", "b"};
  mismatched.new_heldout_sources = {"only one"};
  EXPECT_TRUE(absl::IsInvalidArgument((*store)->PutCheckpoint(mismatched)));
  EXPECT_EQ((*store)->GetHeldoutRecords(100)->size(), 7u);
}

TEST(StoreTest, TruncatedHeldoutValueIsDataLoss) {
  TempDir dir;
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* db;
    ASSERT_TRUE(rocksdb::DB::Open(options, dir.path(), &db).ok());
    // Version 1 header claiming a 200-byte source in a 10-byte value.
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "heldout/000000000001",
                        std::string("\xff\x01\xc8\x00\x00\x00" "abcd", 10)).ok());
    delete db;
  }
  auto store = Store::Open(dir.path());
  EXPECT_TRUE(absl::IsDataLoss((*store)->GetHeldoutRecords(10).status()));
}

}  // namespace
}  // namespace streamlm
