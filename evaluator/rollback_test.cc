// DecideRollback on synthetic counts and losses. The expected intervals are
// computed here from the formulas written out (not through rollback.cc's
// helpers), and one case is pinned to figures computed by hand (Python's
// math module) so both implementations are checked against a third.
#include "evaluator/rollback.h"

#include <cmath>
#include <numeric>

#include "gtest/gtest.h"

namespace streamlm {
namespace {

constexpr double kZ = 1.959963984540054;  // the normal 97.5% quantile

// Wilson's score interval, in the closed form
//   (2np + z^2 -/+ z sqrt(z^2 + 4np(1-p))) / (2(n + z^2)).
std::pair<double, double> Wilson(double k, double n) {
  const double p = k / n;
  const double root = kZ * std::sqrt(kZ * kZ + 4 * n * p * (1 - p));
  return {(2 * n * p + kZ * kZ - root) / (2 * (n + kZ * kZ)),
          (2 * n * p + kZ * kZ + root) / (2 * (n + kZ * kZ))};
}

// Newcombe (1998) method 10 for p1 - p2 from the Wilson limits (l_i, u_i):
//   low  = d - sqrt((p1 - l1)^2 + (u2 - p2)^2)
//   high = d + sqrt((u1 - p1)^2 + (p2 - l2)^2)
std::pair<double, double> Newcombe(double k1, double n1, double k2, double n2) {
  const double p1 = k1 / n1, p2 = k2 / n2, d = p1 - p2;
  auto [l1, u1] = Wilson(k1, n1);
  auto [l2, u2] = Wilson(k2, n2);
  return {d - std::hypot(p1 - l1, u2 - p2), d + std::hypot(u1 - p1, p2 - l2)};
}

// Paired losses with `tokens` tokens per sequence whose per-token deltas
// (champion - previous) are `per_token_delta`; the previous champion's
// loss is 3 nats/token throughout.
PairedLosses Losses(const std::vector<double>& per_token_delta, int64_t tokens) {
  PairedLosses p;
  for (double d : per_token_delta) {
    p.champion_nats.push_back(3.0 * tokens);
    p.candidate_nats.push_back((3.0 + d) * tokens);
    p.tokens.push_back(tokens);
  }
  return p;
}

// With equal token counts the ratio estimator is the plain mean of the
// per-token deltas, and its standard error sd(x) / sqrt(n).
std::pair<double, double> MeanCi(const std::vector<double>& x) {
  const double n = static_cast<double>(x.size());
  const double mean = std::accumulate(x.begin(), x.end(), 0.0) / n;
  double ss = 0;
  for (double v : x) ss += (v - mean) * (v - mean);
  const double se = std::sqrt(ss / (n - 1)) / std::sqrt(n);
  return {mean - kZ * se, mean + kZ * se};
}

RollbackConfig Cfg() {
  RollbackConfig c;
  c.min_requests = 200;
  c.min_feedback = 30;
  c.max_error_rate_increase = 0.02;
  c.max_negative_feedback_increase = 0.10;
  c.max_stream_loss_increase = 0.05;
  c.min_stream_tokens = 512;
  return c;
}

const RuleResult& Rule(const RollbackResult& r, const std::string& name) {
  for (const RuleResult& rule : r.rules) {
    if (rule.name == name) return rule;
  }
  ADD_FAILURE() << "no rule " << name;
  static RuleResult none;
  return none;
}

TEST(WilsonTest, MatchesHandComputedFigures) {
  // 40/400: Python math, the same formula: (0.074299259, 0.133310576).
  double lo, hi;
  WilsonInterval(40, 400, &lo, &hi);
  EXPECT_NEAR(lo, 0.07429925914003437, 1e-12);
  EXPECT_NEAR(hi, 0.13331057632740284, 1e-12);
  // 0/50: the lower limit is 0, the upper z^2 / (n + z^2).
  WilsonInterval(0, 50, &lo, &hi);
  EXPECT_NEAR(lo, 0.0, 1e-12);
  EXPECT_NEAR(hi, kZ * kZ / (50 + kZ * kZ), 1e-12);
}

TEST(DecideRollbackTest, ConfidentErrorRateRegressionRollsBack) {
  RollbackSignals s;
  s.champion = "snap-000003";
  s.previous = "snap-000002";
  s.champion_serving = {400, 40, 0, 0};   // 10% errors
  s.previous_serving = {400, 4, 0, 0};    // 1% errors
  RollbackResult r = DecideRollback(s, Cfg());
  EXPECT_TRUE(r.roll_back);
  const RuleResult& e = Rule(r, "serving_errors");
  EXPECT_FALSE(e.passed);
  ASSERT_TRUE(e.has_ci);
  auto [lo, hi] = Newcombe(40, 400, 4, 400);
  EXPECT_NEAR(e.observed, 0.09, 1e-12);
  EXPECT_NEAR(e.ci_low, lo, 1e-9);
  EXPECT_NEAR(e.ci_high, hi, 1e-9);
  // Hand-computed (Python math): [0.060024894, 0.123865316].
  EXPECT_NEAR(e.ci_low, 0.060024894033005344, 1e-9);
  EXPECT_NEAR(e.ci_high, 0.12386531578711393, 1e-9);
  EXPECT_EQ(e.threshold, 0.02);
  // The other signals have no evidence and pass.
  EXPECT_TRUE(Rule(r, "negative_feedback").passed);
  EXPECT_FALSE(Rule(r, "negative_feedback").has_ci);
  EXPECT_TRUE(Rule(r, "live_stream_loss").passed);
  EXPECT_NE(r.reason.find("error rate"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("snap-000002"), std::string::npos) << r.reason;
  EXPECT_EQ(r.metrics["error_rate"]["champion"]["count"], 40);
  EXPECT_EQ(r.metrics["error_rate"]["previous"]["total"], 400);

  // The same rules in the decision record, with ci95 as the gate's.
  Json d = RollbackDecision(s.champion, s.previous, r, 0.5);
  EXPECT_EQ(d["verdict"], "rolled_back");
  EXPECT_EQ(d["champion"], "snap-000003");
  EXPECT_EQ(d["candidate"], "snap-000002");
  ASSERT_EQ(d["rules"].size(), 3u);
  EXPECT_EQ(d["rules"][0]["name"], "serving_errors");
  EXPECT_EQ(d["rules"][0]["passed"], false);
  EXPECT_NEAR(d["rules"][0]["ci95"][0].get<double>(), lo, 1e-9);
  EXPECT_FALSE(d["rules"][1].contains("ci95"));
}

TEST(DecideRollbackTest, RateIntervalStraddlingTheToleranceDoesNotRollBack) {
  RollbackSignals s;
  s.champion = "a";
  s.previous = "b";
  // 3% vs 1%: the mean rise (0.02) is above a tolerance of 0.01, but the
  // interval reaches below it.
  s.champion_serving = {400, 12, 0, 0};
  s.previous_serving = {400, 4, 0, 0};
  RollbackConfig c = Cfg();
  c.max_error_rate_increase = 0.01;
  RollbackResult r = DecideRollback(s, c);
  const RuleResult& e = Rule(r, "serving_errors");
  auto [lo, hi] = Newcombe(12, 400, 4, 400);
  ASSERT_LT(lo, 0.01);  // the premise: it straddles
  ASSERT_GT(hi, 0.01);
  EXPECT_GT(e.observed, 0.01);
  EXPECT_NEAR(e.ci_low, lo, 1e-9);
  EXPECT_TRUE(e.passed);
  EXPECT_FALSE(r.roll_back) << r.reason;
}

TEST(DecideRollbackTest, TooFewRequestsOrFeedbackDoNotRollBack) {
  RollbackSignals s;
  s.champion = "a";
  s.previous = "b";
  // 50% errors and 100% negative feedback, but on too few requests and
  // ratings (the previous champion served only 150 requests).
  s.champion_serving = {1000, 500, 20, 20};
  s.previous_serving = {150, 0, 20, 0};
  RollbackResult r = DecideRollback(s, Cfg());
  EXPECT_FALSE(r.roll_back) << r.reason;
  EXPECT_TRUE(Rule(r, "serving_errors").passed);
  EXPECT_FALSE(Rule(r, "serving_errors").has_ci);
  EXPECT_TRUE(Rule(r, "negative_feedback").passed);
  EXPECT_NE(r.reason.find("not enough evidence"), std::string::npos) << r.reason;

  // With the minimums met the same rates roll back on both signals.
  s.previous_serving = {200, 0, 30, 0};
  s.champion_serving = {1000, 500, 30, 30};
  r = DecideRollback(s, Cfg());
  EXPECT_TRUE(r.roll_back);
  EXPECT_FALSE(Rule(r, "serving_errors").passed);
  EXPECT_FALSE(Rule(r, "negative_feedback").passed);
  auto [lo, hi] = Newcombe(30, 30, 0, 30);
  EXPECT_NEAR(Rule(r, "negative_feedback").ci_low, lo, 1e-9);
  EXPECT_NEAR(Rule(r, "negative_feedback").ci_high, hi, 1e-9);
  EXPECT_NE(r.reason.find("negative-feedback rate"), std::string::npos) << r.reason;
}

TEST(DecideRollbackTest, ConfidentStreamLossRegressionRollsBack) {
  RollbackSignals s;
  s.champion = "a";
  s.previous = "b";
  const std::vector<double> x = {0.30, 0.32, 0.28, 0.31, 0.29, 0.30};
  s.stream = Losses(x, 100);
  RollbackResult r = DecideRollback(s, Cfg());
  const RuleResult& l = Rule(r, "live_stream_loss");
  auto [lo, hi] = MeanCi(x);
  // By hand: mean 0.30, sd sqrt(0.001 / 5), se sd / sqrt(6) = 0.0057735,
  // half-width 1.96 * se = 0.011316.
  EXPECT_NEAR(lo, 0.30 - 0.0113161, 1e-6);
  EXPECT_NEAR(l.observed, 0.30, 1e-12);
  EXPECT_NEAR(l.ci_low, lo, 1e-9);
  EXPECT_NEAR(l.ci_high, hi, 1e-9);
  EXPECT_FALSE(l.passed);
  EXPECT_TRUE(r.roll_back);
  EXPECT_EQ(r.metrics["stream_loss"]["delta"]["tokens"], 600);
  EXPECT_NEAR(r.metrics["stream_loss"]["previous"]["mean"].get<double>(), 3.0, 1e-12);
  EXPECT_NE(r.reason.find("held-out stream records"), std::string::npos) << r.reason;
}

TEST(DecideRollbackTest, StreamLossIntervalStraddlingTheToleranceDoesNotRollBack) {
  RollbackSignals s;
  s.champion = "a";
  s.previous = "b";
  // Mean rise 0.06 > 0.05, but noisy.
  const std::vector<double> x = {-0.2, 0.3, 0.1, 0.04, 0.06, 0.06};
  s.stream = Losses(x, 100);
  RollbackResult r = DecideRollback(s, Cfg());
  auto [lo, hi] = MeanCi(x);
  ASSERT_LT(lo, 0.05);
  const RuleResult& l = Rule(r, "live_stream_loss");
  EXPECT_NEAR(l.observed, 0.06, 1e-12);
  EXPECT_NEAR(l.ci_low, lo, 1e-9);
  EXPECT_NEAR(l.ci_high, hi, 1e-9);
  EXPECT_TRUE(l.passed);
  EXPECT_FALSE(r.roll_back);
}

TEST(DecideRollbackTest, TooFewStreamTokensDoNotRollBack) {
  RollbackSignals s;
  s.champion = "a";
  s.previous = "b";
  s.stream = Losses({0.30, 0.32, 0.28, 0.31}, 100);  // 400 tokens < 512
  RollbackResult r = DecideRollback(s, Cfg());
  EXPECT_FALSE(r.roll_back);
  EXPECT_FALSE(Rule(r, "live_stream_loss").has_ci);
  EXPECT_TRUE(Rule(r, "live_stream_loss").passed);
}

TEST(DecideRollbackTest, AnImprovementNeverRollsBack) {
  RollbackSignals s;
  s.champion = "a";
  s.previous = "b";
  s.champion_serving = {1000, 0, 100, 5};
  s.previous_serving = {1000, 50, 100, 60};
  s.stream = Losses({-0.30, -0.32, -0.28, -0.31, -0.29, -0.30}, 100);
  RollbackResult r = DecideRollback(s, Cfg());
  EXPECT_FALSE(r.roll_back) << r.reason;
  for (const RuleResult& rule : r.rules) {
    EXPECT_TRUE(rule.passed) << rule.name;
    EXPECT_TRUE(rule.has_ci) << rule.name;
    EXPECT_LT(rule.ci_high, 0) << rule.name;
  }
}

TEST(RollbackDecisionLinesTest, NameEachFailedRuleWithItsInterval) {
  RollbackSignals s;
  s.champion = "a";
  s.previous = "b";
  s.stream = Losses({0.30, 0.32, 0.28, 0.31, 0.29, 0.30}, 100);
  Json d = RollbackDecision("a", "b", DecideRollback(s, Cfg()), 1.0);
  auto lines = RollbackDecisionLines(d);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "rollback: live_stream_loss stream_loss_increase +0.3000, 95% CI [+0.2887, "
            "+0.3113], tolerance 0.0500");
  EXPECT_EQ(RollbackDecisionLines(Json{{"verdict", "rolled_back"},
                                      {"trigger", "manual"},
                                      {"rules", Json::array()},
                                      {"reason", "manual: x"}}),
            std::vector<std::string>{"rollback: manual"});
  EXPECT_TRUE(RollbackDecisionLines(Json{{"verdict", "promoted"}}).empty());
}

}  // namespace
}  // namespace streamlm
