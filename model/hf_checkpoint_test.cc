// Hugging Face checkpoints of each family (written by tools/hf_reference.py
// from independent PyTorch implementations) import with matching logits,
// with and without the KV cache, and survive export -> import bit for bit.
#include "model/hf_checkpoint.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::ReadTestFile;

std::string FixtureDir(const std::string& family) {
  return testing::SourceDir() + "/tests/data/hf/" + family;
}

double MaxError(const torch::Tensor& logits, const Json& expected) {
  double err = 0;
  for (int t = 0; t < logits.size(0); ++t)
    for (int v = 0; v < logits.size(1); ++v)
      err = std::max(err, std::abs(logits[t][v].item<double>() - expected[t][v].get<double>()));
  return err;
}

class HfCheckpointTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HfCheckpointTest, LogitsMatchReferenceWithAndWithoutCache) {
  auto model = ImportHfCheckpoint(FixtureDir(GetParam()));
  ASSERT_TRUE(model.ok()) << model.status();
  auto ref = ParseJson(ReadTestFile(FixtureDir(GetParam()) + "/expected_logits.json"));
  ASSERT_TRUE(ref.ok());
  torch::NoGradGuard g;
  for (int b = 0; b < 2; ++b) {
    std::vector<int64_t> toks = (*ref)["tokens"][b];
    auto input = torch::tensor(toks, torch::kLong).unsqueeze(0);
    EXPECT_LT(MaxError((*model)->net().forward(input)[0], (*ref)["logits"][b]), 1e-4)
        << GetParam() << " sequence " << b;
    KvCache cache;
    std::vector<torch::Tensor> parts = {(*model)->net().ForwardCached(input.slice(1, 0, 3), &cache)};
    for (int64_t t = 3; t < input.size(1); ++t) {
      parts.push_back((*model)->net().ForwardCached(input.slice(1, t, t + 1), &cache));
    }
    EXPECT_LT(MaxError(torch::cat(parts, 1)[0], (*ref)["logits"][b]), 1e-4)
        << GetParam() << " sequence " << b << " with the KV cache";
  }
}

TEST_P(HfCheckpointTest, ExportThenImportIsBitIdentical) {
  auto first = ImportHfCheckpoint(FixtureDir(GetParam()));
  ASSERT_TRUE(first.ok()) << first.status();
  testing::TempDir dir;
  ASSERT_TRUE(ExportHfCheckpoint(**first, dir.path()).ok());
  auto second = ImportHfCheckpoint(dir.path());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(ModelConfigToJson((*second)->config()), ModelConfigToJson((*first)->config()));
  auto a = (*first)->net().named_parameters(), b = (*second)->net().named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& p : a) {
    EXPECT_TRUE(torch::equal(p.value(), b[p.key()])) << p.key();
  }
  // Stored in the dtype it came in.
  std::map<std::string, std::string> dtypes;
  ASSERT_TRUE(DecodeSafetensors(ReadTestFile(dir.Sub("model.safetensors")), &dtypes).ok());
  for (const auto& [name, dtype] : dtypes) EXPECT_EQ(dtype, (*first)->config().dtype) << name;
  const std::string text = "the thermal sensor said: 3 errors, then 42!\n  Done.";
  EXPECT_EQ((*second)->tokenizer().Encode(text), (*first)->tokenizer().Encode(text));
  EXPECT_EQ((*first)->tokenizer().Decode((*first)->tokenizer().Encode(text)), text);
  SamplingParams p;
  p.max_tokens = 5;
  p.temperature = 0;
  EXPECT_EQ((*second)->Generate("the", p).ids, (*first)->Generate("the", p).ids);
}

INSTANTIATE_TEST_SUITE_P(Families, HfCheckpointTest,
                         ::testing::Values("gpt2", "llama", "qwen2"));

TEST(HfCheckpointErrorsTest, BadDirectoriesGiveClearErrors) {
  testing::TempDir dir;
  EXPECT_TRUE(absl::IsNotFound(ImportHfCheckpoint(dir.path()).status()));
  std::ofstream(dir.Sub("config.json")) << R"({"model_type": "bert"})";
  auto s = ImportHfCheckpoint(dir.path()).status();
  EXPECT_NE(s.message().find("bert"), std::string::npos) << s;
  std::filesystem::copy(FixtureDir("gpt2"), dir.Sub("g"));
  std::string w = ReadTestFile(dir.Sub("g/model.safetensors"));
  std::ofstream(dir.Sub("g/model.safetensors"), std::ios::binary) << w.substr(0, w.size() / 2);
  s = ImportHfCheckpoint(dir.Sub("g")).status();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("model.safetensors"), std::string::npos) << s;
}

}  // namespace
}  // namespace streamlm
