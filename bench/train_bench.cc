#include "bench/train_bench.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "learner/trainer.h"
#include "model/language_model.h"
#include "model/token_blocks.h"
#include "model/tokenizer.h"

namespace streamlm {
absl::StatusOr<TrainBenchConfig> TrainBenchPreset(const std::string& name) {
  TrainBenchConfig c;
  c.name = name;
  if (name == "small") {
    c.model.vocab_size = 8192;
    c.model.context_tokens = 256;
    c.model.d_model = 384;
    c.model.layers = 6;
    c.model.heads = 6;
    c.batch = 8;
    c.steps = 8;
  } else if (name == "default") {
    Config defaults;
    auto m = ModelConfigFromConfig(defaults);
    if (!m.ok()) return m.status();
    c.model = *m;
    c.batch = defaults.bootstrap.batch_size;
    c.steps = 10;
  } else if (name == "tiny") {
    c.model.vocab_size = 256;
    c.model.context_tokens = 32;
    c.model.d_model = 32;
    c.model.layers = 1;
    c.model.heads = 2;
    c.batch = 4;
    c.steps = 3;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown bench config '", name, "' (small, default, tiny)"));
  }
  return c;
}

namespace {

// The bench trains on random ids: no text is encoded or decoded.
class RandomIdTokenizer : public Tokenizer {
 public:
  explicit RandomIdTokenizer(int vocab_size) : vocab_size_(vocab_size) {}
  std::vector<int32_t> Encode(std::string_view) const override { return {}; }
  std::string Decode(const std::vector<int32_t>&) const override { return ""; }
  int vocab_size() const override { return vocab_size_; }
  int32_t eos_id() const override { return 0; }
  const std::string& serialized() const override { return serialized_; }

 private:
  int vocab_size_;
  std::string serialized_;
};

}  // namespace

Json RunTrainBench(const TrainBenchConfig& config) {
  auto model = LanguageModel::Create(
      config.model, std::make_unique<RandomIdTokenizer>(config.model.vocab_size), /*seed=*/1);
  if (!model.ok()) return {{"config", config.name}, {"error", model.status().ToString()}};
  // The learner's step: AdamW (betas 0.9/0.95, weight decay 0.01), gradient
  // clipping, the loss read back, at the learner's default rate.
  Trainer trainer(*model, /*lr=*/1e-4);
  const int64_t T = config.model.context_tokens;
  torch::manual_seed(1);
  auto data = torch::randint(0, config.model.vocab_size, {config.batch, T + 1}, torch::kInt);
  std::vector<TokenBlock> blocks(config.batch);
  for (int b = 0; b < config.batch; ++b) {
    const int32_t* row = data[b].data_ptr<int32_t>();
    blocks[b].assign(row, row + T + 1);
  }
  auto step = [&] { trainer.Step(blocks, 1e-4); };
  step();
  step();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < config.steps; ++i) step();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double tokens_per_s = static_cast<double>(config.steps) * config.batch * T / seconds;
  double flops_per_token = config.model.TrainFlopsPerToken();
  double achieved = flops_per_token * tokens_per_s / 1e9;
  double gemm = MeasureGemmGflops();
  int64_t params = 0;
  for (const auto& p : trainer.model().net().parameters()) params += p.numel();
  return {{"config", config.name},
          {"params", params},
          {"batch", config.batch},
          {"context_tokens", T},
          {"steps", config.steps},
          {"tokens_per_s", tokens_per_s},
          {"flops_per_token", flops_per_token},
          {"achieved_gflops", achieved},
          {"gemm_gflops", gemm},
          {"mfu", achieved / gemm},
          {"threads", torch::get_num_threads()},
          {"device", "cpu"}};
}

}  // namespace streamlm
