// `streamlm bench serve`: a load generator against a running StreamLM (or any
// OpenAI-compatible) server. Closed loop: each client is a thread with its
// own keep-alive connection sending requests back to back. Measures, per
// concurrency level, throughput, latency, time to first token (streaming)
// and how fast the server's learner kept stepping meanwhile (from /metrics).
#ifndef STREAMLM_BENCH_SERVE_BENCH_H_
#define STREAMLM_BENCH_SERVE_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json_util.h"

namespace streamlm {

struct ServeBenchOptions {
  std::string url;                          // http://HOST:PORT
  std::vector<int> concurrency = {1, 2, 4, 8};  // levels, run in turn
  double duration_s = 20;                   // measured part of each level
  double warmup_s = 2;                      // unmeasured start of each level
  double learner_idle_s = 0;                // > 0: a level 0 with no clients first
  int prompt_tokens = 32;                   // prompt length, in corpus words
  int max_tokens = 64;
  std::string endpoint = "completions";     // or "chat"
  bool stream = false;                      // SSE; measures time to first token
  double temperature = 0;
  std::string corpus_path;                  // prompts are cut from this text
  uint64_t seed = 1;
  std::string api_key;                      // sent as a bearer token if set
  int request_timeout_s = 300;
  // When set (a Kafka bootstrap HOST:PORT), about `feed_bytes` of corpus text
  // is produced to `feed_topic` before the first level, so the server's
  // learner has a backlog to train on while it serves (a learner without
  // input does not step, and learner_steps_per_s would say nothing).
  std::string feed_kafka;
  std::string feed_topic = "streamlm.text";
  int64_t feed_bytes = 2000000;
};

// Records of about `record_bytes` (whole lines) cut from the blank-line-
// separated documents of `corpus`, starting at document `first_document`
// (modulo their number) and wrapping around, until `total_bytes` of text.
std::vector<std::string> CorpusRecords(const std::string& corpus, size_t first_document,
                                       size_t record_bytes, size_t total_bytes);

// A parsed http://HOST:PORT.
struct HostPort {
  std::string host;
  int port = 0;
};
[[nodiscard]] absl::StatusOr<HostPort> ParseHttpUrl(const std::string& url);

// "1,2,4,8" -> {1, 2, 4, 8}; each level >= 1.
[[nodiscard]] absl::StatusOr<std::vector<int>> ParseConcurrencyList(const std::string& s);

// `count` prompts of `words` whitespace-separated words each, cut from
// `corpus` at offsets drawn with `seed` (same inputs, same prompts).
std::vector<std::string> BuildPrompts(const std::string& corpus, int words, int count,
                                      uint64_t seed);

// The sum over all label sets of counter `name` in Prometheus text format;
// NotFound when no sample of it is present.
[[nodiscard]] absl::StatusOr<double> PrometheusValue(const std::string& text,
                                                     const std::string& name);

// The `q`-quantile (0..1) of `values` by linear interpolation between the
// closest ranks (numpy's default); 0 for no values. Sorts a copy.
double Quantile(std::vector<double> values, double q);

// What one SSE response carried: the JSON of each `data:` event before
// `[DONE]`, in order; `done` when `[DONE]` arrived.
struct SseEvents {
  std::vector<Json> events;
  bool done = false;
  int malformed = 0;  // data lines that were not JSON
};
// Parses the complete `data:` lines of `buffer` and removes them from it
// (a partial last line stays for the next call).
void ConsumeSse(std::string* buffer, SseEvents* out);

// Runs the levels and returns {"bench": "serve", "url", "endpoint", "stream",
// "prompt_tokens", "max_tokens", "levels": [...], "ratios": {...}}; see
// bench/README.md for each field. Fails only when no level could run (bad
// URL, unreadable corpus, server not answering /healthz).
[[nodiscard]] absl::StatusOr<Json> RunServeBench(const ServeBenchOptions& options);

}  // namespace streamlm

#endif  // STREAMLM_BENCH_SERVE_BENCH_H_
