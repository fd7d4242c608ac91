// Built as the streamlm_sentencepiece module; see sentencepiece_wrapper.h
// for why it is loaded with dlopen. Includes no Abseil header.
#include <sentencepiece_processor.h>
#include <iostream>
#include <new>
#include <sentencepiece_trainer.h>

#include "model/internal/sentencepiece_wrapper.h"

namespace streamlm::tokenizer_internal {
namespace {

using Processor = sentencepiece::SentencePieceProcessor;

void* Load(const std::string& bytes, std::string* error) {
  auto* sp = new Processor();
  auto s = sp->LoadFromSerializedProto(bytes);
  if (!s.ok()) {
    *error = s.ToString();
    delete sp;
    return nullptr;
  }
  return sp;
}

void Destroy(void* m) { delete static_cast<Processor*>(m); }

void Encode(const void* m, std::string_view text, std::vector<int>* ids) {
  static_cast<const Processor*>(m)->Encode(text, ids).IgnoreError();
}

void Decode(const void* m, const std::vector<int>& ids, std::string* text) {
  static_cast<const Processor*>(m)->Decode(ids, text).IgnoreError();
}

int Size(const void* m) { return static_cast<const Processor*>(m)->GetPieceSize(); }
int EosId(const void* m) { return static_cast<const Processor*>(m)->eos_id(); }

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& v) : v_(v) {}
  bool done() const override { return i_ >= v_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return v_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& v_;
  size_t i_ = 0;
};

bool Train(const std::vector<std::string>& sentences, const std::string& args,
           std::string* model, std::string* error) {
  VectorIterator it(sentences);
  auto s = sentencepiece::SentencePieceTrainer::Train(args, &it, model);
  if (!s.ok()) *error = s.ToString();
  return s.ok();
}

const SpApi kApi = {Load, Destroy, Encode, Decode, Size, EosId, Train};

}  // namespace
}  // namespace streamlm::tokenizer_internal

// RTLD_DEEPBIND binds this module's references to libstdc++'s own std::cout,
// std::cerr and std::clog, but an executable that names them holds copies
// (copy relocations) and only those copies are constructed. Construct the
// originals as streams over the executable's buffers, so SentencePiece's
// logging writes where the program's does.
extern "C" __attribute__((visibility("default")))
void streamlm_sentencepiece_init(std::ostream* out, std::ostream* err,
                                 std::ostream* log) {
  if (&std::cout != out) new (&std::cout) std::ostream(out->rdbuf());
  if (&std::cerr != err) new (&std::cerr) std::ostream(err->rdbuf());
  if (&std::clog != log) new (&std::clog) std::ostream(log->rdbuf());
}

extern "C" __attribute__((visibility("default")))
const streamlm::tokenizer_internal::SpApi* streamlm_sentencepiece_api() {
  return &streamlm::tokenizer_internal::kApi;
}
