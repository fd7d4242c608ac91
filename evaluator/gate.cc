#include "evaluator/gate.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace streamlm {
namespace {

constexpr double kZ95 = 1.959963984540054;

// Ratio estimate sum(x)/sum(t) with its standard error over sequences.
Estimate RatioEstimate(const std::vector<double>& x, const std::vector<int64_t>& t) {
  Estimate e;
  e.sequences = static_cast<int64_t>(x.size());
  double sx = 0, st = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sx += x[i];
    st += static_cast<double>(t[i]);
  }
  e.tokens = static_cast<int64_t>(st);
  if (st == 0) return e;
  e.mean = sx / st;
  double se = 0;
  const double n = static_cast<double>(x.size());
  if (x.size() > 1) {
    double ss = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      double r = x[i] - e.mean * static_cast<double>(t[i]);
      ss += r * r;
    }
    double tbar = st / n;
    se = std::sqrt(ss / (n - 1) / n) / tbar;
  }
  e.ci_low = e.mean - kZ95 * se;
  e.ci_high = e.mean + kZ95 * se;
  return e;
}

}  // namespace

Comparison Compare(const PairedLosses& l) {
  Comparison c;
  c.candidate = RatioEstimate(l.candidate_nats, l.tokens);
  c.champion = RatioEstimate(l.champion_nats, l.tokens);
  std::vector<double> diff(l.tokens.size());
  for (size_t i = 0; i < diff.size(); ++i) diff[i] = l.candidate_nats[i] - l.champion_nats[i];
  c.delta = RatioEstimate(diff, l.tokens);
  return c;
}

GateResult ApplyGate(const Comparison& base, const Comparison& stream,
                     const GateConfig& config) {
  GateResult g;
  RuleResult evidence{"stream_evidence", "stream_heldout_tokens",
                      static_cast<double>(stream.delta.tokens),
                      static_cast<double>(config.min_stream_tokens),
                      stream.delta.tokens >= config.min_stream_tokens &&
                          stream.delta.tokens > 0};
  RuleResult adaptation{"adaptation", "stream_loss_delta", stream.delta.mean,
                        -config.min_adaptation,
                        evidence.passed && stream.delta.mean < -config.min_adaptation};
  RuleResult forgetting{"forgetting", "base_loss_delta", base.delta.mean,
                        config.max_forgetting,
                        base.delta.tokens > 0 && base.delta.mean <= config.max_forgetting};
  g.rules = {evidence, adaptation, forgetting};
  if (!evidence.passed) {
    g.verdict = "held";
    g.reason = absl::StrFormat(
        "held: only %d held-out stream tokens, need %d before judging adaptation",
        stream.delta.tokens, config.min_stream_tokens);
    return g;
  }
  std::vector<std::string> failed;
  if (!adaptation.passed) {
    failed.push_back(absl::StrFormat(
        "adaptation: stream loss changed by %+.4f nats/token, needs < %+.4f",
        stream.delta.mean, -config.min_adaptation));
  }
  if (!forgetting.passed) {
    failed.push_back(absl::StrFormat(
        "forgetting: base loss changed by %+.4f nats/token, allowed <= %+.4f",
        base.delta.mean, config.max_forgetting));
  }
  if (failed.empty()) {
    g.verdict = "promoted";
    g.reason = absl::StrFormat(
        "promoted: stream loss %+.4f nats/token (95%% CI %+.4f..%+.4f), base loss %+.4f "
        "(allowed <= %+.4f)",
        stream.delta.mean, stream.delta.ci_low, stream.delta.ci_high, base.delta.mean,
        config.max_forgetting);
  } else {
    g.verdict = "rejected";
    g.reason = "rejected: " + absl::StrJoin(failed, "; ");
  }
  return g;
}

Json EstimateToJson(const Estimate& e) {
  return {{"mean", e.mean},
          {"ci95", {e.ci_low, e.ci_high}},
          {"sequences", e.sequences},
          {"tokens", e.tokens}};
}

Json ComparisonToJson(const Comparison& c) {
  return {{"candidate", EstimateToJson(c.candidate)},
          {"champion", EstimateToJson(c.champion)},
          {"delta", EstimateToJson(c.delta)}};
}

Json RuleToJson(const RuleResult& r) {
  return {{"name", r.name},
          {"metric", r.metric},
          {"observed", r.observed},
          {"threshold", r.threshold},
          {"passed", r.passed}};
}

}  // namespace streamlm
