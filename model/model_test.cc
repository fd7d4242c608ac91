#include <algorithm>
#include <cmath>
#include <set>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "model/gpt.h"
#include "model/language_model.h"
#include "model/tokenizer.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::ReadTestFile;

std::vector<std::string> BrownLines(size_t n) {
  std::ifstream in(testing::SourceDir() + "/data/corpus/brown.txt");
  std::vector<std::string> lines;
  std::string line;
  while (lines.size() < n && std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

const std::string& SmallTokenizer() {
  static const std::string* bytes = [] {
    SentencePieceTrainOptions o;
    o.vocab_size = 400;
    auto model = TrainSentencePiece(BrownLines(3000), o);
    EXPECT_TRUE(model.ok()) << model.status();
    return new std::string(*model);
  }();
  return *bytes;
}

// The GPT of tests/data/gpt_reference.*, with `ref` its expected outputs.
Gpt LoadReferenceGpt(Json* ref) {
  std::string dir = testing::SourceDir() + "/tests/data/";
  auto parsed = ParseJson(ReadTestFile(dir + "gpt_reference.json"));
  EXPECT_TRUE(parsed.ok());
  *ref = *parsed;
  auto config = ModelConfigFromJson((*ref)["config"]);
  EXPECT_TRUE(config.ok()) << config.status();
  Gpt net(*config);
  auto tensors = DecodeSafetensors(ReadTestFile(dir + "gpt_reference.safetensors"));
  EXPECT_TRUE(tensors.ok()) << tensors.status();
  std::map<std::string, torch::Tensor> by_name(tensors->begin(), tensors->end());
  torch::NoGradGuard g;
  for (auto& p : net->named_parameters()) {
    EXPECT_TRUE(by_name.count(p.key())) << p.key();
    if (by_name.count(p.key())) p.value().copy_(by_name[p.key()]);
  }
  return net;
}

// Logits of the C++ GPT equal those of an independent PyTorch implementation
// of the published GPT-2 architecture (tools/gpt_reference.py).
TEST(GptTest, MatchesIndependentReferenceLogitsAndLoss) {
  Json ref;
  Gpt net = LoadReferenceGpt(&ref);
  std::vector<std::vector<int64_t>> toks = ref["tokens"];
  auto all = torch::zeros({2, static_cast<int64_t>(toks[0].size())}, torch::kLong);
  for (int b = 0; b < 2; ++b) all[b].copy_(torch::tensor(toks[b], torch::kLong));
  auto inputs = all.slice(1, 0, -1), targets = all.slice(1, 1);
  torch::NoGradGuard g;
  auto logits = net->forward(inputs);
  const auto& expected = ref["logits"];
  double max_err = 0;
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < logits.size(1); ++t)
      for (int v = 0; v < logits.size(2); ++v)
        max_err = std::max(max_err, std::abs(logits[b][t][v].item<double>() -
                                             expected[b][t][v].get<double>()));
  EXPECT_LT(max_err, 1e-4);
  EXPECT_NEAR(net->Loss(inputs, targets).item<double>(), ref["loss"].get<double>(), 1e-5);
}

// Incremental decoding with the KV cache reproduces the reference logits.
TEST(GptTest, KvCacheMatchesReferenceLogits) {
  Json ref;
  Gpt net = LoadReferenceGpt(&ref);
  torch::NoGradGuard g;
  const auto& expected = ref["logits"];
  for (int b = 0; b < 2; ++b) {
    std::vector<int64_t> toks = ref["tokens"][b];
    toks.pop_back();  // the reference scores inputs[:-1]
    auto all = torch::tensor(toks, torch::kLong).unsqueeze(0);
    KvCache cache;
    std::vector<torch::Tensor> parts = {net->ForwardCached(all.slice(1, 0, 5), &cache)};
    for (int64_t t = 5; t < all.size(1); ++t) {
      parts.push_back(net->ForwardCached(all.slice(1, t, t + 1), &cache));
    }
    auto logits = torch::cat(parts, 1)[0];
    EXPECT_EQ(cache.length, all.size(1));
    double max_err = 0;
    for (int t = 0; t < logits.size(0); ++t)
      for (int v = 0; v < logits.size(1); ++v)
        max_err = std::max(max_err, std::abs(logits[t][v].item<double>() -
                                             expected[b][t][v].get<double>()));
    EXPECT_LT(max_err, 1e-4) << "sequence " << b;
  }
}

TEST(GptTest, FreshModelPredictsNearUniform) {
  ModelConfig c;
  c.vocab_size = 512;
  c.context_tokens = 32;
  c.d_model = 64;
  c.heads = 4;
  c.layers = 2;
  Gpt net(c);
  net->InitWeights(1);
  auto x = torch::randint(0, 512, {4, 33}, torch::kLong);
  torch::NoGradGuard g;
  double loss = net->Loss(x.slice(1, 0, -1), x.slice(1, 1)).item<double>();
  EXPECT_NEAR(loss, std::log(512.0), 0.15);
}

TEST(GptTest, CausalMaskHidesTheFuture) {
  ModelConfig c;
  c.vocab_size = 100;
  c.context_tokens = 16;
  c.d_model = 32;
  c.heads = 2;
  c.layers = 2;
  Gpt net(c);
  net->InitWeights(3);
  torch::NoGradGuard g;
  auto a = torch::randint(0, 100, {1, 10}, torch::kLong);
  auto b = a.clone();
  b[0][9] = (a[0][9].item<int64_t>() + 1) % 100;
  auto la = net->forward(a), lb = net->forward(b);
  EXPECT_TRUE(torch::allclose(la.slice(1, 0, 9), lb.slice(1, 0, 9), 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(la.slice(1, 9), lb.slice(1, 9)));
}

// The fused attention node gives the output and input gradient of the
// unfused one (matmul, mask, softmax, matmul under libtorch's autograd),
// for lengths within one 64-row block, across a partial one, and whole ones.
TEST(GptTest, FusedAttentionMatchesUnfusedAutograd) {
  torch::manual_seed(5);
  const int64_t heads = 4, C = 96;
  for (int64_t T : {1, 7, 150, 256}) {
    auto base = torch::randn({3, T, 3 * C});
    auto fused_in = base.clone().requires_grad_(true);
    auto plain_in = base.clone().requires_grad_(true);
    auto fused = FusedCausalSelfAttention(fused_in, heads);
    auto qkv = plain_in.view({3, T, 3, heads, C / heads}).permute({2, 0, 3, 1, 4});
    auto plain = CausalAttention(qkv[0], qkv[1], qkv[2], 0).transpose(1, 2).reshape({3, T, C});
    ASSERT_EQ(fused.sizes(), plain.sizes());
    EXPECT_TRUE(torch::allclose(fused, plain, 1e-5, 1e-5)) << "T=" << T;
    auto upstream = torch::randn({3, T, C});
    fused.backward(upstream);
    plain.backward(upstream);
    EXPECT_TRUE(torch::allclose(fused_in.grad(), plain_in.grad(), 1e-4, 1e-5))
        << "T=" << T << " max diff "
        << (fused_in.grad() - plain_in.grad()).abs().max().item<double>();
  }
}

TEST(SafetensorsTest, RoundTripIsBitExact) {
  auto a = torch::randn({3, 5});
  auto b = torch::randn({7});
  auto bytes = EncodeSafetensors({{"a", a}, {"b", b}});
  auto out = DecodeSafetensors(bytes);
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->size(), 2u);
  EXPECT_TRUE(torch::equal((*out)[0].second, a));
  EXPECT_TRUE(torch::equal((*out)[1].second, b));
}

TEST(SafetensorsTest, HostileInputIsRejectedNotTrusted) {
  auto good = EncodeSafetensors({{"a", torch::randn({4, 4})}});
  EXPECT_FALSE(DecodeSafetensors("").ok());
  EXPECT_FALSE(DecodeSafetensors(good.substr(0, good.size() - 1)).ok());
  std::string huge = good;
  huge[7] = '\x7f';  // header length far past the end
  EXPECT_FALSE(DecodeSafetensors(huge).ok());
  std::string lie = good;
  size_t pos = lie.find("[0,64]");
  ASSERT_NE(pos, std::string::npos);
  lie.replace(pos, 6, "[0,99]");
  EXPECT_FALSE(DecodeSafetensors(lie).ok());
  // Every truncation and every single-byte corruption of the header fails
  // cleanly or decodes in bounds; none may crash.
  for (size_t n = 0; n < good.size(); n += 3) (void)DecodeSafetensors(good.substr(0, n));
  for (size_t i = 0; i < 8 + 64 && i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    (void)DecodeSafetensors(bad);
  }
}

TEST(TokenizerTest, SentencePieceRoundTripsAndHasEos) {
  auto tok = LoadTokenizer(SmallTokenizer());
  ASSERT_TRUE(tok.ok()) << tok.status();
  std::string text = "The jury said it did find that many of the laws are outmoded.";
  auto ids = (*tok)->Encode(text);
  EXPECT_GT(ids.size(), 5u);
  EXPECT_LT(ids.size(), text.size());
  EXPECT_EQ((*tok)->Decode(ids), text);
  // Trained for 400 pieces without a hard limit: at most 400, and at least
  // the 256 byte-fallback pieces and <unk>, <s>, </s>.
  EXPECT_LE((*tok)->vocab_size(), 400);
  EXPECT_GE((*tok)->vocab_size(), 256 + 3);
  // EOS is an id of this vocabulary, a control piece: no text of its own,
  // never produced by encoding text.
  const int32_t eos = (*tok)->eos_id();
  ASSERT_TRUE(eos >= 0 && eos < (*tok)->vocab_size()) << eos;
  EXPECT_EQ((*tok)->Decode({eos}), "");
  std::vector<int32_t> with_eos = ids;
  with_eos.push_back(eos);
  EXPECT_EQ((*tok)->Decode(with_eos), text);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), eos), 0);
  // Byte fallback: text outside the training alphabet survives.
  std::string odd = "naïve 東京 🙂";
  EXPECT_EQ((*tok)->Decode((*tok)->Encode(odd)), odd);
  EXPECT_FALSE(LoadTokenizer("not a model").ok());
}

class LanguageModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tok = LoadTokenizer(SmallTokenizer());
    ASSERT_TRUE(tok.ok());
    ModelConfig c;
    c.vocab_size = (*tok)->vocab_size();
    c.context_tokens = 32;
    c.d_model = 32;
    c.heads = 2;
    c.layers = 1;
    auto m = LanguageModel::Create(c, std::move(*tok), 5);
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = *m;
  }
  std::shared_ptr<LanguageModel> model_;
};

TEST_F(LanguageModelTest, WeightsRoundTripThroughSafetensors) {
  std::string w = model_->SerializeWeights();
  auto copy = LanguageModel::Load(ModelConfigToJson(model_->config()), w,
                                  model_->tokenizer().serialized());
  ASSERT_TRUE(copy.ok()) << copy.status();
  EXPECT_EQ((*copy)->SerializeWeights(), w);
  ModelConfig other = model_->config();
  other.d_model = 64;
  auto wrong = LanguageModel::Load(ModelConfigToJson(other), w,
                                   model_->tokenizer().serialized());
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("shape"), std::string::npos);
}

TEST_F(LanguageModelTest, SequenceLossesAgreeWithBatchLoss) {
  std::vector<int32_t> seq;
  for (int i = 0; i < 33; ++i) seq.push_back((i * 7) % model_->tokenizer().vocab_size());
  auto losses = model_->SequenceLosses({seq, seq});
  ASSERT_EQ(losses.size(), 2u);
  EXPECT_EQ(losses[0].tokens, 32);
  std::vector<int64_t> s64(seq.begin(), seq.end());
  auto t = torch::tensor(s64, torch::kLong).unsqueeze(0);
  torch::NoGradGuard g;
  double mean = model_->net().Loss(t.slice(1, 0, -1), t.slice(1, 1)).item<double>();
  EXPECT_NEAR(losses[0].sum_nats / losses[0].tokens, mean, 1e-4);
  EXPECT_NEAR(losses[1].sum_nats, losses[0].sum_nats, 1e-4);
  // Longer than one context: windows still score every token but the first.
  std::vector<int32_t> longer(100, 5);
  EXPECT_EQ(model_->SequenceLosses({longer})[0].tokens, 99);
}

