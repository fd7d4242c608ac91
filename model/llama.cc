#include "model/llama.h"

#include <cmath>

#include "absl/strings/match.h"

namespace streamlm {

std::shared_ptr<CausalLm> MakeCausalLm(const ModelConfig& config) {
  if (config.family == "llama") return std::make_shared<LlamaImpl>(config);
  return std::make_shared<GptImpl>(config);
}

RmsNormImpl::RmsNormImpl(int dim, double eps) : eps_(eps) {
  weight_ = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps_) * weight_;
}

LlamaAttentionImpl::LlamaAttentionImpl(const ModelConfig& c)
    : heads_(c.heads), kv_heads_(c.kv_heads_or_heads()), head_dim_(c.d_model / c.heads) {
  auto linear = [](int in, int out, bool bias) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
  };
  q_proj_ = register_module("q_proj", linear(c.d_model, heads_ * head_dim_, c.qkv_bias));
  k_proj_ = register_module("k_proj", linear(c.d_model, kv_heads_ * head_dim_, c.qkv_bias));
  v_proj_ = register_module("v_proj", linear(c.d_model, kv_heads_ * head_dim_, c.qkv_bias));
  o_proj_ = register_module("o_proj", linear(heads_ * head_dim_, c.d_model, false));
}

namespace {

// Hugging Face's rotate_half: (x1, x2) -> (-x2, x1) over the two halves.
torch::Tensor RotateHalf(const torch::Tensor& x) {
  int64_t half = x.size(-1) / 2;
  return torch::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

}  // namespace

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                          const torch::Tensor& sin, KvCache* cache,
                                          int layer, const SlotStep* step) {
  const int64_t B = x.size(0), T = x.size(1);
  auto q = q_proj_(x).view({B, T, heads_, head_dim_}).transpose(1, 2);
  auto k = k_proj_(x).view({B, T, kv_heads_, head_dim_}).transpose(1, 2);
  auto v = v_proj_(x).view({B, T, kv_heads_, head_dim_}).transpose(1, 2);
  q = q * cos + RotateHalf(q) * sin;
  k = k * cos + RotateHalf(k) * sin;
  int64_t past = 0;
  if (step != nullptr) {
    std::tie(k, v) = AppendToSlots(*step, layer, k, v);
  } else if (cache != nullptr) {
    past = cache->length;
    std::tie(k, v) = AppendToCache(cache, layer, k, v);
  }
  if (kv_heads_ != heads_) {  // each key/value head serves heads/kv_heads query heads
    k = k.repeat_interleave(heads_ / kv_heads_, 1);
    v = v.repeat_interleave(heads_ / kv_heads_, 1);
  }
  if (step != nullptr) {
    return o_proj_(SlotAttention(q, k, v, *step).transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
  }
  auto y = CausalAttention(q, k, v, past).transpose(1, 2).reshape({B, T, heads_ * head_dim_});
  return o_proj_(y);
}

LlamaMlpImpl::LlamaMlpImpl(const ModelConfig& c) {
  int ff = c.intermediate_or_default();
  auto linear = [](int in, int out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(false));
  };
  gate_proj_ = register_module("gate_proj", linear(c.d_model, ff));
  up_proj_ = register_module("up_proj", linear(c.d_model, ff));
  down_proj_ = register_module("down_proj", linear(ff, c.d_model));
}

torch::Tensor LlamaMlpImpl::forward(const torch::Tensor& x) {
  return down_proj_(torch::silu(gate_proj_(x)) * up_proj_(x));
}

LlamaLayerImpl::LlamaLayerImpl(const ModelConfig& c) {
  self_attn_ = register_module("self_attn", LlamaAttention(c));
  mlp_ = register_module("mlp", LlamaMlp(c));
  input_layernorm_ = register_module("input_layernorm", RmsNorm(c.d_model, c.norm_eps));
  post_attention_layernorm_ =
      register_module("post_attention_layernorm", RmsNorm(c.d_model, c.norm_eps));
}

torch::Tensor LlamaLayerImpl::forward(torch::Tensor x, const torch::Tensor& cos,
                                      const torch::Tensor& sin, KvCache* cache, int layer,
                                      const SlotStep* step) {
  x = x + self_attn_(input_layernorm_(x), cos, sin, cache, layer, step);
  return x + mlp_(post_attention_layernorm_(x));
}

LlamaBodyImpl::LlamaBodyImpl(const ModelConfig& c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.d_model));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < c.layers; ++i) layers->push_back(LlamaLayer(c));
  norm = register_module("norm", RmsNorm(c.d_model, c.norm_eps));
}

