// A small random language model with a SentencePiece tokenizer trained over
// a few words, for tests that need a model to serve but not a trained one.
// Needs libtorch (TORCH test targets only).
#ifndef STREAMLM_TESTS_UTIL_TINY_MODEL_H_
#define STREAMLM_TESTS_UTIL_TINY_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "common/json_util.h"
#include "model/bpe_tokenizer.h"
#include "model/language_model.h"
#include "model/model_config.h"
#include "model/tokenizer.h"
#include "store/store.h"

namespace streamlm::testing {

// A 2-layer, 32-wide random model over `tok`.
inline std::shared_ptr<LanguageModel> TinyModelWith(std::unique_ptr<Tokenizer> tok) {
  ModelConfig c;
  c.vocab_size = tok->vocab_size();
  c.context_tokens = 96;
  c.d_model = 32;
  c.heads = 4;
  c.layers = 2;
  auto m = LanguageModel::Create(c, std::move(tok), 5);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : nullptr;
}

// Reports failures to gtest and returns null.
inline std::shared_ptr<LanguageModel> TinyModel() {
  std::vector<std::string> lines;
  const char* words[] = {"harbour", "ship", "the",   "sailed", "north", "at",
                         "dawn",    "crew", "hello", "storm",  "user",  "assistant"};
  for (int i = 0; i < 600; ++i) {
    std::string l;
    for (int w = 0; w < 8; ++w) l += std::string(words[(i * 7 + w * 5) % 12]) + " ";
    lines.push_back(l);
  }
  SentencePieceTrainOptions o;
  o.vocab_size = 300;
  auto bytes = TrainSentencePiece(lines, o);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  if (!bytes.ok()) return nullptr;
  auto tok = LoadTokenizer(*bytes);
  EXPECT_TRUE(tok.ok()) << tok.status();
  if (!tok.ok()) return nullptr;
  return TinyModelWith(std::move(*tok));
}

// The same small random model over a byte-level BPE tokenizer with no
// merges (the 256 byte tokens and <|endoftext|>), which needs no
// SentencePiece: sanitized builds cannot load SentencePiece beside
// libtorch (model/internal/sentencepiece_wrapper.h), so tests that also run
// under a sanitizer use this one.
inline std::shared_ptr<LanguageModel> TinyByteModel() {
  Json vocab = Json::object();
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    // GPT-2's byte-to-unicode table: printable bytes stand for themselves,
    // the others map to code points from 256 up.
    const bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const uint32_t cp = direct ? static_cast<uint32_t>(b) : static_cast<uint32_t>(next++);
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    vocab[s] = b;
  }
  Json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}}},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"use_regex", true}}},
            {"added_tokens", {{{"id", 256}, {"content", "<|endoftext|>"}, {"special", true}}}}};
  auto tok = LoadTokenizerJson(j.dump());
  EXPECT_TRUE(tok.ok()) << tok.status();
  if (!tok.ok()) return nullptr;
  return TinyModelWith(std::move(*tok));
}

// `model` as a stored snapshot with id `id` (origin "bootstrap").
inline Snapshot ModelSnapshot(const LanguageModel& model, const std::string& id) {
  Snapshot snap;
  snap.meta.id = id;
  snap.meta.origin = "bootstrap";
  snap.meta.model_config = ModelConfigToJson(model.config());
  snap.weights = model.SerializeWeights();
  snap.tokenizer = model.tokenizer().serialized();
  return snap;
}

}  // namespace streamlm::testing

#endif  // STREAMLM_TESTS_UTIL_TINY_MODEL_H_
