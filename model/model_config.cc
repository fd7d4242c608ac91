#include "model/model_config.h"

#include "absl/strings/str_cat.h"

namespace streamlm {

int64_t ModelConfig::ParameterCount() const {
  int64_t d = d_model;
  int64_t per_layer = 12 * d * d + 13 * d;  // qkv, proj, mlp, 2 LayerNorms
  return int64_t{vocab_size} * d + int64_t{context_tokens} * d +
         layers * per_layer + 2 * d;
}

double ModelConfig::TrainFlopsPerToken() const {
  // 6 FLOPs per matmul parameter per token (forward 2, backward 4): every
  // parameter except the position table, which is only looked up (the token
  // table counts once, as the tied output projection). Plus attention scores
  // and values: forward 2*T*d each per layer, x3 with backward (PaLM, app. B).
  double matmul_params = static_cast<double>(ParameterCount()) - double(context_tokens) * d_model;
  return 6.0 * matmul_params + 12.0 * layers * context_tokens * d_model;
}

absl::Status ValidateModelConfig(const ModelConfig& m) {
  if (m.family != "gpt") {
    return absl::InvalidArgumentError(absl::StrCat(
        "model family '", m.family, "' is not supported (expected gpt)"));
  }
  if (m.heads <= 0 || m.d_model % m.heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'model.heads': ", m.heads, " does not divide model.d_model ",
        m.d_model));
  }
  if (m.vocab_size < 64 || m.context_tokens < 8 || m.layers < 1) {
    return absl::InvalidArgumentError(
        "config keys 'model.vocab_size' (>= 64), 'model.context_tokens' (>= 8) "
        "and 'model.layers' (>= 1) are out of range");
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ModelConfigFromConfig(const Config& c) {
  ModelConfig m;
  m.vocab_size = c.model_vocab_size;
  m.context_tokens = c.model_context_tokens;
  m.d_model = c.model_d_model;
  m.layers = c.model_layers;
  m.heads = c.model_heads;
  absl::Status s = ValidateModelConfig(m);
  if (!s.ok()) return s;
  return m;
}

Json ModelConfigToJson(const ModelConfig& m) {
  return {{"family", m.family},         {"vocab_size", m.vocab_size},
          {"context_tokens", m.context_tokens}, {"d_model", m.d_model},
          {"layers", m.layers},         {"heads", m.heads}};
}

absl::StatusOr<ModelConfig> ModelConfigFromJson(const Json& j) {
  ModelConfig m;
  try {
    m.family = j.at("family").get<std::string>();
    m.vocab_size = j.at("vocab_size").get<int>();
    m.context_tokens = j.at("context_tokens").get<int>();
    m.d_model = j.at("d_model").get<int>();
    m.layers = j.at("layers").get<int>();
    m.heads = j.at("heads").get<int>();
  } catch (const Json::exception& e) {
    return absl::DataLossError(absl::StrCat("model config: ", e.what()));
  }
  absl::Status s = ValidateModelConfig(m);
  if (!s.ok()) return s;
  return m;
}

}  // namespace streamlm
