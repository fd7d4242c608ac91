#include "model/sp_bpe_tokenizer.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <queue>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "model/internal/added_tokens.h"

namespace streamlm {
namespace {

using tokenizer_internal::AddedTokens;

absl::Status Error(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json (SentencePiece BPE): ", what));
}

// Bytes in the UTF-8 sequence that starts with `lead` (1 for a stray byte).
size_t Utf8Length(unsigned char lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// j[key] when it is a string; `fallback` when absent or null.
absl::StatusOr<std::string> StringField(const Json& j, const char* key, const char* where,
                                        const std::string& fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_string()) return Error(absl::StrCat(where, ".", key, " is not a string"));
  return it->get<std::string>();
}

// j[key] when it is a bool; `fallback` when absent or null.
absl::StatusOr<bool> BoolField(const Json& j, const char* key, const char* where, bool fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return Error(absl::StrCat(where, ".", key, " is not true or false"));
  return it->get<bool>();
}

// The string of a Replace step's {"String": s} pattern (regex patterns are
// not supported).
absl::StatusOr<std::string> ReplacePattern(const Json& step, const char* where) {
  auto it = step.find("pattern");
  if (it == step.end() || !it->is_object() || !it->contains("String") ||
      !(*it)["String"].is_string()) {
    return Error(absl::StrCat(where,
                              " Replace needs a {\"String\": ...} pattern (a regex is "
                              "not supported)"));
  }
  std::string from = (*it)["String"].get<std::string>();
  if (from.empty()) return Error(absl::StrCat(where, " Replace has an empty pattern"));
  return from;
}

// Steps of a Sequence, or the one step itself. A Sequence nested inside is
// returned as a step (and rejected as unsupported by the caller).
std::vector<const Json*> Steps(const Json& j, const char* list_key) {
  std::vector<const Json*> out;
  if (j.is_object() && j.value("type", "") == "Sequence" && j.contains(list_key) &&
      j[list_key].is_array()) {
    for (const Json& step : j[list_key]) out.push_back(&step);
  } else {
    out.push_back(&j);
  }
  return out;
}

struct NormalizerStep {
  bool prepend;  // Prepend(to) when true, else Replace(from -> to)
  std::string from;
  std::string to;
};

struct DecoderStep {
  enum class Kind { kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  Kind kind;
  std::string from;         // kReplace: pattern; kStrip: content; kMetaspace: replacement
  std::string to;           // kReplace
  int start = 0;            // kStrip: leading copies of `from` to drop
  int stop = 0;             // kStrip: trailing copies of `from` to drop
  bool drop_first = false;  // kMetaspace: the first token's replacements vanish
};

enum class PrependScheme { kAlways, kFirst, kNever };

// Merge of two adjacent symbols: its rank (position in "merges") and result.
struct Merge {
  int32_t rank;
  int32_t id;
};

inline uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

class SentencePieceBpeTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> Encode(std::string_view text) const override;
  std::string Decode(const std::vector<int32_t>& ids) const override;
  int vocab_size() const override { return static_cast<int>(id_to_token_.size()); }
  int32_t eos_id() const override { return eos_id_; }
  const std::string& serialized() const override { return serialized_; }

  absl::Status Init(const Json& j);

 private:
  absl::Status InitModel(const Json& model);
  absl::Status InitNormalizer(const Json& normalizer);
  absl::Status InitPreTokenizer(const Json& pre);
  absl::Status InitDecoder(const Json& decoder);

  // Normalizes and pre-tokenizes one stretch between added tokens, then
  // encodes its words. `at_text_start`: the stretch begins the input.
  void EncodeStretch(absl::string_view stretch, bool at_text_start,
                     std::vector<int32_t>* out) const;
  void EncodeWord(absl::string_view word, std::vector<int32_t>* out) const;
  // Applies the merges to `symbols` in place, lowest rank first.
  void MergeSymbols(std::vector<int32_t>* symbols) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  absl::flat_hash_map<uint64_t, Merge> merges_;  // PairKey(left, right) -> merge
  std::vector<std::string> id_to_token_;
  int32_t byte_ids_[256];  // <0xXX> token ids when byte_fallback_
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  int32_t unk_id_ = -1;

