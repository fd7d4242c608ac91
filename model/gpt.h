// GPT-style decoder-only transformer (libtorch): token + learned position
// embeddings, pre-LayerNorm blocks of causal self-attention and a GELU MLP,
// a final LayerNorm, and an output projection tied to the token embedding.
//
// Parameter names follow the module tree, e.g. "blocks.0.attn.qkv.weight";
// tests/data/gpt_reference.json uses the same names.
#ifndef STREAMLM_MODEL_GPT_H_
#define STREAMLM_MODEL_GPT_H_

#include <torch/torch.h>

#include "model/model_config.h"

namespace streamlm {

// Keys and values of the tokens seen so far, per layer, for incremental
// decoding. `length` tokens are cached; positions continue from there.
struct KvCache {
  std::vector<torch::Tensor> keys, values;  // [B, H, length, head_dim]
  int64_t length = 0;
};

// Keys and values of many sequences decoded together (continuous batching):
// row b of every tensor belongs to the sequence in slot b. Rows [0, B) are
// the active sequences of a step; their lengths differ, so each step passes
// every row's position. Capacity (dim 2) grows on demand up to the context.
struct SlotKvCache {
  std::vector<torch::Tensor> keys, values;  // per layer [slots, H_kv, capacity, head_dim]
};

// One decode step of B sequences: row b feeds one token at `positions[b]`
// and sees its own cached tokens 0..positions[b]-1 (`mask` hides the rest).
struct SlotStep {
  SlotKvCache* cache = nullptr;
  torch::Tensor positions;  // [B] int64
  torch::Tensor mask;       // [B, 1, 1, max_len] bool: true = hidden
  int64_t max_len = 0;      // max(positions) + 1
};

// Writes the new keys/values [B, H_kv, 1, hd] of `layer` at each row's
// position and returns the rows' keys and values [B, H_kv, max_len, hd].
std::pair<torch::Tensor, torch::Tensor> AppendToSlots(const SlotStep& step, int layer,
                                                      const torch::Tensor& k,
                                                      const torch::Tensor& v);

// softmax(q k^T / sqrt(hd), hiding step.mask) v for q [B, H, 1, hd].
torch::Tensor SlotAttention(const torch::Tensor& q, const torch::Tensor& k,
                            const torch::Tensor& v, const SlotStep& step);

// Appends this step's keys/values [B, H_kv, T_new, hd] of `layer` to the
// cache and returns all of the layer's keys and values so far.
std::pair<torch::Tensor, torch::Tensor> AppendToCache(KvCache* cache, int layer,
                                                      const torch::Tensor& k,
                                                      const torch::Tensor& v);

// softmax(q k^T / sqrt(hd) + causal mask) v for q [B, H, T_new, hd] whose
// tokens sit after `past` cached ones; k, v [B, H, past + T_new, hd].
torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, int64_t past);

// CausalAttention (past = 0) of every head of a fused q/k/v projection, as
// one autograd node: qkv [B, T, 3C] float on the CPU, where each token's row
// holds q, k and v, each as H heads of hd = C / H. Returns [B, T, C], each
// token's heads side by side (what CausalAttention's output is after
// transpose(1, 2) and reshape). The forward pass and the training step of
// the GPT family use it; decoding with a cache does not.
torch::Tensor FusedCausalSelfAttention(const torch::Tensor& qkv, int64_t heads);

// A decoder-only language model of either family.
class CausalLm : public torch::nn::Module {
 public:
  explicit CausalLm(const ModelConfig& config) : config_(config) {}
  // tokens: [B, T] int64 with T <= context_tokens. Returns logits [B, T, V].
  virtual torch::Tensor forward(const torch::Tensor& tokens) = 0;
  // Logits of `tokens` [B, T_new] placed after the `cache->length` cached
  // tokens; extends the cache. Requires cache->length + T_new <= context.
  // With `last_only`, only the last position's logits [B, 1, V] (a prefill
  // needs no more, and the output projection is a large part of its cost).
  virtual torch::Tensor ForwardCached(const torch::Tensor& tokens, KvCache* cache,
                                      bool last_only = false) = 0;
  // One decode step of the B sequences in slots [0, B) of `step.cache`:
  // tokens [B] int64. Returns logits [B, V]. Requires every position <
  // context and the cache's capacity > max position.
  virtual torch::Tensor ForwardSlots(const torch::Tensor& tokens, const SlotStep& step) = 0;
  // Random initialization for training from scratch.
  virtual void InitWeights(uint64_t seed) = 0;
  // Mean next-token cross-entropy (nats) of `targets` [B, T].
  torch::Tensor Loss(const torch::Tensor& tokens, const torch::Tensor& targets);
  const ModelConfig& config() const { return config_; }

 protected:
  ModelConfig config_;
};

// A fresh model of `config.family`.
std::shared_ptr<CausalLm> MakeCausalLm(const ModelConfig& config);

class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  CausalSelfAttentionImpl(int d_model, int heads);
  // x: [B, T_new, C]. With `cache`, attends to the cached keys/values of
  // layer `layer` too and appends the new ones.
  torch::Tensor forward(const torch::Tensor& x, KvCache* cache = nullptr, int layer = 0,
                        const SlotStep* step = nullptr);

 private:
  int heads_;
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr};
};
TORCH_MODULE(CausalSelfAttention);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int d_model, int heads, double eps);
  torch::Tensor forward(torch::Tensor x, KvCache* cache = nullptr, int layer = 0,
                        const SlotStep* step = nullptr);

 private:
  torch::nn::LayerNorm ln1_{nullptr}, ln2_{nullptr};
  CausalSelfAttention attn_{nullptr};
  torch::nn::Linear fc_{nullptr}, fc_proj_{nullptr};
};
TORCH_MODULE(Block);

class GptImpl : public CausalLm {
 public:
  explicit GptImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& tokens) override;
  torch::Tensor ForwardCached(const torch::Tensor& tokens, KvCache* cache,
                              bool last_only = false) override;
  torch::Tensor ForwardSlots(const torch::Tensor& tokens, const SlotStep& step) override;
  // GPT-2 initialization: N(0, 0.02), residual projections scaled by
  // 1/sqrt(2 * layers), zero biases, unit LayerNorm weights.
  void InitWeights(uint64_t seed) override;

 private:
  torch::nn::Embedding wte_{nullptr}, wpe_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm ln_f_{nullptr};
};
TORCH_MODULE(Gpt);

}  // namespace streamlm

#endif  // STREAMLM_MODEL_GPT_H_
