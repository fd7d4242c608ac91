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
                         ::testing::Values("gpt2", "llama", "qwen2", "llama3_rope",
                                           "llama_linear_rope"));

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
  // RoPE scalings other than linear and llama3 are refused by name.
  std::filesystem::copy(FixtureDir("llama"), dir.Sub("l"));
  auto cfg = ParseJson(ReadTestFile(dir.Sub("l/config.json")));
  ASSERT_TRUE(cfg.ok());
  for (const char* kind : {"yarn", "dynamic", "longrope"}) {
    (*cfg)["rope_scaling"] = {{"rope_type", kind}, {"factor", 2.0}};
    std::ofstream(dir.Sub("l/config.json"), std::ios::trunc) << cfg->dump();
    s = ImportHfCheckpoint(dir.Sub("l")).status();
    EXPECT_NE(s.message().find(std::string("'") + kind + "'"), std::string::npos) << s;
  }
  (*cfg)["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};  // fields missing
  std::ofstream(dir.Sub("l/config.json"), std::ios::trunc) << cfg->dump();
  EXPECT_FALSE(ImportHfCheckpoint(dir.Sub("l")).ok());
}

// tokenizer_config.json's chat_template (string or the list-of-{name,
// template} form, "default" picked) and special tokens (strings or
// AddedToken objects) are imported, kept in the model config through its
// JSON form (what snapshots store), and exported back.
TEST(HfCheckpointChatTemplateTest, ChatTemplateIsImportedKeptAndExported) {
  testing::TempDir dir;
  std::filesystem::copy(FixtureDir("llama"), dir.Sub("l"));
  const std::string tmpl =
      "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}{% endfor %}";
  Json tc = {{"bos_token", {{"__type", "AddedToken"}, {"content", "<s>"}, {"lstrip", false}}},
             {"eos_token", "</s>"},
             {"chat_template", Json::array({{{"name", "tool_use"}, {"template", "{{ tools }}"}},
                                            {{"name", "default"}, {"template", tmpl}}})}};
  std::ofstream(dir.Sub("l/tokenizer_config.json")) << tc.dump();
  auto model = ImportHfCheckpoint(dir.Sub("l"));
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelConfig& c = (*model)->config();
  EXPECT_EQ(c.chat_template, tmpl);
  EXPECT_EQ(c.bos_token, "<s>");
  EXPECT_EQ(c.eos_token, "</s>");

  Json stored = ModelConfigToJson(c);
  EXPECT_EQ(stored["chat_template"], tmpl);
  auto back = ModelConfigFromJson(stored);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->chat_template, tmpl);
  EXPECT_EQ(back->bos_token, "<s>");
  EXPECT_EQ(back->eos_token, "</s>");

  testing::TempDir out;
  ASSERT_TRUE(ExportHfCheckpoint(**model, out.path()).ok());
  auto exported = ParseJson(ReadTestFile(out.Sub("tokenizer_config.json")));
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_EQ((*exported)["chat_template"], tmpl);
  auto again = ImportHfCheckpoint(out.path());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->config().chat_template, tmpl);
  EXPECT_EQ((*again)->config().eos_token, "</s>");

  // The plain string form; and a model without one keeps none (and its
  // config JSON has no such keys).
  std::ofstream(dir.Sub("l/tokenizer_config.json"), std::ios::trunc)
      << Json{{"chat_template", "{{ messages[0]['content'] }}"}}.dump();
  auto plain = ImportHfCheckpoint(dir.Sub("l"));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ((*plain)->config().chat_template, "{{ messages[0]['content'] }}");
  EXPECT_EQ((*plain)->config().bos_token, "");
  auto none = ImportHfCheckpoint(FixtureDir("gpt2"));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ((*none)->config().chat_template, "");
  EXPECT_FALSE(ModelConfigToJson((*none)->config()).contains("chat_template"));

  // Several named templates and no "default": refused, as transformers does.
  std::ofstream(dir.Sub("l/tokenizer_config.json"), std::ios::trunc)
      << Json{{"chat_template", Json::array({{{"name", "rag"}, {"template", "x"}}})}}.dump();
  auto s = ImportHfCheckpoint(dir.Sub("l")).status();
  EXPECT_NE(s.message().find("'default'"), std::string::npos) << s;
}