  std::vector<NormalizerStep> normalizer_;
  bool metaspace_ = false;  // pre-tokenizer Metaspace (else none)
  std::string replacement_;
  PrependScheme prepend_scheme_ = PrependScheme::kAlways;
  bool split_ = false;
  std::vector<DecoderStep> decoder_;

  AddedTokens added_;
  int32_t eos_id_ = -1;
  std::string serialized_;
};

absl::Status SentencePieceBpeTokenizer::Init(const Json& j) {
  serialized_ = j.dump();
  auto model = j.find("model");
  if (model == j.end() || !model->is_object()) return Error("has no model");
  absl::Status s = InitModel(*model);
  if (s.ok()) s = InitNormalizer(j.value("normalizer", Json()));
  if (s.ok()) s = InitPreTokenizer(j.value("pre_tokenizer", Json()));
  if (s.ok()) s = InitDecoder(j.value("decoder", Json()));
  if (s.ok()) s = added_.Init(j.value("added_tokens", Json()));
  if (!s.ok()) return s;

  int32_t max_id = std::max(static_cast<int32_t>(id_to_token_.size()) - 1, added_.max_id());
  size_t tokens = vocab_.size() + added_.tokens().size();
  if (static_cast<size_t>(max_id) >= 2 * tokens + 1024) {
    return Error(
        absl::StrCat("ids are too sparse: the largest is ", max_id, " for ", tokens, " tokens"));
  }
  id_to_token_.resize(max_id + 1);
  for (const auto& [content, id] : added_.tokens()) id_to_token_[id] = content;
  eos_id_ = added_.eos_id();
  if (eos_id_ < 0) {
    auto it = vocab_.find(absl::string_view("</s>"));
    if (it == vocab_.end()) return Error("has no end-of-sequence token (</s>)");
    eos_id_ = it->second;
  }
  return absl::OkStatus();
}

absl::Status SentencePieceBpeTokenizer::InitModel(const Json& model) {
  if (model.value("type", "") != "BPE") return Error("model is not BPE");
  auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object() || vocab->empty()) {
    return Error("model.vocab is not an object of token -> id");
  }
  int64_t max_id = -1;
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() > AddedTokens::kMaxTokenId) {
      return Error(absl::StrCat("vocab id of '", token, "' is not an integer in [0, ",
                                AddedTokens::kMaxTokenId, "]"));
    }
    max_id = std::max(max_id, id.get<int64_t>());
  }
  if (static_cast<size_t>(max_id) >= 2 * vocab->size() + 1024) {
    return Error(absl::StrCat("vocab ids are too sparse: the largest is ", max_id, " for ",
                              vocab->size(), " tokens"));
  }
  id_to_token_.assign(max_id + 1, std::string());
  for (const auto& [token, id] : vocab->items()) {
    int32_t i = id.get<int32_t>();
    if (token.empty()) return Error("vocab has an empty token");
    if (!id_to_token_[i].empty()) {
      return Error(
          absl::StrCat("vocab id ", i, " is given to '", id_to_token_[i], "' and '", token, "'"));
    }
    id_to_token_[i] = token;
    vocab_[token] = i;
  }

  auto byte_fallback = BoolField(model, "byte_fallback", "model", false);
  auto fuse_unk = BoolField(model, "fuse_unk", "model", false);
  auto ignore_merges = BoolField(model, "ignore_merges", "model", false);
  auto unk = StringField(model, "unk_token", "model", "");
  auto prefix = StringField(model, "continuing_subword_prefix", "model", "");
  auto suffix = StringField(model, "end_of_word_suffix", "model", "");
  for (const absl::Status& s : {byte_fallback.status(), fuse_unk.status(), ignore_merges.status(),
                                unk.status(), prefix.status(), suffix.status()}) {
    if (!s.ok()) return s;
  }
  if (!prefix->empty() || !suffix->empty()) {
    return Error("continuing_subword_prefix and end_of_word_suffix are not supported");
  }
  auto dropout = model.find("dropout");
  if (dropout != model.end() && !dropout->is_null() &&
      !(dropout->is_number() && dropout->get<double>() == 0)) {
    return Error("model.dropout samples random merges; set it to null for inference");
  }
  byte_fallback_ = *byte_fallback;
  fuse_unk_ = *fuse_unk;
  ignore_merges_ = *ignore_merges;
  if (!unk->empty()) {
    auto it = vocab_.find(*unk);
    if (it == vocab_.end()) {
      return Error(absl::StrCat("unk_token '", *unk, "' is not in the vocab"));
    }
    unk_id_ = it->second;
  }
  if (byte_fallback_) {
    int missing = 0;
    std::string first_missing;
    for (int b = 0; b < 256; ++b) {
      char name[8];
      snprintf(name, sizeof(name), "<0x%02X>", b);
      auto it = vocab_.find(absl::string_view(name));
      byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
      if (it == vocab_.end() && missing++ == 0) first_missing = name;
    }
    if (missing > 0) {
      return Error(absl::StrCat("byte_fallback is on but the vocab lacks ", missing,
                                " of the 256 byte tokens (first ", first_missing, ")"));
    }
  }

  auto merges = model.find("merges");
  if (merges == model.end() || merges->is_null()) return absl::OkStatus();
  if (!merges->is_array()) return Error("model.merges is not an array");
  int32_t rank = 0;
  for (const Json& m : *merges) {
    std::string left, right;
    if (m.is_string()) {  // "left right"
      const std::string& text = m.get_ref<const std::string&>();
      size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        return Error(absl::StrCat("merge #", rank, " '", text, "' is not two tokens"));
      }
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      return Error(absl::StrCat("merge #", rank, " is neither \"left right\" nor [left, right]"));
    }
    auto l = vocab_.find(left), r = vocab_.find(right), lr = vocab_.find(left + right);
    if (l == vocab_.end() || r == vocab_.end() || lr == vocab_.end()) {
      return Error(absl::StrCat("merge #", rank, " '", left, " ", right,
                                "' names a token not in the vocab ('",
                                l == vocab_.end()   ? left
                                : r == vocab_.end() ? right
                                                    : left + right,
                                "')"));
    }
    // A repeated pair keeps its last rank, as in Hugging Face.
    merges_[PairKey(l->second, r->second)] = Merge{rank, lr->second};
    ++rank;
  }
  return absl::OkStatus();
}

