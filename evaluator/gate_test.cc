#include "evaluator/gate.h"

#include <cmath>

#include "gtest/gtest.h"

namespace streamlm {
namespace {

// Two sequences of 10 and 30 tokens.
PairedLosses Losses(double cand_a, double cand_b, double champ_a, double champ_b) {
  PairedLosses l;
  l.tokens = {10, 30};
  l.candidate_nats = {cand_a * 10, cand_b * 30};
  l.champion_nats = {champ_a * 10, champ_b * 30};
  return l;
}

TEST(GateTest, CompareIsTokenWeightedWithHandComputedInterval) {
  // Candidate per-token losses 2.0 and 3.0 over 10 and 30 tokens:
  // mean = (20 + 90) / 40 = 2.75.
  Comparison c = Compare(Losses(2.0, 3.0, 2.5, 3.5));
  EXPECT_DOUBLE_EQ(c.candidate.mean, 2.75);
  EXPECT_DOUBLE_EQ(c.champion.mean, 3.25);
  EXPECT_DOUBLE_EQ(c.delta.mean, -0.5);
  EXPECT_EQ(c.delta.tokens, 40);
  // Residuals x_i - mean*t_i: 20-27.5 = -7.5 and 90-82.5 = 7.5;
  // s^2 = 112.5, se = sqrt(112.5/2)/20 = 0.375; CI = 2.75 -+ 1.96*0.375.
  EXPECT_NEAR(c.candidate.ci_low, 2.75 - 1.959964 * 0.375, 1e-6);
  EXPECT_NEAR(c.candidate.ci_high, 2.75 + 1.959964 * 0.375, 1e-6);
  // Every paired difference is exactly -0.5 per token: zero-width interval.
  EXPECT_NEAR(c.delta.ci_low, -0.5, 1e-12);
  EXPECT_NEAR(c.delta.ci_high, -0.5, 1e-12);
}

TEST(GateTest, PromotesWhenStreamImprovesAndBaseHolds) {
  GateConfig g;
  g.min_stream_tokens = 40;
  Comparison base = Compare(Losses(3.0, 3.0, 3.0, 2.98));
  Comparison stream = Compare(Losses(2.0, 2.0, 2.5, 2.5));
  GateResult r = ApplyGate(base, stream, g);
  EXPECT_EQ(r.verdict, "promoted") << r.reason;
  ASSERT_EQ(r.rules.size(), 3u);
  for (const RuleResult& rule : r.rules) EXPECT_TRUE(rule.passed) << rule.name;
  EXPECT_DOUBLE_EQ(r.rules[1].observed, -0.5);
}

TEST(GateTest, RejectsForgettingEvenWhenStreamImproves) {
  GateConfig g;
  g.min_stream_tokens = 40;
  g.max_forgetting = 0.05;
  Comparison base = Compare(Losses(3.2, 3.2, 3.0, 3.0));  // +0.2
  Comparison stream = Compare(Losses(2.0, 2.0, 2.5, 2.5));
  GateResult r = ApplyGate(base, stream, g);
  EXPECT_EQ(r.verdict, "rejected");
  EXPECT_FALSE(r.rules[2].passed);
  EXPECT_NEAR(r.rules[2].observed, 0.2, 1e-12);
  EXPECT_NE(r.reason.find("forgetting"), std::string::npos) << r.reason;
}

TEST(GateTest, RejectsWhenStreamDoesNotImprove) {
  GateConfig g;
  g.min_stream_tokens = 40;
  Comparison same = Compare(Losses(2.0, 2.0, 2.0, 2.0));
  GateResult r = ApplyGate(same, same, g);
  EXPECT_EQ(r.verdict, "rejected");
  EXPECT_FALSE(r.rules[1].passed);
  EXPECT_NE(r.reason.find("adaptation"), std::string::npos);
}

TEST(GateTest, HoldsWithoutEnoughStreamEvidence) {
  GateConfig g;
  g.min_stream_tokens = 1000;
  Comparison better = Compare(Losses(1.0, 1.0, 2.0, 2.0));
  GateResult r = ApplyGate(better, better, g);
  EXPECT_EQ(r.verdict, "held");
  EXPECT_FALSE(r.rules[0].passed);
  EXPECT_EQ(ApplyGate(better, Compare(PairedLosses()), GateConfig()).verdict, "held");
}

}  // namespace
}  // namespace streamlm
