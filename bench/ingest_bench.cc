#include "bench/ingest_bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <thread>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "ingest/pipeline.h"

namespace streamlm {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(const Clock::time_point& t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Stages 1-7 over all records in batches as the learner polls them (256),
// with a fresh dedup window; returns the seconds taken.
double RunPipeline(const std::vector<std::string>& records, const CleanOptions& options,
                   const Tokenizer& tokenizer, int block_tokens, int threads, Json* summary) {
  PipelineOptions po;
  po.clean = options;
  po.threads = threads;
  TextPipeline pipeline(po);
  Deduplicator dedup;
  std::vector<int32_t> pending;  // packed stream: documents joined by EOS
  size_t kept = 0, tokens = 0, blocks = 0;
  std::map<std::string, int64_t> rejected;
  auto t0 = Clock::now();
  for (size_t at = 0; at < records.size(); at += 256) {
    size_t n = std::min<size_t>(256, records.size() - at);
    std::vector<IngestItem> items(n);
    for (size_t i = 0; i < n; ++i) items[i].payload = records[at + i];
    pipeline.Run(items, &dedup, &tokenizer);
    for (IngestItem& item : items) {
      if (!item.ok()) {
        ++rejected[item.reason];
        continue;
      }
      ++kept;
      tokens += item.tokens.size() + 1;
      pending.insert(pending.end(), item.tokens.begin(), item.tokens.end());
      pending.push_back(tokenizer.eos_id());
    }
    // Cut full blocks as the learner does (blocks overlap by one token).
    size_t full = pending.size() > 0 ? (pending.size() - 1) / block_tokens : 0;
    blocks += full;
    pending.erase(pending.begin(), pending.begin() + full * block_tokens);
  }
  double s = Seconds(t0);
  if (summary != nullptr) {
    (*summary)["kept"] = kept;
    (*summary)["tokens"] = tokens;
    (*summary)["blocks"] = blocks;
    (*summary)["rejected"] = rejected;
  }
  return s;
}

double PeakRssMb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

}  // namespace

std::vector<std::string> ReadBenchRecords(const std::string& contents) {
  std::vector<std::string> records;
  size_t first = contents.find_first_not_of(" \t\r\n");
  bool jsonl = false;
  if (first != std::string::npos && contents[first] == '{') {
    size_t end = contents.find('\n', first);
    auto j = ParseJson(std::string_view(contents).substr(first, end - first));
    jsonl = j.ok() && j->is_object();
  }
  if (jsonl) {
    for (absl::string_view line : absl::StrSplit(contents, '\n', absl::SkipWhitespace())) {
      records.emplace_back(absl::StripSuffix(line, "\r"));
    }
    return records;
  }
  std::string doc;
  auto flush = [&] {
    if (!doc.empty()) records.push_back(Json{{"text", doc}}.dump(-1, ' ', false,
                                                                Json::error_handler_t::replace));
    doc.clear();
  };
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    line = absl::StripSuffix(line, "\r");
    if (line.find_first_not_of(" \t") == absl::string_view::npos) {
      flush();
      continue;
    }
    if (!doc.empty()) doc.push_back('\n');
    doc.append(line.data(), line.size());
  }
  flush();
  return records;
}

Json RunIngestBench(const std::vector<std::string>& records, const CleanOptions& options,
                    const Tokenizer& tokenizer, int block_tokens, int repeats) {
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  size_t bytes = 0;
  for (const std::string& r : records) bytes += r.size();
  const double mb = static_cast<double>(bytes) / 1e6;
  Json out = {{"bytes", bytes}, {"docs", records.size()}};
  double best_1t = std::numeric_limits<double>::max();
  double best_all = std::numeric_limits<double>::max();
  for (int r = 0; r < repeats; ++r) {
    best_1t = std::min(best_1t, RunPipeline(records, options, tokenizer, block_tokens, 1, &out));
    best_all = std::min(best_all,
                        RunPipeline(records, options, tokenizer, block_tokens, threads, nullptr));
  }
  out["mb_per_s_1t"] = mb / best_1t;
  out["mb_per_s_all"] = mb / best_all;
  out["threads"] = threads;

  // Each stage alone on one thread, on what reaches it, as MB/s of the
  // record bytes (so 1 / sum(1 / rate) is about the whole pipeline's rate).
  Json stages;
  std::vector<std::string> texts;
  auto t0 = Clock::now();
  for (const std::string& r : records) {
    ParsedRecord p = ParseTextRecord(r, 1 << 20, /*repair_utf8=*/true);
    if (p.ok()) texts.push_back(std::move(p.record.text));
  }
  stages["parse"] = mb / Seconds(t0);
  t0 = Clock::now();
  for (std::string& t : texts) {
    NormalizeResult n = NormalizeText(t, options.normalize, options.markup);
    t = n.reason == nullptr ? std::move(n.text) : std::string();
  }
  stages["normalize"] = mb / Seconds(t0);
  QualityFilter quality(options);
  t0 = Clock::now();
  for (std::string& t : texts) {
    if (!t.empty() && !quality.Apply(t).ok()) t.clear();
  }
  stages["quality"] = mb / Seconds(t0);
  Deduplicator dedup;
  t0 = Clock::now();
  for (std::string& t : texts) {
    if (!t.empty() && dedup.Check(t) != Deduplicator::Verdict::kUnique) t.clear();
  }
  stages["dedup"] = mb / Seconds(t0);
  PiiRedactor pii(options.pii);
  t0 = Clock::now();
  for (std::string& t : texts) {
    if (!t.empty()) pii.Redact(t);
  }
  stages["pii"] = mb / Seconds(t0);
  t0 = Clock::now();
  for (const std::string& t : texts) {
    if (!t.empty()) (void)tokenizer.Encode(t);
  }
  stages["tokenize"] = mb / Seconds(t0);
  out["stage_mb_per_s"] = stages;
  out["peak_rss_mb"] = PeakRssMb();
  return out;
}

}  // namespace streamlm