absl::Status SentencePieceBpeTokenizer::InitNormalizer(const Json& normalizer) {
  if (normalizer.is_null()) return absl::OkStatus();
  for (const Json* step : Steps(normalizer, "normalizers")) {
    std::string type = step->is_object() ? step->value("type", "") : "";
    if (type == "Prepend") {
      auto prepend = StringField(*step, "prepend", "normalizer Prepend", "");
      if (!prepend.ok()) return prepend.status();
      normalizer_.push_back({true, "", *prepend});
    } else if (type == "Replace") {
      auto from = ReplacePattern(*step, "normalizer");
      if (!from.ok()) return from.status();
      auto to = StringField(*step, "content", "normalizer Replace", "");
      if (!to.ok()) return to.status();
      normalizer_.push_back({false, *from, *to});
    } else {
      return Error(absl::StrCat("normalizer '", type,
                                "' is not supported (Prepend and Replace are, alone or in a "
                                "Sequence)"));
    }
  }
  return absl::OkStatus();
}

absl::Status SentencePieceBpeTokenizer::InitPreTokenizer(const Json& pre) {
  if (pre.is_null()) return absl::OkStatus();
  std::string type = pre.is_object() ? pre.value("type", "") : "";
  if (type != "Metaspace") {
    return Error(absl::StrCat("pre-tokenizer '", type,
                              "' is not supported (Metaspace or none for SentencePiece BPE; "
                              "ByteLevel for byte-level BPE)"));
  }
  auto replacement = StringField(pre, "replacement", "pre_tokenizer", "\xE2\x96\x81");
  auto scheme = StringField(pre, "prepend_scheme", "pre_tokenizer", "always");
  auto add_prefix_space = BoolField(pre, "add_prefix_space", "pre_tokenizer", true);
  auto split = BoolField(pre, "split", "pre_tokenizer", true);
  for (const absl::Status& s :
       {replacement.status(), scheme.status(), add_prefix_space.status(), split.status()}) {
    if (!s.ok()) return s;
  }
  if (replacement->empty()) return Error("pre_tokenizer.replacement is empty");
  if (*scheme == "always") {
    prepend_scheme_ = PrependScheme::kAlways;
  } else if (*scheme == "first") {
    prepend_scheme_ = PrependScheme::kFirst;
  } else if (*scheme == "never") {
    prepend_scheme_ = PrependScheme::kNever;
  } else {
    return Error(
        absl::StrCat("pre_tokenizer.prepend_scheme '", *scheme, "' is not always, first or never"));
  }
  if (!*add_prefix_space) prepend_scheme_ = PrependScheme::kNever;  // older files
  metaspace_ = true;
  replacement_ = *replacement;
  split_ = *split;
  return absl::OkStatus();
}

