// The ingest pipeline: what happens to every record between Kafka and the
// learner, and what `streamlm clean` / `streamlm bench ingest` run.
//
//   1 parse and validate   (record.h: schema, size limit, UTF-8 policy)
//   2 repair and normalize (normalize.h)
//   3 markup               (normalize.h: HTML to text)
//   4 quality filters      (quality.h: Gopher, C4, FineWeb)
//   5 dedup                (dedup.h: exact and MinHash, stateful)
//   6 PII redaction        (pii.h)
//   7 tokenize             (the model's tokenizer; packing is the caller's)
//
// Cleaner holds stages 2-4 and 6 (stateless); TextPipeline runs 1-7 over a
// batch, stages 1-4, 6 and 7 on `threads` threads and stage 5 in record
// order on the calling thread, so results do not depend on the thread count.
//
// Thread-safety: Cleaner and TextPipeline are immutable after construction
// and may be shared; Run() mutates only its arguments (one Deduplicator must
// not be used by two Run() calls at once).
#ifndef STREAMLM_INGEST_PIPELINE_H_
#define STREAMLM_INGEST_PIPELINE_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/clean_options.h"
#include "common/json_util.h"
#include "common/metrics.h"
#include "ingest/dedup.h"
#include "ingest/normalize.h"
#include "ingest/pii.h"
#include "ingest/quality.h"
#include "ingest/record.h"

namespace streamlm {

class Tokenizer;

struct CleanResult {
  // nullptr = kept; otherwise the stable snake_case reason.
  const char* reason = nullptr;
  std::string detail;
  std::string text;  // the cleaned text when kept
  NormalizeStats normalize;
  int lines_dropped = 0;  // by C4's line filters
  PiiCounts pii;
  bool ok() const { return reason == nullptr; }
};

class Cleaner {
 public:
  explicit Cleaner(const CleanOptions& options);

  // Stages 2-4 on one text (any bytes).
  CleanResult Filter(std::string_view raw) const;
  // Stage 6 on a kept result: redacts in place, or drops it with reason
  // `pii_too_many` when it has more than `pii.max_hits` hits (max_hits > 0).
  void Redact(CleanResult& result) const;
  // Stages 2-4 and 6 (no dedup): for one-off texts such as feedback fields.
  CleanResult Clean(std::string_view raw) const;
  // Stage 6 alone on any bytes (invalid UTF-8 is kept as it is), when PII
  // redaction is on: for what is shown of a dropped record on the rejects
  // topic, so auditing never republishes what the pipeline redacts.
  std::string RedactForAudit(std::string_view raw) const;

  const CleanOptions& options() const { return options_; }
  // Whether invalid UTF-8 is replaced (the default) rather than rejected.
  bool repairs_utf8() const {
    return !options_.normalize.enabled || options_.normalize.invalid_utf8 != "reject";
  }

 private:
  CleanOptions options_;
  QualityFilter quality_;
  PiiRedactor pii_;
};

// One record going through the pipeline.
struct IngestItem {
  std::string payload;  // in: the record value
  // Out:
  const char* reason = nullptr;  // nullptr = kept
  std::string detail;
  TextRecord record;  // with the cleaned text when kept
  CleanResult clean;  // stats (its text is moved into record.text)
  std::vector<int32_t> tokens;  // when Run() had a tokenizer; no EOS added
  bool ok() const { return reason == nullptr; }
};

struct PipelineOptions {
  CleanOptions clean;
  size_t max_record_bytes = 1 << 20;
  int threads = 1;  // for stages 1-4, 6, 7 and dedup fingerprints
};

class TextPipeline {
 public:
  explicit TextPipeline(const PipelineOptions& options);

  // Runs the stages over `items` in place. `dedup` and `tokenizer` may be
  // null (stage 5 / 7 skipped).
  void Run(std::vector<IngestItem>& items, Deduplicator* dedup,
           const Tokenizer* tokenizer) const;

  const Cleaner& cleaner() const { return cleaner_; }

 private:
  PipelineOptions options_;
  Cleaner cleaner_;
};

// Threads for the pipeline: `configured`, or all cores when 0.
int ResolveThreads(int configured);

// Adds what cleaning did to one kept record to the metrics:
// streamlm_pii_redacted_total{kind=...}, streamlm_clean_mojibake_fixed_total,
// streamlm_clean_entities_decoded_total, streamlm_clean_invisible_removed_total,
// streamlm_clean_invalid_bytes_total, streamlm_clean_html_records_total,
// streamlm_clean_lines_dropped_total.
void CountCleaning(const CleanResult& result, Counters* counters);
// The PII part alone (streamlm_pii_redacted_total{kind=...}).
void CountPii(const PiiCounts& pii, Counters* counters);

// Runs fn(i) for i in [0, n) on up to `threads` threads (the caller's
// included); returns when all are done.
void ParallelFor(size_t n, int threads, const std::function<void(size_t)>& fn);

// `streamlm.feedback` records (DESIGN.md): one of
//   {"prompt", "response", "rating": 1|-1}, {"prompt", "chosen", "rejected"},
//   {"prompt", "response", "correction"}; optional id, user, snapshot,
//   completion_id (strings).
// Parses and validates `payload`, then cleans every text field with
// `cleaner` (the `clean.feedback` profile). On success `out` is the record
// with cleaned fields; otherwise the reason names what was wrong, e.g.
// `missing_field`, `bad_field`, or the cleaning reason of the field that
// was dropped (detail names the field).
struct FeedbackResult {
  const char* reason = nullptr;
  std::string detail;
  Json record;
  PiiCounts pii;
  bool ok() const { return reason == nullptr; }
};
FeedbackResult CleanFeedbackRecord(std::string_view payload, size_t max_bytes,
                                   const Cleaner& cleaner);

}  // namespace streamlm

#endif  // STREAMLM_INGEST_PIPELINE_H_
