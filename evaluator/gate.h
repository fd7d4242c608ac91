// Gate: turns paired candidate/champion losses into a verdict. Pure
// functions; thread-safe.
#ifndef STREAMLM_EVALUATOR_GATE_H_
#define STREAMLM_EVALUATOR_GATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/json_util.h"

namespace streamlm {

// A loss (nats/token) with a 95% confidence interval.
struct Estimate {
  double mean = 0;
  double ci_low = 0;
  double ci_high = 0;
  int64_t sequences = 0;
  int64_t tokens = 0;
};

// Per-sequence (sum of nats, token count) for candidate and champion on the
// same sequences, in the same order.
struct PairedLosses {
  std::vector<double> candidate_nats, champion_nats;
  std::vector<int64_t> tokens;
};

struct Comparison {
  Estimate candidate, champion;
  Estimate delta;  // candidate - champion; CI from the paired differences
};

// Token-weighted means; CIs by the normal approximation over sequences
// (ratio estimator's standard error).
Comparison Compare(const PairedLosses& losses);

struct GateConfig {
  double max_forgetting = 0.05;  // base loss may rise at most this much
  double min_adaptation = 0.0;   // stream loss must fall by more than this
  int64_t min_stream_tokens = 256;
};

struct RuleResult {
  std::string name;
  std::string metric;
  double observed = 0;
  double threshold = 0;
  bool passed = false;
};

struct GateResult {
  std::string verdict;  // "promoted", "rejected" or "held"
  std::vector<RuleResult> rules;
  std::string reason;
};

GateResult ApplyGate(const Comparison& base, const Comparison& stream,
                     const GateConfig& config);

Json EstimateToJson(const Estimate& e);
Json ComparisonToJson(const Comparison& c);
Json RuleToJson(const RuleResult& r);

}  // namespace streamlm

#endif  // STREAMLM_EVALUATOR_GATE_H_
