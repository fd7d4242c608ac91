// Private to model/: SentencePiece behind a header free of both SentencePiece
// and Abseil.
//
// Debian's libsentencepiece carries its own copy of protobuf-lite whose
// symbols collide with libprotobuf (which libtorch loads): whichever is found
// first in the global symbol scope breaks the other at start-up. So the
// SentencePiece calls live in a separate module (sentencepiece_module.cc,
// built as streamlm_sentencepiece.so) that is dlopen'ed with RTLD_DEEPBIND,
// binding it to its own protobuf copy while the process keeps libprotobuf.
// Sanitized builds, which cannot use RTLD_DEEPBIND, link a static
// SentencePiece into the module and keep all its symbols private instead.
// The module also keeps Debian SentencePiece's absl::string_view (its own
// type) away from Abseil's.
#ifndef STREAMLM_MODEL_INTERNAL_SENTENCEPIECE_WRAPPER_H_
#define STREAMLM_MODEL_INTERNAL_SENTENCEPIECE_WRAPPER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace streamlm::tokenizer_internal {

// Function table the module exports as `streamlm_sentencepiece_api`.
struct SpApi {
  void* (*load)(const std::string& bytes, std::string* error);
  void (*destroy)(void* model);
  void (*encode)(const void* model, std::string_view text, std::vector<int>* ids);
  void (*decode)(const void* model, const std::vector<int>& ids, std::string* text);
  int (*size)(const void* model);
  int (*eos_id)(const void* model);
  bool (*train)(const std::vector<std::string>& sentences, const std::string& args,
                std::string* model, std::string* error);
};

// The loaded module's table, or nullptr with `error` set.
const SpApi* GetSpApi(std::string* error);

class SpModel {
 public:
  SpModel() = default;
  ~SpModel();
  SpModel(const SpModel&) = delete;
  SpModel& operator=(const SpModel&) = delete;
  // False with `error` set when `bytes` is not a SentencePiece model.
  bool Load(const std::string& bytes, std::string* error);
  std::vector<int> Encode(std::string_view text) const;
  std::string Decode(const std::vector<int>& ids) const;
  int size() const { return api_->size(model_); }
  int eos_id() const { return api_->eos_id(model_); }

 private:
  const SpApi* api_ = nullptr;
  void* model_ = nullptr;
};

// Trains with SentencePiece's flag string `args` on `sentences`.
bool TrainSp(const std::vector<std::string>& sentences, const std::string& args,
             std::string* model, std::string* error);

}  // namespace streamlm::tokenizer_internal

#endif  // STREAMLM_MODEL_INTERNAL_SENTENCEPIECE_WRAPPER_H_
