// LanguageModel: a GPT plus its tokenizer and config, as loaded from a
// snapshot. Weights travel as a safetensors byte string (F32).
//
// Thread-safety: after construction, Generate() and SequenceLosses() may run
// concurrently (no-grad, eval mode). net() is for the single owner
// that trains it.
#ifndef STREAMLM_MODEL_LANGUAGE_MODEL_H_
#define STREAMLM_MODEL_LANGUAGE_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/gpt.h"
#include "model/llama.h"
#include "model/model_config.h"
#include "model/sampling_params.h"
#include "model/tokenizer.h"

namespace streamlm {

struct Completion {
  std::string text;
  std::vector<int32_t> ids;
  // Log-probability of each id under the model (before sampling settings).
  std::vector<double> logprobs;
  std::string finish_reason;  // "stop" or "length"
  int prompt_tokens = 0;
};

struct SequenceLoss {
  double sum_nats = 0;
  int64_t tokens = 0;
};

// Sets libtorch's intra-op threads (0 = all cores) once per process.
void ConfigureTorchThreads(int threads);

// Sets the intra-op threads (OpenMP and OpenBLAS) of the calling thread only:
// the compute budget of one long-running part (learner, serving scheduler).
void SetThreadComputeBudget(int threads);

// Cores serving computes on while the learner works: the serving.threads
// key, or half the cores (at least 1) when it is 0.
int ServingThreads(const Config& config);

// Threads of the learner (and evaluator) under `config`: the `threads` key,
// or every core less ServingThreads() when serving runs in the same
// process; at least 1.
int LearnerThreads(const Config& config, bool serving_in_process);

// Logits of one position [V], cut to the tokenizer's ids, as float.
torch::Tensor VocabLogits(const torch::Tensor& logits, int vocab_size);

// Picks the next id from `logits` [V] (cut by VocabLogits) under `p`:
// repetition penalty over `context`, then greedy when temperature is 0, else
// temperature, top-k, top-p and a draw from `gen`.
int64_t SampleToken(torch::Tensor logits, const SamplingParams& p,
                    const std::vector<int32_t>& context, at::Generator& gen);

// log-softmax of `logits` [V]: the chosen id's value and the `top` best
// (id, logprob) pairs, best first.
struct TokenLogprob {
  double logprob = 0;
  std::vector<std::pair<int32_t, double>> top;
};
TokenLogprob LogprobOf(const torch::Tensor& logits, int64_t id, int top);

// This machine's fp32 matrix-multiply rate (GFLOP/s) on libtorch's threads:
// the best of 3 products of two 2048x2048 matrices. The denominator of MFU.
double MeasureGemmGflops();

class LanguageModel {
 public:
  // A freshly initialized model.
  [[nodiscard]] static absl::StatusOr<std::shared_ptr<LanguageModel>> Create(
      const ModelConfig& config, std::unique_ptr<Tokenizer> tokenizer,
      uint64_t seed);
  // A model from snapshot parts: config JSON, safetensors weights, tokenizer.
  [[nodiscard]] static absl::StatusOr<std::shared_ptr<LanguageModel>> Load(
      const Json& model_config, const std::string& weights,
      const std::string& tokenizer);

  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  CausalLm& net() { return *net_; }

  // Weights as safetensors bytes (F32, names from the module tree).
  std::string SerializeWeights() const;
  // Replaces the weights; every parameter must be present with its shape.
  [[nodiscard]] absl::Status LoadWeights(const std::string& safetensors);
  [[nodiscard]] absl::Status LoadTensors(const std::map<std::string, torch::Tensor>& by_name);

  // Next-token loss of each sequence (split into context-sized windows).
  std::vector<SequenceLoss> SequenceLosses(
      const std::vector<std::vector<int32_t>>& sequences,
      int batch_size = 16) const;

  Completion Generate(const std::string& prompt,
                      const SamplingParams& params) const;
  // The same from token ids (one sequence at a time, growing KV cache).
  Completion GenerateIds(const std::vector<int32_t>& prompt_ids,
                         const SamplingParams& params) const;

  // Per-token log-probabilities of `ids` (<= context tokens): entry i is the
  // logprob of ids[i] given ids[0..i) (entry 0 has none and is 0), with the
  // `top` best alternatives at each position.
  std::vector<TokenLogprob> PromptLogprobs(const std::vector<int32_t>& ids, int top) const;

 private:
  LanguageModel(ModelConfig config, std::unique_ptr<Tokenizer> tokenizer);
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::shared_ptr<CausalLm> net_;
};

// safetensors: name -> tensor. Decoding accepts F32, F16 and BF16 and returns
// F32 tensors (with the stored dtype in `dtypes` when given); encoding writes
// each tensor in `dtype` ("F32", "F16" or "BF16"). Hostile input gives an
// error, never an out-of-bounds read.
std::string EncodeSafetensors(
    const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
    const std::string& dtype = "F32");
// "F16" -> kHalf, "BF16" -> kBFloat16, anything else -> kFloat.
torch::ScalarType ScalarTypeForDtype(const std::string& dtype);
[[nodiscard]] absl::StatusOr<std::vector<std::pair<std::string, torch::Tensor>>>
DecodeSafetensors(const std::string& bytes, std::map<std::string, std::string>* dtypes = nullptr);

}  // namespace streamlm

#endif  // STREAMLM_MODEL_LANGUAGE_MODEL_H_
