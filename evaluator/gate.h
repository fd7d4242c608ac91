// Gate: turns paired candidate/champion losses into a verdict. Pure
// functions; thread-safe.
#ifndef STREAMLM_EVALUATOR_GATE_H_
#define STREAMLM_EVALUATOR_GATE_H_

#include <cstdint>
#include <map>
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
  double se = 0;  // standard error of `mean`; any level's interval is mean -+ z*se
};

// The standard normal distribution's quantile (inverse CDF) at p in (0, 1).
double NormalQuantile(double p);

// Alpha spending over the looks at one candidate (evaluator/README.md):
// look k of at most K spends alpha/2^k and the last look the remainder
// alpha/2^(K-1), so all the looks together spend exactly alpha and the
// chance that any look passes a candidate that is not better (or fails one
// that is within bounds) stays at most alpha.
double LookAlpha(int look, int max_looks, double alpha);

// `e` with its interval at two-sided level 1 - alpha (mean -+ z*se), cut to
// [lo, hi] where the quantity cannot leave that range.
Estimate AtLevel(const Estimate& e, double alpha, double lo = -1e300, double hi = 1e300);

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
  int64_t min_feedback_pairs = 16;           // held-out feedback to judge it
  double max_preference_regression = 0.02;   // tolerated loss of accuracy
  double alpha = 0.05;   // error rate of the sequential test, over all looks
  int max_looks = 4;     // looks at one candidate before it stays held
  int64_t min_slice_tokens = 512;  // a slice's own forgetting rule needs this many
};

struct RuleResult {
  std::string name;
  std::string metric;
  double observed = 0;
  double threshold = 0;
  bool passed = false;
  bool has_ci = false;  // the interval of `observed`, when it has one,
  double ci_low = 0, ci_high = 0;  // at level `ci_level` (the look's, see LookAlpha)
  double ci_level = 0.95;
  // The held-out slice a per-slice rule (slice_forgetting) judges, as in
  // its SliceComparison: `slice_kind` "stream" or "base" ("" for rules not
  // about one slice), `slice` its source or base set ("" = stream records
  // without a source). Readers use these, never the `metric` text.
  std::string slice_kind;
  std::string slice;
};

// A mean of per-record values with its 95% CI (normal approximation).
Estimate MeanEstimate(const std::vector<double>& values);

// Per-record scores of one set of held-out feedback under the candidate,
// the champion and the learner's frozen reference model:
//   pairs: log p(chosen) - log p(rejected) (summed response log-probs);
//   corrections: log p(correction) per token;
//   ratings: rating * (log p(response) - reference's), summed.
struct FeedbackScores {
  std::vector<double> pair_cand, pair_champ, pair_ref;
  std::vector<double> corr_cand, corr_champ, corr_ref;
  std::vector<double> rating_cand, rating_champ;  // already relative to the reference
  int64_t records = 0;
};

// What the gate judges of one set: preference accuracy (the model prefers
// the chosen response), implicit reward margin beta * (d_model - d_ref),
// correction log-likelihood and rating reward; each with paired deltas.
struct FeedbackSetStats {
  int64_t records = 0, pairs = 0, ratings = 0, corrections = 0;
  Estimate acc_cand, acc_champ, acc_ref, acc_delta;
  Estimate margin_cand, margin_champ, margin_delta;
  Estimate corr_cand, corr_champ, corr_ref, corr_delta;
  Estimate rating_cand, rating_champ, rating_delta;
  // The delta the rules judge (pairs first, then corrections, then ratings)
  // and how many records it rests on.
  const Estimate* primary_delta() const;
  int64_t primary_n() const;
  std::string primary_metric() const;
};
FeedbackSetStats SummarizeFeedback(const FeedbackScores& scores, double beta);
Json FeedbackSetToJson(const FeedbackSetStats& s);

// Everything the gate knows about human feedback for one candidate.
struct FeedbackEvidence {
  int64_t trained = 0;         // feedback records trained on since the champion
  int64_t text_trained = -1;   // stream records trained on since it; -1 unknown
  int64_t contradictions = 0;  // trained records reversing a stored pair
  std::map<std::string, int64_t> users;               // trained, by user
  std::map<std::string, int64_t> contradiction_users;
  FeedbackSetStats heldout;      // all held-out feedback scored
  FeedbackSetStats established;  // held out before the champion was made
  FeedbackSetStats fresh;        // held out since then
  FeedbackSetStats trusted;      // the operator's trusted set
};

// One slice of the held-out data: a `source` of the held-out stream
// ("stream") or one base evaluation set ("base").
struct SliceComparison {
  std::string kind;  // "stream" or "base"
  std::string name;  // the source or base set; "" = records without a source
  Comparison cmp;
};

// Everything one look at a candidate rests on.
struct GateInput {
  Comparison base;         // all base evaluation sets together
  bool has_base = true;    // false: the champion has no base evaluation set
  // The candidate against the anchor: the model the base set's losses were
  // first recorded for (forgetting summed over promotions).
  bool has_anchor = false;
  Comparison since_anchor;
  Comparison stream;       // the held-out stream window
  std::vector<SliceComparison> slices;
  FeedbackEvidence feedback;
  int look = 1;            // 1 for a candidate's first decision
};

struct GateResult {
  std::string verdict;  // "promoted", "rejected" or "held"
  std::vector<RuleResult> rules;
  std::string reason;
  int look = 1;
  double alpha = 0;        // this look's share of gate.alpha
  bool inconclusive = false;  // held at the last look: no more looks at it
  bool awaiting_evidence = false;  // held until more held-out evidence arrives
};

// Rules: stream_evidence, adaptation, forgetting, slice_forgetting, and with
// feedback feedback_improvement, feedback_established, feedback_trusted and
// feedback_contradiction (evaluator/README.md). Intervals are at the look's
// level 1 - LookAlpha(look): a rule passes only when its interval lies on
// the right side of its threshold, fails when it lies wholly on the wrong
// side, and holds the candidate for more evidence when it straddles it. A
// contradiction holds the candidate for an operator.
GateResult Decide(const GateInput& input, const GateConfig& config);

// Shorthands for Decide with only these inputs (first look, one base set).
GateResult ApplyGate(const Comparison& base, const Comparison& stream,
                     const GateConfig& config);
GateResult ApplyGate(const Comparison& base, const Comparison& stream,
                     const FeedbackEvidence& feedback, const GateConfig& config);

Json EstimateToJson(const Estimate& e);
Json ComparisonToJson(const Comparison& c);
// {name, metric, observed, threshold, passed}, plus ci and ci_level with an
// interval and slice_kind and slice for a per-slice rule.
Json RuleToJson(const RuleResult& r);

}  // namespace streamlm

#endif  // STREAMLM_EVALUATOR_GATE_H_
