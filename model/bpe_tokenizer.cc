#include "model/bpe_tokenizer.h"

#include <utf8proc.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <unordered_map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/json_util.h"
#include "model/internal/added_tokens.h"
#include "model/sp_bpe_tokenizer.h"

namespace streamlm {
namespace {

// ------------------------------------------------------------------ unicode

// Decodes one code point at s[i] (valid UTF-8 assumed); sets *len.
inline uint32_t CodePointAt(const std::string& s, size_t i, size_t* len) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    *len = 1;
    return c;
  }
  if ((c & 0xE0) == 0xC0) {
    *len = 2;
    return ((c & 0x1Fu) << 6) | (s[i + 1] & 0x3F);
  }
  if ((c & 0xF0) == 0xE0) {
    *len = 3;
    return ((c & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3F);
  }
  *len = 4;
  return ((c & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) |
         (s[i + 3] & 0x3F);
}

enum class CharClass { kLetter, kNumber, kSpace, kOther };

// Unicode White_Space property (what \s matches in tiktoken's regex engine).
inline bool IsWhiteSpace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

inline CharClass Classify(uint32_t cp) {
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return CharClass::kLetter;
    if (cp >= '0' && cp <= '9') return CharClass::kNumber;
    if (IsWhiteSpace(cp)) return CharClass::kSpace;
    return CharClass::kOther;
  }
  if (IsWhiteSpace(cp)) return CharClass::kSpace;
  utf8proc_category_t cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  if (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) return CharClass::kLetter;
  if (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO) return CharClass::kNumber;
  return CharClass::kOther;
}

// GPT-2's byte <-> printable-unicode table used in vocab.json and merges.txt.
std::vector<uint32_t> BytesToUnicode() {
  std::vector<uint32_t> table(256);
  std::vector<bool> direct(256, false);
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  int n = 0;
  for (int b = 0; b < 256; ++b) table[b] = direct[b] ? b : 256 + n++;
  return table;
}

// Maps a vocab.json token string (byte-level unicode) back to raw bytes.
absl::StatusOr<std::string> UnmapToken(const std::string& token,
                                       const std::unordered_map<uint32_t, uint8_t>& inverse) {
  if (!IsValidUtf8(token)) return absl::InvalidArgumentError("vocab token is not UTF-8");
  std::string out;
  for (size_t i = 0; i < token.size();) {
    size_t len;
    uint32_t cp = CodePointAt(token, i, &len);
    auto it = inverse.find(cp);
    if (it == inverse.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("vocab token '", token, "' has a character outside the byte-level map"));
    }
    out.push_back(static_cast<char>(it->second));
    i += len;
  }
  return out;
}

// ------------------------------------------------------------- pre-tokenizers

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void Split(const std::string& text,
                     std::vector<std::pair<size_t, size_t>>* pieces) const = 0;
};

class Gpt2PreTokenizer : public PreTokenizer {
 public:
  void Split(const std::string& text,
             std::vector<std::pair<size_t, size_t>>* pieces) const override;
};

void Gpt2PreTokenizer::Split(const std::string& s,
                             std::vector<std::pair<size_t, size_t>>* out) const {
  const size_t n = s.size();
  size_t i = 0;
  auto class_at = [&](size_t pos, size_t* len) { return Classify(CodePointAt(s, pos, len)); };
  while (i < n) {
    // 's 't 're 've 'm 'll 'd
    if (s[i] == '\'' && i + 1 < n) {
      char a = s[i + 1];
      if (a == 's' || a == 't' || a == 'm' || a == 'd') {
        out->emplace_back(i, i + 2);
        i += 2;
        continue;
      }
      if (i + 2 < n && ((a == 'r' && s[i + 2] == 'e') || (a == 'v' && s[i + 2] == 'e') ||
                        (a == 'l' && s[i + 2] == 'l'))) {
        out->emplace_back(i, i + 3);
        i += 3;
        continue;
      }
    }
    size_t start = i;
    size_t j = i;
    if (s[j] == ' ' && j + 1 < n) ++j;  // optional leading space
    size_t len;
    CharClass c = class_at(j, &len);
    if (c != CharClass::kSpace && !(j == i + 1 && c == CharClass::kSpace)) {
      // ` ?\p{L}+`, ` ?\p{N}+` or ` ?[^\s\p{L}\p{N}]+`
      size_t k = j + len;
      while (k < n) {
        size_t l2;
        if (class_at(k, &l2) != c) break;
        k += l2;
      }
      out->emplace_back(start, k);
      i = k;
      continue;
    }
    // Whitespace run from i.
    size_t k = i;
    size_t last_len = 0;
    while (k < n) {
      size_t l2;
      if (class_at(k, &l2) != CharClass::kSpace) break;
      last_len = l2;
      k += l2;
    }
    if (k == n) {  // \s+(?!\S) at the end
      out->emplace_back(i, k);
      i = k;
    } else if (k - i > last_len) {  // leave the last space for the next token
      out->emplace_back(i, k - last_len);
      i = k - last_len;
    } else {  // a single whitespace character before a non-space: \s+
      out->emplace_back(i, k);
      i = k;
    }
  }
}

