#include "model/gpt.h"

#include <cmath>

#include "absl/strings/match.h"

namespace streamlm {

namespace F = torch::nn::functional;

std::pair<torch::Tensor, torch::Tensor> AppendToCache(KvCache* cache, int layer,
                                                      const torch::Tensor& k,
                                                      const torch::Tensor& v) {
  if (static_cast<int>(cache->keys.size()) <= layer) {
    cache->keys.push_back(k);
    cache->values.push_back(v);
  } else {
    cache->keys[layer] = torch::cat({cache->keys[layer], k}, 2);
    cache->values[layer] = torch::cat({cache->values[layer], v}, 2);
  }
  return {cache->keys[layer], cache->values[layer]};
}

std::pair<torch::Tensor, torch::Tensor> AppendToSlots(const SlotStep& step, int layer,
                                                      const torch::Tensor& k,
                                                      const torch::Tensor& v) {
  const int64_t B = k.size(0);
  auto rows = torch::arange(B, torch::dtype(torch::kLong).device(k.device()));
  using torch::indexing::Slice;
  torch::Tensor& keys = step.cache->keys[layer];
  torch::Tensor& values = step.cache->values[layer];
  // Advanced indices on dims 0 and 2 put the indexed dims first: [B, H_kv, hd].
  keys.index_put_({rows, Slice(), step.positions}, k.squeeze(2));
  values.index_put_({rows, Slice(), step.positions}, v.squeeze(2));
  return {keys.slice(0, 0, B).slice(2, 0, step.max_len),
          values.slice(0, 0, B).slice(2, 0, step.max_len)};
}

torch::Tensor SlotAttention(const torch::Tensor& q, const torch::Tensor& k,
                            const torch::Tensor& v, const SlotStep& step) {
  auto att = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(q.size(-1))));
  att = torch::softmax(att.masked_fill(step.mask, -std::numeric_limits<float>::infinity()), -1);
  return torch::matmul(att, v);
}

torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, int64_t past) {
  const int64_t T = q.size(2);
  auto att = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(q.size(-1))));
  // New token i sits at position past + i and sees keys 0..past + i.
  auto mask = torch::ones({T, past + T}, torch::dtype(torch::kBool).device(q.device()))
                  .triu(past + 1);
  att = torch::softmax(att.masked_fill(mask, -std::numeric_limits<float>::infinity()), -1);
  return torch::matmul(att, v);
}

CausalSelfAttentionImpl::CausalSelfAttentionImpl(int d_model, int heads)
    : heads_(heads) {
  qkv_ = register_module("qkv", torch::nn::Linear(d_model, 3 * d_model));
  proj_ = register_module("proj", torch::nn::Linear(d_model, d_model));
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x, KvCache* cache,
                                               int layer, const SlotStep* step) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  const int64_t hd = C / heads_;
  auto qkv = qkv_(x).view({B, T, 3, heads_, hd}).permute({2, 0, 3, 1, 4});
  auto q = qkv[0], k = qkv[1], v = qkv[2];  // [B, H, T, hd]
  if (step != nullptr) {
    std::tie(k, v) = AppendToSlots(*step, layer, k, v);
    return proj_(SlotAttention(q, k, v, *step).transpose(1, 2).reshape({B, T, C}));
  }
  int64_t past = 0;
  if (cache != nullptr) {
    past = cache->length;
    std::tie(k, v) = AppendToCache(cache, layer, k, v);
  }
  auto y = CausalAttention(q, k, v, past).transpose(1, 2).reshape({B, T, C});
  return proj_(y);
}

BlockImpl::BlockImpl(int d_model, int heads, double eps) {
  ln1_ = register_module("ln1", torch::nn::LayerNorm(
                                    torch::nn::LayerNormOptions({d_model}).eps(eps)));
  attn_ = register_module("attn", CausalSelfAttention(d_model, heads));
  ln2_ = register_module("ln2", torch::nn::LayerNorm(
                                    torch::nn::LayerNormOptions({d_model}).eps(eps)));
  fc_ = register_module("fc", torch::nn::Linear(d_model, 4 * d_model));
  fc_proj_ = register_module("fc_proj", torch::nn::Linear(4 * d_model, d_model));
}