TEST_F(LanguageModelTest, RepetitionPenaltyAvoidsSeenTokensAndLongOutputsPassTheContext) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = 10;
  p.repetition_penalty = 1000;
  std::string prompt = "The jury said";
  auto c = model_->Generate(prompt, p);
  std::set<int32_t> seen;
  for (int32_t id : model_->tokenizer().Encode(prompt)) seen.insert(id);
  for (int32_t id : c.ids) {
    EXPECT_FALSE(seen.count(id)) << "token " << id << " repeated despite the penalty";
    seen.insert(id);
  }
  // Context is 32 tokens: 80 new tokens need the cache to be rebuilt.
  SamplingParams longer;
  longer.max_tokens = 80;
  longer.has_seed = true;
  longer.seed = 3;
  auto l = model_->Generate(prompt, longer);
  EXPECT_LE(l.ids.size(), 80u);
  if (l.finish_reason == "length") EXPECT_EQ(l.ids.size(), 80u);
}

TEST_F(LanguageModelTest, GenerationHonoursGreedySeedLengthAndStop) {
  SamplingParams greedy;
  greedy.temperature = 0;
  greedy.max_tokens = 8;
  auto a = model_->Generate("The jury", greedy);
  auto b = model_->Generate("The jury", greedy);
  EXPECT_EQ(a.ids, b.ids);
  // max_tokens unless EOS came first.
  if (a.finish_reason == "length") {
    EXPECT_EQ(a.ids.size(), 8u);
  } else {
    EXPECT_EQ(a.finish_reason, "stop");
    EXPECT_LT(a.ids.size(), 8u);
  }
  SamplingParams seeded;
  seeded.max_tokens = 12;
  seeded.has_seed = true;
  seeded.seed = 42;
  seeded.top_k = 50;
  seeded.top_p = 0.9;
  EXPECT_EQ(model_->Generate("A", seeded).ids, model_->Generate("A", seeded).ids);
  seeded.max_tokens = 3;
  auto c = model_->Generate("A", seeded);
  EXPECT_LE(c.ids.size(), 3u);
  if (c.ids.size() == 3u) EXPECT_EQ(c.finish_reason, "length");
  SamplingParams stop = greedy;
  stop.max_tokens = 20;
  auto full = model_->Generate("The", stop);
  if (full.text.size() > 2) {
    stop.stop = {full.text.substr(1, 1)};
    auto cut = model_->Generate("The", stop);
    EXPECT_EQ(cut.finish_reason, "stop");
    EXPECT_EQ(cut.text.find(stop.stop[0]), std::string::npos);
  }
}

}  // namespace
}  // namespace streamlm
