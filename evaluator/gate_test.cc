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

TEST(GateTest, NormalQuantileMatchesTables) {
  // Values from standard normal tables (e.g. Abramowitz & Stegun 26.2).
  EXPECT_NEAR(NormalQuantile(0.975), 1.959963984540054, 1e-9);
  EXPECT_NEAR(NormalQuantile(0.9875), 2.241402727604947, 1e-9);
  EXPECT_NEAR(NormalQuantile(0.995), 2.575829303548901, 1e-9);
  EXPECT_NEAR(NormalQuantile(0.5), 0.0, 1e-12);
  EXPECT_NEAR(NormalQuantile(1e-6), -4.753424308822899, 1e-8);
}

TEST(GateTest, LooksSpendExactlyAlpha) {
  // 4 looks at alpha 0.05: 0.025, 0.0125, 0.00625 and the remaining 0.00625.
  EXPECT_DOUBLE_EQ(LookAlpha(1, 4, 0.05), 0.025);
  EXPECT_DOUBLE_EQ(LookAlpha(2, 4, 0.05), 0.0125);
  EXPECT_DOUBLE_EQ(LookAlpha(3, 4, 0.05), 0.00625);
  EXPECT_DOUBLE_EQ(LookAlpha(4, 4, 0.05), 0.00625);
  double sum = 0;
  for (int k = 1; k <= 7; ++k) sum += LookAlpha(k, 7, 0.05);
  EXPECT_NEAR(sum, 0.05, 1e-15);
  EXPECT_DOUBLE_EQ(LookAlpha(1, 1, 0.05), 0.05);  // one look: the whole alpha
}

// n sequences of 10 tokens whose per-token loss delta alternates a and b
// (candidate = champion + delta); the champion's loss is 3.0.
PairedLosses Alternating(int n, double a, double b) {
  PairedLosses l;
  for (int i = 0; i < n; ++i) {
    l.tokens.push_back(10);
    l.champion_nats.push_back(30.0);
    l.candidate_nats.push_back(10 * (3.0 + (i % 2 == 0 ? a : b)));
  }
  return l;
}

TEST(GateTest, AStraddlingImprovementIsHeldThenDecidedOnMoreEvidence) {
  GateConfig g;
  g.min_stream_tokens = 40;
  GateInput in;
  in.base = Compare(Alternating(8, 0.0, 0.0));
  // Deltas -0.3, +0.1: mean -0.1, se = 0.2/sqrt(n-1) per token.
  in.stream = Compare(Alternating(4, -0.3, 0.1));
  EXPECT_NEAR(in.stream.delta.se, 0.2 / std::sqrt(3.0), 1e-12);
  GateResult r = Decide(in, g);
  // Look 1 at 97.5%: -0.1 + 2.2414 * 0.1155 = +0.159 > 0: straddles 0.
  EXPECT_EQ(r.verdict, "held") << r.reason;
  EXPECT_TRUE(r.awaiting_evidence);
  EXPECT_FALSE(r.inconclusive);
  EXPECT_DOUBLE_EQ(r.alpha, 0.025);
  EXPECT_FALSE(r.rules[1].passed);
  EXPECT_NEAR(r.rules[1].ci_high, -0.1 + 2.241402727604947 * 0.2 / std::sqrt(3.0), 1e-9);
  EXPECT_DOUBLE_EQ(r.rules[1].ci_level, 0.975);
  EXPECT_NE(r.reason.find("straddles"), std::string::npos) << r.reason;
  // A point-mean gate would have promoted it.
  EXPECT_LT(in.stream.delta.mean, 0);
  // Look 2 with 64 sequences at 98.75%: -0.1 + 2.4977 * 0.2/sqrt(63) = -0.037.
  in.stream = Compare(Alternating(64, -0.3, 0.1));
  in.look = 2;
  r = Decide(in, g);
  EXPECT_EQ(r.verdict, "promoted") << r.reason;
  EXPECT_NEAR(r.rules[1].ci_high, -0.1 + NormalQuantile(1 - 0.0125 / 2) * 0.2 / std::sqrt(63.0),
              1e-9);
  // Still straddling at the last look: held for good, no further looks.
  in.stream = Compare(Alternating(4, -0.3, 0.1));
  in.look = 4;
  r = Decide(in, g);
  EXPECT_EQ(r.verdict, "held");
  EXPECT_TRUE(r.inconclusive);
  EXPECT_FALSE(r.awaiting_evidence);
  EXPECT_NE(r.reason.find("inconclusive after 4 looks"), std::string::npos) << r.reason;
}

