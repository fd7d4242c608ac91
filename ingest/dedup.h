// Deduplicator: exact and near-duplicate detection over a bounded window of
// recent documents, with state that serializes into the learner checkpoint
// (so a restart neither forgets nor double-counts).
//
// Exact: 64-bit hash of the text lowercased with whitespace collapsed.
// Near: MinHash over word 5-grams, `bands` x `rows` signature (default
// 14 x 8, as in common pretraining recipes), LSH banding to find candidates,
// confirmed when the signatures agree on >= `threshold` of their values
// (an estimate of Jaccard similarity; default 0.75).
//
// Not thread-safe: one thread (the learner's), except Fingerprint().
#ifndef STREAMLM_INGEST_DEDUP_H_
#define STREAMLM_INGEST_DEDUP_H_

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "common/config.h"

namespace streamlm {

struct DedupOptions {
  size_t window_docs = 100000;  // documents remembered
  int64_t window_ms = 0;        // and only this long (by ingest time); 0 = no time bound
  int bands = 14;
  int rows = 8;
  int shingle_words = 5;
  double threshold = 0.75;
};

// The dedup.* keys of a config.
DedupOptions DedupOptionsFromConfig(const Config& config);

class Deduplicator {
 public:
  enum class Verdict { kUnique, kExact, kNear };

  explicit Deduplicator(DedupOptions options = {});

  // What Check() compares: the exact hash and the MinHash signature. Pure
  // and thread-safe, so a batch can be fingerprinted on all cores and then
  // checked in order on one thread.
  struct Fingerprint {
    uint64_t exact = 0;
    std::vector<uint32_t> signature;
  };
  Fingerprint MakeFingerprint(std::string_view text) const;

  // Checks `text` against the window; a unique document is remembered.
  // `now_ms` is the ingest time: documents older than `window_ms` are
  // forgotten first.
  Verdict Check(std::string_view text);
  Verdict Check(Fingerprint fingerprint, int64_t now_ms);

  size_t size() const { return docs_.size(); }
  std::string Serialize() const;
  [[nodiscard]] absl::Status Restore(const std::string& bytes);

 private:
  struct Doc {
    uint64_t exact;
    std::vector<uint32_t> signature;  // bands * rows MinHash values
    int64_t time_ms = 0;              // when it was remembered
  };
  std::vector<uint32_t> Signature(std::string_view normalized) const;
  uint64_t BandKey(const std::vector<uint32_t>& sig, int band) const;
  void Remember(Doc doc);
  void ForgetOldest();

  DedupOptions options_;
  std::vector<uint64_t> seeds_;    // one multiplier per MinHash function
  std::vector<uint64_t> offsets_;  // one offset per MinHash function
  std::deque<Doc> docs_;         // oldest first
  uint64_t first_id_ = 0;        // id of docs_.front()
  std::unordered_map<uint64_t, uint32_t> exact_;               // hash -> count in window
  std::vector<std::unordered_map<uint64_t, std::vector<uint64_t>>> buckets_;  // per band: key -> doc ids
};

// Lowercased text with every whitespace run collapsed to one space, trimmed.
std::string NormalizeForDedup(std::string_view text);

}  // namespace streamlm

#endif  // STREAMLM_INGEST_DEDUP_H_