absl::Status SentencePieceBpeTokenizer::InitDecoder(const Json& decoder) {
  if (decoder.is_null()) {
    return Error(
        "has no decoder (Metaspace, or a Sequence of Replace, ByteFallback, Fuse, "
        "Strip)");
  }
  bool byte_fallback_step = false;
  for (const Json* step : Steps(decoder, "decoders")) {
    std::string type = step->is_object() ? step->value("type", "") : "";
    DecoderStep d;
    if (type == "Replace") {
      d.kind = DecoderStep::Kind::kReplace;
      auto from = ReplacePattern(*step, "decoder");
      if (!from.ok()) return from.status();
      auto to = StringField(*step, "content", "decoder Replace", "");
      if (!to.ok()) return to.status();
      d.from = *from;
      d.to = *to;
    } else if (type == "ByteFallback") {
      d.kind = DecoderStep::Kind::kByteFallback;
      byte_fallback_step = true;
    } else if (type == "Fuse") {
      d.kind = DecoderStep::Kind::kFuse;
    } else if (type == "Strip") {
      d.kind = DecoderStep::Kind::kStrip;
      auto content = StringField(*step, "content", "decoder Strip", " ");
      if (!content.ok()) return content.status();
      int64_t start = step->value("start", int64_t{0}), stop = step->value("stop", int64_t{0});
      if (content->empty() || start < 0 || stop < 0 || start > 1024 || stop > 1024) {
        return Error("decoder Strip needs a content character and counts in [0, 1024]");
      }
      d.from = *content;
      d.start = static_cast<int>(start);
      d.stop = static_cast<int>(stop);
    } else if (type == "Metaspace") {
      d.kind = DecoderStep::Kind::kMetaspace;
      auto replacement = StringField(*step, "replacement", "decoder", "\xE2\x96\x81");
      auto scheme = StringField(*step, "prepend_scheme", "decoder", "always");
      auto add_prefix_space = BoolField(*step, "add_prefix_space", "decoder", true);
      for (const absl::Status& s :
           {replacement.status(), scheme.status(), add_prefix_space.status()}) {
        if (!s.ok()) return s;
      }
      if (replacement->empty()) return Error("decoder Metaspace has an empty replacement");
      d.from = *replacement;
      d.drop_first = *scheme != "never" && *add_prefix_space;
    } else {
      return Error(absl::StrCat("decoder '", type,
                                "' is not supported (Replace, ByteFallback, Fuse, Strip, "
                                "Metaspace, alone or in a Sequence)"));
    }
    decoder_.push_back(d);
  }
  if (byte_fallback_ && !byte_fallback_step) {
    // Byte tokens decode to their bytes even when the decoder does not say so.
    DecoderStep d;
    d.kind = DecoderStep::Kind::kByteFallback;
    decoder_.insert(decoder_.begin(), d);
  }
  return absl::OkStatus();
}