TEST(GateTest, ForgettingMustBeConfidentlyWithinBounds) {
  GateConfig g;
  g.min_stream_tokens = 40;
  GateInput in;
  in.stream = Compare(Alternating(8, -0.5, -0.5));
  // Base deltas +0.1 and -0.06: mean 0.02 <= 0.05 but the interval reaches
  // 0.02 + 2.2414 * 0.08/sqrt(7) = 0.088 (se = half the spread / sqrt(n-1)):
  // held, not promoted on the mean.
  in.base = Compare(Alternating(8, 0.1, -0.06));
  GateResult r = Decide(in, g);
  EXPECT_EQ(r.verdict, "held") << r.reason;
  EXPECT_FALSE(r.rules[2].passed);
  EXPECT_NEAR(r.rules[2].ci_high, 0.02 + 2.241402727604947 * 0.08 / std::sqrt(7.0), 1e-9);
  // Wholly above the bound: rejected.
  in.base = Compare(Alternating(8, 0.12, 0.08));
  EXPECT_EQ(Decide(in, g).verdict, "rejected");
}

TEST(GateTest, ForgettingOnOneSourceIsNotHiddenByAGainOnAnother) {
  GateConfig g;
  g.min_stream_tokens = 40;
  g.min_slice_tokens = 100;
  GateInput in;
  in.base = Compare(Alternating(8, 0.0, 0.0));
  Comparison news = Compare(Alternating(60, -0.5, -0.5));     // 600 tokens, much better
  Comparison chat = Compare(Alternating(20, 0.3, 0.2));       // 200 tokens, confidently worse
  PairedLosses all = Alternating(60, -0.5, -0.5);
  PairedLosses worse = Alternating(20, 0.3, 0.2);
  for (size_t i = 0; i < worse.tokens.size(); ++i) {
    all.tokens.push_back(worse.tokens[i]);
    all.candidate_nats.push_back(worse.candidate_nats[i]);
    all.champion_nats.push_back(worse.champion_nats[i]);
  }
  in.stream = Compare(all);
  ASSERT_LT(in.stream.delta.ci_high, 0);  // the whole stream improved, confidently
  in.slices = {{"stream", "news", news}, {"stream", "chat", chat}};
  GateResult r = Decide(in, g);
  EXPECT_EQ(r.verdict, "rejected") << r.reason;
  EXPECT_NE(r.reason.find("slice_forgetting: stream:chat"), std::string::npos) << r.reason;
  int slice_rules = 0;
  for (const RuleResult& rule : r.rules) {
    if (rule.name != "slice_forgetting") {
      EXPECT_EQ(rule.slice_kind, "") << rule.name;  // not about one slice
      continue;
    }
    ++slice_rules;
    EXPECT_TRUE(rule.has_ci);
    EXPECT_EQ(rule.passed, rule.metric == "stream:news_loss_delta") << rule.metric;
    // The slice is in fields of its own, in the decision record too.
    EXPECT_EQ(rule.slice_kind, "stream");
    EXPECT_EQ(rule.passed, rule.slice == "news") << rule.slice;
    const Json j = RuleToJson(rule);
    EXPECT_EQ(j["slice_kind"], "stream");
    EXPECT_EQ(j["slice"], rule.passed ? "news" : "chat");
  }
  EXPECT_EQ(slice_rules, 2);
  for (const RuleResult& rule : r.rules) {
    if (rule.name == "slice_forgetting") continue;
    const Json j = RuleToJson(rule);
    EXPECT_FALSE(j.contains("slice_kind")) << j.dump();
    EXPECT_FALSE(j.contains("slice")) << j.dump();
  }
  // Records without a source are the slice "": the field keeps it empty,
  // only the metric text says "(no source)".
  in.slices = {{"stream", "news", news}, {"stream", "", chat}};
  r = Decide(in, g);
  EXPECT_EQ(r.verdict, "rejected") << r.reason;
  bool unsourced_failed = false;
  for (const RuleResult& rule : r.rules) {
    if (rule.name != "slice_forgetting" || rule.passed) continue;
    EXPECT_EQ(rule.metric, "stream:(no source)_loss_delta");
    EXPECT_EQ(RuleToJson(rule)["slice"], "");
    unsourced_failed = rule.slice_kind == "stream" && rule.slice.empty();
  }
  EXPECT_TRUE(unsourced_failed);
  in.slices = {{"stream", "news", news}, {"stream", "chat", chat}};
  // Too few tokens in the slice: reported but not judged on its own.
  g.min_slice_tokens = 1000;
  EXPECT_EQ(Decide(in, g).verdict, "promoted");
  // A base set of its own counts the same way.
  g.min_slice_tokens = 100;
  in.slices = {{"base", "bootstrap", news}, {"base", "manuals", chat}};
  r = Decide(in, g);
  EXPECT_EQ(r.verdict, "rejected");
  EXPECT_NE(r.reason.find("base:manuals"), std::string::npos) << r.reason;
  int failed_base_slices = 0;
  for (const RuleResult& rule : r.rules) {
    if (rule.name != "slice_forgetting" || rule.passed) continue;
    ++failed_base_slices;
    EXPECT_EQ(rule.slice_kind, "base");
    EXPECT_EQ(rule.slice, "manuals");
  }
  EXPECT_EQ(failed_base_slices, 1);
}

