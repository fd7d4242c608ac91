#include "bench/train_bench.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "learner/trainer.h"
#include "model/gpt.h"
#include "model/language_model.h"

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
    c.batch = defaults.bootstrap_batch_size;
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

Json RunTrainBench(const TrainBenchConfig& config) {
  std::shared_ptr<CausalLm> net = MakeCausalLm(config.model);
  net->InitWeights(1);
  torch::optim::AdamW opt(net->parameters(), torch::optim::AdamWOptions(1e-4));
  const int64_t T = config.model.context_tokens;
  auto data = torch::randint(0, config.model.vocab_size, {config.batch, T + 1}, torch::kLong);
  auto inputs = data.slice(1, 0, T), targets = data.slice(1, 1, T + 1);
  auto step = [&] {
    opt.zero_grad();
    auto loss = net->Loss(inputs, targets);
    loss.backward();
    opt.step();
  };
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
  for (const auto& p : net->parameters()) params += p.numel();
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
