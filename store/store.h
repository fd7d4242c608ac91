// Store: StreamLM's RocksDB-backed persistence (see store/README.md).
// Thread-safe. Knows nothing of tensors; weights are opaque bytes.
#ifndef STREAMLM_STORE_STORE_H_
#define STREAMLM_STORE_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/json_util.h"

namespace rocksdb {
class DB;
class WriteBatch;
}  // namespace rocksdb

namespace streamlm {

inline constexpr char kChampion[] = "champion";
inline constexpr char kCandidate[] = "candidate";
inline constexpr char kPrevious[] = "previous";

// Data sets bootstrap writes, as JSON arrays of document texts (tokenized by
// whichever model uses them): held-out documents of the bootstrap corpus
// (the forgetting check) and training documents that seed the replay buffer.
inline constexpr char kBaseEvalSet[] = "base";
inline constexpr char kReplaySeedSet[] = "replay_seed";
// One line saying where the base set came from (bootstrap corpus, `import-hf
// --base-corpus` files, or the first held-out stream records).
inline constexpr char kBaseOriginSet[] = "base_origin";
// Trusted feedback: a JSON array of cleaned feedback records (the
// `streamlm.feedback` shapes), never trained on, evaluated for every
// candidate. Written by `streamlm feedback trust FILE`.
inline constexpr char kTrustedFeedbackSet[] = "trusted_feedback";

// Records [begin, end) of one partition of `topic`.
struct OffsetRange {
  std::string topic;
  int32_t partition = 0;
  int64_t begin = 0;
  int64_t end = 0;
};

struct Lineage {
  std::string parent;               // empty for a bootstrap snapshot
  std::vector<OffsetRange> ranges;  // consumed since the parent snapshot
  int64_t records_trained = 0;
  int64_t records_heldout = 0;
  int64_t records_rejected = 0;
  int64_t tokens_trained = 0;
  int64_t step = 0;  // learner step at which this snapshot was taken
  // Kafka timestamps (ms) of the oldest and newest record trained on since
  // the parent; 0 when unknown. Serving reports freshness from them.
  int64_t oldest_record_ms = 0;
  int64_t newest_record_ms = 0;
};

struct SnapshotMeta {
  std::string id;  // from Store::NewSnapshotId; never contains '/'
  int64_t created_ms = 0;
  std::string origin;  // "bootstrap" or "learner"
  Json model_config;   // model family and sizes
  Lineage lineage;
  Json metrics = Json::object();
  // False once retention (`store.keep_snapshots`) deleted this snapshot's
  // weights and tokenizer; the metadata stays, so lineage remains walkable.
  // Maintained by the store: PutSnapshot ignores it.
  bool weights_retained = true;
};

struct Snapshot {
  SnapshotMeta meta;
  std::string weights;    // serialized parameters
  std::string tokenizer;  // serialized tokenizer model
};

// Everything the learner needs to resume exactly where it stopped.
struct LearnerCheckpoint {
  std::string name = "learner";
  int64_t step = 0;
  std::string topic;
  std::map<int32_t, int64_t> next_offsets;  // partition -> next offset to read
  std::string weights;
  std::string optimizer;
  std::string replay;
  std::string dedup;  // deduplicator window
  Json state = Json::object();  // learner counters and pending tokens
  // Held-out stream records first seen since the last checkpoint; appended
  // to the held-out window in the same commit.
  std::vector<std::string> new_heldout;
  // The stream record's "source" of each new_heldout entry (empty when the
  // record had none), parallel to new_heldout; empty = all unknown.
  std::vector<std::string> new_heldout_sources;
  // Snapshots whose weights must survive retention while this is the
  // current checkpoint (e.g. the snapshot it continues from and its feedback
  // reference model). Weights shared with the snapshot written in the same
  // PutCheckpoint are kept without being listed here.
  std::vector<std::string> retain_snapshots;
};

// One record of the held-out window.
struct HeldoutRecord {
  std::string text;
  std::string source;  // the stream record's "source"; empty when unknown
};

Json LineageToJson(const Lineage& l);
Lineage LineageFromJson(const Json& j);
Json SnapshotMetaToJson(const SnapshotMeta& m);
absl::StatusOr<SnapshotMeta> SnapshotMetaFromJson(const Json& j);

class Store;
// True when `ancestor` is snapshot `id` or one of its parents in `store`
// (snapshot metadata is never deleted, so the walk works after retention).
bool InLineage(const Store& store, const std::string& id, const std::string& ancestor);

// True when `s` is Store::Open's error for a directory whose lock another
// process holds (e.g. `streamlm run` is up on the same --data-dir).
bool IsStoreLocked(const absl::Status& s);

// Thread-safe: any number of threads may read and write concurrently.
// Writes are serialized by one mutex; every read of several keys
// (GetSnapshot, GetCheckpoint) sees one committed state.
//
// Retention: every commit that can make snapshot weights unneeded (a new
// snapshot, a checkpoint, an alias change) deletes, in the same WriteBatch,
// the weights and tokenizer of every snapshot that is none of: the target
// of an alias, named by a current checkpoint (its shared weights or
// retain_snapshots), or among the newest keep_snapshots() snapshots (by id;
// NewSnapshotId ids sort in creation order). Metadata is never deleted.
class Store {
 public:
  // Opens (creating if needed) the store in `dir`. `read_only` opens without
  // taking the directory lock, for inspecting a store another process owns.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Store>> Open(
      const std::string& dir, bool read_only = false);
  // Opens the store in `dir`, which another process owns (writes), as a
  // follower: a RocksDB secondary instance keeping its own log and info
  // files in `follower_dir` (created if needed; one per follower process).
  // It reads the state of the moment it opened, or of its last CatchUp;
  // every write fails with FailedPrecondition.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Store>> OpenFollower(
      const std::string& dir, const std::string& follower_dir);
  // A follower's catch-up with the owner's committed writes (RocksDB's
  // TryCatchUpWithPrimary: it replays the owner's new log entries, so what
  // the owner committed before this call is visible after it, flushed or
  // not). FailedPrecondition on a store that is not a follower.
  [[nodiscard]] absl::Status CatchUp();
  bool is_follower() const { return follower_; }
  ~Store();

  // A fresh snapshot id, "snap-000001", ... (persisted counter).
  [[nodiscard]] absl::StatusOr<std::string> NewSnapshotId();

  // Writes a snapshot and, in the same atomic commit, points `aliases` at it
  // and applies retention.
  [[nodiscard]] absl::Status PutSnapshot(
      const Snapshot& snapshot, const std::vector<std::string>& aliases = {});
  // Writes a checkpoint and, when given, a snapshot plus aliases, and applies
  // retention, atomically. When the snapshot's weights are byte-equal to the
  // checkpoint's, they are written once (under the snapshot) and the
  // checkpoint refers to them. InvalidArgument when new_heldout_sources is
  // neither empty nor as long as new_heldout.
  [[nodiscard]] absl::Status PutCheckpoint(
      const LearnerCheckpoint& checkpoint, const Snapshot* snapshot = nullptr,
      const std::vector<std::string>& aliases = {});

  [[nodiscard]] absl::StatusOr<SnapshotMeta> GetSnapshotMeta(
      const std::string& id) const;
  // Reads a whole snapshot, verifying each weight chunk's checksum. NotFound
  // when the snapshot does not exist or retention deleted its weights (the
  // message then names `store.keep_snapshots`); DataLoss on a bad checksum.
  [[nodiscard]] absl::StatusOr<Snapshot> GetSnapshot(
      const std::string& id) const;
  // A snapshot's weights as stored, for copying them elsewhere chunk by
  // chunk (serving/snapshot_transfer.h): the CRC-32 of each chunk, in
  // order (every chunk is read and verified: DataLoss on a mismatch), and
  // one chunk's bytes with its CRC. NotFound as GetSnapshot, and for `n`
  // past the last chunk.
  [[nodiscard]] absl::StatusOr<std::vector<uint32_t>> GetSnapshotChunkCrcs(
      const std::string& id) const;
  struct Chunk {
    uint32_t crc32 = 0;
    std::string bytes;
  };
  [[nodiscard]] absl::StatusOr<Chunk> GetSnapshotChunk(const std::string& id, size_t n) const;
  // A snapshot's serialized tokenizer (empty when it has none).
  [[nodiscard]] absl::StatusOr<std::string> GetSnapshotTokenizer(const std::string& id) const;
  // The CRC-32 (zlib's) of `bytes`, as the store computes it for chunks.
  static uint32_t Crc32(const std::string& bytes);
  // All snapshots, oldest first, including those whose weights retention
  // deleted (weights_retained false).
  [[nodiscard]] absl::StatusOr<std::vector<SnapshotMeta>> ListSnapshots() const;
  // Adds metrics to a snapshot's metadata (merged into `metrics`).
  [[nodiscard]] absl::Status MergeSnapshotMetrics(const std::string& id,
                                                  const Json& metrics);

  // Points `alias` at `id` and applies retention, in one commit. NotFound
  // for an unknown id; FailedPrecondition when its weights were deleted.
  [[nodiscard]] absl::Status SetAlias(const std::string& alias,
                                      const std::string& id);
  // NotFound when the alias is unset.
  [[nodiscard]] absl::StatusOr<std::string> GetAlias(
      const std::string& alias) const;
  // previous <- champion, champion <- id; one atomic commit with retention.
  // FailedPrecondition when the weights of `id` were deleted.
  [[nodiscard]] absl::Status Promote(const std::string& id);
  // champion <- previous, previous <- old champion; one atomic commit with
  // retention.
  [[nodiscard]] absl::Status Rollback();

  // Appends a decision (its "id" field is assigned here) and, when
  // `promote` is set, applies the promotion and retention in the same
  // commit.
  [[nodiscard]] absl::StatusOr<Json> AppendDecision(Json decision,
                                                    bool promote);
  // Appends a decision (verdict "rolled_back") and, in the same commit,
  // rolls back: champion <- previous, previous <- old champion, and applies
  // retention. Fails with FailedPrecondition when there is no previous
  // champion or the champion is no longer decision["champion"] (someone
  // moved it meanwhile).
  [[nodiscard]] absl::StatusOr<Json> AppendRollback(Json decision);
  // Newest first; at most `limit` (0 = all).
  [[nodiscard]] absl::StatusOr<std::vector<Json>> ListDecisions(
      size_t limit = 0) const;

  // Cleaned `streamlm.feedback` records (ingest/pipeline.h), kept for the
  // learning objectives that use them. Keyed by Kafka position, so records
  // consumed again after a restart overwrite themselves: no duplicates.
  struct FeedbackEntry {
    int32_t partition = 0;
    int64_t offset = 0;
    Json record;
  };
  [[nodiscard]] absl::Status PutFeedback(const std::vector<FeedbackEntry>& entries);
  // Test-only fault injection: the next `n` PutFeedback calls fail with
  // UnavailableError before anything is written (RocksDB is not involved),
  // so tests can show what callers do when feedback cannot be stored.
  // Production code never calls it. Thread-safe.
  void FailNextFeedbackWritesForTest(int n) { fail_feedback_writes_ = n; }
  // By partition, then offset; at most `limit` (0 = all).
  [[nodiscard]] absl::StatusOr<std::vector<FeedbackEntry>> ListFeedback(size_t limit = 0) const;

  // NotFound when no checkpoint exists.
  [[nodiscard]] absl::StatusOr<LearnerCheckpoint> GetCheckpoint(
      const std::string& name = "learner") const;

  [[nodiscard]] absl::Status PutEvalSet(const std::string& name,
                                        const std::string& bytes);
  [[nodiscard]] absl::StatusOr<std::string> GetEvalSet(
      const std::string& name) const;

  // The newest `limit` held-out stream records, oldest first. Older ones are
  // deleted when a checkpoint adds more than `window` in total. Records
  // stored before sources were kept have an empty source.
  [[nodiscard]] absl::StatusOr<std::vector<HeldoutRecord>> GetHeldoutRecords(
      size_t limit) const;
  // The same, texts only.
  [[nodiscard]] absl::StatusOr<std::vector<std::string>> GetHeldout(
      size_t limit) const;
  // The same with each record's sequence number (increasing in arrival
  // order, never reused): the newest `limit` numbered above `after`, oldest
  // first; `after` = -1 for any (the newest number: GetHeldoutAfter(-1, 1)).
  // The rollback monitor judges the champion on records since its promotion.
  [[nodiscard]] absl::StatusOr<std::vector<std::pair<int64_t, HeldoutRecord>>>
  GetHeldoutAfter(int64_t after, size_t limit) const;
  // Call before sharing the Store between threads.
  void set_heldout_window(size_t window) { heldout_window_ = window; }

  // Snapshots whose weights retention keeps besides aliased and checkpointed
  // ones (config `store.keep_snapshots`); values < 1 count as 1. Applies
  // from the next commit. Default 8.
  void set_keep_snapshots(size_t n) { keep_snapshots_ = n < 1 ? 1 : n; }
  // Free space every write leaves on the store's filesystem (config
  // `store.min_free_mb`): a write that would eat into it (counting twice its
  // size: the write-ahead log, then the flushed table) is refused with
  // RESOURCE_EXHAUSTED "no space left on device ...", before RocksDB runs
  // out of space itself (RocksDB 7.8 can then abort on an assertion).
  void set_min_free_bytes(uint64_t n) { min_free_bytes_ = n; }
  size_t keep_snapshots() const { return keep_snapshots_; }

  // The underlying database, for tests that inspect raw keys and the WAL.
  rocksdb::DB* db_for_testing() const { return db_; }
  // A sync point for race tests: runs inside GetSnapshot after the metadata
  // is read and before the weights are. Set before sharing the Store.
  void set_read_hook_for_testing(std::function<void()> hook) {
    read_hook_for_testing_ = std::move(hook);
  }

 private:
  // What a commit changes that retention depends on (store.cc).
  struct Changes;
  class ReadView;

  explicit Store(rocksdb::DB* db, bool read_only);
  absl::Status Write(rocksdb::WriteBatch* batch);
  // Applies retention for `changes` to `batch`, then writes it.
  absl::Status Commit(const Changes& changes, rocksdb::WriteBatch* batch);
  absl::Status AddRetention(const Changes& changes, rocksdb::WriteBatch* batch);
  absl::Status IndexLegacySnapshots();
  absl::StatusOr<int64_t> NextCounter(const std::string& name,
                                      rocksdb::WriteBatch* batch);
  absl::StatusOr<std::string> ReadChunks(const std::string& prefix,
                                         const ReadView& view) const;
  void AddSnapshot(const Snapshot& s, rocksdb::WriteBatch* batch);
  absl::Status AddPromotion(const std::string& id, rocksdb::WriteBatch* batch,
                            Changes* changes);
  absl::StatusOr<std::optional<std::string>> GetRaw(const std::string& key) const;
  absl::StatusOr<std::optional<std::string>> GetRaw(const std::string& key,
                                                    const ReadView& view) const;
  absl::StatusOr<SnapshotMeta> GetSnapshotMeta(const std::string& id,
                                               const ReadView& view) const;
  std::string WeightsDeletedMessage(const std::string& id) const;

  rocksdb::DB* db_;
  bool read_only_;
  bool follower_ = false;
  // FailedPrecondition (naming the owner for a follower) when read-only.
  absl::Status CheckWritable() const;
  // Followers: CatchUp holds it exclusively, ReadViews shared.
  mutable std::shared_mutex catch_up_mu_;
  size_t heldout_window_ = 512;
  std::atomic<size_t> keep_snapshots_{8};
  std::atomic<uint64_t> min_free_bytes_{64 << 20};
  std::atomic<int> fail_feedback_writes_{0};  // FailNextFeedbackWritesForTest
  std::function<void()> read_hook_for_testing_;
  std::mutex write_mu_;  // serializes read-modify-write of counters/aliases
};

}  // namespace streamlm

#endif  // STREAMLM_STORE_STORE_H_
