// A small random language model with a SentencePiece tokenizer trained over
// a few words, for tests that need a model to serve but not a trained one.
// Needs libtorch (TORCH test targets only).
#ifndef STREAMLM_TESTS_UTIL_TINY_MODEL_H_
#define STREAMLM_TESTS_UTIL_TINY_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "model/language_model.h"
#include "model/model_config.h"
#include "model/tokenizer.h"

namespace streamlm::testing {

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
  ModelConfig c;
  c.vocab_size = (*tok)->vocab_size();
  c.context_tokens = 96;
  c.d_model = 32;
  c.heads = 4;
  c.layers = 2;
  auto m = LanguageModel::Create(c, std::move(*tok), 5);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : nullptr;
}

}  // namespace streamlm::testing

#endif  // STREAMLM_TESTS_UTIL_TINY_MODEL_H_
