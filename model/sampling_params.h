// SamplingParams: how a generation request picks its tokens. Its own header
// (no tensors) so request parsing builds without libtorch
// (serving/request_parse.h).
#ifndef STREAMLM_MODEL_SAMPLING_PARAMS_H_
#define STREAMLM_MODEL_SAMPLING_PARAMS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace streamlm {

struct SamplingParams {
  int max_tokens = 16;
  double temperature = 1.0;  // 0 = greedy
  int top_k = 0;             // 0 = off
  double top_p = 1.0;        // 1 = off
  // CTRL-style: logits of tokens already in the context are divided by this
  // (multiplied when negative). 1 = off.
  double repetition_penalty = 1.0;
  std::vector<std::string> stop;
  // End-of-sequence is sampled like any token and does not end the output
  // (vLLM's `ignore_eos`: fixed-length outputs for benchmarks and tests).
  bool ignore_eos = false;
  uint64_t seed = 0;
  bool has_seed = false;
};

}  // namespace streamlm

#endif  // STREAMLM_MODEL_SAMPLING_PARAMS_H_
