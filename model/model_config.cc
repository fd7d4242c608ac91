#include "model/model_config.h"

#include "absl/strings/str_cat.h"

namespace streamlm {

int64_t ModelConfig::ParameterCount() const {
  int64_t d = d_model;
  if (family == "llama") {
    int64_t kv = int64_t{kv_heads_or_heads()} * (d / heads);
    int64_t ff = intermediate_or_default();
    int64_t per_layer = d * d + 2 * d * kv + d * d + 3 * d * ff + 2 * d +
                        (qkv_bias ? d + 2 * kv : 0);
    return int64_t{vocab_size} * d * (tie_embeddings ? 1 : 2) + layers * per_layer + d;
  }
  int64_t per_layer = 12 * d * d + 13 * d;  // qkv, proj, mlp, 2 LayerNorms
  return int64_t{vocab_size} * d + int64_t{context_tokens} * d +
         layers * per_layer + 2 * d;
}

double ModelConfig::TrainFlopsPerToken() const {
  // 6 FLOPs per matmul parameter per token (forward 2, backward 4): every
  // parameter except the position table, which is only looked up (the token
  // table counts once, as the tied output projection). Plus attention scores
  // and values: forward 2*T*d each per layer, x3 with backward (PaLM, app. B).
  double matmul_params = static_cast<double>(ParameterCount()) -
                         (family == "gpt" ? double(context_tokens) * d_model : 0.0) -
                         (family == "llama" && !tie_embeddings ? double(vocab_size) * d_model : 0.0);
  return 6.0 * matmul_params + 12.0 * layers * context_tokens * d_model;
}

absl::Status ValidateModelConfig(const ModelConfig& m) {
  if (m.family != "gpt" && m.family != "llama") {
    return absl::InvalidArgumentError(absl::StrCat(
        "model family '", m.family, "' is not supported (expected gpt or llama)"));
  }
  if (m.family == "llama" && (m.heads % m.kv_heads_or_heads() != 0 ||
                              (m.d_model / m.heads) % 2 != 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "llama model: kv_heads ", m.kv_heads_or_heads(), " must divide heads ", m.heads,
        " and the head size must be even"));
  }
  if (m.heads <= 0 || m.d_model % m.heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'model.heads': ", m.heads, " does not divide model.d_model ",
        m.d_model));
  }
  if (!m.rope_scaling.empty()) {
    if (m.rope_scaling != "linear" && m.rope_scaling != "llama3") {
      return absl::InvalidArgumentError(absl::StrCat(
          "rope scaling '", m.rope_scaling, "' is not supported (linear, llama3)"));
    }
    if (!(m.rope_factor > 0) ||
        (m.rope_scaling == "llama3" &&
         (!(m.rope_low_freq_factor > 0) || !(m.rope_high_freq_factor > m.rope_low_freq_factor) ||
          m.rope_original_context <= 0))) {
      return absl::InvalidArgumentError(
          "rope scaling: factor must be > 0; llama3 needs 0 < low_freq_factor < "
          "high_freq_factor and original_max_position_embeddings > 0");
    }
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
  m.vocab_size = c.model.vocab_size;
  m.context_tokens = c.model.context_tokens;
  m.d_model = c.model.d_model;
  m.layers = c.model.layers;
  m.heads = c.model.heads;
  absl::Status s = ValidateModelConfig(m);
  if (!s.ok()) return s;
  return m;
}

Json ModelConfigToJson(const ModelConfig& m) {
  Json j = {{"family", m.family},
          {"vocab_size", m.vocab_size},
          {"context_tokens", m.context_tokens},
          {"d_model", m.d_model},
          {"layers", m.layers},
          {"heads", m.heads},
          {"kv_heads", m.kv_heads},
          {"intermediate_size", m.intermediate_size},
          {"rope_theta", m.rope_theta},
          {"rope_scaling", m.rope_scaling},
          {"rope_factor", m.rope_factor},
          {"rope_low_freq_factor", m.rope_low_freq_factor},
          {"rope_high_freq_factor", m.rope_high_freq_factor},
          {"rope_original_context", m.rope_original_context},
          {"qkv_bias", m.qkv_bias},
          {"tie_embeddings", m.tie_embeddings},
          {"norm_eps", m.norm_eps},
          {"dtype", m.dtype}};
  // Written only when set, so configs without them stay as they were.
  if (!m.chat_template.empty()) j["chat_template"] = m.chat_template;
  if (!m.bos_token.empty()) j["bos_token"] = m.bos_token;
  if (!m.eos_token.empty()) j["eos_token"] = m.eos_token;
  return j;
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
    m.kv_heads = j.value("kv_heads", 0);
    m.intermediate_size = j.value("intermediate_size", 0);
    m.rope_theta = j.value("rope_theta", 10000.0);
    m.rope_scaling = j.value("rope_scaling", "");
    m.rope_factor = j.value("rope_factor", 1.0);
    m.rope_low_freq_factor = j.value("rope_low_freq_factor", 1.0);
    m.rope_high_freq_factor = j.value("rope_high_freq_factor", 4.0);
    m.rope_original_context = j.value("rope_original_context", 8192);
    m.qkv_bias = j.value("qkv_bias", false);
    m.tie_embeddings = j.value("tie_embeddings", true);
    m.norm_eps = j.value("norm_eps", 1e-5);
    m.dtype = j.value("dtype", "F32");
    m.chat_template = j.value("chat_template", "");
    m.bos_token = j.value("bos_token", "");
    m.eos_token = j.value("eos_token", "");
  } catch (const Json::exception& e) {
    return absl::DataLossError(absl::StrCat("model config: ", e.what()));
  }
  absl::Status s = ValidateModelConfig(m);
  if (!s.ok()) return s;
  return m;
}

}  // namespace streamlm
