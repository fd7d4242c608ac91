#include "evaluator/gate.h"

#include <algorithm>
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
  e.se = se;
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

double NormalQuantile(double p) {
  // Acklam's rational approximation (relative error < 1.2e-9 after one
  // Halley step against erfc).
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                             -2.759285104469687e+02, 1.383577518672690e+02,
                             -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                             -1.556989798598866e+02, 6.680131188771972e+01,
                             -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                             -2.400758277161838e+00, -2.549732539343734e+00,
                             4.374664141464968e+00, 2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
                             2.445134137142996e+00, 3.754408661907416e+00};
  if (p <= 0) return -INFINITY;
  if (p >= 1) return INFINITY;
  const double lo = 0.02425;
  double x;
  if (p < lo) {
    double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - lo) {
    double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

double LookAlpha(int look, int max_looks, double alpha) {
  max_looks = std::max(1, max_looks);
  look = std::clamp(look, 1, max_looks);
  return look < max_looks ? std::ldexp(alpha, -look) : std::ldexp(alpha, -(max_looks - 1));
}

Estimate AtLevel(const Estimate& e, double alpha, double lo, double hi) {
  Estimate out = e;
  const double z = NormalQuantile(1 - alpha / 2);
  out.ci_low = std::clamp(e.mean - z * e.se, lo, hi);
  out.ci_high = std::clamp(e.mean + z * e.se, lo, hi);
  return out;
}

Estimate MeanEstimate(const std::vector<double>& v) {
  Estimate e;
  e.sequences = static_cast<int64_t>(v.size());
  if (v.empty()) return e;
  double sum = 0;
  for (double x : v) sum += x;
  const double n = static_cast<double>(v.size());
  e.mean = sum / n;
  double se = 0;
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - e.mean) * (x - e.mean);
    se = std::sqrt(ss / (n - 1) / n);
  }
  e.se = se;
  e.ci_low = e.mean - kZ95 * se;
  e.ci_high = e.mean + kZ95 * se;
  return e;
}

namespace {

std::vector<double> Indicator(const std::vector<double>& d) {
  std::vector<double> out;
  for (double x : d) out.push_back(x > 0 ? 1.0 : 0.0);
  return out;
}
std::vector<double> Minus(const std::vector<double>& a, const std::vector<double>& b,
                          double scale = 1) {
  std::vector<double> out;
  for (size_t i = 0; i < a.size(); ++i) out.push_back(scale * (a[i] - b[i]));
  return out;
}

Json TripleToJson(const Estimate& cand, const Estimate& champ, const Estimate* ref,
                  const Estimate& delta) {
  auto e = [](const Estimate& x) {
    return Json{{"mean", x.mean}, {"ci95", {x.ci_low, x.ci_high}}, {"n", x.sequences}};
  };
  Json j = {{"candidate", e(cand)}, {"champion", e(champ)}, {"delta", e(delta)}};
  if (ref != nullptr) j["reference"] = e(*ref);
  return j;
}

enum class Judgement { kPass, kSuspect, kFail };

std::string TopUsers(const std::map<std::string, int64_t>& users, int64_t total) {
  std::vector<std::pair<int64_t, std::string>> by_count;
  for (const auto& [u, n] : users) by_count.push_back({n, u});
  std::sort(by_count.rbegin(), by_count.rend());
  std::vector<std::string> parts;
  int64_t top = 0;
  for (size_t i = 0; i < by_count.size() && i < 3; ++i) {
    parts.push_back(absl::StrFormat("%s %d", by_count[i].second, by_count[i].first));
    top += by_count[i].first;
  }
  if (parts.empty()) return "no named users";
  return absl::StrFormat("%s: %.0f%% of %d", absl::StrJoin(parts, ", "),
                         total > 0 ? 100.0 * top / total : 0.0, total);
}

}  // namespace