class RegexPreTokenizer : public PreTokenizer {
 public:
  ~RegexPreTokenizer() override {
    if (code_) pcre2_code_free(code_);
  }
  absl::Status Compile(const std::string& pattern) {
    int err;
    PCRE2_SIZE offset;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
    if (code_ == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return absl::InvalidArgumentError(absl::StrCat(
          "pre-tokenizer pattern does not compile at ", offset, ": ",
          reinterpret_cast<const char*>(msg)));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
    return absl::OkStatus();
  }
  void Split(const std::string& text,
             std::vector<std::pair<size_t, size_t>>* out) const override {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t pos = 0, last = 0;
    while (pos <= text.size()) {
      int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos,
                           PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc < 0) break;
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      // "Isolated" split: unmatched text between matches is its own piece.
      if (ov[0] > last) out->emplace_back(last, ov[0]);
      if (ov[1] > ov[0]) out->emplace_back(ov[0], ov[1]);
      last = ov[1];
      pos = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
    }
    if (last < text.size()) out->emplace_back(last, text.size());
    pcre2_match_data_free(md);
  }

 private:
  pcre2_code* code_ = nullptr;
};

// ------------------------------------------------------------------ the model

class BpeTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> Encode(std::string_view text) const override;
  std::string Decode(const std::vector<int32_t>& ids) const override;
  int vocab_size() const override { return static_cast<int>(id_to_bytes_.size()); }
  int32_t eos_id() const override { return eos_id_; }
  const std::string& serialized() const override { return serialized_; }

  absl::Status Init(const Json& tokenizer_json);

 private:
  void EncodePiece(const char* p, size_t n, std::vector<int32_t>* out) const;
  void EncodeOrdinary(const std::string& text, std::vector<int32_t>* out) const;

  absl::flat_hash_map<std::string, int32_t> ranks_;  // token bytes -> id
  std::vector<std::string> id_to_bytes_;
  tokenizer_internal::AddedTokens added_;
  std::unique_ptr<PreTokenizer> pre_;
  int32_t eos_id_ = -1;
  std::string serialized_;
  uint64_t instance_;
};

std::atomic<uint64_t> g_next_instance{1};