std::vector<int32_t> SentencePieceBpeTokenizer::Encode(std::string_view input) const {
  std::string text = ReplaceInvalidUtf8(input);
  std::vector<int32_t> out;
  out.reserve(text.size() / 3);
  for (const AddedTokens::Piece& piece : added_.Split(text)) {
    if (piece.added_id >= 0) {
      out.push_back(piece.added_id);
    } else {
      EncodeStretch(absl::string_view(text).substr(piece.begin, piece.end - piece.begin),
                    piece.begin == 0, &out);
    }
  }
  return out;
}

void SentencePieceBpeTokenizer::EncodeStretch(absl::string_view stretch, bool at_text_start,
                                              std::vector<int32_t>* out) const {
  std::string s(stretch);
  for (const NormalizerStep& step : normalizer_) {
    if (step.prepend) {
      if (!s.empty()) s.insert(0, step.to);
    } else {
      s = absl::StrReplaceAll(s, {{step.from, step.to}});
    }
  }
  if (s.empty()) return;
  if (!metaspace_) {
    EncodeWord(s, out);
    return;
  }
  s = absl::StrReplaceAll(s, {{" ", replacement_}});
  bool prepend = prepend_scheme_ == PrependScheme::kAlways ||
                 (prepend_scheme_ == PrependScheme::kFirst && at_text_start);
  if (prepend && !absl::StartsWith(s, replacement_)) s.insert(0, replacement_);
  if (!split_) {
    EncodeWord(s, out);
    return;
  }
  // Each replacement starts a new word ("merged with next").
  absl::string_view view(s);
  size_t begin = 0;
  for (size_t pos = view.find(replacement_, 1); pos != absl::string_view::npos;
       pos = view.find(replacement_, pos + replacement_.size())) {
    EncodeWord(view.substr(begin, pos - begin), out);
    begin = pos;
  }
  EncodeWord(view.substr(begin), out);
}

void SentencePieceBpeTokenizer::EncodeWord(absl::string_view word,
                                           std::vector<int32_t>* out) const {
  if (ignore_merges_) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(word.size());
  bool last_unk = false;
  for (size_t i = 0; i < word.size();) {
    size_t len = std::min(Utf8Length(static_cast<unsigned char>(word[i])), word.size() - i);
    auto it = vocab_.find(word.substr(i, len));
    if (it != vocab_.end()) {
      symbols.push_back(it->second);
      last_unk = false;
    } else if (byte_fallback_) {  // Init() checked all 256 byte tokens exist
      for (size_t k = i; k < i + len; ++k) {
        symbols.push_back(byte_ids_[static_cast<unsigned char>(word[k])]);
      }
      last_unk = false;
    } else if (unk_id_ >= 0) {
      if (!(fuse_unk_ && last_unk)) symbols.push_back(unk_id_);
      last_unk = true;
    }  // no unk token: the character is dropped, as in Hugging Face
    i += len;
  }
  MergeSymbols(&symbols);
  out->insert(out->end(), symbols.begin(), symbols.end());
}