TEST(GateTest, ForgettingAddsUpOverPromotionsAndIsBoundedInTotal) {
  GateConfig g;
  g.min_stream_tokens = 40;
  g.max_forgetting = 0.05;
  GateInput in;
  in.stream = Compare(Alternating(8, -0.5, -0.5));
  in.base = Compare(Alternating(8, 0.03, 0.03));  // within the bound against its champion...
  in.has_anchor = true;
  in.since_anchor = Compare(Alternating(8, 0.12, 0.12));  // ...but not since the anchor
  GateResult r = Decide(in, g);
  EXPECT_EQ(r.verdict, "rejected") << r.reason;
  EXPECT_NE(r.reason.find("total_forgetting"), std::string::npos) << r.reason;
  in.since_anchor = Compare(Alternating(8, 0.04, 0.04));
  EXPECT_EQ(Decide(in, g).verdict, "promoted");
}

TEST(GateTest, AChampionWithoutABaseSetIsReportedAsSuch) {
  GateConfig g;
  g.min_stream_tokens = 40;
  GateInput in;
  in.has_base = false;
  in.stream = Compare(Alternating(8, -0.5, -0.5));
  GateResult r = Decide(in, g);
  EXPECT_EQ(r.verdict, "held") << r.reason;
  EXPECT_NE(r.reason.find("no base evaluation set"), std::string::npos) << r.reason;
  EXPECT_EQ(r.reason.find("+0.0000"), std::string::npos) << r.reason;
  EXPECT_EQ(r.rules[2].metric, "base_eval_set");
}

// Feedback scores where the candidate prefers the chosen response on
// `cand_right` of `n` pairs and the champion on `champ_right`.
FeedbackScores Pairs(int n, int cand_right, int champ_right) {
  FeedbackScores f;
  f.records = n;
  for (int i = 0; i < n; ++i) {
    f.pair_cand.push_back(i < cand_right ? 2.0 : -2.0);
    f.pair_champ.push_back(i < champ_right ? 1.0 : -1.0);
    f.pair_ref.push_back(0.5);
  }
  return f;
}

