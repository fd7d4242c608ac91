#include "model/internal/added_tokens.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace streamlm::tokenizer_internal {

absl::Status AddedTokens::Init(const Json& added_tokens) {
  if (added_tokens.is_null()) return absl::OkStatus();
  if (!added_tokens.is_array()) {
    return absl::InvalidArgumentError("tokenizer.json: added_tokens is not an array");
  }
  for (const Json& a : added_tokens) {
    if (!a.is_object() || !a.contains("content") || !a["content"].is_string() ||
        !a.contains("id") || !a["id"].is_number_integer()) {
      return absl::InvalidArgumentError(
          "tokenizer.json: each added token needs a string content and an integer id");
    }
    std::string content = a["content"].get<std::string>();
    int64_t id = a["id"].get<int64_t>();
    if (id < 0 || id > kMaxTokenId) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: added token '", content,
                                                     "' has id ", id, " outside [0, ", kMaxTokenId,
                                                     "]"));
    }
    if (content.empty()) continue;
    tokens_.emplace_back(content, static_cast<int32_t>(id));
    first_byte_[static_cast<unsigned char>(content[0])] = true;
    max_id_ = std::max(max_id_, static_cast<int32_t>(id));
    if (content == "<|endoftext|>" || content == "</s>" || content == "<|end_of_text|>") {
      eos_id_ = static_cast<int32_t>(id);
    }
  }
  std::stable_sort(tokens_.begin(), tokens_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  if (eos_id_ < 0 && !tokens_.empty()) eos_id_ = tokens_.front().second;
  return absl::OkStatus();
}

std::vector<AddedTokens::Piece> AddedTokens::Split(const std::string& text) const {
  std::vector<Piece> out;
  size_t pos = 0, plain = 0;
  while (pos < text.size()) {
    bool matched = false;
    if (first_byte_[static_cast<unsigned char>(text[pos])]) {
      for (const auto& [content, id] : tokens_) {
        if (text.compare(pos, content.size(), content) == 0) {
          if (pos > plain) out.push_back({plain, pos, -1});
          out.push_back({pos, pos + content.size(), id});
          pos += content.size();
          plain = pos;
          matched = true;
          break;
        }
      }
    }
    if (!matched) ++pos;
  }
  if (plain < text.size()) out.push_back({plain, text.size(), -1});
  return out;
}

}  // namespace streamlm::tokenizer_internal
