// IncrementalDetokenizer: turns generated token ids into text pieces as they
// arrive, for streaming. Each Add() decodes only a short window of recent
// ids (cost independent of the output length) and never returns a piece that
// ends inside a UTF-8 character: bytes of an incomplete character (or a
// trailing U+FFFD from a partial byte-fallback sequence) are held until the
// next id completes them, or until Flush().
//
// Why a window: SentencePiece drops the leading space of a sequence's first
// piece, and byte-level BPE splits characters across ids, so a piece's text
// depends on its neighbours. Decoding ids[prefix, end) and ids[prefix, read)
// and taking the difference gives the text the new ids add (as in Hugging
// Face's TextStreamer and vLLM's incremental detokenization).
//
// Not thread-safe; one per sequence. No tensors.
#ifndef STREAMLM_MODEL_DETOKENIZER_H_
#define STREAMLM_MODEL_DETOKENIZER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/tokenizer.h"

namespace streamlm {

class IncrementalDetokenizer {
 public:
  // `prompt` gives the context the first generated ids are decoded after.
  IncrementalDetokenizer(const Tokenizer* tokenizer, const std::vector<int32_t>& prompt);
  // Appends a generated id; returns the text it completes (may be empty).
  std::string Add(int32_t id);
  // Text still held back (an incomplete character at the end of the output).
  std::string Flush();

 private:
  const Tokenizer* tokenizer_;
  std::vector<int32_t> ids_;  // a window of the prompt's tail, then the output
  size_t prefix_ = 0;         // window start
  size_t read_ = 0;           // ids before this are already emitted
};

// The text `id` adds after the ids `before` (only their last few matter):
// what a logprobs entry shows for the token. SentencePiece's word-initial
// space is kept, unlike Decode({id}); part of a UTF-8 character may show.
std::string TokenTextAfter(const Tokenizer& tokenizer, const std::vector<int32_t>& before,
                           int32_t id);

// Bytes of `s` that form complete UTF-8 characters from the start, i.e. the
// length of the longest prefix that does not end inside a character.
size_t CompleteUtf8Prefix(const std::string& s);

}  // namespace streamlm

#endif  // STREAMLM_MODEL_DETOKENIZER_H_