TEST(GateTest, FeedbackMetricsAreHandComputed) {
  FeedbackScores f;
  f.records = 5;
  f.pair_cand = {1, -1, 2, 3};
  f.pair_champ = {-1, -1, 1, -2};
  f.pair_ref = {0, 1, 0, 0};
  f.corr_cand = {-1.0};
  f.corr_champ = {-2.0};
  f.corr_ref = {-2.5};
  FeedbackSetStats s = SummarizeFeedback(f, 0.1);
  EXPECT_EQ(s.pairs, 4);
  EXPECT_EQ(s.corrections, 1);
  EXPECT_DOUBLE_EQ(s.acc_cand.mean, 0.75);
  EXPECT_DOUBLE_EQ(s.acc_champ.mean, 0.25);
  EXPECT_DOUBLE_EQ(s.acc_ref.mean, 0.25);  // only d_ref = 1 > 0
  // Paired indicator differences {1, 0, 0, 1}: mean 0.5, sd sqrt(1/3).
  EXPECT_DOUBLE_EQ(s.acc_delta.mean, 0.5);
  EXPECT_NEAR(s.acc_delta.mean - s.acc_delta.ci_low, 1.959964 * std::sqrt(1.0 / 3) / 2, 1e-6);
  EXPECT_DOUBLE_EQ(s.acc_delta.ci_high, 1.0);  // 1.066, cut to the possible range
  // Margins 0.1 * (d - d_ref): candidate {0.1, -0.2, 0.2, 0.3}.
  EXPECT_NEAR(s.margin_cand.mean, 0.1, 1e-12);
  EXPECT_NEAR(s.margin_champ.mean, (-0.1 - 0.2 + 0.1 - 0.2) / 4, 1e-12);
  EXPECT_NEAR(s.corr_delta.mean, 1.0, 1e-12);
  EXPECT_EQ(s.primary_metric(), "preference_accuracy");
  Json j = FeedbackSetToJson(s);
  EXPECT_DOUBLE_EQ(j["preference_accuracy"]["candidate"]["mean"].get<double>(), 0.75);
  EXPECT_FALSE(j.contains("rating_reward"));
}

class FeedbackGateTest : public ::testing::Test {
 protected:
  FeedbackGateTest() {
    g_.min_stream_tokens = 40;
    g_.min_feedback_pairs = 16;
    base_ = Compare(Losses(3.0, 3.0, 3.0, 3.0));
    no_stream_ = Compare(PairedLosses());
  }
  GateConfig g_;
  Comparison base_, no_stream_;
};

TEST_F(FeedbackGateTest, FeedbackOnlyCandidateIsPromotedOnConfidentImprovement) {
  FeedbackEvidence fb;
  fb.trained = 80;
  fb.text_trained = 0;
  fb.fresh = SummarizeFeedback(Pairs(20, 19, 4), 0.1);
  fb.heldout = fb.fresh;
  GateResult r = ApplyGate(base_, no_stream_, fb, g_);
  EXPECT_EQ(r.verdict, "promoted") << r.reason;
  bool seen = false;
  for (const RuleResult& rule : r.rules) {
    if (rule.name != "feedback_improvement") continue;
    seen = true;
    EXPECT_TRUE(rule.passed);
    EXPECT_TRUE(rule.has_ci);
    EXPECT_GT(rule.ci_low, 0.0);
  }
  EXPECT_TRUE(seen);
  // The same candidate with stream text trained needs stream evidence.
  fb.text_trained = 10;
  EXPECT_EQ(ApplyGate(base_, no_stream_, fb, g_).verdict, "held");
}