absl::Status BpeTokenizer::Init(const Json& j) {
  instance_ = g_next_instance++;
  serialized_ = j.dump();
  const Json& model = j.value("model", Json::object());
  if (model.value("type", "") != "BPE" || !model.contains("vocab") ||
      !model["vocab"].is_object()) {
    return absl::InvalidArgumentError("tokenizer.json: model is not BPE with a vocab");
  }
  // Pre-tokenizer: ByteLevel (GPT-2 regex), or Sequence[Split(regex), ByteLevel].
  std::string pattern;
  const Json& pre = j.value("pre_tokenizer", Json::object());
  std::string pre_type = pre.value("type", "");
  if (pre_type == "ByteLevel") {
    pattern = pre.value("use_regex", true) ? kGpt2Pattern : "";
  } else if (pre_type == "Sequence") {
    bool byte_level = false;
    for (const Json& p : pre.value("pretokenizers", Json::array())) {
      if (p.value("type", "") == "Split" && p.contains("pattern") &&
          p["pattern"].contains("Regex")) {
        pattern = p["pattern"]["Regex"].get<std::string>();
      } else if (p.value("type", "") == "ByteLevel") {
        byte_level = true;
        if (p.value("use_regex", false) && pattern.empty()) pattern = kGpt2Pattern;
      }
    }
    if (!byte_level) {
      return absl::InvalidArgumentError(
          "tokenizer.json: only byte-level BPE pre-tokenizers are supported");
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer.json: pre-tokenizer '", pre_type, "' is not supported (need ByteLevel)"));
  }
  if (pattern == kGpt2Pattern) {
    pre_ = std::make_unique<Gpt2PreTokenizer>();
  } else if (!pattern.empty()) {
    auto re = std::make_unique<RegexPreTokenizer>();
    absl::Status s = re->Compile(pattern);
    if (!s.ok()) return s;
    pre_ = std::move(re);
  }

  std::vector<uint32_t> table = BytesToUnicode();
  std::unordered_map<uint32_t, uint8_t> inverse;
  for (int b = 0; b < 256; ++b) inverse[table[b]] = static_cast<uint8_t>(b);
  int32_t max_id = -1;
  for (const auto& [token, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > (1 << 24)) {
      return absl::InvalidArgumentError("tokenizer.json: vocab id of '" + token + "' is bad");
    }
    max_id = std::max(max_id, id.get<int32_t>());
  }
  absl::Status added = added_.Init(j.value("added_tokens", Json::array()));
  if (!added.ok()) return added;
  max_id = std::max(max_id, added_.max_id());
  id_to_bytes_.assign(max_id + 1, std::string());
  for (const auto& [token, id] : model["vocab"].items()) {
    auto bytes = UnmapToken(token, inverse);
    if (!bytes.ok()) return bytes.status();
    id_to_bytes_[id.get<int32_t>()] = *bytes;
    ranks_[*bytes] = id.get<int32_t>();
  }
  for (int b = 0; b < 256; ++b) {
    if (!ranks_.contains(std::string(1, static_cast<char>(b)))) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer.json: vocab lacks the byte token for ", b));
    }
  }
  for (const auto& [content, id] : added_.tokens()) {
    id_to_bytes_[id] = content;
    ranks_.erase(content);  // specials are never produced by merges
  }
  eos_id_ = added_.eos_id();
  return absl::OkStatus();
}

// tiktoken's byte-pair merge: repeatedly merge the adjacent pair whose
// concatenation has the lowest rank.
void BpeTokenizer::EncodePiece(const char* p, size_t n, std::vector<int32_t>* out) const {
  auto whole = ranks_.find(absl::string_view(p, n));
  if (whole != ranks_.end()) {
    out->push_back(whole->second);
    return;
  }
  // parts[i] = start of part i; ranks of merging part i with part i+1.
  std::vector<size_t> parts(n + 1);
  for (size_t i = 0; i <= n; ++i) parts[i] = i;
  auto rank_of = [&](size_t i) -> int64_t {  // merge of parts i and i+1
    if (i + 2 >= parts.size()) return INT64_MAX;
    auto it = ranks_.find(absl::string_view(p + parts[i], parts[i + 2] - parts[i]));
    return it == ranks_.end() ? INT64_MAX : it->second;
  };
  std::vector<int64_t> rank(parts.size());
  for (size_t i = 0; i < rank.size(); ++i) rank[i] = rank_of(i);
  while (parts.size() > 2) {
    size_t best = 0;
    int64_t best_rank = INT64_MAX;
    for (size_t i = 0; i + 2 < parts.size(); ++i) {
      if (rank[i] < best_rank) {
        best_rank = rank[i];
        best = i;
      }
    }
    if (best_rank == INT64_MAX) break;
    parts.erase(parts.begin() + best + 1);
    rank.erase(rank.begin() + best + 1);
    rank[best] = rank_of(best);
    if (best > 0) rank[best - 1] = rank_of(best - 1);
  }
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    out->push_back(ranks_.find(absl::string_view(p + parts[i], parts[i + 1] - parts[i]))->second);
  }
}

void BpeTokenizer::EncodeOrdinary(const std::string& text, std::vector<int32_t>* out) const {
  struct Cache {
    uint64_t owner = 0;
    // absl's map takes string_view lookups for string keys: no copy per piece.
    absl::flat_hash_map<std::string, std::vector<int32_t>> pieces;
  };
  thread_local Cache cache;
  if (cache.owner != instance_) {
    cache.owner = instance_;
    cache.pieces.clear();
  }
  std::vector<std::pair<size_t, size_t>> pieces;
  if (pre_) pre_->Split(text, &pieces);
  else pieces.emplace_back(0, text.size());
  for (const auto& [b, e] : pieces) {
    if (e - b > 32) {  // long pieces are rare; do not let them fill the cache
      EncodePiece(text.data() + b, e - b, out);
      continue;
    }
    const absl::string_view key(text.data() + b, e - b);
    auto it = cache.pieces.find(key);
    if (it == cache.pieces.end()) {
      if (cache.pieces.size() > (1 << 18)) cache.pieces.clear();
      std::vector<int32_t> ids;
      EncodePiece(key.data(), key.size(), &ids);
      it = cache.pieces.emplace(std::string(key), std::move(ids)).first;
    }
    out->insert(out->end(), it->second.begin(), it->second.end());
  }
}

