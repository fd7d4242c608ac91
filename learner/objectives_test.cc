// The feedback objectives against an independent PyTorch implementation of
// the published formulas (tools/feedback_reference.py writes the fixture):
// losses and their gradients with respect to the logits, within 1e-5, in
// double and in float.
#include "learner/objectives.h"

#include "gtest/gtest.h"
#include "model/tokenizer.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::ReadTestFile;

class ObjectivesTest : public ::testing::TestWithParam<torch::ScalarType> {
 protected:
  void SetUp() override {
    auto parsed = ParseJson(ReadTestFile(testing::SourceDir() + "/tests/data/feedback_reference.json"));
    ASSERT_TRUE(parsed.ok());
    fx_ = *parsed;
    V_ = fx_["vocab"];
    L_ = fx_["length"];
  }
  torch::Tensor Logits(const Json& values, int64_t n) {
    auto t = torch::tensor(values.get<std::vector<double>>(), torch::kDouble)
                 .view({n, L_, V_}).to(GetParam());
    return t.requires_grad_();
  }
  torch::Tensor Labels(const Json& values, int64_t n) {
    return torch::tensor(values.get<std::vector<int64_t>>(), torch::kLong).view({n, L_});
  }
  static torch::Tensor Vec(const Json& values) {
    return torch::tensor(values.get<std::vector<double>>(), torch::kDouble);
  }
  static void ExpectNear(const torch::Tensor& got, const Json& want, double tol) {
    std::vector<double> w = want.get<std::vector<double>>();
    auto g = got.to(torch::kDouble).reshape({-1}).contiguous();
    ASSERT_EQ(g.numel(), static_cast<int64_t>(w.size()));
    double worst = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      worst = std::max(worst, std::abs(g[i].item<double>() - w[i]));
    }
    EXPECT_LE(worst, tol);
  }
  double Tol() const { return GetParam() == torch::kDouble ? 1e-9 : 1e-5; }

  Json fx_;
  int64_t V_ = 0, L_ = 0;
};

TEST_P(ObjectivesTest, DpoLossAndGradientMatchTheReference) {
  const Json& d = fx_["dpo"];
  const int64_t n = d["n"];
  auto c = Logits(d["chosen_logits"], n), r = Logits(d["rejected_logits"], n);
  auto dtype = GetParam();
  auto loss = DpoLoss(SequenceLogprobs(c, Labels(d["chosen_labels"], n)),
                      SequenceLogprobs(r, Labels(d["rejected_labels"], n)),
                      Vec(d["ref_chosen"]).to(dtype), Vec(d["ref_rejected"]).to(dtype),
                      d["beta"].get<double>());
  EXPECT_NEAR(loss.item<double>(), d["loss"].get<double>(), Tol());
  loss.backward();
  ExpectNear(c.grad(), d["grad_chosen"], Tol());
  ExpectNear(r.grad(), d["grad_rejected"], Tol());
}

TEST_P(ObjectivesTest, KtoLossAndGradientMatchTheReference) {
  const Json& k = fx_["kto"];
  const int64_t n = k["n"];
  auto dtype = GetParam();
  auto y = Logits(k["logits"], n), kl = Logits(k["kl_logits"], n);
  auto z0 = KtoReferencePoint(SequenceLogprobs(kl, Labels(k["kl_labels"], n)),
                              Vec(k["ref_kl"]).to(dtype));
  EXPECT_NEAR(z0.item<double>(), k["z0"].get<double>(), Tol());
  EXPECT_GT(z0.item<double>(), 0.0);  // the fixture exercises the reference point
  std::vector<bool> want = k["desirable"].get<std::vector<bool>>();
  auto desirable = torch::zeros({n}, torch::kBool);
  for (int64_t i = 0; i < n; ++i) desirable[i] = static_cast<bool>(want[i]);
  auto loss = KtoLoss(SequenceLogprobs(y, Labels(k["labels"], n)), Vec(k["ref"]).to(dtype),
                      desirable, z0, k["beta"].get<double>(),
                      k["desirable_weight"].get<double>(), k["undesirable_weight"].get<double>());
  EXPECT_NEAR(loss.item<double>(), k["loss"].get<double>(), Tol());
  loss.backward();
  ExpectNear(y.grad(), k["grad"], Tol());
  // z0 is a fixed reference point: no gradient flows into the KL pairs.
  EXPECT_TRUE(k["grad_kl_is_zero"].get<bool>());
  EXPECT_FALSE(kl.grad().defined() && kl.grad().abs().sum().item<double>() > 0);
}

TEST_P(ObjectivesTest, SftLossAndGradientMatchTheReference) {
  const Json& s = fx_["sft"];
  const int64_t n = s["n"];
  auto x = Logits(s["logits"], n);
  auto loss = SftLoss(x, Labels(s["labels"], n));
  EXPECT_NEAR(loss.item<double>(), s["loss"].get<double>(), Tol());
  loss.backward();
  ExpectNear(x.grad(), s["grad"], Tol());
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ObjectivesTest, ::testing::Values(torch::kDouble, torch::kFloat));

TEST(FeedbackExampleTest, SequencesScoreOnlyTheResponseAndFitTheContext) {
  auto tok = LoadTokenizerFromPath(testing::SourceDir() + "/tests/data/hf/gpt2");
  ASSERT_TRUE(tok.ok()) << tok.status();
  const Tokenizer& t = **tok;
  Json pair = {{"prompt", "the cat"}, {"chosen", " sat on the mat"}, {"rejected", " ran"}};
  auto e = MakeFeedbackExample(t, pair, 32);
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->kind, FeedbackExample::Kind::kPreference);
  ASSERT_EQ(e->seqs.size(), 2u);
  const ResponseSequence& c = e->seqs[0];
  std::vector<int32_t> prompt = t.Encode("the cat"), chosen = t.Encode(" sat on the mat");
  EXPECT_EQ(c.ids.front(), t.eos_id());
  EXPECT_EQ(c.ids.back(), t.eos_id());
  EXPECT_EQ(c.response_begin, 1 + prompt.size());
  EXPECT_EQ(c.ids.size(), 1 + prompt.size() + chosen.size() + 1);
  torch::Tensor inputs, labels;
  PackResponseBatch({&e->seqs[0], &e->seqs[1]}, &inputs, &labels);
  // Scored targets: the chosen response and the closing eos.
  EXPECT_EQ(labels[0].ne(kIgnoreLabel).sum().item<int64_t>(),
            static_cast<int64_t>(chosen.size() + 1));
  EXPECT_EQ(labels[1].ne(kIgnoreLabel).sum().item<int64_t>(),
            static_cast<int64_t>(t.Encode(" ran").size() + 1));

  // A long response is cut to the context; a prompt that fills it is refused.
  std::string long_text;
  for (int i = 0; i < 40; ++i) long_text += " the cat sat";
  auto cut = MakeResponseSequence(t, "a dog", long_text, 16);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->ids.size(), 17u);
  auto refused = MakeResponseSequence(t, long_text, "a", 16);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("prompt_too_long"), std::string::npos);
  Json same = {{"prompt", "the cat"}, {"chosen", " ran"}, {"rejected", " ran"}};
  auto identical = MakeFeedbackExample(t, same, 32);
  ASSERT_FALSE(identical.ok());
  EXPECT_NE(identical.status().message().find("identical_responses"), std::string::npos);
}

}  // namespace
}  // namespace streamlm
