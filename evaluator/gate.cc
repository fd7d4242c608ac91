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

// Not worse: fail when the CI lies wholly below -tolerance, suspect when
// only the mean does.
Judgement NotWorse(const Estimate& d, double tolerance) {
  if (d.ci_high < -tolerance) return Judgement::kFail;
  if (d.mean < -tolerance) return Judgement::kSuspect;
  return Judgement::kPass;
}

RuleResult FeedbackRule(const std::string& name, const FeedbackSetStats& set,
                        const std::string& set_name, double threshold, bool passed) {
  RuleResult r{name, set_name + "_" + set.primary_metric() + "_delta",
               set.primary_delta()->mean, threshold, passed};
  r.has_ci = true;
  r.ci_low = set.primary_delta()->ci_low;
  r.ci_high = set.primary_delta()->ci_high;
  return r;
}

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
  GateResult g;
  // A candidate trained on feedback alone is judged on feedback; the stream
  // then only must not get worse.
  const bool feedback_only = fb.trained > 0 && fb.text_trained == 0;
  const bool stream_required = !feedback_only;
  const bool stream_enough = stream.delta.tokens >= config.min_stream_tokens &&
                             stream.delta.tokens > 0;
  RuleResult evidence{"stream_evidence", "stream_heldout_tokens",
                      static_cast<double>(stream.delta.tokens),
                      static_cast<double>(stream_required ? config.min_stream_tokens : 0),
                      stream_enough || !stream_required};
  RuleResult adaptation;
  if (stream_required) {
    adaptation = {"adaptation", "stream_loss_delta", stream.delta.mean, -config.min_adaptation,
                  evidence.passed && stream.delta.mean < -config.min_adaptation};
  } else {
    adaptation = {"adaptation", "stream_loss_delta", stream.delta.mean, config.max_forgetting,
                  !stream_enough || stream.delta.mean <= config.max_forgetting};
  }
  adaptation.has_ci = stream.delta.tokens > 0;
  adaptation.ci_low = stream.delta.ci_low;
  adaptation.ci_high = stream.delta.ci_high;
  RuleResult forgetting{"forgetting", "base_loss_delta", base.delta.mean,
                        config.max_forgetting,
                        base.delta.tokens > 0 && base.delta.mean <= config.max_forgetting};
  forgetting.has_ci = base.delta.tokens > 0;
  forgetting.ci_low = base.delta.ci_low;
  forgetting.ci_high = base.delta.ci_high;
  g.rules = {evidence, adaptation, forgetting};

  std::vector<std::string> failed, waiting, contradiction;
  if (!evidence.passed) {
    waiting.push_back(absl::StrFormat(
        "only %d held-out stream tokens, need %d before judging adaptation",
        stream.delta.tokens, config.min_stream_tokens));
  } else if (!adaptation.passed) {
    failed.push_back(stream_required
        ? absl::StrFormat("adaptation: stream loss changed by %+.4f nats/token, needs < %+.4f",
                          stream.delta.mean, -config.min_adaptation)
        : absl::StrFormat("adaptation: trained on feedback only, stream loss rose by %+.4f "
                          "nats/token, allowed <= %+.4f",
                          stream.delta.mean, config.max_forgetting));
  }
  if (!forgetting.passed) {
    failed.push_back(absl::StrFormat(
        "forgetting: base loss changed by %+.4f nats/token, allowed <= %+.4f",
        base.delta.mean, config.max_forgetting));
  }

  // Feedback rules.
  const double tol = config.max_preference_regression;
  auto describe = [](const FeedbackSetStats& s, const std::string& what) {
    const Estimate* d = s.primary_delta();
    return absl::StrFormat("%s %s %+.3f (95%% CI %+.3f..%+.3f, %d records)", what,
                           s.primary_metric(), d->mean, d->ci_low, d->ci_high, s.primary_n());
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
      const Estimate& d = *set.primary_delta();
      Judgement j = strict ? (d.ci_low > 0 ? Judgement::kPass
                              : d.ci_high < 0 ? Judgement::kFail : Judgement::kSuspect)
                           : NotWorse(d, tol);
      RuleResult rule = FeedbackRule("feedback_improvement", set, set_name,
                                     strict ? 0.0 : -tol, j == Judgement::kPass);
      std::string text = describe(set, "held-out feedback:");
      // A champion already right on every pair leaves accuracy nothing to
      // gain: the implicit reward margin (continuous) shows it then.
      if (strict && j == Judgement::kSuspect && set.pairs > 0 && d.ci_low >= -tol) {
        const Estimate& m = set.margin_delta;
        if (m.ci_low > 0) j = Judgement::kPass;
        rule = {"feedback_improvement", set_name + "_reward_margin_delta", m.mean, 0.0,
                j == Judgement::kPass, true, m.ci_low, m.ci_high};
        text = absl::StrFormat("%s; reward margin %+.3f (95%% CI %+.3f..%+.3f)", text, m.mean,
                               m.ci_low, m.ci_high);
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
    Judgement j = NotWorse(*guard.set->primary_delta(), tol);
    g.rules.push_back(FeedbackRule(guard.name, *guard.set, guard.set_name, -tol,
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
    g.reason = "rejected: " + absl::StrJoin(failed, "; ");
  } else if (!waiting.empty()) {
    g.verdict = "held";
    g.reason = "held: " + absl::StrJoin(waiting, "; ");
  } else {
    g.verdict = "promoted";
    g.reason = absl::StrFormat(
        "promoted: stream loss %+.4f nats/token (95%% CI %+.4f..%+.4f), base loss %+.4f "
        "(allowed <= %+.4f)",
        stream.delta.mean, stream.delta.ci_low, stream.delta.ci_high, base.delta.mean,
        config.max_forgetting);
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
  if (r.has_ci) j["ci95"] = {r.ci_low, r.ci_high};
  return j;
}

}  // namespace streamlm