const Estimate* FeedbackSetStats::primary_delta() const {
  if (pairs > 0) return &acc_delta;
  if (corrections > 0) return &corr_delta;
  return &rating_delta;
}
int64_t FeedbackSetStats::primary_n() const {
  if (pairs > 0) return pairs;
  if (corrections > 0) return corrections;
  return ratings;
}
std::string FeedbackSetStats::primary_metric() const {
  if (pairs > 0) return "preference_accuracy";
  if (corrections > 0) return "correction_logprob";
  return "rating_reward";
}

FeedbackSetStats SummarizeFeedback(const FeedbackScores& f, double beta) {
  FeedbackSetStats s;
  s.records = f.records;
  s.pairs = static_cast<int64_t>(f.pair_cand.size());
  s.corrections = static_cast<int64_t>(f.corr_cand.size());
  s.ratings = static_cast<int64_t>(f.rating_cand.size());
  if (s.pairs > 0) {
    // Accuracies and their differences cannot leave [0, 1] and [-1, 1]:
    // the normal approximation's interval is cut there.
    auto clamp = [](Estimate e, double lo, double hi) {
      e.ci_low = std::clamp(e.ci_low, lo, hi);
      e.ci_high = std::clamp(e.ci_high, lo, hi);
      return e;
    };
    auto a = Indicator(f.pair_cand), b = Indicator(f.pair_champ), r = Indicator(f.pair_ref);
    s.acc_cand = clamp(MeanEstimate(a), 0, 1);
    s.acc_champ = clamp(MeanEstimate(b), 0, 1);
    s.acc_ref = clamp(MeanEstimate(r), 0, 1);
    s.acc_delta = clamp(MeanEstimate(Minus(a, b)), -1, 1);
    auto mc = Minus(f.pair_cand, f.pair_ref, beta), mh = Minus(f.pair_champ, f.pair_ref, beta);
    s.margin_cand = MeanEstimate(mc);
    s.margin_champ = MeanEstimate(mh);
    s.margin_delta = MeanEstimate(Minus(mc, mh));
  }
  if (s.corrections > 0) {
    s.corr_cand = MeanEstimate(f.corr_cand);
    s.corr_champ = MeanEstimate(f.corr_champ);
    s.corr_ref = MeanEstimate(f.corr_ref);
    s.corr_delta = MeanEstimate(Minus(f.corr_cand, f.corr_champ));
  }
  if (s.ratings > 0) {
    std::vector<double> c, h;
    for (double x : f.rating_cand) c.push_back(beta * x);
    for (double x : f.rating_champ) h.push_back(beta * x);
    s.rating_cand = MeanEstimate(c);
    s.rating_champ = MeanEstimate(h);
    s.rating_delta = MeanEstimate(Minus(c, h));
  }
  return s;
}

Json FeedbackSetToJson(const FeedbackSetStats& s) {
  Json j = {{"records", s.records}, {"pairs", s.pairs}, {"ratings", s.ratings},
            {"corrections", s.corrections}};
  if (s.pairs > 0) {
    j["preference_accuracy"] = TripleToJson(s.acc_cand, s.acc_champ, &s.acc_ref, s.acc_delta);
    j["reward_margin"] = TripleToJson(s.margin_cand, s.margin_champ, nullptr, s.margin_delta);
  }
  if (s.corrections > 0) {
    j["correction_logprob"] = TripleToJson(s.corr_cand, s.corr_champ, &s.corr_ref, s.corr_delta);
  }
  if (s.ratings > 0) {
    j["rating_reward"] = TripleToJson(s.rating_cand, s.rating_champ, nullptr, s.rating_delta);
  }
  return j;
}

GateResult ApplyGate(const Comparison& base, const Comparison& stream,
                     const GateConfig& config) {
  return ApplyGate(base, stream, FeedbackEvidence(), config);
}

GateResult ApplyGate(const Comparison& base, const Comparison& stream,
                     const FeedbackEvidence& fb, const GateConfig& config) {
  GateInput in;
  in.base = base;
  in.has_base = base.delta.tokens > 0;
  in.stream = stream;
  in.feedback = fb;
  return Decide(in, config);
}

