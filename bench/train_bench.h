// `streamlm bench train`: training throughput and model FLOPs utilization.
#ifndef STREAMLM_BENCH_TRAIN_BENCH_H_
#define STREAMLM_BENCH_TRAIN_BENCH_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/json_util.h"
#include "model/model_config.h"

namespace streamlm {

struct TrainBenchConfig {
  std::string name;
  ModelConfig model;
  int batch = 8;
  int steps = 10;
};

// Named presets: "small" (d_model 384, 6 layers, 6 heads, context 256,
// vocabulary 8192, batch 8), "default" (the bootstrap model), "tiny".
[[nodiscard]] absl::StatusOr<TrainBenchConfig> TrainBenchPreset(const std::string& name);

// Trains on random tokens with the learner's step (Trainer::Step: clipping,
// AdamW, the loss read back) for `steps` timed steps (after 2 warm-up steps)
// and returns {"config", "params", "tokens_per_s", "flops_per_token",
// "achieved_gflops", "gemm_gflops", "mfu", "threads", "device"}, where
// gemm_gflops is a 2048^3 single-precision matmul on the same threads in the
// same run and mfu = achieved_gflops / gemm_gflops; {"config", "error"} if
// the preset's model cannot be built.
Json RunTrainBench(const TrainBenchConfig& config);

}  // namespace streamlm

#endif  // STREAMLM_BENCH_TRAIN_BENCH_H_
