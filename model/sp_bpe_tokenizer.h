// SentencePiece-style BPE from a Hugging Face tokenizer.json: the kind that
// Llama-2, TinyLlama, Mistral-7B-v0.1 and others ship (converted from a
// SentencePiece BPE model). LoadTokenizerJson() (bpe_tokenizer.h) sends every
// BPE tokenizer.json without a ByteLevel pre-tokenizer here.
//
// Encoding, as Hugging Face `tokenizers` does it:
//  1. added tokens are matched literally in the raw text (see
//     internal/added_tokens.h); the stretches between them go on alone;
//  2. normalizer: Prepend(s) (when the stretch is not empty) and
//     Replace(String -> s), alone or in a Sequence, or none;
//  3. pre-tokenizer: none (the stretch is one word), or Metaspace: spaces
//     become the replacement, which is prepended unless the stretch already
//     starts with it (prepend_scheme "always"; "first": only for a stretch at
//     the start of the text; "never"), and with `split` the stretch is cut
//     before each replacement;
//  4. BPE over Unicode characters: a character absent from the vocab becomes
//     the <0xXX> tokens of its UTF-8 bytes (byte_fallback) or the unk token
//     (consecutive ones fused with fuse_unk; dropped without an unk token);
//     adjacent symbols are merged lowest merge rank first, leftmost on ties.
// No BOS/EOS is added (the post_processor is not applied), as for the other
// tokenizers here.
//
// Decoding runs the decoder chain: Replace, ByteFallback, Fuse, Strip and
// Metaspace, alone or in a Sequence. With byte_fallback on, <0xXX> tokens are
// always reassembled into UTF-8 (a Metaspace-only decoder in Hugging Face
// would print them as written). Added tokens decode to their content.
//
// Invalid UTF-8 in the input: each bad byte becomes U+FFFD before encoding.
//
// Thread-safety: Encode/Decode are const and safe from many threads.
#ifndef STREAMLM_MODEL_SP_BPE_TOKENIZER_H_
#define STREAMLM_MODEL_SP_BPE_TOKENIZER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "common/json_util.h"
#include "model/tokenizer.h"

namespace streamlm {

// A parsed tokenizer.json of the SentencePiece-BPE kind. The error names the
// part that is missing, inconsistent or not supported.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceBpeJson(
    const Json& tokenizer_json);

}  // namespace streamlm

#endif  // STREAMLM_MODEL_SP_BPE_TOKENIZER_H_
