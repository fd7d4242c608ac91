// ForgottenReplaySlices on decision records: one the gate writes (Decide +
// RuleToJson) and hand-written ones. The slice comes from the rules'
// slice_kind / slice fields, never from their metric text; boosting what it
// returns, as the learner does after a rejection, raises exactly that
// slice's replay share (shares computed by hand below).
#include "learner/forgotten_slices.h"

#include <string>
#include <vector>

#include "evaluator/gate.h"
#include "gtest/gtest.h"
#include "learner/replay_buffer.h"

namespace streamlm {
namespace {

using Slices = std::vector<std::string>;

// `n` sequences of 10 tokens whose candidate - champion loss is `delta`
// nats/token on every sequence, plus a spread of +-`spread` alternating.
PairedLosses Losses(int n, double delta, double spread) {
  PairedLosses p;
  for (int i = 0; i < n; ++i) {
    const double d = delta + (i % 2 == 0 ? spread : -spread);
    p.champion_nats.push_back(30.0);
    p.candidate_nats.push_back(30.0 + 10 * d);
    p.tokens.push_back(10);
  }
  return p;
}

Json DecisionOf(const GateResult& g) {
  Json rules = Json::array();
  for (const RuleResult& r : g.rules) rules.push_back(RuleToJson(r));
  return {{"verdict", g.verdict}, {"rules", rules}};
}

TEST(ForgottenSlicesTest, AGateRejectionForgettingOneStreamSourceBoostsItsReplay) {
  GateConfig config;
  config.min_stream_tokens = 40;
  config.min_slice_tokens = 100;
  GateInput in;
  in.base = Compare(Losses(8, 0.0, 0.0));
  in.stream = Compare(Losses(80, -0.3, 0.0));  // the whole stream confidently better
  in.slices = {{"stream", "news", Compare(Losses(60, -0.5, 0.0))},
               {"stream", "chat", Compare(Losses(20, 0.25, 0.05))}};  // chat forgot
  const GateResult g = Decide(in, config);
  ASSERT_EQ(g.verdict, "rejected") << g.reason;
  const Json decision = DecisionOf(g);
  EXPECT_EQ(ForgottenReplaySlices(decision), Slices({"chat"})) << decision.dump();

  // The learner boosts each named slice by 2 (learner.cc MaybeReset).
  SlicedReplay replay(100, /*base_share=*/0.5, /*max_slices=*/8, /*seed=*/1);
  for (int i = 0; i < 10; ++i) {
    replay.Add(SlicedReplay::kBase, {0, i});
    replay.Add("news", {1, i});
    replay.Add("chat", {2, i});
  }
  // Before: base 0.5, the two sources 0.25 each.
  EXPECT_NEAR(replay.Shares()["chat"], 0.25, 1e-12);
  for (const std::string& slice : ForgottenReplaySlices(decision)) replay.Boost(slice, 2.0, 8.0);
  // After: weights 0.5, 0.25, 0.5 (chat doubled) over 1.25.
  auto shares = replay.Shares();
  EXPECT_NEAR(shares["chat"], 0.4, 1e-12);
  EXPECT_NEAR(shares["news"], 0.2, 1e-12);
  EXPECT_NEAR(shares[SlicedReplay::kBase], 0.4, 1e-12);
}

TEST(ForgottenSlicesTest, ReadsTheSliceFieldsNotTheMetricText) {
  // The metric text names another source than the field: the field wins.
  Json decision = {{"verdict", "rejected"},
                   {"rules",
                    {{{"name", "slice_forgetting"},
                      {"metric", "stream:news_loss_delta"},
                      {"passed", false},
                      {"slice_kind", "stream"},
                      {"slice", "chat"}}}}};
  EXPECT_EQ(ForgottenReplaySlices(decision), Slices({"chat"}));
  // Without the fields a rule names no slice, whatever its metric says.
  decision["rules"][0].erase("slice_kind");
  decision["rules"][0].erase("slice");
  EXPECT_EQ(ForgottenReplaySlices(decision), Slices());
}

TEST(ForgottenSlicesTest, BaseSlicesNoSourceAndPassedRules) {
  const Json decision = {
      {"verdict", "rejected"},
      {"rules",
       {{{"name", "adaptation"}, {"passed", false}},  // not about forgetting
        {{"name", "forgetting"}, {"passed", false}},
        {{"name", "slice_forgetting"}, {"passed", false}, {"slice_kind", "base"},
         {"slice", "manuals"}},
        {{"name", "slice_forgetting"}, {"passed", false}, {"slice_kind", "stream"},
         {"slice", ""}},
        {{"name", "slice_forgetting"}, {"passed", true}, {"slice_kind", "stream"},
         {"slice", "news"}}}}};
  // Every base set replays from the base slice; "" is records without a source.
  EXPECT_EQ(ForgottenReplaySlices(decision),
            Slices({SlicedReplay::kBase, SlicedReplay::kBase, ""}));
  Json promoted = decision;
  promoted["verdict"] = "promoted";
  EXPECT_EQ(ForgottenReplaySlices(promoted), Slices());
  EXPECT_EQ(ForgottenReplaySlices(Json::object()), Slices());
}

}  // namespace
}  // namespace streamlm
