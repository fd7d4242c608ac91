// Tokenizer: text <-> token ids. SentencePiece is the implementation here;
// byte-level BPE (bpe_tokenizer.h) and SentencePiece-style BPE from a
// tokenizer.json (sp_bpe_tokenizer.h) join it behind the same interface.
// No tensors.
//
// Thread-safety: Encode/Decode are const and safe from many threads.
#ifndef STREAMLM_MODEL_TOKENIZER_H_
#define STREAMLM_MODEL_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace streamlm {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> Encode(std::string_view text) const = 0;
  virtual std::string Decode(const std::vector<int32_t>& ids) const = 0;
  virtual int vocab_size() const = 0;
  // Separates documents in packed training blocks.
  virtual int32_t eos_id() const = 0;
  // The bytes a snapshot stores; LoadTokenizer() reads them back.
  virtual const std::string& serialized() const = 0;
};

// Loads a tokenizer from the bytes of a snapshot: a SentencePiece model
// proto, or a BPE tokenizer.json of either kind (see LoadTokenizerJson()).
[[nodiscard]] absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& bytes);

// Loads a tokenizer from disk: a SentencePiece `.model` file, a
// `tokenizer.json`, or a directory holding one of those or GPT-2's
// `vocab.json` + `merges.txt` (also named `encoder.json` + `vocab.bpe`).
[[nodiscard]] absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFromPath(
    const std::string& path);

struct SentencePieceTrainOptions {
  int vocab_size = 4096;
  int threads = 1;
  int64_t max_sentences = 300000;
};

// Trains a SentencePiece unigram model on `sentences` with byte fallback (so
// any UTF-8 text is encodable) and returns the serialized model.
[[nodiscard]] absl::StatusOr<std::string> TrainSentencePiece(
    const std::vector<std::string>& sentences,
    const SentencePieceTrainOptions& options);

}  // namespace streamlm

#endif  // STREAMLM_MODEL_TOKENIZER_H_