torch::Tensor ScaleRopeFrequencies(const torch::Tensor& inv_freq, const ModelConfig& c) {
  if (c.rope_scaling == "linear") return inv_freq / c.rope_factor;
  if (c.rope_scaling != "llama3") return inv_freq;
  // Llama 3.1: by wavelength against the original context, low frequencies
  // are divided by the factor, high ones kept, and the band between blends
  // the two linearly in (original / wavelength).
  const double original = c.rope_original_context;
  auto wavelen = 2 * M_PI / inv_freq;
  auto smooth = (original / wavelen - c.rope_low_freq_factor) /
                (c.rope_high_freq_factor - c.rope_low_freq_factor);
  auto blended = (1 - smooth) * inv_freq / c.rope_factor + smooth * inv_freq;
  auto out = torch::where(wavelen > original / c.rope_low_freq_factor, inv_freq / c.rope_factor,
                          blended);
  return torch::where(wavelen < original / c.rope_high_freq_factor, inv_freq, out);
}

LlamaImpl::LlamaImpl(const ModelConfig& config) : CausalLm(config) {
  model_ = register_module("model", LlamaBody(config));
  if (!config.tie_embeddings) {
    lm_head_ = register_module(
        "lm_head",
        torch::nn::Linear(torch::nn::LinearOptions(config.d_model, config.vocab_size).bias(false)));
  }
  const int64_t hd = config.d_model / config.heads;
  inv_freq_ = 1.0 / torch::pow(config.rope_theta,
                               torch::arange(0, hd, 2, torch::kDouble) / static_cast<double>(hd));
  inv_freq_ = ScaleRopeFrequencies(inv_freq_, config).to(torch::kFloat);
}

torch::Tensor LlamaImpl::Run(const torch::Tensor& tokens, int64_t start, KvCache* cache,
                             bool last_only) {
  const int64_t T = tokens.size(1);
  TORCH_CHECK(start + T <= config_.context_tokens, "sequence of ", start + T,
              " tokens exceeds the context of ", config_.context_tokens);
  auto pos = torch::arange(start, start + T, torch::kFloat);
  auto freqs = torch::outer(pos, inv_freq_);
  auto emb = torch::cat({freqs, freqs}, -1);
  auto cos = emb.cos().to(tokens.device()), sin = emb.sin().to(tokens.device());
  auto x = model_->embed_tokens(tokens);
  int layer = 0;
  for (const auto& l : *model_->layers) x = l->as<LlamaLayer>()->forward(x, cos, sin, cache, layer++);
  if (cache != nullptr) cache->length += T;
  return Head(last_only ? x.slice(1, T - 1) : x);
}

torch::Tensor LlamaImpl::Head(const torch::Tensor& x) {
  auto h = model_->norm(x);
  return lm_head_ ? lm_head_(h) : torch::matmul(h, model_->embed_tokens->weight.t());
}

torch::Tensor LlamaImpl::ForwardSlots(const torch::Tensor& tokens, const SlotStep& step) {
  TORCH_CHECK(step.max_len <= config_.context_tokens, "slot decoding past the context of ",
              config_.context_tokens, " tokens");
  const int64_t B = tokens.size(0);
  auto freqs = torch::outer(step.positions.to(torch::kFloat), inv_freq_);
  auto emb = torch::cat({freqs, freqs}, -1).view({B, 1, 1, -1});  // broadcasts over heads
  auto cos = emb.cos().to(tokens.device()), sin = emb.sin().to(tokens.device());
  auto x = model_->embed_tokens(tokens).unsqueeze(1);  // [B, 1, C]
  int layer = 0;
  for (const auto& l : *model_->layers) {
    x = l->as<LlamaLayer>()->forward(x, cos, sin, nullptr, layer++, &step);
  }
  return Head(x.squeeze(1));
}

torch::Tensor LlamaImpl::forward(const torch::Tensor& tokens) { return Run(tokens, 0, nullptr); }

torch::Tensor LlamaImpl::ForwardCached(const torch::Tensor& tokens, KvCache* cache,
                                       bool last_only) {
  return Run(tokens, cache->length, cache, last_only);
}

void LlamaImpl::InitWeights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& p : named_parameters()) {
    if (absl::StrContains(p.key(), "norm")) p.value().fill_(1.0);
    else if (absl::EndsWith(p.key(), "bias")) p.value().zero_();
    else p.value().normal_(0.0, 0.02, gen);
  }
}

}  // namespace streamlm