torch::Tensor BlockImpl::forward(torch::Tensor x, KvCache* cache, int layer,
                                 const SlotStep* step) {
  x = x + attn_(ln1_(x), cache, layer, step);
  // GPT-2 uses the tanh approximation of GELU (one fused op: it runs at
  // every decode step).
  auto h = torch::gelu(fc_(ln2_(x)), "tanh");
  return x + fc_proj_(h);
}

torch::Tensor CausalLm::Loss(const torch::Tensor& tokens, const torch::Tensor& targets) {
  auto logits = forward(tokens);
  return F::cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
}

GptImpl::GptImpl(const ModelConfig& config) : CausalLm(config) {
  wte_ = register_module("wte", torch::nn::Embedding(config.vocab_size, config.d_model));
  wpe_ = register_module("wpe", torch::nn::Embedding(config.context_tokens, config.d_model));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < config.layers; ++i) {
    blocks_->push_back(Block(config.d_model, config.heads, config.norm_eps));
  }
  ln_f_ = register_module("ln_f", torch::nn::LayerNorm(
                                      torch::nn::LayerNormOptions({config.d_model}).eps(config.norm_eps)));
}

torch::Tensor GptImpl::forward(const torch::Tensor& tokens) {
  const int64_t T = tokens.size(1);
  TORCH_CHECK(T <= config_.context_tokens, "sequence of ", T,
              " tokens exceeds the context of ", config_.context_tokens);
  auto pos = torch::arange(T, torch::dtype(torch::kLong).device(tokens.device()));
  auto x = wte_(tokens) + wpe_(pos);
  for (const auto& block : *blocks_) x = block->as<Block>()->forward(x);
  x = ln_f_(x);
  return torch::matmul(x, wte_->weight.t());
}

torch::Tensor GptImpl::ForwardCached(const torch::Tensor& tokens, KvCache* cache,
                                     bool last_only) {
  const int64_t T = tokens.size(1);
  TORCH_CHECK(cache->length + T <= config_.context_tokens, "cached decoding past the context of ",
              config_.context_tokens, " tokens");
  auto pos = torch::arange(cache->length, cache->length + T,
                           torch::dtype(torch::kLong).device(tokens.device()));
  auto x = wte_(tokens) + wpe_(pos);
  int layer = 0;
  for (const auto& block : *blocks_) x = block->as<Block>()->forward(x, cache, layer++);
  cache->length += T;
  if (last_only) x = x.slice(1, T - 1);
  x = ln_f_(x);
  return torch::matmul(x, wte_->weight.t());
}

torch::Tensor GptImpl::ForwardSlots(const torch::Tensor& tokens, const SlotStep& step) {
  TORCH_CHECK(step.max_len <= config_.context_tokens, "slot decoding past the context of ",
              config_.context_tokens, " tokens");
  auto x = (wte_(tokens) + wpe_(step.positions)).unsqueeze(1);  // [B, 1, C]
  int layer = 0;
  for (const auto& block : *blocks_) x = block->as<Block>()->forward(x, nullptr, layer++, &step);
  x = ln_f_(x.squeeze(1));
  return torch::matmul(x, wte_->weight.t());
}

void GptImpl::InitWeights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  const double residual_std = 0.02 / std::sqrt(2.0 * config_.layers);
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    torch::Tensor& t = p.value();
    if (absl::StrContains(name, "ln")) {
      if (absl::EndsWith(name, "weight")) t.fill_(1.0); else t.zero_();
    } else if (absl::EndsWith(name, "bias")) {
      t.zero_();
    } else {
      double std = (absl::EndsWith(name, "proj.weight")) ? residual_std : 0.02;
      t.normal_(0.0, std, gen);
    }
  }
}

}  // namespace streamlm