// A Llama-2-style tokenizer.json (SentencePiece BPE, byte fallback) small
// enough for the llama fixture's 300-token vocabulary.
Json TinySentencePieceBpe() {
  Json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  int id = 259;
  for (const char* piece : {"▁", "t", "h", "e", "th", "the", "▁the", "r", "m", "a", "l"}) {
    vocab[piece] = id++;
  }
  Json added = Json::array();
  const char* specials[] = {"<unk>", "<s>", "</s>"};
  for (int i = 0; i < 3; ++i) {
    added.push_back(
        {{"id", i}, {"content", specials[i]}, {"special", true}, {"normalized", false}});
  }
  return {{"added_tokens", added},
          {"normalizer",
           {{"type", "Sequence"},
            {"normalizers",
             {{{"type", "Prepend"}, {"prepend", "▁"}},
              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}}},
          {"pre_tokenizer", nullptr},
          {"decoder",
           {{"type", "Sequence"},
            {"decoders",
             {{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
              {{"type", "ByteFallback"}},
              {{"type", "Fuse"}},
              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
          {"model",
           {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", true},
            {"byte_fallback", true}, {"vocab", vocab},
            {"merges", {"t h", "th e", "▁ the"}}}}};
}

// A Llama directory whose tokenizer.json is of the SentencePiece-BPE kind
// imports with that tokenizer.json, although a tokenizer.model sits beside it
// (one with 2000 pieces, too many for this model: choosing it would fail),
// and exports it back as tokenizer.json.
TEST(HfCheckpointTokenizerTest, SentencePieceBpeTokenizerJsonIsPreferred) {
  testing::TempDir dir;
  for (const char* f : {"config.json", "model.safetensors"}) {
    std::filesystem::copy(FixtureDir("llama") + "/" + f, dir.Sub(f));
  }
  std::filesystem::copy(testing::SourceDir() + "/tests/data/sp_bpe/tokenizer.model",
                        dir.Sub("tokenizer.model"));
  std::ofstream(dir.Sub("tokenizer.json")) << TinySentencePieceBpe().dump();
  auto model = ImportHfCheckpoint(dir.path());
  ASSERT_TRUE(model.ok()) << model.status();
  const Tokenizer& tok = (*model)->tokenizer();
  EXPECT_EQ(tok.vocab_size(), 270);
  EXPECT_EQ(tok.eos_id(), 2);
  // "▁the▁thermal": t+h, th+e, ▁+the twice; 's' is no piece: its byte.
  EXPECT_EQ(tok.Encode("the thermals"),
            (std::vector<int32_t>{265, 265, 266, 267, 268, 269, 3 + 's'}));
  EXPECT_EQ(tok.Decode(tok.Encode("the thermals")), "the thermals");

  testing::TempDir out;
  ASSERT_TRUE(ExportHfCheckpoint(**model, out.path()).ok());
  EXPECT_TRUE(std::filesystem::exists(out.Sub("tokenizer.json")));
  EXPECT_FALSE(std::filesystem::exists(out.Sub("tokenizer.model")));
  auto again = ImportHfCheckpoint(out.path());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->tokenizer().serialized(), tok.serialized());
  EXPECT_EQ((*again)->tokenizer().Encode("the thermals"), tok.Encode("the thermals"));
}

// A tokenizer.json of a kind still unsupported falls back to
// tokenizer.model; when both fail, the error names both.
TEST(HfCheckpointTokenizerTest, UnsupportedTokenizerJsonFallsBackToTokenizerModel) {
  testing::TempDir dir;
  for (const char* f : {"config.json", "model.safetensors"}) {
    std::filesystem::copy(FixtureDir("llama") + "/" + f, dir.Sub(f));
  }
  std::ofstream(dir.Sub("tokenizer.json")) << R"({"model": {"type": "WordPiece", "vocab": {}}})";
  std::ofstream(dir.Sub("tokenizer.model")) << "not a model";
  auto s = ImportHfCheckpoint(dir.path()).status();
  EXPECT_NE(s.message().find("tokenizer.json: "), std::string::npos) << s;
  EXPECT_NE(s.message().find("tokenizer.model: "), std::string::npos) << s;
  std::filesystem::copy(testing::SourceDir() + "/tests/data/sp_bpe/tokenizer.model",
                        dir.Sub("tokenizer.model"),
                        std::filesystem::copy_options::overwrite_existing);
  s = ImportHfCheckpoint(dir.path()).status();  // the .model is used: too big for this model
  EXPECT_NE(s.message().find("2000 pieces"), std::string::npos) << s;
}

}  // namespace
}  // namespace streamlm
