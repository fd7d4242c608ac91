// Byte-level BPE (GPT-2, and tokenizer.json models of the ByteLevel kind such
// as Llama-3 and Qwen2). Encoding follows tiktoken: text is split by the
// pre-tokenizer pattern; a piece that is itself a token maps to it; otherwise
// adjacent parts are merged lowest-rank first, where a token's rank is its id.
// Added/special tokens are matched literally before pre-tokenization.
//
// Invalid UTF-8 in the input: each byte that is not part of a well-formed
// sequence is replaced by U+FFFD before encoding. Decode() output is valid
// UTF-8 the same way (partial sequences become U+FFFD).
//
// Thread-safety: Encode/Decode are const and safe from many threads (each
// thread keeps its own cache of encoded pieces).
#ifndef STREAMLM_MODEL_BPE_TOKENIZER_H_
#define STREAMLM_MODEL_BPE_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/tokenizer.h"

namespace streamlm {

// GPT-2's pre-tokenizer regex (hand-coded below; others go through PCRE2).
inline constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// GPT-2's `vocab.json` (encoder.json) and `merges.txt` (vocab.bpe) contents.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Tokenizer>> LoadGpt2Bpe(
    const std::string& vocab_json, const std::string& merges_txt);

// A Hugging Face `tokenizer.json` whose model is BPE: with a ByteLevel
// pre-tokenizer (optionally after a Split regex), plus added tokens, it is
// the byte-level kind above; with a Metaspace pre-tokenizer or none, the
// SentencePiece kind of Llama-2 and Mistral (see sp_bpe_tokenizer.h). Its
// serialized() form is the JSON again, so it round-trips through snapshots.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerJson(
    const std::string& tokenizer_json);

namespace bpe_internal {
// Splits `text` (valid UTF-8) into pre-tokens by GPT-2's pattern; returns
// byte offsets [begin, end) of each piece. Exposed for tests.
std::vector<std::pair<size_t, size_t>> SplitGpt2(const std::string& text);
// The same split done by PCRE2 with any pattern (the reference for SplitGpt2).
absl::StatusOr<std::vector<std::pair<size_t, size_t>>> SplitRegex(const std::string& pattern,
                                                                   const std::string& text);
}  // namespace bpe_internal

}  // namespace streamlm

#endif  // STREAMLM_MODEL_BPE_TOKENIZER_H_
