#include "model/gpt.h"

#include <cmath>
#include <limits>

#include <ATen/Parallel.h>

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

namespace {

// x [..., in] through `linear`. at::linear turns a contiguous [B, T, in]
// input into one addmm with the bias fused in; the C++ frontend's Linear
// module multiplies first and then adds the bias in a second pass.
torch::Tensor ApplyLinear(const torch::nn::Linear& linear, const torch::Tensor& x) {
  return torch::linear(x, linear->weight, linear->bias);
}

// Rows (and key columns) per block. Products skip the blocks above the
// diagonal: at T = 256 they do 5/8 of the T x T work.
constexpr int64_t kAttentionBlock = 64;

// One head's [T, hd] slices of q, k, v (or of their gradients) inside a
// [B, T, 3C] projection, and of the output [B, T, C].
torch::Tensor HeadSlice(const torch::Tensor& qkv, int64_t b, int part, int64_t h,
                        int64_t heads) {
  const int64_t T = qkv.size(1), hd = qkv.size(2) / 3 / heads;
  return qkv.select(0, b).view({T, 3, heads, hd}).select(1, part).select(1, h);
}
torch::Tensor OutputSlice(const torch::Tensor& y, int64_t b, int64_t h, int64_t heads) {
  const int64_t T = y.size(1), hd = y.size(2) / heads;
  return y.select(0, b).view({T, heads, hd}).select(1, h);
}

// CausalAttention of the heads in a fused projection, as one autograd node:
// each (batch row, head) pair is one task of the intra-op threads (one
// single-threaded matrix product each, instead of bmm's products of all of
// them one after another on two threads), blocks above the diagonal are
// neither multiplied nor exponentiated, and the output and qkv's gradient
// are written in place in their [B, T, ...] layouts (no transposed copies).
class FusedCausalAttention : public torch::autograd::Function<FusedCausalAttention> {
 public:
  // qkv: [B, T, 3C] float, q k v each [T, H, hd] within a row. Returns
  // [B, T, C], each token's heads side by side.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& qkv_in,
                               int64_t heads) {
    const torch::Tensor qkv = qkv_in.detach().contiguous();
    const int64_t B = qkv.size(0), T = qkv.size(1), C = qkv.size(2) / 3;
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(C / heads)));
    auto probs = torch::empty({B, heads, T, T}, qkv.options());
    auto y = torch::empty({B, T, C}, qkv.options());
    at::parallel_for(0, B * heads, 1, [&](int64_t begin, int64_t end) {
      at::AutoDispatchBelowADInplaceOrView guard;
      for (int64_t i = begin; i < end; ++i) {
        const int64_t b = i / heads, h = i % heads;
        auto q = HeadSlice(qkv, b, 0, h, heads), k = HeadSlice(qkv, b, 1, h, heads);
        auto v = HeadSlice(qkv, b, 2, h, heads), yh = OutputSlice(y, b, h, heads);
        auto p = probs.select(0, b).select(0, h);  // [T, T]
        float* P = p.data_ptr<float>();
        for (int64_t r0 = 0; r0 < T; r0 += kAttentionBlock) {
          const int64_t r1 = std::min(T, r0 + kAttentionBlock);
          auto s = p.slice(0, r0, r1).slice(1, 0, r1);
          at::mm_out(s, q.slice(0, r0, r1), k.slice(0, 0, r1).t());
          // Row t sees keys 0..t; the rest of the block is 0 for the products.
          for (int64_t t = r0; t < r1; ++t) {
            float* row = P + t * T;
            float max = -std::numeric_limits<float>::infinity();
            for (int64_t j = 0; j <= t; ++j) max = std::max(max, row[j] * scale);
            float sum = 0;
            for (int64_t j = 0; j <= t; ++j) {
              row[j] = std::exp(row[j] * scale - max);
              sum += row[j];
            }
            const float inv = 1.0f / sum;
            for (int64_t j = 0; j <= t; ++j) row[j] *= inv;
            for (int64_t j = t + 1; j < r1; ++j) row[j] = 0;
          }
          auto out = yh.slice(0, r0, r1);
          at::mm_out(out, p.slice(0, r0, r1).slice(1, 0, r1), v.slice(0, 0, r1));
        }
      }
    });
    ctx->save_for_backward({qkv, probs});
    ctx->saved_data["heads"] = heads;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& qkv = saved[0];
    const torch::Tensor& probs = saved[1];
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const torch::Tensor dy = grads[0].contiguous();
    const int64_t B = qkv.size(0), T = qkv.size(1), C = qkv.size(2) / 3;
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(C / heads)));
    auto dqkv = torch::empty_like(qkv);
    auto dscores = torch::empty_like(probs);
    at::parallel_for(0, B * heads, 1, [&](int64_t begin, int64_t end) {
      at::AutoDispatchBelowADInplaceOrView guard;
      for (int64_t i = begin; i < end; ++i) {
        const int64_t b = i / heads, h = i % heads;
        auto q = HeadSlice(qkv, b, 0, h, heads), k = HeadSlice(qkv, b, 1, h, heads);
        auto v = HeadSlice(qkv, b, 2, h, heads), dyh = OutputSlice(dy, b, h, heads);
        auto dq = HeadSlice(dqkv, b, 0, h, heads), dk = HeadSlice(dqkv, b, 1, h, heads);
        auto dv = HeadSlice(dqkv, b, 2, h, heads);
        auto p = probs.select(0, b).select(0, h);
        auto ds = dscores.select(0, b).select(0, h);  // dP, then d(scores)
        const float* P = p.data_ptr<float>();
        float* dS = ds.data_ptr<float>();
        for (int64_t r0 = 0; r0 < T; r0 += kAttentionBlock) {
          const int64_t r1 = std::min(T, r0 + kAttentionBlock);
          auto dp = ds.slice(0, r0, r1).slice(1, 0, r1);
          at::mm_out(dp, dyh.slice(0, r0, r1), v.slice(0, 0, r1).t());
          // Softmax backward, with the score scale folded in.
          for (int64_t t = r0; t < r1; ++t) {
            const float* prow = P + t * T;
            float* drow = dS + t * T;
            float dot = 0;
            for (int64_t j = 0; j <= t; ++j) dot += prow[j] * drow[j];
            for (int64_t j = 0; j <= t; ++j) drow[j] = prow[j] * (drow[j] - dot) * scale;
            for (int64_t j = t + 1; j < r1; ++j) drow[j] = 0;
          }
          auto dq_rows = dq.slice(0, r0, r1);
          at::mm_out(dq_rows, ds.slice(0, r0, r1).slice(1, 0, r1), k.slice(0, 0, r1));
        }
        // Key block c is seen by query rows c0..T-1 only.
        for (int64_t c0 = 0; c0 < T; c0 += kAttentionBlock) {
          const int64_t c1 = std::min(T, c0 + kAttentionBlock);
          auto dv_rows = dv.slice(0, c0, c1), dk_rows = dk.slice(0, c0, c1);
          at::mm_out(dv_rows, p.slice(0, c0, T).slice(1, c0, c1).t(), dyh.slice(0, c0, T));
          at::mm_out(dk_rows, ds.slice(0, c0, T).slice(1, c0, c1).t(), q.slice(0, c0, T));
        }
      }
    });
    return {dqkv, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor FusedCausalSelfAttention(const torch::Tensor& qkv, int64_t heads) {
  return FusedCausalAttention::apply(qkv, heads);
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
  if (cache == nullptr && step == nullptr && x.scalar_type() == torch::kFloat && x.is_cpu()) {
    return ApplyLinear(proj_, FusedCausalSelfAttention(ApplyLinear(qkv_, x), heads_));
  }
  auto qkv = ApplyLinear(qkv_, x).view({B, T, 3, heads_, hd}).permute({2, 0, 3, 1, 4});
  auto q = qkv[0], k = qkv[1], v = qkv[2];  // [B, H, T, hd]
  if (step != nullptr) {
    std::tie(k, v) = AppendToSlots(*step, layer, k, v);
    return ApplyLinear(proj_, SlotAttention(q, k, v, *step).transpose(1, 2).reshape({B, T, C}));
  }
  int64_t past = 0;
  if (cache != nullptr) {
    past = cache->length;
    std::tie(k, v) = AppendToCache(cache, layer, k, v);
  }
  auto y = CausalAttention(q, k, v, past).transpose(1, 2).reshape({B, T, C});
  return ApplyLinear(proj_, y);
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
  auto h = torch::gelu(ApplyLinear(fc_, ln2_(x)), "tanh");
  return x + ApplyLinear(fc_proj_, h);
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