namespace {

// Where an interval lies against a bound: wholly on the good side, wholly on
// the bad side, or across it.
enum class Side { kGood, kBad, kStraddles };

// For "must stay at or below `bound`" (forgetting, the stream of a
// feedback-only candidate).
Side AtMost(const Estimate& d, double bound) {
  if (d.ci_high <= bound) return Side::kGood;
  if (d.ci_low > bound) return Side::kBad;
  return Side::kStraddles;
}

RuleResult WithInterval(RuleResult r, const Estimate& d, double level) {
  r.has_ci = true;
  r.ci_low = d.ci_low;
  r.ci_high = d.ci_high;
  r.ci_level = level;
  return r;
}

std::string SliceLabel(const SliceComparison& s) {
  return s.kind + ":" + (s.name.empty() ? "(no source)" : s.name);
}

}  // namespace

GateResult Decide(const GateInput& in, const GateConfig& config) {
  const FeedbackEvidence& fb = in.feedback;
  GateResult g;
  g.look = std::clamp(in.look, 1, std::max(1, config.max_looks));
  g.alpha = LookAlpha(g.look, config.max_looks, config.alpha);
  const double a = g.alpha, level = 1 - a;
  const int pct_digits = a < 0.01 ? 2 : 1;
  const std::string level_text = absl::StrFormat("%.*f%%", pct_digits, 100 * level);
  const double maxf = config.max_forgetting;

  // A candidate trained on feedback alone is judged on feedback; the stream
  // then only must not get worse.
  const bool feedback_only = fb.trained > 0 && fb.text_trained == 0;
  const bool stream_required = !feedback_only;
  const bool stream_enough = in.stream.delta.tokens >= config.min_stream_tokens &&
                             in.stream.delta.tokens > 0;
  const Estimate stream_d = AtLevel(in.stream.delta, a);
  const Estimate base_d = AtLevel(in.base.delta, a);
  std::vector<std::string> failed, waiting, contradiction;

  RuleResult evidence{"stream_evidence", "stream_heldout_tokens",
                      static_cast<double>(in.stream.delta.tokens),
                      static_cast<double>(stream_required ? config.min_stream_tokens : 0),
                      stream_enough || !stream_required};
  if (!evidence.passed) {
    waiting.push_back(absl::StrFormat(
        "only %d held-out stream tokens, need %d before judging adaptation",
        in.stream.delta.tokens, config.min_stream_tokens));
  }
  g.rules.push_back(evidence);

  // Adaptation: the stream loss must confidently fall by more than
  // gate.min_adaptation (the interval's upper end below -min_adaptation).
  RuleResult adaptation;
  if (stream_required) {
    const double bound = -config.min_adaptation;
    const Side side = stream_d.ci_high < bound ? Side::kGood
                      : stream_d.ci_low >= bound ? Side::kBad : Side::kStraddles;
    adaptation = {"adaptation", "stream_loss_delta", in.stream.delta.mean, bound,
                  evidence.passed && side == Side::kGood};
    if (evidence.passed && side == Side::kBad) {
      failed.push_back(absl::StrFormat(
          "adaptation: stream loss changed by %+.4f nats/token (%s CI %+.4f..%+.4f), "
          "needs to be confidently below %+.4f",
          stream_d.mean, level_text, stream_d.ci_low, stream_d.ci_high, bound));
    } else if (evidence.passed && side == Side::kStraddles) {
      waiting.push_back(absl::StrFormat(
          "adaptation: stream loss %+.4f nats/token, %s CI %+.4f..%+.4f straddles %+.4f",
          stream_d.mean, level_text, stream_d.ci_low, stream_d.ci_high, bound));
    }
  } else {
    // Feedback only: the stream must not confidently get worse than
    // gate.max_forgetting; a mean beyond it waits for more evidence.
    const bool bad = stream_enough && stream_d.ci_low > maxf;
    const bool suspect = stream_enough && !bad && stream_d.mean > maxf;
    adaptation = {"adaptation", "stream_loss_delta", in.stream.delta.mean, maxf,
                  !bad && !suspect};
    if (bad || suspect) {
      (bad ? failed : waiting).push_back(absl::StrFormat(
          "adaptation: trained on feedback only, stream loss rose by %+.4f nats/token "
          "(%s CI %+.4f..%+.4f), allowed <= %+.4f",
          stream_d.mean, level_text, stream_d.ci_low, stream_d.ci_high, maxf));
    }
  }
  if (in.stream.delta.tokens > 0) adaptation = WithInterval(adaptation, stream_d, level);
  g.rules.push_back(adaptation);

  // Forgetting on the base evaluation set(s): confidently within bounds.
  if (!in.has_base) {
    g.rules.push_back({"forgetting", "base_eval_set", 0, 0, false});
    waiting.push_back(
        "forgetting: the champion has no base evaluation set (an imported model without "
        "`import-hf --base-corpus`); one is set aside from the first held-out stream records "
        "once there are enough");
  } else {
    const Side side = in.base.delta.tokens > 0 ? AtMost(base_d, maxf) : Side::kStraddles;
    RuleResult forgetting{"forgetting", "base_loss_delta", in.base.delta.mean, maxf,
                          side == Side::kGood};
    if (in.base.delta.tokens > 0) forgetting = WithInterval(forgetting, base_d, level);
    g.rules.push_back(forgetting);
    const std::string text = absl::StrFormat(
        "forgetting: base loss changed by %+.4f nats/token (%s CI %+.4f..%+.4f), allowed <= "
        "%+.4f",
        base_d.mean, level_text, base_d.ci_low, base_d.ci_high, maxf);
    if (in.base.delta.tokens == 0) {
      waiting.push_back("forgetting: the base evaluation set has no tokens under this model");
    } else if (side == Side::kBad) {
      failed.push_back(text);
    } else if (side == Side::kStraddles) {
      waiting.push_back(text + ": not yet confidently within bounds");
    }
  }

  // Forgetting since the anchor: each promotion may forget up to the bound
  // against its champion, so without this the losses would add up.
  if (in.has_base && in.has_anchor && in.since_anchor.delta.tokens > 0) {
    const Estimate d = AtLevel(in.since_anchor.delta, a);
    const Side side = AtMost(d, maxf);
    g.rules.push_back(WithInterval({"total_forgetting", "base_loss_delta_since_anchor", d.mean,
                                    maxf, side == Side::kGood},
                                   d, level));
    const std::string text = absl::StrFormat(
        "total_forgetting: base loss %+.4f nats/token above the anchor's (%s CI %+.4f..%+.4f), "
        "allowed <= %+.4f",
        d.mean, level_text, d.ci_low, d.ci_high, maxf);
    if (side == Side::kBad) failed.push_back(text);
    if (side == Side::kStraddles) waiting.push_back(text + ": not yet confidently within bounds");
  }

  // Forgetting per slice: a gain on one source must not hide a loss on
  // another. Judged where a kind has several slices, each with enough
  // tokens: confident forgetting rejects, a mean beyond the bound holds.
  std::map<std::string, int> per_kind;
  for (const SliceComparison& s : in.slices) ++per_kind[s.kind];
  for (const SliceComparison& s : in.slices) {
    if (per_kind[s.kind] < 2 || s.cmp.delta.tokens < config.min_slice_tokens) continue;
    const Estimate d = AtLevel(s.cmp.delta, a);
    const bool bad = d.ci_low > maxf, suspect = !bad && d.mean > maxf;
    RuleResult r = WithInterval({"slice_forgetting", SliceLabel(s) + "_loss_delta", d.mean, maxf,
                                 !bad && !suspect},
                                d, level);
    r.slice_kind = s.kind;
    r.slice = s.name;
    g.rules.push_back(r);
    if (bad || suspect) {
      (bad ? failed : waiting).push_back(absl::StrFormat(
          "slice_forgetting: %s loss changed by %+.4f nats/token (%s CI %+.4f..%+.4f, %d "
          "tokens), allowed <= %+.4f",
          SliceLabel(s), d.mean, level_text, d.ci_low, d.ci_high, d.tokens, maxf));
    }
  }

  // Feedback rules.
  const double tol = config.max_preference_regression;
  // The judged delta of a set at this look's level (accuracy stays in [-1, 1]).
  auto judged = [&](const FeedbackSetStats& s) {
    return s.pairs > 0 ? AtLevel(*s.primary_delta(), a, -1, 1) : AtLevel(*s.primary_delta(), a);
  };
  auto describe = [&](const FeedbackSetStats& s, const std::string& what) {
    const Estimate d = judged(s);
    return absl::StrFormat("%s %s %+.3f (%s CI %+.3f..%+.3f, %d records)", what,
                           s.primary_metric(), d.mean, level_text, d.ci_low, d.ci_high,
                           s.primary_n());
  };
  // Not worse: fail when the interval lies wholly below -tolerance, suspect
  // when only the mean does.
  auto not_worse = [&](const FeedbackSetStats& s) {
    const Estimate d = judged(s);
    if (d.ci_high < -tol) return Judgement::kFail;
    if (d.mean < -tol) return Judgement::kSuspect;
    return Judgement::kPass;
  };
  auto feedback_rule = [&](const std::string& name, const FeedbackSetStats& s,
                           const std::string& set_name, double threshold, bool passed) {
    const Estimate d = judged(s);
    return WithInterval({name, set_name + "_" + s.primary_metric() + "_delta", d.mean, threshold,
                         passed},
                        d, level);
  };
  bool regressed_established = false;
  if (fb.trained > 0) {
    const FeedbackSetStats& set =
        fb.fresh.primary_n() >= config.min_feedback_pairs ? fb.fresh : fb.heldout;
    const std::string set_name = &set == &fb.fresh ? "new" : "heldout";
    const bool strict = fb.trained >= config.min_feedback_pairs;
    if (set.primary_n() < config.min_feedback_pairs && strict) {
      RuleResult r{"feedback_improvement", "heldout_feedback_records",
                   static_cast<double>(set.primary_n()),
                   static_cast<double>(config.min_feedback_pairs), false};
      g.rules.push_back(r);
      waiting.push_back(absl::StrFormat(
          "trained on %d feedback records but only %d held-out ones to judge them, need %d",
          fb.trained, set.primary_n(), config.min_feedback_pairs));
    } else if (set.primary_n() < config.min_feedback_pairs) {
      // A little feedback, too little held out to judge it: the other rules decide.
    } else {
      const Estimate d = judged(set);
      Judgement j = strict ? (d.ci_low > 0 ? Judgement::kPass
                              : d.ci_high < 0 ? Judgement::kFail : Judgement::kSuspect)
                           : not_worse(set);
      RuleResult rule = feedback_rule("feedback_improvement", set, set_name,
                                      strict ? 0.0 : -tol, j == Judgement::kPass);
      std::string text = describe(set, "held-out feedback:");
      // A champion already right on every pair leaves accuracy nothing to
      // gain: the implicit reward margin (continuous) shows it then.
      if (strict && j == Judgement::kSuspect && set.pairs > 0 && d.ci_low >= -tol) {
        const Estimate m = AtLevel(set.margin_delta, a);
        if (m.ci_low > 0) j = Judgement::kPass;
        rule = WithInterval({"feedback_improvement", set_name + "_reward_margin_delta", m.mean,
                             0.0, j == Judgement::kPass},
                            m, level);
        text = absl::StrFormat("%s; reward margin %+.3f (%s CI %+.3f..%+.3f)", text, m.mean,
                               level_text, m.ci_low, m.ci_high);
      }
      g.rules.push_back(rule);
      if (j == Judgement::kFail) failed.push_back("feedback_improvement: " + text);
      if (j == Judgement::kSuspect) {
        waiting.push_back("feedback_improvement: not yet confidently better, " + text);
      }
    }
  }
  struct Guard { const char* name; const FeedbackSetStats* set; const char* set_name; int64_t min; };
  for (const Guard& guard : {Guard{"feedback_established", &fb.established, "established",
                                   config.min_feedback_pairs},
                             Guard{"feedback_trusted", &fb.trusted, "trusted", 1}}) {
    if (guard.set->primary_n() < guard.min) continue;
    Judgement j = not_worse(*guard.set);
    g.rules.push_back(feedback_rule(guard.name, *guard.set, guard.set_name, -tol,
                                    j == Judgement::kPass));
    if (j == Judgement::kPass) continue;
    const std::string text =
        describe(*guard.set, std::string(guard.set_name) + " preferences:");
    if (fb.trained > 0) {
      regressed_established = true;
      contradiction.push_back(text);
    } else if (j == Judgement::kFail) {
      failed.push_back(std::string(guard.name) + ": " + text);
    } else {
      waiting.push_back(std::string(guard.name) + ": " + text);
    }
  }
  if (fb.trained > 0) {
    // Exact reversals of stored pairs: a few among much feedback are people
    // changing their mind; more than 1 in 10 is a campaign until an operator
    // says otherwise (even one reversal when little else was trained).
    const int64_t allowed = fb.trained / 10;
    const bool reversed = fb.contradictions > allowed;
    if (reversed) {
      contradiction.push_back(absl::StrFormat(
          "%d of the %d trained feedback records reverse stored preference pairs (%s)",
          fb.contradictions, fb.trained, TopUsers(fb.contradiction_users, fb.contradictions)));
    }
    RuleResult r{"feedback_contradiction", "reversed_pairs", static_cast<double>(fb.contradictions),
                 static_cast<double>(allowed), !reversed && !regressed_established};
    g.rules.push_back(r);
  }

  if (!contradiction.empty()) {
    g.verdict = "held";
    g.reason = absl::StrFormat(
        "held for an operator: the %d feedback records trained since the champion (%s) "
        "contradict established preferences: %s. A genuine change of preference is confirmed "
        "by promoting it with `streamlm promote`; until then the champion keeps serving",
        fb.trained, TopUsers(fb.users, fb.trained), absl::StrJoin(contradiction, "; "));
    if (!failed.empty()) g.reason += "; also " + absl::StrJoin(failed, "; ");
  } else if (!failed.empty()) {
    g.verdict = "rejected";
    g.reason = absl::StrFormat("rejected at look %d (%s intervals): %s", g.look, level_text,
                               absl::StrJoin(failed, "; "));
    if (!waiting.empty()) g.reason += "; not judged yet: " + absl::StrJoin(waiting, "; ");
  } else if (!waiting.empty()) {
    g.verdict = "held";
    g.inconclusive = g.look >= config.max_looks;
    g.awaiting_evidence = !g.inconclusive;
    g.reason = g.inconclusive
        ? absl::StrFormat("held, inconclusive after %d looks (gate.alpha %.3g spent; the next "
                          "candidate is judged afresh): %s",
                          g.look, config.alpha, absl::StrJoin(waiting, "; "))
        : absl::StrFormat("held at look %d of %d (%s intervals), judged again when more "
                          "held-out evidence arrives: %s",
                          g.look, config.max_looks, level_text, absl::StrJoin(waiting, "; "));
  } else {
    g.verdict = "promoted";
    g.reason = absl::StrFormat(
        "promoted at look %d: stream loss %+.4f nats/token (%s CI %+.4f..%+.4f), base loss "
        "%+.4f (%s CI %+.4f..%+.4f, allowed <= %+.4f)",
        g.look, stream_d.mean, level_text, stream_d.ci_low, stream_d.ci_high, base_d.mean,
        level_text, base_d.ci_low, base_d.ci_high, maxf);
    const FeedbackSetStats& shown = fb.fresh.primary_n() > 0 ? fb.fresh : fb.heldout;
    if (shown.primary_n() > 0) g.reason += "; " + describe(shown, "held-out feedback:");
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
  Json j = {{"name", r.name},
            {"metric", r.metric},
            {"observed", r.observed},
            {"threshold", r.threshold},
            {"passed", r.passed}};
  if (r.has_ci) {
    j["ci"] = {r.ci_low, r.ci_high};
    j["ci_level"] = r.ci_level;
  }
  if (!r.slice_kind.empty()) {
    j["slice_kind"] = r.slice_kind;
    j["slice"] = r.slice;
  }
  return j;
}

}  // namespace streamlm
