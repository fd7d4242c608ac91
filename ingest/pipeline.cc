#include "ingest/pipeline.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "model/tokenizer.h"

namespace streamlm {

int ResolveThreads(int configured) {
  if (configured > 0) return configured;
  return std::max(1u, std::thread::hardware_concurrency());
}

void CountPii(const PiiCounts& pii, Counters* counters) {
  pii.ForEach([&](const char* kind, int n) {
    if (n > 0) counters->Add("streamlm_pii_redacted_total", n, absl::StrCat("kind=", kind));
  });
}

void CountCleaning(const CleanResult& r, Counters* counters) {
  auto add = [&](const char* name, int64_t v) {
    if (v > 0) counters->Add(name, v);
  };
  CountPii(r.pii, counters);
  add("streamlm_clean_mojibake_fixed_total", r.normalize.mojibake_fixed);
  add("streamlm_clean_entities_decoded_total", r.normalize.entities_decoded);
  add("streamlm_clean_invisible_removed_total", r.normalize.invisible_removed);
  add("streamlm_clean_invalid_bytes_total", r.normalize.invalid_bytes);
  add("streamlm_clean_html_records_total", r.normalize.was_html ? 1 : 0);
  add("streamlm_clean_lines_dropped_total", r.lines_dropped);
}

void ParallelFor(size_t n, int threads, const std::function<void(size_t)>& fn) {
  size_t workers = std::min<size_t>(n, static_cast<size_t>(std::max(1, threads)));
  if (workers <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  // Items differ in size by orders of magnitude: hand them out one by one.
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (size_t w = 1; w < workers; ++w) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
}

Cleaner::Cleaner(const CleanOptions& options)
    : options_(options), quality_(options), pii_(options.pii) {}

CleanResult Cleaner::Filter(std::string_view raw) const {
  CleanResult r;
  NormalizeResult n = NormalizeText(raw, options_.normalize, options_.markup);
  r.normalize = n.stats;
  if (n.reason != nullptr) {
    r.reason = n.reason;
    r.detail = std::move(n.detail);
    return r;
  }
  r.text = std::move(n.text);
  FilterVerdict v = quality_.Apply(r.text);
  r.lines_dropped = v.lines_dropped;
  if (!v.ok()) {
    r.reason = v.reason;
    r.detail = std::move(v.detail);
    r.text.clear();
  }
  return r;
}

void Cleaner::Redact(CleanResult& result) const {
  if (!result.ok() || !options_.pii.enabled) return;
  result.pii = pii_.Redact(result.text);
  const int64_t hits = result.pii.total();
  if (options_.pii.max_hits > 0 && hits > options_.pii.max_hits) {
    result.reason = "pii_too_many";
    result.detail = absl::StrCat(hits, " PII hits, at most ", options_.pii.max_hits, " allowed");
    result.text.clear();
  }
}

std::string Cleaner::RedactForAudit(std::string_view raw) const {
  std::string text(raw);
  if (options_.pii.enabled) pii_.Redact(text);
  return text;
}

CleanResult Cleaner::Clean(std::string_view raw) const {
  CleanResult r = Filter(raw);
  Redact(r);
  return r;
}

TextPipeline::TextPipeline(const PipelineOptions& options)
    : options_(options), cleaner_(options.clean) {}

void TextPipeline::Run(std::vector<IngestItem>& items, Deduplicator* dedup,
                       const Tokenizer* tokenizer) const {
  const bool repair = cleaner_.repairs_utf8();
  std::vector<Deduplicator::Fingerprint> fingerprints(dedup != nullptr ? items.size() : 0);
  // Stages 1-4, and the dedup fingerprint, in parallel.
  ParallelFor(items.size(), options_.threads, [&](size_t i) {
    IngestItem& item = items[i];
    ParsedRecord p = ParseTextRecord(item.payload, options_.max_record_bytes, repair);
    if (!p.ok()) {
      item.reason = RejectReasonName(p.reason);
      item.detail = std::move(p.detail);
      return;
    }
    item.record = std::move(p.record);
    item.clean = cleaner_.Filter(item.record.text);
    if (!item.clean.ok()) {
      item.reason = item.clean.reason;
      item.detail = item.clean.detail;
      return;
    }
    if (dedup != nullptr) fingerprints[i] = dedup->MakeFingerprint(item.clean.text);
  });
  // Stage 5 in record order: what counts as "seen first" must not depend on
  // thread timing.
  if (dedup != nullptr) {
    const int64_t now_ms = NowMs();
    for (size_t i = 0; i < items.size(); ++i) {
      IngestItem& item = items[i];
      if (!item.ok()) continue;
      Deduplicator::Verdict v = dedup->Check(std::move(fingerprints[i]), now_ms);
      if (v == Deduplicator::Verdict::kExact) {
        item.reason = RejectReasonName(RejectReason::kDuplicate);
        item.detail = "same text as a recent record";
      } else if (v == Deduplicator::Verdict::kNear) {
        item.reason = RejectReasonName(RejectReason::kNearDuplicate);
        item.detail = "near duplicate of a recent record (MinHash)";
      }
    }
  }
  // Stages 6 and 7 in parallel.
  ParallelFor(items.size(), options_.threads, [&](size_t i) {
    IngestItem& item = items[i];
    if (!item.ok()) return;
    cleaner_.Redact(item.clean);
    if (!item.clean.ok()) {
      item.reason = item.clean.reason;
      item.detail = item.clean.detail;
      return;
    }
    item.record.text = std::move(item.clean.text);
    item.clean.text.clear();
    if (tokenizer != nullptr) item.tokens = tokenizer->Encode(item.record.text);
  });
}

namespace {

FeedbackResult FeedbackReject(const char* reason, std::string detail) {
  FeedbackResult r;
  r.reason = reason;
  r.detail = std::move(detail);
  return r;
}

}  // namespace

FeedbackResult CleanFeedbackRecord(std::string_view payload, size_t max_bytes,
                                   const Cleaner& cleaner) {
  JsonRecord parsed = ParseJsonObjectRecord(payload, max_bytes, cleaner.repairs_utf8());
  if (!parsed.ok()) return FeedbackReject(RejectReasonName(parsed.reason), std::move(parsed.detail));
  Json& j = parsed.value;
  // Which of the three shapes: decided by the fields present.
  std::vector<const char*> texts;
  if (j.contains("chosen") || j.contains("rejected")) {
    texts = {"prompt", "chosen", "rejected"};
  } else if (j.contains("correction")) {
    texts = {"prompt", "response", "correction"};
  } else {
    texts = {"prompt", "response"};
    if (!j.contains("rating")) {
      return FeedbackReject("missing_field",
                            "needs \"rating\", \"chosen\"/\"rejected\" or \"correction\"");
    }
    const Json& rating = j["rating"];
    if (!rating.is_number_integer() || (rating.get<int64_t>() != 1 && rating.get<int64_t>() != -1)) {
      return FeedbackReject("bad_field", "\"rating\" must be 1 or -1");
    }
  }
  for (const char* opt : {"id", "user", "snapshot", "completion_id"}) {
    if (j.contains(opt) && !j[opt].is_string()) {
      return FeedbackReject("bad_field", absl::StrCat("\"", opt, "\" is ", j[opt].type_name(),
                                                      ", not a string"));
    }
  }
  FeedbackResult out;
  for (const char* field : texts) {
    if (!j.contains(field)) {
      return FeedbackReject("missing_field", absl::StrCat("no \"", field, "\" field"));
    }
    if (!j[field].is_string()) {
      return FeedbackReject("bad_field", absl::StrCat("\"", field, "\" is ", j[field].type_name(),
                                                      ", not a string"));
    }
    CleanResult c = cleaner.Clean(j[field].get_ref<const std::string&>());
    if (!c.ok()) {
      return FeedbackReject(c.reason, absl::StrCat("\"", field, "\": ", c.detail));
    }
    out.pii += c.pii;
    j[field] = std::move(c.text);
  }
  out.record = std::move(j);
  return out;
}

}  // namespace streamlm