std::vector<int32_t> BpeTokenizer::Encode(std::string_view input) const {
  std::string text = ReplaceInvalidUtf8(input);
  std::vector<int32_t> out;
  out.reserve(text.size() / 3);
  if (added_.tokens().empty()) {
    EncodeOrdinary(text, &out);
    return out;
  }
  for (const auto& piece : added_.Split(text)) {
    if (piece.added_id >= 0) {
      out.push_back(piece.added_id);
    } else {
      EncodeOrdinary(text.substr(piece.begin, piece.end - piece.begin), &out);
    }
  }
  return out;
}

std::string BpeTokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    if (id >= 0 && static_cast<size_t>(id) < id_to_bytes_.size()) out += id_to_bytes_[id];
  }
  return ReplaceInvalidUtf8(out);
}

}  // namespace

namespace bpe_internal {
std::vector<std::pair<size_t, size_t>> SplitGpt2(const std::string& text) {
  std::vector<std::pair<size_t, size_t>> out;
  Gpt2PreTokenizer().Split(text, &out);
  return out;
}
absl::StatusOr<std::vector<std::pair<size_t, size_t>>> SplitRegex(const std::string& pattern,
                                                                   const std::string& text) {
  RegexPreTokenizer re;
  absl::Status s = re.Compile(pattern);
  if (!s.ok()) return s;
  std::vector<std::pair<size_t, size_t>> out;
  re.Split(text, &out);
  return out;
}
}  // namespace bpe_internal

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizerJson(const std::string& text) {
  auto j = ParseJson(text);
  if (!j.ok()) return absl::InvalidArgumentError("tokenizer.json: " + std::string(j.status().message()));
  if (!j->is_object()) return absl::InvalidArgumentError("tokenizer.json: not a JSON object");
  // The kind is told by the pre-tokenizer: byte-level BPE maps bytes to
  // characters in a ByteLevel step; every other BPE file is taken for the
  // SentencePiece kind, whose loader names what it cannot handle.
  auto is_byte_level = [](const Json& pre) {
    if (!pre.is_object()) return false;
    if (pre.value("type", "") == "ByteLevel") return true;
    if (pre.value("type", "") != "Sequence" || !pre.contains("pretokenizers") ||
        !pre["pretokenizers"].is_array()) {
      return false;
    }
    for (const Json& p : pre["pretokenizers"]) {
      if (p.is_object() && p.value("type", "") == "ByteLevel") return true;
    }
    return false;
  };
  try {
    auto model = j->find("model");
    if (model != j->end() && model->is_object() && model->value("type", "") == "BPE" &&
        !is_byte_level(j->value("pre_tokenizer", Json()))) {
      return LoadSentencePieceBpeJson(*j);
    }
    auto t = std::make_unique<BpeTokenizer>();
    absl::Status s = t->Init(*j);
    if (!s.ok()) return s;
    return std::unique_ptr<Tokenizer>(std::move(t));
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadGpt2Bpe(const std::string& vocab_json,
                                                       const std::string& merges_txt) {
  auto vocab = ParseJson(vocab_json);
  if (!vocab.ok() || !vocab->is_object()) {
    return absl::InvalidArgumentError("vocab.json is not a JSON object of token -> id");
  }
  // merges.txt only confirms the format here: tiktoken-style ranks come from
  // the ids, which GPT-2 assigns in merge order.
  if (merges_txt.rfind("#version", 0) != 0 && merges_txt.find(' ') == std::string::npos) {
    return absl::InvalidArgumentError("merges.txt does not look like a BPE merges file");
  }
  Json j = {{"model", {{"type", "BPE"}, {"vocab", *vocab}}},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"use_regex", true}}},
            {"added_tokens", Json::array()}};
  if (vocab->contains("<|endoftext|>")) {
    j["added_tokens"].push_back(
        {{"id", (*vocab)["<|endoftext|>"]}, {"content", "<|endoftext|>"}, {"special", true}});
    j["model"]["vocab"].erase("<|endoftext|>");
  }
  return LoadTokenizerJson(j.dump());
}

}  // namespace streamlm
