#include "model/detokenizer.h"

#include <algorithm>

namespace streamlm {
namespace {

// Ids of prompt context decoded before the first output id.
constexpr size_t kContextIds = 6;
constexpr char kReplacement[] = "\xEF\xBF\xBD";

bool HasVisible(const std::string& s) { return s.find_first_not_of(" \t\n\r") != std::string::npos; }

bool EndsWithReplacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, kReplacement) == 0;
}

}  // namespace

size_t CompleteUtf8Prefix(const std::string& s) {
  // Walk back over at most 3 continuation bytes to the last lead byte.
  size_t n = s.size();
  size_t i = n;
  int back = 0;
  while (i > 0 && back < 4) {
    unsigned char c = static_cast<unsigned char>(s[i - 1]);
    if ((c & 0xC0) != 0x80) break;  // not a continuation byte
    --i;
    ++back;
  }
  if (i == 0) return back == 0 ? 0 : n;  // only continuation bytes: let them through
  unsigned char lead = static_cast<unsigned char>(s[i - 1]);
  size_t need = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3
                : (lead >> 3) == 0x1E ? 4 : 1;  // invalid lead bytes pass as they are
  size_t have = static_cast<size_t>(back) + 1;
  return have >= need ? n : i - 1;
}

std::string TokenTextAfter(const Tokenizer& tokenizer, const std::vector<int32_t>& before,
                           int32_t id) {
  // Enough context that its text has a visible character (see Add()).
  size_t keep = std::min(before.size(), kContextIds);
  std::vector<int32_t> head(before.end() - keep, before.end());
  std::string a = tokenizer.Decode(head);
  while (keep < before.size() && keep < 64 && !HasVisible(a)) {
    keep = std::min(before.size(), keep * 2);
    head.assign(before.end() - keep, before.end());
    a = tokenizer.Decode(head);
  }
  head.push_back(id);
  std::string b = tokenizer.Decode(head);
  if (b.size() >= a.size() && b.compare(0, a.size(), a) == 0) return b.substr(a.size());
  return tokenizer.Decode({id});
}

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer* tokenizer,
                                               const std::vector<int32_t>& prompt)
    : tokenizer_(tokenizer) {
  size_t keep = std::min(prompt.size(), kContextIds);
  ids_.assign(prompt.end() - keep, prompt.end());
  prefix_ = 0;
  read_ = ids_.size();
}

std::string IncrementalDetokenizer::Add(int32_t id) {
  ids_.push_back(id);
  std::vector<int32_t> head(ids_.begin() + prefix_, ids_.begin() + read_);
  std::vector<int32_t> all(ids_.begin() + prefix_, ids_.end());
  std::string before = tokenizer_->Decode(head);
  std::string after = tokenizer_->Decode(all);
  if (after.size() <= before.size() || after.compare(0, before.size(), before) != 0 ||
      EndsWithReplacement(after)) {
    return "";  // an incomplete character: wait for more ids
  }
  std::string piece = after.substr(before.size());
  size_t complete = CompleteUtf8Prefix(piece);
  if (complete < piece.size()) return "";
  // Slide the window: the new ids become the context of the next ones, but
  // only if their text has a visible character. Decoders drop whitespace at
  // the start of a sequence (SentencePiece's word-initial space), so a
  // window that starts with whitespace-only pieces would lose the spaces of
  // the next ones.
  if (HasVisible(piece)) prefix_ = read_;
  read_ = ids_.size();
  if (prefix_ > 64) {  // keep the vector short
    size_t drop = prefix_;
    ids_.erase(ids_.begin(), ids_.begin() + drop);
    prefix_ -= drop;
    read_ -= drop;
  }
  return piece;
}

std::string IncrementalDetokenizer::Flush() {
  if (read_ >= ids_.size()) return "";
  std::vector<int32_t> head(ids_.begin() + prefix_, ids_.begin() + read_);
  std::vector<int32_t> all(ids_.begin() + prefix_, ids_.end());
  std::string before = tokenizer_->Decode(head);
  std::string after = tokenizer_->Decode(all);
  read_ = ids_.size();
  prefix_ = read_;
  if (after.compare(0, before.size(), before) == 0) return after.substr(before.size());
  return tokenizer_->Decode(std::vector<int32_t>(all.begin() + head.size(), all.end()));
}

}  // namespace streamlm
