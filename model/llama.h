// Llama-family decoder (libtorch): RMSNorm, rotary positions, SwiGLU MLP,
// grouped-query attention, optional q/k/v biases (Qwen2), tied or separate
// output embedding. Parameter names are Hugging Face's LlamaForCausalLM
// names ("model.layers.0.self_attn.q_proj.weight"), so checkpoints map 1:1.
#ifndef STREAMLM_MODEL_LLAMA_H_
#define STREAMLM_MODEL_LLAMA_H_

#include <torch/torch.h>

#include "model/gpt.h"

namespace streamlm {

class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  double eps_;
  torch::Tensor weight_;
};
TORCH_MODULE(RmsNorm);

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  explicit LlamaAttentionImpl(const ModelConfig& c);
  // cos/sin: [T, head_dim] for the new tokens' positions.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos,
                        const torch::Tensor& sin, KvCache* cache, int layer,
                        const SlotStep* step = nullptr);

 private:
  int heads_, kv_heads_, head_dim_;
  torch::nn::Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, o_proj_{nullptr};
};
TORCH_MODULE(LlamaAttention);

class LlamaMlpImpl : public torch::nn::Module {
 public:
  explicit LlamaMlpImpl(const ModelConfig& c);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear gate_proj_{nullptr}, up_proj_{nullptr}, down_proj_{nullptr};
};
TORCH_MODULE(LlamaMlp);

class LlamaLayerImpl : public torch::nn::Module {
 public:
  explicit LlamaLayerImpl(const ModelConfig& c);
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin,
                        KvCache* cache, int layer, const SlotStep* step = nullptr);

 private:
  RmsNorm input_layernorm_{nullptr}, post_attention_layernorm_{nullptr};
  LlamaAttention self_attn_{nullptr};
  LlamaMlp mlp_{nullptr};
};
TORCH_MODULE(LlamaLayer);

// The "model." part of the checkpoint.
class LlamaBodyImpl : public torch::nn::Module {
 public:
  explicit LlamaBodyImpl(const ModelConfig& c);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RmsNorm norm{nullptr};
};
TORCH_MODULE(LlamaBody);

// RoPE frequencies (head_dim / 2, float64) under the config's rope scaling.
torch::Tensor ScaleRopeFrequencies(const torch::Tensor& inv_freq, const ModelConfig& c);

class LlamaImpl : public CausalLm {
 public:
  explicit LlamaImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& tokens) override;
  torch::Tensor ForwardCached(const torch::Tensor& tokens, KvCache* cache,
                              bool last_only = false) override;
  torch::Tensor ForwardSlots(const torch::Tensor& tokens, const SlotStep& step) override;
  // N(0, 0.02) weights, zero biases, unit norms.
  void InitWeights(uint64_t seed) override;

 private:
  torch::Tensor Run(const torch::Tensor& tokens, int64_t start, KvCache* cache,
                    bool last_only = false);
  torch::Tensor Head(const torch::Tensor& x);
  LlamaBody model_{nullptr};
  torch::nn::Linear lm_head_{nullptr};  // absent when tied
  torch::Tensor inv_freq_;
};
TORCH_MODULE(Llama);

}  // namespace streamlm

#endif  // STREAMLM_MODEL_LLAMA_H_
