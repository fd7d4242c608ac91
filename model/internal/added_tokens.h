// Private to model/: the "added_tokens" of a Hugging Face tokenizer.json
// (special tokens such as <s>, </s>, <|endoftext|>), shared by both BPE kinds.
//
// They are matched literally in the raw input before anything else, longest
// first at each position (Hugging Face's leftmost-longest match). The
// lstrip / rstrip / single_word / normalized flags are not honoured: every
// added token matches as written, wherever it occurs.
//
// Thread-safety: const methods are safe from many threads after Init().
#ifndef STREAMLM_MODEL_INTERNAL_ADDED_TOKENS_H_
#define STREAMLM_MODEL_INTERNAL_ADDED_TOKENS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/json_util.h"

namespace streamlm::tokenizer_internal {

class AddedTokens {
 public:
  // A stretch of the input: an added token (`added_id` >= 0) or plain text
  // (`added_id` == -1) to be encoded by the model. Byte offsets [begin, end).
  struct Piece {
    size_t begin;
    size_t end;
    int32_t added_id;
  };

  // Reads tokenizer.json's "added_tokens" (an array; null or absent means
  // none). Entries with empty content are skipped; ids must be in
  // [0, kMaxTokenId].
  [[nodiscard]] absl::Status Init(const Json& added_tokens);

  // `text` cut into plain stretches and added tokens, in order; no piece is
  // empty. Text without added tokens is one plain piece (none when empty).
  std::vector<Piece> Split(const std::string& text) const;

  // The end-of-sequence token: <|endoftext|>, </s> or <|end_of_text|> when
  // present, else the longest added token; -1 when there are none.
  int32_t eos_id() const { return eos_id_; }
  // The largest id, or -1 when there are none.
  int32_t max_id() const { return max_id_; }
  // (content, id), longest content first.
  const std::vector<std::pair<std::string, int32_t>>& tokens() const { return tokens_; }

  static constexpr int32_t kMaxTokenId = 1 << 24;

 private:
  std::vector<std::pair<std::string, int32_t>> tokens_;
  bool first_byte_[256] = {};  // some added token starts with this byte
  int32_t eos_id_ = -1;
  int32_t max_id_ = -1;
};

}  // namespace streamlm::tokenizer_internal

#endif  // STREAMLM_MODEL_INTERNAL_ADDED_TOKENS_H_
