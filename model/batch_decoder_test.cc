// BatchDecoder against one-sequence decoding (ForwardCached, itself checked
// against an independent PyTorch implementation in model_test): sequences of
// different lengths that join and leave a batch get the logits they would get
// alone, for both families (GPT, and Llama with grouped-query attention).
#include "model/batch_decoder.h"

#include <map>
#include <random>

#include "gtest/gtest.h"
#include "model/language_model.h"
#include "model/tokenizer.h"

namespace streamlm {
namespace {

// A tokenizer is needed only to build a LanguageModel; ids are drawn directly.
std::unique_ptr<Tokenizer> TinyTokenizer() {
  std::vector<std::string> lines;
  for (int i = 0; i < 400; ++i) {
    lines.push_back("the quick brown fox " + std::to_string(i) + " jumps over the lazy dog");
  }
  SentencePieceTrainOptions o;
  o.vocab_size = 320;
  auto bytes = TrainSentencePiece(lines, o);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  auto tok = LoadTokenizer(*bytes);
  EXPECT_TRUE(tok.ok());
  return std::move(*tok);
}

std::shared_ptr<LanguageModel> Model(const std::string& family) {
  ModelConfig c;
  c.family = family;
  c.vocab_size = 320;
  c.context_tokens = 24;
  c.d_model = 32;
  c.heads = 4;
  c.layers = 2;
  if (family == "llama") c.kv_heads = 2;
  auto m = LanguageModel::Create(c, TinyTokenizer(), 11);
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

// Logits [V] of the last position of `ids`, decoded alone.
torch::Tensor Alone(LanguageModel& m, const std::vector<int32_t>& ids) {
  torch::NoGradGuard g;
  std::vector<int64_t> wide(ids.begin(), ids.end());
  KvCache cache;
  // Prefill all but the last, then one cached step: the same path Generate takes.
  torch::Tensor out;
  if (wide.size() > 1) {
    m.net().ForwardCached(torch::tensor(std::vector<int64_t>(wide.begin(), wide.end() - 1),
                                        torch::kLong).unsqueeze(0), &cache);
  }
  out = m.net().ForwardCached(torch::tensor({wide.back()}, torch::kLong).unsqueeze(0), &cache);
  return out[0][-1];
}

class BatchDecoderTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchDecoderTest, JoiningAndLeavingSequencesGetTheirOwnLogits) {
  auto model = Model(GetParam());
  BatchDecoder dec(model, 4);
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> token(0, 63);
  struct Seq {
    std::vector<int32_t> ids;
    BatchDecoder::SeqId id = 0;
    torch::Tensor logits;
    int steps_left = 0;
  };
  std::vector<Seq> live;
  int added = 0, checked = 0;
  auto add = [&](int prompt_len, int steps) {
    Seq s;
    for (int i = 0; i < prompt_len; ++i) s.ids.push_back(token(rng));
    s.id = dec.Add(s.ids, &s.logits);
    s.steps_left = steps;
    live.push_back(s);
    ++added;
  };
  // Different prompt lengths; more join while others run; some leave early.
  add(3, 10);
  add(9, 4);
  add(1, 14);
  for (int round = 0; round < 16 && !live.empty(); ++round) {
    std::vector<std::pair<BatchDecoder::SeqId, int64_t>> feed;
    for (Seq& s : live) {
      // The batch's logits for this sequence equal its logits alone.
      auto expect = Alone(*model, s.ids);
      EXPECT_TRUE(torch::allclose(s.logits, expect, 1e-5, 1e-5))
          << GetParam() << " round " << round << " max diff "
          << (s.logits - expect).abs().max().item<double>();
      ++checked;
      int32_t next = token(rng);
      s.ids.push_back(next);
      feed.emplace_back(s.id, next);
    }
    // Leave: sequences whose budget ran out go before the step.
    std::vector<Seq> stay;
    std::vector<std::pair<BatchDecoder::SeqId, int64_t>> kept;
    for (size_t i = 0; i < live.size(); ++i) {
      if (--live[i].steps_left <= 0) {
        dec.Remove(live[i].id);
      } else {
        stay.push_back(live[i]);
        kept.push_back(feed[i]);
      }
    }
    live = stay;
    if (!kept.empty()) {
      auto logits = dec.Step(kept);
      for (size_t i = 0; i < live.size(); ++i) {
        live[i].logits = logits[i];
        EXPECT_EQ(dec.Length(live[i].id), static_cast<int64_t>(live[i].ids.size()));
      }
    }
    if (round == 2) add(5, 6);   // joins mid-flight
    if (round == 5) add(12, 5);  // joins into the slot a finished one left
  }
  EXPECT_EQ(added, 5);
  EXPECT_GE(checked, 35);
}

INSTANTIATE_TEST_SUITE_P(Families, BatchDecoderTest, ::testing::Values("gpt", "llama"));

}  // namespace
}  // namespace streamlm