TEST_F(FeedbackGateTest, ImprovementThatIsNotConfidentIsHeldAndAConfidentLossRejected) {
  FeedbackEvidence fb;
  fb.trained = 80;
  fb.text_trained = 0;
  fb.fresh = SummarizeFeedback(Pairs(20, 11, 9), 0.1);  // 0.55 vs 0.45: CI straddles 0
  GateResult r = ApplyGate(base_, no_stream_, fb, g_);
  EXPECT_EQ(r.verdict, "held") << r.reason;
  EXPECT_NE(r.reason.find("not yet confidently better"), std::string::npos) << r.reason;
  fb.fresh = SummarizeFeedback(Pairs(20, 2, 18), 0.1);
  EXPECT_EQ(ApplyGate(base_, no_stream_, fb, g_).verdict, "rejected");
  // Both right on every pair: the wider reward margin (2 vs 1, before the
  // reference's 0.5) is the evidence.
  fb.fresh = SummarizeFeedback(Pairs(20, 20, 20), 0.1);
  GateResult r2 = ApplyGate(base_, no_stream_, fb, g_);
  EXPECT_EQ(r2.verdict, "promoted") << r2.reason;
  bool margin_rule = false;
  for (const RuleResult& rule : r2.rules) {
    margin_rule |= rule.name == "feedback_improvement" && rule.metric == "new_reward_margin_delta";
  }
  EXPECT_TRUE(margin_rule);
}

TEST_F(FeedbackGateTest, FeedbackContradictingEstablishedPreferencesIsHeldForAnOperator) {
  FeedbackEvidence fb;
  fb.trained = 90;
  fb.text_trained = 0;
  fb.users = {{"mallory0", 30}, {"mallory1", 30}, {"mallory2", 30}};
  fb.fresh = SummarizeFeedback(Pairs(20, 18, 2), 0.1);         // learned the new pairs...
  fb.established = SummarizeFeedback(Pairs(30, 3, 29), 0.1);   // ...against the old ones
  GateResult r = ApplyGate(base_, no_stream_, fb, g_);
  EXPECT_EQ(r.verdict, "held");
  EXPECT_NE(r.reason.find("held for an operator"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("established preferences"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("mallory0 30"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("streamlm promote"), std::string::npos) << r.reason;
  // Exact reversals alone also hold it, naming who sent them.
  fb.established = FeedbackSetStats();
  fb.contradictions = 40;
  fb.contradiction_users = {{"mallory1", 40}};
  r = ApplyGate(base_, no_stream_, fb, g_);
  EXPECT_EQ(r.verdict, "held");
  EXPECT_NE(r.reason.find("40 of the 90 trained feedback records reverse"), std::string::npos)
      << r.reason;
  // One reversal in a small batch is already a contradiction...
  fb.trained = 4;
  fb.contradictions = 1;
  EXPECT_EQ(ApplyGate(base_, no_stream_, fb, g_).verdict, "held");
  // ...one in 90 is someone changing their mind.
  fb.trained = 90;
  // A trusted set the candidate regresses on holds it too.
  fb.trusted = SummarizeFeedback(Pairs(10, 0, 10), 0.1);
  r = ApplyGate(base_, no_stream_, fb, g_);
  EXPECT_EQ(r.verdict, "held");
  EXPECT_NE(r.reason.find("trusted preferences"), std::string::npos) << r.reason;
  // Without any of it the same candidate is promoted.
  fb.trusted = FeedbackSetStats();
  EXPECT_EQ(ApplyGate(base_, no_stream_, fb, g_).verdict, "promoted");
}

TEST_F(FeedbackGateTest, TextTrainingThatLosesHumanPreferencesIsRejected) {
  FeedbackEvidence fb;
  fb.trained = 0;
  fb.text_trained = 500;
  fb.established = SummarizeFeedback(Pairs(30, 5, 28), 0.1);
  Comparison stream = Compare(Losses(2.0, 2.0, 2.5, 2.5));
  GateResult r = ApplyGate(base_, stream, fb, g_);
  EXPECT_EQ(r.verdict, "rejected") << r.reason;
  EXPECT_NE(r.reason.find("feedback_established"), std::string::npos) << r.reason;
  // Within the tolerance it is promoted.
  fb.established = SummarizeFeedback(Pairs(30, 28, 28), 0.1);
  EXPECT_EQ(ApplyGate(base_, stream, fb, g_).verdict, "promoted");
}

}  // namespace
}  // namespace streamlm
