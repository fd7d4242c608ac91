#include "model/tokenizer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "model/internal/sentencepiece_wrapper.h"
namespace streamlm {
namespace {

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(std::string bytes) : bytes_(std::move(bytes)) {}
  absl::Status Init() {
    std::string error;
    if (!sp_.Load(bytes_, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("not a SentencePiece model: ", error));
    }
    if (sp_.eos_id() < 0) {
      return absl::InvalidArgumentError("SentencePiece model has no </s> piece");
    }
    return absl::OkStatus();
  }
  std::vector<int32_t> Encode(std::string_view text) const override {
    std::vector<int> ids = sp_.Encode(text);
    return std::vector<int32_t>(ids.begin(), ids.end());
  }
  std::string Decode(const std::vector<int32_t>& ids) const override {
    std::vector<int> in;
    in.reserve(ids.size());
    for (int32_t id : ids) {
      if (id >= 0 && id < sp_.size()) in.push_back(id);
    }
    return sp_.Decode(in);
  }
  int vocab_size() const override { return sp_.size(); }
  int32_t eos_id() const override { return sp_.eos_id(); }
  const std::string& serialized() const override { return bytes_; }

 private:
  std::string bytes_;
  tokenizer_internal::SpModel sp_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& bytes) {
  auto t = std::make_unique<SentencePieceTokenizer>(bytes);
  absl::Status s = t->Init();
  if (!s.ok()) return s;
  return std::unique_ptr<Tokenizer>(std::move(t));
}

absl::StatusOr<std::string> TrainSentencePiece(
    const std::vector<std::string>& sentences,
    const SentencePieceTrainOptions& options) {
  if (sentences.empty()) {
    return absl::InvalidArgumentError("tokenizer training needs some text");
  }
  std::string args = absl::StrCat(
      "--model_type=unigram --vocab_size=", options.vocab_size,
      " --character_coverage=0.9995 --byte_fallback=true"
      " --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1"
      " --max_sentence_length=16384 --shuffle_input_sentence=true"
      " --hard_vocab_limit=false --minloglevel=2"
      " --input_sentence_size=", options.max_sentences,
      " --num_threads=", std::max(1, options.threads));
  std::string model, error;
  if (!tokenizer_internal::TrainSp(sentences, args, &model, &error)) {
    return absl::InternalError(
        absl::StrCat("tokenizer training failed: ", error));
  }
  return model;
}

}  // namespace streamlm
