#include "model/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "model/bpe_tokenizer.h"
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
  // Byte-level BPE is stored as tokenizer.json; SentencePiece as its proto.
  if (!bytes.empty() && bytes[0] == '{') return LoadTokenizerJson(bytes);
  auto t = std::make_unique<SentencePieceTokenizer>(bytes);
  absl::Status s = t->Init();
  if (!s.ok()) return s;
  return std::unique_ptr<Tokenizer>(std::move(t));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerFromPath(const std::string& path) {
  namespace fs = std::filesystem;
  auto exists = [&](const std::string& name) { return fs::exists(fs::path(path) / name); };
  if (fs::is_directory(path)) {
    for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
      if (exists(name)) return LoadTokenizerFromPath((fs::path(path) / name).string());
    }
    for (auto [vocab, merges] : {std::pair{"vocab.json", "merges.txt"},
                                 std::pair{"encoder.json", "vocab.bpe"}}) {
      if (exists(vocab) && exists(merges)) {
        auto v = ReadFileToString((fs::path(path) / vocab).string());
        if (!v.ok()) return v.status();
        auto m = ReadFileToString((fs::path(path) / merges).string());
        if (!m.ok()) return m.status();
        return LoadGpt2Bpe(*v, *m);
      }
    }
    return absl::NotFoundError(absl::StrCat(
        "'", path, "' holds no tokenizer.json, tokenizer.model or vocab.json + merges.txt"));
  }
  auto bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  return LoadTokenizer(*bytes);
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
