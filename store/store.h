// Store: StreamLM's RocksDB-backed persistence (see store/README.md).
// Thread-safe. Knows nothing of tensors; weights are opaque bytes.
#ifndef STREAMLM_STORE_STORE_H_
#define STREAMLM_STORE_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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
  std::string id;
  int64_t created_ms = 0;
  std::string origin;  // "bootstrap" or "learner"
  Json model_config;   // model family and sizes
  Lineage lineage;
  Json metrics = Json::object();
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
};

Json LineageToJson(const Lineage& l);
Lineage LineageFromJson(const Json& j);
Json SnapshotMetaToJson(const SnapshotMeta& m);
absl::StatusOr<SnapshotMeta> SnapshotMetaFromJson(const Json& j);

// True when `s` is Store::Open's error for a directory whose lock another
// process holds (e.g. `streamlm run` is up on the same --data-dir).
bool IsStoreLocked(const absl::Status& s);

class Store {
 public:
  // Opens (creating if needed) the store in `dir`. `read_only` opens without
  // taking the directory lock, for inspecting a store another process owns.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Store>> Open(
      const std::string& dir, bool read_only = false);
  ~Store();

  // A fresh snapshot id, "snap-000001", ... (persisted counter).
  [[nodiscard]] absl::StatusOr<std::string> NewSnapshotId();

  // Writes a snapshot and, in the same atomic commit, points `aliases` at it.
  [[nodiscard]] absl::Status PutSnapshot(
      const Snapshot& snapshot, const std::vector<std::string>& aliases = {});
  // Writes a checkpoint and, when given, a snapshot plus aliases, atomically.
  [[nodiscard]] absl::Status PutCheckpoint(
      const LearnerCheckpoint& checkpoint, const Snapshot* snapshot = nullptr,
      const std::vector<std::string>& aliases = {});

  [[nodiscard]] absl::StatusOr<SnapshotMeta> GetSnapshotMeta(
      const std::string& id) const;
  // Reads a whole snapshot, verifying each weight chunk's checksum.
  [[nodiscard]] absl::StatusOr<Snapshot> GetSnapshot(
      const std::string& id) const;
  // All snapshots, oldest first.
  [[nodiscard]] absl::StatusOr<std::vector<SnapshotMeta>> ListSnapshots() const;
  // Adds metrics to a snapshot's metadata (merged into `metrics`).
  [[nodiscard]] absl::Status MergeSnapshotMetrics(const std::string& id,
                                                  const Json& metrics);

  [[nodiscard]] absl::Status SetAlias(const std::string& alias,
                                      const std::string& id);
  // NotFound when the alias is unset.
  [[nodiscard]] absl::StatusOr<std::string> GetAlias(
      const std::string& alias) const;
  // previous <- champion, champion <- id; one atomic commit.
  [[nodiscard]] absl::Status Promote(const std::string& id);
  // champion <- previous, previous <- old champion; one atomic commit.
  [[nodiscard]] absl::Status Rollback();

  // Appends a decision (its "id" field is assigned here) and, when
  // `promote` is set, applies the promotion in the same commit.
  [[nodiscard]] absl::StatusOr<Json> AppendDecision(Json decision,
                                                    bool promote);
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
  // deleted when a checkpoint adds more than `window` in total.
  [[nodiscard]] absl::StatusOr<std::vector<std::string>> GetHeldout(
      size_t limit) const;
  void set_heldout_window(size_t window) { heldout_window_ = window; }

 private:
  explicit Store(rocksdb::DB* db, bool read_only);
  absl::Status Write(rocksdb::WriteBatch* batch);
  absl::StatusOr<int64_t> NextCounter(const std::string& name,
                                      rocksdb::WriteBatch* batch);
  absl::StatusOr<std::string> ReadChunks(const std::string& prefix) const;
  void AddSnapshot(const Snapshot& s, rocksdb::WriteBatch* batch);
  absl::Status AddPromotion(const std::string& id, rocksdb::WriteBatch* batch);
  absl::StatusOr<std::optional<std::string>> GetRaw(const std::string& key) const;

  rocksdb::DB* db_;
  bool read_only_;
  size_t heldout_window_ = 512;
  std::mutex write_mu_;  // serializes read-modify-write of counters/aliases
};

}  // namespace streamlm

#endif  // STREAMLM_STORE_STORE_H_
