// libFuzzer target: any bytes as a Hugging Face `tokenizer.json`, of either
// kind LoadTokenizerJson() takes (byte-level BPE as GPT-2, Llama-3 and Qwen2
// ship it; SentencePiece-style BPE as Llama-2 and Mistral ship it). Loading
// must fail with a Status or give a tokenizer whose Encode() returns ids in
// [0, vocab_size) for any text (invalid UTF-8 included), whose eos_id() is
// such an id or -1, and whose Decode() takes every id it can return.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "model/bpe_tokenizer.h"

namespace {

void CheckIds(const streamlm::Tokenizer& tok, const std::vector<int32_t>& ids) {
  for (int32_t id : ids) {
    if (id < 0 || id >= tok.vocab_size()) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string json(reinterpret_cast<const char*>(data), size);
  auto tok = streamlm::LoadTokenizerJson(json);
  if (!tok.ok()) return 0;
  const streamlm::Tokenizer& t = **tok;
  if (t.vocab_size() <= 0) std::abort();
  if (t.eos_id() < -1 || t.eos_id() >= t.vocab_size()) std::abort();
  // Text of every kind a tokenizer meets: ASCII words and digits, spaces
  // and newlines, accents, an emoji, CJK, special-token look-alikes, a
  // lone continuation byte and a truncated sequence (invalid UTF-8), and a
  // slice of the input itself (its own vocab strings).
  static const char* const kTexts[] = {
      "Hello, world! It's 2024: 3.14 + 42 = 45.14",
      "  leading  and\ttrailing \n\n spaces \r\n",
      "caf\xc3\xa9 na\xc3\xafve \xf0\x9f\x99\x82 \xe4\xbd\xa0\xe5\xa5\xbd",
      "<s>[INST] hi [/INST]</s><|endoftext|><|im_start|>user\n<unk>",
      "bad \x80 bytes \xe2\x82",
      ""};
  for (const char* text : kTexts) {
    std::vector<int32_t> ids = t.Encode(text);
    CheckIds(t, ids);
    (void)t.Decode(ids);
  }
  std::vector<int32_t> own = t.Encode(std::string_view(json).substr(0, 256));
  CheckIds(t, own);
  (void)t.Decode(own);
  // Every id decodes, alone and together (capped: vocabularies can be big).
  std::vector<int32_t> all;
  for (int32_t id = 0; id < t.vocab_size() && id < 512; ++id) all.push_back(id);
  (void)t.Decode(all);
  // The serialized form loads again (it is what a snapshot stores).
  auto again = streamlm::LoadTokenizerJson(t.serialized());
  if (!again.ok() || (*again)->vocab_size() != t.vocab_size()) std::abort();
  return 0;
}
