// Hugging Face checkpoint directories in and out: config.json, weights in
// model.safetensors or shards listed by model.safetensors.index.json (F32,
// F16, BF16), and the tokenizer (tokenizer.json, vocab.json + merges.txt, or
// tokenizer.model). GPT-2 ("gpt2") maps to the gpt family; Llama, Mistral
// and Qwen2 ("llama", "mistral", "qwen2") to the llama family.
#ifndef STREAMLM_MODEL_HF_CHECKPOINT_H_
#define STREAMLM_MODEL_HF_CHECKPOINT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/language_model.h"

namespace streamlm {

[[nodiscard]] absl::StatusOr<std::shared_ptr<LanguageModel>> ImportHfCheckpoint(
    const std::string& dir);

// Writes config.json, model.safetensors (in the model's original dtype) and
// the tokenizer (tokenizer.json or tokenizer.model) into `dir`.
[[nodiscard]] absl::Status ExportHfCheckpoint(LanguageModel& model, const std::string& dir);

}  // namespace streamlm

#endif  // STREAMLM_MODEL_HF_CHECKPOINT_H_
