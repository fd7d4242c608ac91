// `streamlm bench ingest`: the ingest pipeline (stages 1-7: parse, normalize,
// markup, quality filters, dedup, PII, tokenize and pack) on one thread and
// on all, plus each stage alone on one thread, and peak memory.
#ifndef STREAMLM_BENCH_INGEST_BENCH_H_
#define STREAMLM_BENCH_INGEST_BENCH_H_

#include <string>
#include <vector>

#include "ingest/clean_options.h"
#include "common/json_util.h"
#include "model/tokenizer.h"

namespace streamlm {

// The records of an input file: JSON lines when the first non-empty line is
// a JSON object, else plain text with one document per blank-line-separated
// block, each wrapped as {"text": ...}.
std::vector<std::string> ReadBenchRecords(const std::string& contents);

// {"bytes", "docs", "kept", "rejected": {reason: n}, "tokens", "blocks",
//  "mb_per_s_1t", "mb_per_s_all", "threads", "stage_mb_per_s": {...},
//  "peak_rss_mb"}. `bytes` counts record payloads. Best of `repeats`.
Json RunIngestBench(const std::vector<std::string>& records, const CleanOptions& options,
                    const Tokenizer& tokenizer, int block_tokens, int repeats = 2);

}  // namespace streamlm

#endif  // STREAMLM_BENCH_INGEST_BENCH_H_