// Hugging Face's BPE merge loop: a heap of candidate pairs ordered by merge
// rank, then position; entries made stale by an earlier merge are skipped
// when popped. O(n log n) in the word's length.
void SentencePieceBpeTokenizer::MergeSymbols(std::vector<int32_t>* symbols) const {
  std::vector<int32_t>& ids = *symbols;
  const int32_t n = static_cast<int32_t>(ids.size());
  if (n < 2 || merges_.empty()) return;
  struct Candidate {
    int32_t rank;
    int32_t pos;  // left symbol
    int32_t id;   // the merged token
  };
  auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> heap(later);
  std::vector<int32_t> prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  auto consider = [&](int32_t left) {
    int32_t right = next[left];
    if (right < 0) return;
    auto it = merges_.find(PairKey(ids[left], ids[right]));
    if (it != merges_.end()) heap.push({it->second.rank, left, it->second.id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    if (ids[c.pos] < 0 || next[c.pos] < 0) continue;  // merged away, or now last
    int32_t right = next[c.pos];
    auto it = merges_.find(PairKey(ids[c.pos], ids[right]));
    if (it == merges_.end() || it->second.rank != c.rank) continue;  // stale
    ids[c.pos] = c.id;
    ids[right] = -1;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    if (prev[c.pos] >= 0) consider(prev[c.pos]);
    consider(c.pos);
  }
  ids.erase(std::remove(ids.begin(), ids.end(), -1), ids.end());
}

// "<0xAB>" -> 0xAB; -1 for any other token.
int ByteTokenValue(const std::string& token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = hex(token[3]), lo = hex(token[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

void ApplyDecoderStep(const DecoderStep& step, std::vector<std::string>* tokens) {
  switch (step.kind) {
    case DecoderStep::Kind::kReplace:
      for (std::string& t : *tokens) t = absl::StrReplaceAll(t, {{step.from, step.to}});
      break;
    case DecoderStep::Kind::kByteFallback: {
      // A run of byte tokens becomes its UTF-8 text, or one U+FFFD per byte
      // when the run is not valid UTF-8.
      std::vector<std::string> out;
      std::string run;
      size_t run_tokens = 0;
      auto flush = [&] {
        if (run_tokens == 0) return;
        if (IsValidUtf8(run)) {
          out.push_back(run);
        } else {
          for (size_t i = 0; i < run_tokens; ++i) out.push_back("\xEF\xBF\xBD");
        }
        run.clear();
        run_tokens = 0;
      };
      for (std::string& t : *tokens) {
        int byte = ByteTokenValue(t);
        if (byte >= 0) {
          run.push_back(static_cast<char>(byte));
          ++run_tokens;
        } else {
          flush();
          out.push_back(std::move(t));
        }
      }
      flush();
      *tokens = std::move(out);
      break;
    }
    case DecoderStep::Kind::kFuse: {
      std::string all;
      for (const std::string& t : *tokens) all += t;
      tokens->assign(1, all);
      break;
    }
    case DecoderStep::Kind::kStrip:
      for (std::string& t : *tokens) {
        size_t begin = 0, end = t.size();
        for (int i = 0; i < step.start && t.compare(begin, step.from.size(), step.from) == 0; ++i) {
          begin += step.from.size();
        }
        for (int i = 0; i < step.stop && end >= begin + step.from.size() &&
                        t.compare(end - step.from.size(), step.from.size(), step.from) == 0;
             ++i) {
          end -= step.from.size();
        }
        t = t.substr(begin, end - begin);
      }
      break;
    case DecoderStep::Kind::kMetaspace:
      for (size_t i = 0; i < tokens->size(); ++i) {
        (*tokens)[i] =
            absl::StrReplaceAll((*tokens)[i], {{step.from, i == 0 && step.drop_first ? "" : " "}});
      }
      break;
  }
}

std::string SentencePieceBpeTokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id >= 0 && static_cast<size_t>(id) < id_to_token_.size() && !id_to_token_[id].empty()) {
      tokens.push_back(id_to_token_[id]);
    }
  }
  for (const DecoderStep& step : decoder_) ApplyDecoderStep(step, &tokens);
  std::string out;
  for (const std::string& t : tokens) out += t;
  return ReplaceInvalidUtf8(out);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadSentencePieceBpeJson(const Json& tokenizer_json) {
  if (!tokenizer_json.is_object()) return Error("not a JSON object");
  auto t = std::make_unique<SentencePieceBpeTokenizer>();
  try {
    absl::Status s = t->Init(tokenizer_json);
    if (!s.ok()) return s;
  } catch (const Json::exception& e) {
    return Error(e.what());
  }
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace streamlm
