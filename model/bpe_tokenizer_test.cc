#include "model/bpe_tokenizer.h"

#include <random>

#include "common/json_util.h"
#include "gtest/gtest.h"

namespace streamlm {
namespace {

using bpe_internal::SplitGpt2;
using bpe_internal::SplitRegex;

std::vector<std::string> Pieces(const std::string& text,
                                const std::vector<std::pair<size_t, size_t>>& spans) {
  std::vector<std::string> out;
  for (const auto& [b, e] : spans) out.push_back(text.substr(b, e - b));
  return out;
}

TEST(Gpt2SplitTest, HandWorkedExamples) {
  EXPECT_EQ(Pieces("Hello world!", SplitGpt2("Hello world!")),
            (std::vector<std::string>{"Hello", " world", "!"}));
  EXPECT_EQ(Pieces("don't  stop\n\n x", SplitGpt2("don't  stop\n\n x")),
            (std::vector<std::string>{"don", "'t", " ", " stop", "\n\n", " x"}));
  EXPECT_EQ(Pieces("a 123?!  ", SplitGpt2("a 123?!  ")),
            (std::vector<std::string>{"a", " 123", "?!", "  "}));
}

// The hand-coded splitter must agree with PCRE2 running GPT-2's regex, on
// random strings drawn from characters that exercise every branch.
TEST(Gpt2SplitTest, AgreesWithRegexEngineOnRandomText) {
  const std::vector<std::string> atoms = {
      "a", "Z", "é", "東", "ß", "1", "٣", "½", " ", "  ", "\n", "\t", "\r\n", "\u00a0",
      "\u3000", "'", "'s", "'ll", "'re", "'S", "!", "?", ".", ",", "🙂", "👍🏽", "e\u0301",
      "-", "_", "$", "\u200b", "x"};
  std::mt19937 rng(7);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string text;
    int n = 1 + rng() % 20;
    for (int i = 0; i < n; ++i) text += atoms[rng() % atoms.size()];
    auto reference = SplitRegex(kGpt2Pattern, text);
    ASSERT_TRUE(reference.ok());
    ASSERT_EQ(Pieces(text, SplitGpt2(text)), Pieces(text, *reference)) << "text: [" << text << "]";
  }
}

std::unique_ptr<Tokenizer> TinyBpe() {
  // Bytes map to themselves for printable ASCII; 'Ġ' is the space byte.
  Json vocab = Json::object();
  // All 256 byte tokens first, then merges "h e" -> he, "he llo"...
  std::vector<uint32_t> table(256);
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    table[b] = direct ? b : 256 + n++;
  }
  auto utf8 = [](uint32_t cp) {
    std::string s;
    if (cp < 0x80) s.push_back(static_cast<char>(cp));
    else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    return s;
  };
  for (int b = 0; b < 256; ++b) vocab[utf8(table[b])] = b;
  vocab["he"] = 256;
  vocab["ll"] = 257;
  vocab["hell"] = 258;
  vocab["Ġhe"] = 259;
  Json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}}},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"use_regex", true}}},
            {"added_tokens", {{{"id", 260}, {"content", "<|endoftext|>"}, {"special", true}}}}};
  auto t = LoadTokenizerJson(j.dump());
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(*t);
}

TEST(BpeTokenizerTest, MergesLowestRankFirst) {
  auto t = TinyBpe();
  // "hello": h e l l o -> (he=256) l l o -> he (ll=257) o -> (hell=258) o
  EXPECT_EQ(t->Encode("hello"), (std::vector<int32_t>{258, 'o'}));
  // " hello": he(256) first, then ll(257), then hell(258) beats Ġhe(259);
  // " hell" is no token, so the space stays alone.
  EXPECT_EQ(t->Encode(" hello"), (std::vector<int32_t>{' ', 258, 'o'}));
  EXPECT_EQ(t->Encode(" he"), (std::vector<int32_t>{259}));  // a whole-piece token
  EXPECT_EQ(t->Decode(t->Encode(" hello")), " hello");
}

TEST(BpeTokenizerTest, SpecialTokensAndInvalidUtf8Policy) {
  auto t = TinyBpe();
  EXPECT_EQ(t->eos_id(), 260);
  EXPECT_EQ(t->Encode("he<|endoftext|>he"), (std::vector<int32_t>{256, 260, 256}));
  EXPECT_EQ(t->Decode({256, 260}), "he<|endoftext|>");
  // Invalid bytes become U+FFFD (EF BF BD), encoded as its three bytes.
  EXPECT_EQ(t->Encode("a\xff"), (std::vector<int32_t>{'a', 0xEF, 0xBF, 0xBD}));
  EXPECT_EQ(t->Decode({0xE6}), "\xEF\xBF\xBD");  // a partial sequence decodes to U+FFFD
}

TEST(BpeTokenizerTest, BadTokenizerJsonIsAnError) {
  EXPECT_FALSE(LoadTokenizerJson("{").ok());
  EXPECT_FALSE(LoadTokenizerJson(R"({"model": {"type": "WordPiece"}})").ok());
  EXPECT_FALSE(LoadTokenizerJson(
                   R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "ByteLevel"}})")
                   .ok());  // lacks byte tokens
  EXPECT_FALSE(LoadTokenizerJson(
                   R"({"model": {"type": "BPE", "vocab": {}}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(("}}, {"type": "ByteLevel"}]}})")
                   .ok());
}

}  // namespace
}  // namespace streamlm
