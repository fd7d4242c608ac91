// ModelConfig: the architecture of a StreamLM transformer. No tensors here.
#ifndef STREAMLM_MODEL_MODEL_CONFIG_H_
#define STREAMLM_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config.h"
#include "common/json_util.h"

namespace streamlm {

struct ModelConfig {
  std::string family = "gpt";  // "gpt" (GPT-2 style) or "llama"
  int vocab_size = 2048;
  int context_tokens = 128;
  int d_model = 128;
  int layers = 4;
  int heads = 4;
  // llama family only.
  int kv_heads = 0;           // grouped-query attention; 0 = heads
  int intermediate_size = 0;  // SwiGLU width; 0 = 4 * d_model
  double rope_theta = 10000.0;
  // RoPE scaling (config.json "rope_scaling"): "" (none), "linear" (every
  // frequency / factor) or "llama3" (low frequencies / factor, high ones
  // kept, a linear blend between, by wavelength against the original
  // context: Llama 3.1).
  std::string rope_scaling;
  double rope_factor = 1.0;
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;
  int rope_original_context = 8192;
  bool qkv_bias = false;      // Qwen2-style q/k/v biases
  bool tie_embeddings = true;
  // Both families.
  double norm_eps = 1e-5;
  // Element type of the weights as imported, kept for export ("F32", "F16", "BF16").
  std::string dtype = "F32";
  // Chat prompt format, from tokenizer_config.json on import (empty = none;
  // serving then uses DefaultChatTemplate()): the Jinja chat_template and
  // the special tokens it refers to.
  std::string chat_template;
  std::string bos_token;
  std::string eos_token;

  int kv_heads_or_heads() const { return kv_heads > 0 ? kv_heads : heads; }
  int intermediate_or_default() const {
    return intermediate_size > 0 ? intermediate_size : 4 * d_model;
  }

  // Parameters of the model (embeddings counted once: they are tied).
  int64_t ParameterCount() const;
  // Forward+backward FLOPs per trained token: 6 per matmul parameter plus
  // 12 * layers * context * d_model for attention.
  double TrainFlopsPerToken() const;
};

// The model.* keys of a Config; the error names the bad key.
[[nodiscard]] absl::StatusOr<ModelConfig> ModelConfigFromConfig(const Config& c);
[[nodiscard]] absl::Status ValidateModelConfig(const ModelConfig& m);
Json ModelConfigToJson(const ModelConfig& m);
[[nodiscard]] absl::StatusOr<ModelConfig> ModelConfigFromJson(const Json& j);

}  // namespace streamlm

#endif  // STREAMLM_MODEL_MODEL_CONFIG_H_
