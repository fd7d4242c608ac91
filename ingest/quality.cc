#include "ingest/quality.h"

// Document quality filters: the published heuristics, with the semantics of
// HuggingFace datatrove's C4QualityFilter, GopherRepetitionFilter,
// GopherQualityFilter and FineWebQualityFilter (the FineWeb recipe).
//
// Reasons (FilterVerdict::reason), in the order the rules run. They are
// stable: metrics labels and `reason` on streamlm.rejects.
//
//   c4_empty_after_line_filters   C4's line filters removed every line
//   gopher_dup_para_frac          Gopher table A1: duplicate paragraphs
//   gopher_dup_para_char_frac       ... characters in duplicate paragraphs
//   gopher_dup_line_frac            ... duplicate lines
//   gopher_dup_line_char_frac       ... characters in duplicate lines
//   gopher_top_2gram              ... characters covered by the most frequent
//   gopher_top_3gram                  2-, 3-, 4-gram
//   gopher_top_4gram
//   gopher_dup_5gram              ... characters in duplicated 5..10-grams
//   gopher_dup_6gram .. gopher_dup_10gram
//   gopher_short_doc              Gopher appendix A: fewer than 50 words
//   gopher_long_doc                 ... more than 100,000 words
//   gopher_below_avg_word_length    ... mean word length below 3
//   gopher_above_avg_word_length    ... mean word length above 10
//   gopher_symbol_word_ratio        ... '#' or ellipses per word above 0.1
//   gopher_bullet_lines             ... over 90% of lines start with a bullet
//   gopher_ellipsis_lines           ... over 30% of lines end with an ellipsis
//   gopher_alpha_words              ... under 80% of words have a letter
//   gopher_stop_words               ... fewer than 2 of the stop words
//   c4_lorem_ipsum                C4: "lorem ipsum" on a kept line
//   c4_curly_bracket                ... '{' on a kept line
//   c4_too_few_sentences            ... fewer than 5 sentences on kept lines
//   fineweb_line_punct_ratio      FineWeb: share of lines ending in
//                                   terminal punctuation <= 0.12
//   fineweb_short_line_ratio        ... share of lines of <= 30 chars >= 0.67
//   fineweb_char_dup_ratio          ... chars in duplicate lines >= 0.01
//   fineweb_newline_ratio           ... line breaks per word > 0.3
//
// Rules of the stream profile (ingest/README.md has the table of which rule
// judges which shape of document), checked after C4's line filters:
//
//   language                      CLD2, reliable, names a language not in
//                                   `languages` (detail: detected, accepted)
//   language_unrecognized         CLD2 recognizes no language in >= 24 bytes
//   text_too_short                fewer words than text_rules.min_words
//   text_gibberish                4+ letter words that do not look like words
//   text_navigation               separators per word; or capitalized words
//                                   without a sentence end (menus)
//   text_shouting                 share of uppercase letters
//   text_url_ratio                URLs per word
//   text_boilerplate              site furniture phrases (and, on pages,
//                                   advertising phrases)
//   text_avg_word_length          mean word length    } documents that are
//   text_alpha_words              words with a letter } not pages, where the
//   text_symbol_word_ratio        '#' and ellipses    } Gopher rules do not run
//
// Shape: a document with >= page.min_lines non-blank lines or markup
// remnants is a page; Gopher quality, FineWeb, C4's line-length, javascript,
// policy, curly-bracket and sentence rules run on pages only, and Gopher's
// n-gram repetition rules on other documents only from 50 words on.
//
// Units: "characters" are Unicode code points (Python's len() in datatrove).
// Lines: Gopher quality's bullet and ellipsis ratios count every line, blank
// ones included (str.splitlines()); the other line rules count non-blank
// lines (see the deviations below). Paragraphs: the text split at runs of
// two or more line breaks.
//
// Words. Instead of NLTK's word_tokenize: the text is split on Unicode
// whitespace; each piece is split into a leading run of punctuation, a core,
// and a trailing run of punctuation ("(hello)," -> "(", "hello", "),").
// Punctuation is ASCII punctuation plus code points utf8proc puts in the P*
// (punctuation), S* (symbols), Cc and Cf categories. A core is a word; a
// punctuation run is a symbol token. This matches datatrove where NLTK splits
// punctuation off words (NLTK also splits "don't" and makes two tokens of
// `."`; we do neither); datatrove then counts, like we do:
//   - "words" (Gopher doc length, mean word length): cores only;
//   - "tokens" (denominators of the '#' and ellipsis ratios, n-grams,
//     FineWeb's newline ratio): cores and symbol tokens.
// The share of words with a letter is over whitespace-separated pieces, as
// the Gopher paper defines words (a deviation, see below).
// A word "has a letter" if it holds an ASCII letter or a code point utf8proc
// calls a letter (L*), like Python's str.isalpha().
// C4's line filters count words as datatrove does there: whitespace-separated
// pieces (str.split()), punctuation included.
//
// Sentences (C4's minimum, where datatrove runs NLTK's punkt per kept line):
// a sentence ends at a run of . ! ? (or full-width ．！？。｡), optionally
// followed by closing quotes or brackets, then whitespace or the end of the
// line; CJK full stops need no whitespace after them. A sentence needs a letter
// or digit; trailing text without a terminator is one more sentence, so every
// kept line holds at least one. Abbreviations ("Mr. Smith") count as ends.
//
// Thresholds: a limit <= 0 switches its rule off (datatrove skips a rule whose
// threshold is None or 0); `enabled = false` switches off a whole filter.
//
// Deviations from datatrove, all deliberate:
//   - Order: C4's line filters run first (the text they leave is what the
//     other filters and the learner see); C4's page rules (lorem ipsum, curly
//     bracket, sentences) are reported after Gopher's. When several C4 page
//     rules hit, the first line that hits decides, as in datatrove.
//   - Blank lines are paragraph breaks, not lines: C4 keeps them (datatrove
//     drops them as lines of fewer than 3 words), so Gopher can still see
//     paragraphs. FineWeb's line ratios and its newline count ignore blank
//     lines, i.e. they see the text as FineWeb's C4 step leaves it.
//   - Gopher repetition's lines are the non-blank lines.
//   - C4 strips a line again after removing citation markers.
//   - Terminal punctuation (C4 line option, FineWeb) also accepts the curly
//     closing quotes ” ’ and full-width ．！？。.
//   - Unicode symbols (S*: emoji, arrows, currency) are punctuation, so a
//     piece of them is a symbol token; datatrove's PUNCTUATION is a fixed
//     list that misses most of them.
//   - Words with a letter are counted among whitespace-separated pieces (the
//     Gopher paper's words), not NLTK tokens: datatrove's denominator counts
//     every punctuation mark as a word without a letter, which drops short
//     ordinary sentences ("Call <b>Ann</b> at noon." has 4 of 7 tokens) and
//     penalizes mail and markup-derived text for its punctuation alone.
//   - The top n-gram counts only when it occurs at least twice: datatrove
//     takes the first n-gram when all are unique, so any document shorter
//     than about 5 / limit n-grams fails `gopher_top_2gram` though nothing
//     in it repeats (irrelevant at Gopher's 50-word minimum, fatal to short
//     profiles such as tests or chat text).
// Kept as in datatrove although surprising: stop words match case-sensitively
// ("The" does not count); C4 counts a line's words before removing citation
// markers; the n-gram character counts join words with spaces for the top
// n-gram and without them for duplicated n-grams.
//
// Cost: about five passes over the bytes (C4 lines, tokens, lines,
// paragraphs, '#' and ellipses), one hash-table insert per token for
// 2-grams, and far fewer for longer n-grams (see NgramScan). 45-60 MB/s of
// English prose on one core of the 2-core dev VM (quality_test prints it).
// The stream profile adds CLD2 (on at most the first 16 KiB) and one pass
// for the text rules plus a search per boilerplate phrase: on short
// documents (quotations of ~700 bytes) the defaults ran at ~5 MB/s against
// ~23 MB/s for the web-page rules alone, half of the difference CLD2's
// (stream_profile_test prints it; measured on a busy 2-core VM).

#include <utf8proc.h>

// compact_lang_det.h uses FILE without including <cstdio>.
#include <cstdio>
#include <cld2/public/compact_lang_det.h>
#include <cld2/public/encodings.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace streamlm {
namespace {

// ---------------------------------------------------------------------------
// Characters

enum CharKind : uint8_t { kOther = 0, kSpace = 1, kPunct = 2, kLetter = 3 };

struct AsciiKinds {
  CharKind kind[128] = {};
};

constexpr AsciiKinds MakeAsciiKinds() {
  AsciiKinds t;
  for (int c = 0; c < 128; ++c) {
    CharKind k = kOther;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      k = kLetter;
    } else if (c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1C && c <= 0x1F)) {
      k = kSpace;  // Python's str.split() whitespace
    } else if (c < 0x20 || c == 0x7F) {
      k = kPunct;  // other controls: datatrove's PUNCTUATION has them
    } else if ((c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
               (c >= '{' && c <= '~')) {
      k = kPunct;
    }
    t.kind[c] = k;
  }
  return t;
}

constexpr AsciiKinds kAscii = MakeAsciiKinds();

CharKind KindOfCodePoint(int32_t cp) {
  if (cp == 0x85) return kSpace;
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return kLetter;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
      return kSpace;
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
    case UTF8PROC_CATEGORY_SM:
    case UTF8PROC_CATEGORY_SC:
    case UTF8PROC_CATEGORY_SK:
    case UTF8PROC_CATEGORY_SO:
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
      return kPunct;
    default:
      return kOther;
  }
}

// Kind of the character at s[i] (i < s.size()); *len = its length in bytes.
// An invalid sequence is one kOther byte.
inline CharKind KindAt(std::string_view s, size_t i, int* len) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) {
    *len = 1;
    return kAscii.kind[c];
  }
  utf8proc_int32_t cp = 0;
  utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                        static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
  if (n <= 0) {
    *len = 1;
    return kOther;
  }
  *len = static_cast<int>(n);
  return KindOfCodePoint(cp);
}

// Start of the character that ends just before byte `end` (end > 0).
inline size_t PrevCharStart(std::string_view s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && end - i < 4 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

// Code points in `s`: bytes that do not continue a sequence (10xxxxxx),
// counted eight at a time.
inline int64_t CodePoints(std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  int64_t continuations = 0;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    const uint64_t flags = (w & ~(w << 1) & 0x8080808080808080ULL) >> 7;  // 0 or 1 per byte
    continuations += static_cast<int64_t>((flags * 0x0101010101010101ULL) >> 56);
  }
  for (; n > 0; ++p, --n) continuations += (static_cast<unsigned char>(*p) & 0xC0) == 0x80;
  return static_cast<int64_t>(s.size()) - continuations;
}

std::string_view TrimSpace(std::string_view s) {
  size_t b = 0;
  int len = 1;
  while (b < s.size() && KindAt(s, b, &len) == kSpace) b += static_cast<size_t>(len);
  size_t e = s.size();
  while (e > b) {
    size_t p = PrevCharStart(s, e);
    if (KindAt(s, p, &len) != kSpace || p + static_cast<size_t>(len) != e) break;
    e = p;
  }
  return s.substr(b, e - b);
}

inline bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

inline bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// C4's END_PUNCTUATION and FineWeb's stop_chars (. ? ! " '), plus curly
// closing quotes and full-width forms.
bool EndsWithTerminalPunct(std::string_view line) {
  if (line.empty()) return false;
  switch (line.back()) {
    case '.':
    case '?':
    case '!':
    case '"':
    case '\'':
      return true;
    default:
      break;
  }
  for (std::string_view t : {"\u201D", "\u2019", "\uFF0E", "\uFF01", "\uFF1F", "\u3002"}) {
    if (EndsWith(line, t)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// Hashing (within one call only; never stored)

inline uint64_t Mix(uint64_t x) {  // SplitMix64's finalizer
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

inline uint64_t Load64(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

inline uint64_t Load32(const char* p) {
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

// A fast 64-bit hash of short strings (words): whole 8-byte words, the tail
// read with overlapping loads, one mix per word.
inline uint64_t HashBytes(const char* p, size_t n) {
  uint64_t h = 0x6A09E667F3BCC909ULL ^ (n * 0x9E3779B97F4A7C15ULL);
  if (n > 8) {
    for (; n > 8; p += 8, n -= 8) h = Mix(h ^ Load64(p));
    return Mix(h ^ Load64(p + n - 8));  // the last 8 bytes, overlapping
  }
  uint64_t w = 0;
  if (n >= 4) {
    w = (Load32(p) << 32) | Load32(p + n - 4);
  } else if (n > 0) {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    w = (uint64_t{u[0]} << 16) | (uint64_t{u[n / 2]} << 8) | u[n - 1];
  }
  return Mix(h ^ w);
}

// Hash of the sequence (a, b) from the hashes of its parts; order matters.
// One multiply: the parts are well mixed already, and the hash tables mix
// their keys again.
inline uint64_t Combine(uint64_t a, uint64_t b) {
  return (((a << 23) | (a >> 41)) ^ b) * 0xC2B2AE3D27D4EB4FULL;
}

// ---------------------------------------------------------------------------
// Formatting of FilterVerdict::detail

bool Reject(FilterVerdict* v, const char* reason, std::string detail) {
  v->reason = reason;
  v->detail = std::move(detail);
  return true;
}

std::string Ratio(const char* what, double value, const char* bound, double limit) {
  return absl::StrFormat("%s %.4f, %s %g", what, value, bound, limit);
}

// ---------------------------------------------------------------------------
// C4 line filters (Raffel et al. 2020, section 2.2; datatrove C4QualityFilter
// with FineWeb's settings).

// Byte classes for the per-line and per-token scans. Every scan has a fast
// path for plain ASCII bytes and leaves everything else to a slow path, so
// the common byte costs no unpredictable branch.
enum ByteFlag : uint8_t {
  kBSpace = 1,    // ASCII whitespace
  kBAlnum = 2,    // ASCII letter or digit
  kBLetter = 4,   // ASCII letter
  kBPunct = 8,    // ASCII punctuation or control
  kBHigh = 16,    // first or later byte of a multi-byte character
  kBTerm = 32,    // . ! ?
  kBAnchor = 64,  // a letter that anchors a C4 phrase: f j k p v
  kBBrace = 128,  // {
};

struct ByteTable {
  uint8_t flags[256] = {};
};

constexpr ByteTable MakeByteTable() {
  ByteTable t;
  for (int c = 0; c < 256; ++c) {
    uint8_t f = 0;
    if (c >= 0x80) {
      f = kBHigh;
    } else {
      switch (kAscii.kind[c]) {
        case kSpace:
          f = kBSpace;
          break;
        case kLetter:
          f = kBAlnum | kBLetter;
          break;
        case kPunct:
          f = kBPunct;
          break;
        default:
          f = kBAlnum;  // digits
          break;
      }
      if (c == '.' || c == '!' || c == '?') f |= kBTerm;
      if (c == '{') f |= kBBrace;
      const int lower = (c >= 'A' && c <= 'Z') ? c + 32 : c;
      if (lower == 'f' || lower == 'j' || lower == 'k' || lower == 'p' || lower == 'v')
        f |= kBAnchor;
    }
    t.flags[c] = f;
  }
  return t;
}

constexpr ByteTable kBytes = MakeByteTable();

inline uint8_t FlagsOf(char c) { return kBytes.flags[static_cast<unsigned char>(c)]; }

// Removes Wikipedia citation markers "[12]", "[]", "[edit]" and
// "[citation needed]" (datatrove's CITATION_REGEX). Returns false, leaving
// `out` alone, when there is none.
bool RemoveCitations(std::string_view line, std::string* out) {
  size_t open = line.find('[');
  if (open == std::string_view::npos) return false;
  bool removed = false;
  out->clear();
  size_t copied = 0;
  while (open != std::string_view::npos) {
    size_t end = std::string_view::npos;
    size_t j = open + 1;
    while (j < line.size() && line[j] >= '0' && line[j] <= '9') ++j;
    if (j < line.size() && line[j] == ']') {
      end = j + 1;
    } else if (line.compare(open, 6, "[edit]") == 0) {
      end = open + 6;
    } else if (line.compare(open, 17, "[citation needed]") == 0) {
      end = open + 17;
    }
    if (end != std::string_view::npos) {
      out->append(line.data() + copied, open - copied);
      copied = end;
      removed = true;
      open = line.find('[', end);
    } else {
      open = line.find('[', open + 1);
    }
  }
  if (!removed) return false;
  out->append(line.data() + copied, line.size() - copied);
  return true;
}

inline char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Whether `s` holds `lower` (lowercase ASCII) at `at`, ignoring ASCII case.
// `at` may be "negative" (wrapped); then there is no match.
inline bool MatchesAt(std::string_view s, size_t at, std::string_view lower) {
  if (at > s.size() || s.size() - at < lower.size()) return false;
  for (size_t k = 0; k < lower.size(); ++k) {
    if (AsciiLower(s[at + k]) != lower[k]) return false;
  }
  return true;
}

inline bool StartsWithAny(std::string_view s, size_t at,
                          std::initializer_list<std::string_view> options) {
  std::string_view rest = s.substr(at);
  for (std::string_view o : options) {
    if (StartsWith(rest, o)) return true;
  }
  return false;
}

// Full-width and CJK sentence ends: ．！？。｡ (3 bytes each in UTF-8).
inline bool CjkTerminatorAt(std::string_view s, size_t at) {
  return StartsWithAny(s, at, {"\uFF0E", "\uFF01", "\uFF1F", "\u3002", "\uFF61"});
}

// Closing quotes and brackets that may follow a sentence end; returns the
// bytes of the one at `at`, or 0.
inline size_t CloserAt(std::string_view s, size_t at) {
  const char c = s[at];
  if (c == '"' || c == '\'' || c == ')' || c == ']') return 1;
  if (StartsWith(s.substr(at), "\u00BB")) return 2;
  if (StartsWithAny(s, at, {"\u201D", "\u2019", "\u300D", "\u300F", "\uFF09"})) return 3;
  return 0;
}

// Whitespace-separated pieces of `line` (str.split()), counted up to `limit`.
int64_t CountPieces(std::string_view line, int64_t limit) {
  int64_t pieces = 0;
  bool in_piece = false;
  int len = 1;
  for (size_t i = 0; i < line.size() && pieces < limit; i += static_cast<size_t>(len)) {
    const uint8_t f = FlagsOf(line[i]);
    len = 1;
    const bool space = (f & kBSpace) || ((f & kBHigh) && KindAt(line, i, &len) == kSpace);
    pieces += !space & !in_piece;
    in_piece = !space;
  }
  return pieces;
}

// Whether a whitespace-separated piece of `line` has more than `max_chars`
// code points.
bool HasLongPiece(std::string_view line, int64_t max_chars) {
  if (static_cast<int64_t>(line.size()) <= max_chars) return false;  // bytes >= code points
  int64_t run = 0;
  int len = 1;
  for (size_t i = 0; i < line.size(); i += static_cast<size_t>(len)) {
    if (KindAt(line, i, &len) == kSpace) {
      run = 0;
    } else if (++run > max_chars) {
      return true;
    }
  }
  return false;
}

// What C4 needs to know about one line's content, from one pass over it.
struct LineScan {
  int64_t sentences = 0;     // see the file comment
  bool lorem_ipsum = false;  // these three ignore ASCII case
  bool javascript = false;
  bool policy = false;  // datatrove's POLICY_SUBSTRINGS
  bool curly = false;   // '{'
};

LineScan ScanLine(std::string_view line) {
  LineScan r;
  bool content = false;  // a letter or digit since the last sentence end
  size_t i = 0;
  while (i < line.size()) {
    const uint8_t f = FlagsOf(line[i]);
    if ((f & (kBHigh | kBTerm | kBAnchor | kBBrace)) == 0) {
      content |= (f & kBAlnum) != 0;  // the common byte
      ++i;
      continue;
    }
    const bool cjk_end = (f & kBHigh) && CjkTerminatorAt(line, i);
    if ((f & kBTerm) || cjk_end) {
      // A run of terminators, then closers, then a break ends a sentence.
      size_t j = i;
      bool cjk = false;
      while (j < line.size()) {
        if (FlagsOf(line[j]) & kBTerm) {
          ++j;
        } else if (CjkTerminatorAt(line, j)) {
          j += 3;
          cjk = true;
        } else {
          break;
        }
      }
      while (j < line.size()) {
        const size_t n = CloserAt(line, j);
        if (n == 0) break;
        j += n;
      }
      int len = 1;
      if (content && (cjk || j == line.size() || KindAt(line, j, &len) == kSpace)) {
        ++r.sentences;
        content = false;
      }
      i = j;
      continue;
    }
    if (f & kBHigh) {
      int len = 1;
      const CharKind k = KindAt(line, i, &len);
      content |= k == kLetter || k == kOther;
      i += static_cast<size_t>(len);
      continue;
    }
    if (f & kBBrace) r.curly = true;
    if (f & kBAnchor) {
      // Each phrase is found from a rare letter in it, at a fixed offset.
      switch (AsciiLower(line[i])) {
        case 'j':
          r.javascript |= MatchesAt(line, i, "javascript");
          break;
        case 'p':
          r.lorem_ipsum |= MatchesAt(line, i - 7, "lorem ipsum");
          break;
        case 'v':
          r.policy |= MatchesAt(line, i - 3, "privacy policy");
          break;
        case 'f':
          r.policy |= MatchesAt(line, i - 7, "terms of use");
          break;
        case 'k':
          r.policy |=
              MatchesAt(line, i - 3, "cookie policy") || MatchesAt(line, i - 8, "uses cookies") ||
              MatchesAt(line, i - 10, "use of cookies") || MatchesAt(line, i - 7, "use cookies");
          break;
        default:
          break;
      }
    }
    content |= (f & kBAlnum) != 0;
    ++i;
  }
  r.sentences += content ? 1 : 0;
  return r;
}

struct C4LineResult {
  const char* page_reason = nullptr;  // first kept line with lorem ipsum or '{'
  std::string page_detail;
  int64_t sentences = 0;
  int64_t lines_seen = 0;  // non-blank lines
  int lines_dropped = 0;
};

// Drops boilerplate lines from `text` and removes citation markers; kept
// lines keep their paragraphs (blank line between paragraphs).
C4LineResult ApplyC4Lines(const C4Options& o, std::string& text) {
  C4LineResult r;
  std::string out;
  out.reserve(text.size());
  std::string scratch;
  bool paragraph_break = false;
  std::string_view all(text);
  size_t start = 0;
  int64_t line_no = 0;  // 1-based, in the input
  while (start <= all.size()) {
    size_t nl = all.find('\n', start);
    if (nl == std::string_view::npos) nl = all.size();
    std::string_view line = TrimSpace(all.substr(start, nl - start));
    start = nl + 1;
    ++line_no;
    if (line.empty()) {
      paragraph_break = !out.empty();
      continue;
    }
    ++r.lines_seen;
    // datatrove's order: long word, citations, terminal punctuation, few
    // words, lorem ipsum, javascript, curly bracket, policy. Words are
    // counted before citations go.
    if (o.max_word_length > 0 && HasLongPiece(line, o.max_word_length)) {
      ++r.lines_dropped;
      continue;
    }
    const int64_t words = CountPieces(line, o.min_words_per_line);
    if (o.remove_citations && RemoveCitations(line, &scratch)) line = TrimSpace(scratch);
    if (o.drop_lines_without_terminal_punct &&
        (!EndsWithTerminalPunct(line) || EndsWith(line, "..."))) {
      ++r.lines_dropped;
      continue;
    }
    if (words < o.min_words_per_line || line.empty()) {
      ++r.lines_dropped;
      continue;
    }
    const LineScan scan = ScanLine(line);
    if (o.drop_lorem_ipsum && scan.lorem_ipsum) {
      if (r.page_reason == nullptr) {
        r.page_reason = "c4_lorem_ipsum";
        r.page_detail = absl::StrFormat("\"lorem ipsum\" on line %d", line_no);
      }
    } else if (o.drop_javascript_lines && scan.javascript) {
      ++r.lines_dropped;
      continue;
    } else if (o.drop_curly_bracket && scan.curly) {
      if (r.page_reason == nullptr) {
        r.page_reason = "c4_curly_bracket";
        r.page_detail = absl::StrFormat("'{' on line %d", line_no);
      }
    } else if (o.drop_policy_lines && scan.policy) {
      ++r.lines_dropped;
      continue;
    }
    r.sentences += scan.sentences;
    if (!out.empty()) out.append(paragraph_break ? "\n\n" : "\n");
    paragraph_break = false;
    out.append(line.data(), line.size());
  }
  text.swap(out);
  return r;
}

// ---------------------------------------------------------------------------
// Words and tokens

struct Tokens {
  std::vector<uint64_t> hash;   // per token (word or symbol run)
  std::vector<uint32_t> chars;  // code points per token
  int64_t words = 0;
  int64_t symbols = 0;
  int64_t word_chars = 0;
  int64_t words_with_letter = 0;  // whitespace pieces with a letter
  int64_t pieces = 0;             // whitespace-separated pieces
  int64_t stop_words = 0;
  int64_t count() const { return words + symbols; }
};

inline void AddToken(Tokens* t, std::string_view piece, int64_t chars) {
  t->hash.push_back(HashBytes(piece.data(), piece.size()));
  t->chars.push_back(static_cast<uint32_t>(chars));
}

inline void AddToken(Tokens* t, std::string_view piece) { AddToken(t, piece, CodePoints(piece)); }

// Gopher's stop words: the, be, to, of, and, that, have, with (exact,
// lowercase, as datatrove matches them).
inline bool IsStopWord(std::string_view w) {
  auto is = [&](const char* s) { return std::memcmp(w.data(), s, w.size()) == 0; };
  switch (w.size()) {
    case 2:
      return is("be") || is("to") || is("of");
    case 3:
      return is("the") || is("and");
    case 4:
      return is("that") || is("have") || is("with");
    default:
      return false;
  }
}

// Adds the tokens of one whitespace-separated piece: leading punctuation,
// the word, trailing punctuation (see the file comment).
void AddPiece(Tokens* t, std::string_view piece, bool letter) {
  ++t->pieces;
  int len = 1;
  size_t b = 0;
  while (b < piece.size() && KindAt(piece, b, &len) == kPunct) b += static_cast<size_t>(len);
  if (b == piece.size()) {
    AddToken(t, piece);
    ++t->symbols;
    return;
  }
  size_t e = piece.size();
  while (e > b) {
    const size_t p = PrevCharStart(piece, e);
    if (KindAt(piece, p, &len) != kPunct || p + static_cast<size_t>(len) != e) break;
    e = p;
  }
  if (b > 0) {
    AddToken(t, piece.substr(0, b));
    ++t->symbols;
  }
  std::string_view word = piece.substr(b, e - b);
  AddToken(t, word);
  ++t->words;
  t->word_chars += t->chars.back();
  t->words_with_letter += letter;
  t->stop_words += IsStopWord(word);
  if (e < piece.size()) {
    AddToken(t, piece.substr(e));
    ++t->symbols;
  }
}

// An all-ASCII piece; `flags` is the union of its bytes' flags.
void AddAsciiPiece(Tokens* t, std::string_view piece, uint8_t flags) {
  ++t->pieces;
  size_t b = 0;
  size_t e = piece.size();
  if (flags & kBPunct) {
    while (b < e && (FlagsOf(piece[b]) & kBPunct)) ++b;
    if (b == e) {
      AddToken(t, piece, static_cast<int64_t>(piece.size()));
      ++t->symbols;
      return;
    }
    while (FlagsOf(piece[e - 1]) & kBPunct) --e;
    if (b > 0) {
      AddToken(t, piece.substr(0, b), static_cast<int64_t>(b));
      ++t->symbols;
    }
  }
  std::string_view word = piece.substr(b, e - b);
  AddToken(t, word, static_cast<int64_t>(word.size()));
  ++t->words;
  t->word_chars += static_cast<int64_t>(word.size());
  t->words_with_letter += (flags & kBLetter) != 0;
  t->stop_words += IsStopWord(word);
  if (e < piece.size()) {
    AddToken(t, piece.substr(e), static_cast<int64_t>(piece.size() - e));
    ++t->symbols;
  }
}

Tokens Tokenize(std::string_view text) {
  Tokens t;
  t.hash.reserve(text.size() / 4 + 1);
  t.chars.reserve(text.size() / 4 + 1);
  const size_t size = text.size();
  size_t i = 0;
  int len = 1;
  while (i < size) {
    if (FlagsOf(text[i]) & kBSpace) {
      ++i;
      continue;
    }
    // A piece: up to the next whitespace. Plain ASCII first.
    const size_t begin = i;
    uint8_t flags = 0;
    while (i < size) {
      const uint8_t f = FlagsOf(text[i]);
      if (f & (kBSpace | kBHigh)) break;
      flags |= f;
      ++i;
    }
    if (i == size || (FlagsOf(text[i]) & kBSpace)) {
      AddAsciiPiece(&t, text.substr(begin, i - begin), flags);
      continue;
    }
    // Not plain ASCII. Punctuation holds no letter, so a letter anywhere in
    // the piece is a letter in its word.
    bool letter = (flags & kBLetter) != 0;
    while (i < size) {
      const CharKind k = KindAt(text, i, &len);
      if (k == kSpace) break;
      letter |= k == kLetter;
      i += static_cast<size_t>(len);
    }
    if (i > begin) AddPiece(&t, text.substr(begin, i - begin), letter);
    if (i < size) i += static_cast<size_t>(len);  // the whitespace
  }
  return t;
}

// ---------------------------------------------------------------------------
// Lines and paragraphs

struct LineStats {
  int64_t chars = 0;  // code points in the text
  int64_t newlines = 0;
  int64_t lines = 0;           // str.splitlines(): blank lines included
  int64_t bullet_lines = 0;    // starting with '•' or '-'
  int64_t ellipsis_lines = 0;  // ending with "..." or '…'
  int64_t nonblank = 0;
  int64_t dup_lines = 0;  // non-blank lines seen before
  int64_t dup_line_chars = 0;
  int64_t punct_lines = 0;  // non-blank, ending in terminal punctuation
  int64_t short_lines = 0;  // non-blank, <= short_line_chars
};

LineStats MeasureLines(std::string_view text, int64_t short_line_chars) {
  LineStats s;
  absl::flat_hash_set<std::string_view> seen;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(start, nl - start);
    s.newlines += nl < text.size() ? 1 : 0;
    start = nl + 1;
    ++s.lines;
    const int64_t chars = CodePoints(line);
    s.chars += chars;
    std::string_view trimmed = TrimSpace(line);
    if (trimmed.empty()) continue;
    s.bullet_lines += StartsWith(trimmed, "\u2022") || trimmed[0] == '-';
    s.ellipsis_lines += EndsWith(trimmed, "...") || EndsWith(trimmed, "\u2026");
    ++s.nonblank;
    if (!seen.insert(line).second) {
      ++s.dup_lines;
      s.dup_line_chars += chars;
    }
    s.punct_lines += EndsWithTerminalPunct(line);
    s.short_lines += chars <= short_line_chars;
  }
  s.chars += s.newlines;
  return s;
}

struct ParagraphStats {
  int64_t paragraphs = 0;
  int64_t dups = 0;
  int64_t dup_chars = 0;
};

// Paragraphs: the stripped text split at runs of two or more '\n'.
ParagraphStats MeasureParagraphs(std::string_view text) {
  ParagraphStats s;
  absl::flat_hash_set<std::string_view> seen;
  std::string_view body = TrimSpace(text);
  size_t start = 0;
  while (true) {
    size_t brk = body.find("\n\n", start);
    if (brk == std::string_view::npos) brk = body.size();
    std::string_view para = body.substr(start, brk - start);
    ++s.paragraphs;
    if (!seen.insert(para).second) {
      ++s.dups;
      s.dup_chars += CodePoints(para);
    }
    if (brk == body.size()) break;
    start = brk;
    while (start < body.size() && body[start] == '\n') ++start;
  }
  return s;
}

// ---------------------------------------------------------------------------
// Gopher repetition (Rae et al. 2021, table A1; datatrove
// GopherRepetitionFilter).

// Word n-grams, computed over token hashes. Only positions whose (n-1)-gram
// occurs more than once are looked at for n: elsewhere the n-gram is unique,
// so it is neither the most frequent one (unless all are unique) nor a
// duplicate. Results equal those of datatrove's full passes.
// Not thread-safe; one per call.
class NgramScan {
 public:
  explicit NgramScan(const Tokens& t)
      : t_(t), g_(t.hash), rep_(t.hash.size()), cnt_(t.hash.size()), cum_(t.hash.size() + 1) {
    for (size_t i = 0; i < t.chars.size(); ++i) cum_[i + 1] = cum_[i] + t.chars[i];
    cand_.resize(t.hash.size());
    for (size_t i = 0; i < cand_.size(); ++i) cand_[i] = static_cast<uint32_t>(i);
  }

  // Moves on to n-grams (from (n-1)-grams). REQUIRES: n = 2, 3, ... in turn.
  void Extend(int n) {
    n_ = n;
    const size_t count = Positions();
    while (!cand_.empty() && cand_.back() >= count) cand_.pop_back();
    for (uint32_t p : cand_) g_[p] = Combine(g_[p], t_.hash[p + n - 1]);
  }

  // Characters of the most frequent n-gram (joined by spaces) times its
  // count; ties go to the n-gram seen first (Counter.most_common). Then keeps
  // as candidates the n-grams that occur more than once.
  int64_t TopNgramChars() {
    if (Positions() == 0) return 0;
    first_.clear();
    first_.reserve(cand_.size());
    uint32_t best = 0;
    uint32_t best_count = 0;
    for (uint32_t p : cand_) {
      const uint32_t first = first_.try_emplace(g_[p], p).first->second;
      rep_[p] = first;
      if (first == p) cnt_[p] = 0;
      const uint32_t c = ++cnt_[first];
      if (c > best_count || (c == best_count && first < best)) {
        best_count = c;
        best = first;
      }
    }
    size_t kept = 0;
    for (uint32_t p : cand_) {
      cand_[kept] = p;
      kept += cnt_[rep_[p]] >= 2;
    }
    cand_.resize(kept);
    // An n-gram seen once is not repetition (datatrove would count it, which
    // drops every short document); see the deviations above.
    if (best_count <= 1) return 0;
    const int64_t chars = cum_[best + n_] - cum_[best] + (n_ - 1);
    return chars * best_count;
  }

  // Characters in duplicated n-grams, scanning left to right and jumping past
  // each duplicate (datatrove's find_all_duplicate; tokens joined without
  // spaces). REQUIRES: TopNgramChars() ran for some smaller n.
  int64_t DupNgramChars() {
    seen_.clear();
    seen_.reserve(cand_.size());
    int64_t repeated = 0;
    size_t next = 0;  // datatrove's index after its last jump
    for (uint32_t p : cand_) {
      if (p < next) continue;
      if (!seen_.insert(g_[p]).second) {
        repeated += cum_[p + n_] - cum_[p];
        next = p + static_cast<size_t>(n_);
      }
    }
    return repeated;
  }

 private:
  size_t Positions() const {
    const size_t n = static_cast<size_t>(n_);
    return t_.hash.size() >= n ? t_.hash.size() - n + 1 : 0;
  }

  const Tokens& t_;
  int n_ = 1;
  std::vector<uint64_t> g_;     // hash of the n-gram at each position
  std::vector<uint32_t> rep_;   // first position of the same n-gram
  std::vector<uint32_t> cnt_;   // at a first position: occurrences
  std::vector<int64_t> cum_;    // code points before token i
  std::vector<uint32_t> cand_;  // positions to look at, increasing
  absl::flat_hash_map<uint64_t, uint32_t> first_;
  absl::flat_hash_set<uint64_t> seen_;
};

// `ngrams` = false skips the n-gram rules (short documents that are not
// pages, TextRulesOptions::ngram_min_words).
bool CheckRepetition(const GopherRepetitionOptions& o, std::string_view text,
                     const LineStats& lines, const Tokens& tokens, bool ngrams,
                     FilterVerdict* v) {
  const auto chars = static_cast<double>(lines.chars);
  if (chars == 0) return false;
  if (o.max_dup_para_frac > 0 || o.max_dup_para_char_frac > 0) {
    ParagraphStats p = MeasureParagraphs(text);
    double frac = static_cast<double>(p.dups) / static_cast<double>(p.paragraphs);
    if (o.max_dup_para_frac > 0 && frac > o.max_dup_para_frac) {
      return Reject(v, "gopher_dup_para_frac",
                    Ratio("duplicate paragraphs", frac, "maximum", o.max_dup_para_frac));
    }
    frac = static_cast<double>(p.dup_chars) / chars;
    if (o.max_dup_para_char_frac > 0 && frac > o.max_dup_para_char_frac) {
      return Reject(
          v, "gopher_dup_para_char_frac",
          Ratio("characters in duplicate paragraphs", frac, "maximum", o.max_dup_para_char_frac));
    }
  }
  if (lines.nonblank > 0) {
    double frac = static_cast<double>(lines.dup_lines) / static_cast<double>(lines.nonblank);
    if (o.max_dup_line_frac > 0 && frac > o.max_dup_line_frac) {
      return Reject(v, "gopher_dup_line_frac",
                    Ratio("duplicate lines", frac, "maximum", o.max_dup_line_frac));
    }
    frac = static_cast<double>(lines.dup_line_chars) / chars;
    if (o.max_dup_line_char_frac > 0 && frac > o.max_dup_line_char_frac) {
      return Reject(
          v, "gopher_dup_line_char_frac",
          Ratio("characters in duplicate lines", frac, "maximum", o.max_dup_line_char_frac));
    }
  }

  static const char* const kTopReasons[] = {"gopher_top_2gram", "gopher_top_3gram",
                                            "gopher_top_4gram"};
  static const char* const kDupReasons[] = {"gopher_dup_5gram", "gopher_dup_6gram",
                                            "gopher_dup_7gram", "gopher_dup_8gram",
                                            "gopher_dup_9gram", "gopher_dup_10gram"};
  const double top_limits[] = {o.max_top_2gram_char_frac, o.max_top_3gram_char_frac,
                               o.max_top_4gram_char_frac};
  const double dup_limits[] = {o.max_dup_5gram_char_frac, o.max_dup_6gram_char_frac,
                               o.max_dup_7gram_char_frac, o.max_dup_8gram_char_frac,
                               o.max_dup_9gram_char_frac, o.max_dup_10gram_char_frac};
  if (!ngrams || tokens.count() < 2) return false;
  NgramScan scan(tokens);
  for (int n = 2; n <= 10; ++n) {
    scan.Extend(n);
    if (n <= 4) {
      // Run every pass (even with its rule off): it narrows the next.
      const double frac = static_cast<double>(scan.TopNgramChars()) / chars;
      const double limit = top_limits[n - 2];
      if (limit > 0 && frac > limit) {
        return Reject(v, kTopReasons[n - 2],
                      Ratio(absl::StrFormat("characters in the top %d-gram", n).c_str(), frac,
                            "maximum", limit));
      }
      continue;
    }
    const double limit = dup_limits[n - 5];
    if (limit <= 0) continue;
    const double frac = static_cast<double>(scan.DupNgramChars()) / chars;
    if (frac > limit) {
      return Reject(v, kDupReasons[n - 5],
                    Ratio(absl::StrFormat("characters in duplicate %d-grams", n).c_str(), frac,
                          "maximum", limit));
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// Gopher quality (Rae et al. 2021, appendix A; datatrove GopherQualityFilter).

// Non-overlapping "..." plus '…' (str.count).
int64_t CountEllipses(std::string_view text) {
  int64_t n = 0;
  for (size_t i = text.find("..."); i != std::string_view::npos; i = text.find("...", i + 3)) ++n;
  for (size_t i = text.find("\u2026"); i != std::string_view::npos; i = text.find("\u2026", i + 3))
    ++n;
  return n;
}

bool CheckGopherQuality(const GopherQualityOptions& o, std::string_view text,
                        const LineStats& lines, const Tokens& t, FilterVerdict* v) {
  if (t.words < o.min_doc_words) {
    return Reject(v, "gopher_short_doc",
                  absl::StrFormat("%d words, minimum %d", t.words, o.min_doc_words));
  }
  if (o.max_doc_words > 0 && t.words > o.max_doc_words) {
    return Reject(v, "gopher_long_doc",
                  absl::StrFormat("%d words, maximum %d", t.words, o.max_doc_words));
  }
  if (t.words > 0) {
    const double avg = static_cast<double>(t.word_chars) / static_cast<double>(t.words);
    if (o.min_avg_word_length > 0 && avg < o.min_avg_word_length) {
      return Reject(v, "gopher_below_avg_word_length",
                    Ratio("mean word length", avg, "minimum", o.min_avg_word_length));
    }
    if (o.max_avg_word_length > 0 && avg > o.max_avg_word_length) {
      return Reject(v, "gopher_above_avg_word_length",
                    Ratio("mean word length", avg, "maximum", o.max_avg_word_length));
    }
  }
  const auto tokens = static_cast<double>(t.count());
  if (o.max_symbol_word_ratio > 0 && tokens > 0) {
    int64_t hashes = 0;
    for (size_t i = text.find('#'); i != std::string_view::npos; i = text.find('#', i + 1))
      ++hashes;
    double ratio = static_cast<double>(hashes) / tokens;
    if (ratio > o.max_symbol_word_ratio) {
      return Reject(v, "gopher_symbol_word_ratio",
                    Ratio("'#' per word", ratio, "maximum", o.max_symbol_word_ratio));
    }
    ratio = static_cast<double>(CountEllipses(text)) / tokens;
    if (ratio > o.max_symbol_word_ratio) {
      return Reject(v, "gopher_symbol_word_ratio",
                    Ratio("ellipses per word", ratio, "maximum", o.max_symbol_word_ratio));
    }
  }
  if (lines.lines > 0) {
    double ratio = static_cast<double>(lines.bullet_lines) / static_cast<double>(lines.lines);
    if (o.max_bullet_lines_ratio > 0 && ratio > o.max_bullet_lines_ratio) {
      return Reject(
          v, "gopher_bullet_lines",
          Ratio("lines starting with a bullet", ratio, "maximum", o.max_bullet_lines_ratio));
    }
    ratio = static_cast<double>(lines.ellipsis_lines) / static_cast<double>(lines.lines);
    if (o.max_ellipsis_lines_ratio > 0 && ratio > o.max_ellipsis_lines_ratio) {
      return Reject(
          v, "gopher_ellipsis_lines",
          Ratio("lines ending with an ellipsis", ratio, "maximum", o.max_ellipsis_lines_ratio));
    }
  }
  if (o.min_alpha_words_ratio > 0 && t.pieces > 0) {
    const double ratio =
        static_cast<double>(t.words_with_letter) / static_cast<double>(t.pieces);
    if (ratio < o.min_alpha_words_ratio) {
      return Reject(v, "gopher_alpha_words",
                    Ratio("words with a letter", ratio, "minimum", o.min_alpha_words_ratio));
    }
  }
  if (t.stop_words < o.min_stop_words) {
    return Reject(v, "gopher_stop_words",
                  absl::StrFormat("%d stop words, minimum %d", t.stop_words, o.min_stop_words));
  }
  return false;
}

// ---------------------------------------------------------------------------
// FineWeb (Penedo et al. 2024; datatrove FineWebQualityFilter). Comparisons
// as datatrove's: <= for the punctuation ratio, >= for short lines and
// duplicates, > for newlines.

bool CheckFineWeb(const FineWebOptions& o, const LineStats& lines, const Tokens& t,
                  FilterVerdict* v) {
  if (lines.nonblank == 0) return false;
  const auto n = static_cast<double>(lines.nonblank);
  double ratio = static_cast<double>(lines.punct_lines) / n;
  if (o.min_line_punct_ratio > 0 && ratio <= o.min_line_punct_ratio) {
    return Reject(
        v, "fineweb_line_punct_ratio",
        Ratio("lines ending in punctuation", ratio, "must exceed", o.min_line_punct_ratio));
  }
  ratio = static_cast<double>(lines.short_lines) / n;
  if (o.max_short_line_ratio > 0 && ratio >= o.max_short_line_ratio) {
    return Reject(v, "fineweb_short_line_ratio",
                  Ratio(absl::StrFormat("lines of <= %d chars", o.short_line_chars).c_str(), ratio,
                        "must stay below", o.max_short_line_ratio));
  }
  const int64_t chars = lines.chars - lines.newlines;  // datatrove: text without '\n'
  if (o.max_char_dup_ratio > 0 && chars > 0) {
    ratio = static_cast<double>(lines.dup_line_chars) / static_cast<double>(chars);
    if (ratio >= o.max_char_dup_ratio) {
      return Reject(
          v, "fineweb_char_dup_ratio",
          Ratio("characters in duplicate lines", ratio, "must stay below", o.max_char_dup_ratio));
    }
  }
  if (o.max_newline_ratio > 0) {
    const double breaks = n - 1;
    ratio = t.count() > 0 ? breaks / static_cast<double>(t.count()) : (breaks > 0 ? 1e9 : 0);
    if (ratio > o.max_newline_ratio) {
      return Reject(v, "fineweb_newline_ratio",
                    Ratio("line breaks per word", ratio, "maximum", o.max_newline_ratio));
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// Document shape (PageShapeOptions): web-page rules apply to pages only.

// Markup left in the text: an HTML tag ("<p", "</div", "<!DOCTYPE" closed
// by '>' on the same line; not PII stage's placeholders such as "<EMAIL>")
// or wiki/template brackets.
bool HasMarkupRemnants(std::string_view text) {
  if (text.find("{{") != std::string_view::npos || text.find("}}") != std::string_view::npos ||
      text.find("[[") != std::string_view::npos || text.find("]]") != std::string_view::npos) {
    return true;
  }
  for (size_t i = text.find('<'); i != std::string_view::npos; i = text.find('<', i + 1)) {
    if (i + 2 >= text.size()) break;
    char c = text[i + 1];
    if (c == '/' || c == '!') c = text[i + 2];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) continue;
    const size_t close = text.find_first_of(">\n", i + 1);
    if (close == std::string_view::npos || text[close] != '>') continue;
    const std::string_view tag = text.substr(i, close + 1 - i);
    bool placeholder = false;
    for (std::string_view p : {"<EMAIL>", "<PHONE>", "<IP_ADDRESS>", "<CREDIT_CARD>", "<IBAN>",
                               "<API_KEY>", "<PRIVATE_KEY>"}) {
      placeholder |= tag == p;
    }
    if (!placeholder) return true;
  }
  return false;
}

int64_t NonBlankLines(std::string_view text, int64_t stop_at) {
  int64_t n = 0;
  size_t start = 0;
  while (start < text.size() && n < stop_at) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    n += !TrimSpace(text.substr(start, nl - start)).empty();
    start = nl + 1;
  }
  return n;
}

bool IsPageShaped(const PageShapeOptions& o, std::string_view text) {
  if (o.min_lines <= 1) return true;
  if (NonBlankLines(text, o.min_lines) >= o.min_lines) return true;
  return o.markup_makes_page && HasMarkupRemnants(text);
}

// C4's options as they apply to a document that is not a page: citation
// markers and overlong words still go, "lorem ipsum" still drops it; the
// rules about line length, sentences, code and boilerplate lines are for
// pages (boilerplate in a short document is TextRulesOptions' job).
C4Options C4ForNonPage(const C4Options& page) {
  C4Options o = page;
  o.drop_lines_without_terminal_punct = false;
  o.min_words_per_line = 0;
  o.drop_javascript_lines = false;
  o.drop_policy_lines = false;
  o.drop_curly_bracket = false;
  o.min_sentences = 0;
  return o;
}

// ---------------------------------------------------------------------------
// Rules for every document (TextRulesOptions).

struct TextStats {
  int64_t words = 0;           // pieces with a letter or digit
  int64_t checked_words = 0;   // Latin-letter words of 4+ letters, not acronyms
  int64_t wordlike = 0;        // ... that look like words
  int64_t capitalized = 0;     // words whose first character is an uppercase letter
  int64_t cased_words = 0;     // words whose first character is a cased letter
  int64_t separators = 0;      // pieces of navigation separators only
  int64_t urls = 0;
  int64_t letters = 0;         // cased letters
  int64_t upper = 0;           // uppercase letters
  bool sentence_end = false;   // . ! ? (or full-width) after a word
};

inline bool IsAsciiVowel(char c) {
  switch (c) {
    case 'a': case 'e': case 'i': case 'o': case 'u': case 'y':
      return true;
    default:
      return false;
  }
}

// Whether a lowercase ASCII word of 4+ letters looks like a word of a
// Latin-script language: it has a vowel, no run of 5 consonants and no
// letter 4 times in a row. Keyboard mashing and random letters fail.
bool LooksLikeWord(std::string_view w) {
  bool vowel = false;
  int consonants = 0;
  int same = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const char c = w[i];
    if (IsAsciiVowel(c)) {
      vowel = true;
      consonants = 0;
    } else if (++consonants >= 5) {
      return false;
    }
    same = (i > 0 && w[i - 1] == c) ? same + 1 : 1;
    if (same >= 4) return false;
  }
  return vowel;
}

// Pieces made only of these are navigation separators.
bool IsSeparatorPiece(std::string_view p) {
  if (p.empty()) return false;
  size_t i = 0;
  while (i < p.size()) {
    const char c = p[i];
    if (c == '|' || c == '>' || c == '<' || c == '/' || c == '\\' || c == ':') {
      ++i;
      continue;
    }
    bool matched = false;
    for (std::string_view sep : {"\u00BB", "\u00AB", "\u203A", "\u2039", "\u2022", "\u00B7",
                                 "\u2192", "\u2190", "\u25B8", "\u25BA", "\u2023"}) {
      if (p.compare(i, sep.size(), sep) == 0) {
        i += sep.size();
        matched = true;
        break;
      }
    }
    if (!matched) return false;
  }
  return p != ":";  // a lone colon is punctuation, not a separator
}

TextStats MeasureText(std::string_view text) {
  TextStats s;
  std::string lower;
  size_t i = 0;
  int len = 1;
  while (i < text.size()) {
    if (KindAt(text, i, &len) == kSpace) {
      i += static_cast<size_t>(len);
      continue;
    }
    const size_t begin = i;
    while (i < text.size() && KindAt(text, i, &len) != kSpace) i += static_cast<size_t>(len);
    const std::string_view piece = text.substr(begin, i - begin);
    // '>' opening a line quotes mail, it separates nothing.
    const bool line_start = begin == 0 || text[begin - 1] == '\n';
    if (IsSeparatorPiece(piece) && !(line_start && piece[0] == '>')) {
      ++s.separators;
      continue;
    }
    if (piece.find("://") != std::string_view::npos || StartsWith(piece, "www.")) ++s.urls;
    // The core: the piece without leading and trailing punctuation.
    size_t b = 0;
    while (b < piece.size() && KindAt(piece, b, &len) == kPunct) b += static_cast<size_t>(len);
    size_t e = piece.size();
    while (e > b) {
      const size_t p = PrevCharStart(piece, e);
      if (KindAt(piece, p, &len) != kPunct || p + static_cast<size_t>(len) != e) break;
      e = p;
    }
    if (e < piece.size()) {
      const char t = piece[e];
      if (t == '.' || t == '!' || t == '?' || CjkTerminatorAt(piece, e)) s.sentence_end = true;
    }
    const std::string_view core = piece.substr(b, e - b);
    bool alnum = false;
    bool ascii_letters_only = !core.empty();
    int64_t core_upper = 0;
    int64_t core_letters = 0;
    for (size_t k = 0; k < core.size(); k += static_cast<size_t>(len)) {
      len = 1;
      const auto c = static_cast<unsigned char>(core[k]);
      if (c < 0x80) {
        const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        alnum |= letter || (c >= '0' && c <= '9');
        ascii_letters_only &= letter || (c == '\'' && k > 0);
        if (letter) {
          ++core_letters;
          core_upper += c <= 'Z';
        }
        continue;
      }
      ascii_letters_only = false;
      utf8proc_int32_t cp = 0;
      const utf8proc_ssize_t n =
          utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(core.data() + k),
                           static_cast<utf8proc_ssize_t>(core.size() - k), &cp);
      if (n <= 0) continue;
      len = static_cast<int>(n);
      const utf8proc_category_t cat = utf8proc_category(cp);
      if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
          cat == UTF8PROC_CATEGORY_LT) {
        ++core_letters;
        core_upper += cat != UTF8PROC_CATEGORY_LL;
      }
      alnum |= KindOfCodePoint(cp) == kLetter || cat == UTF8PROC_CATEGORY_ND;
    }
    if (!alnum) continue;
    ++s.words;
    s.letters += core_letters;
    s.upper += core_upper;
    // First character cased?
    {
      const auto c = static_cast<unsigned char>(core[0]);
      if (c < 0x80) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
          ++s.cased_words;
          s.capitalized += c <= 'Z';
        }
      } else {
        utf8proc_int32_t cp = 0;
        if (utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(core.data()),
                             static_cast<utf8proc_ssize_t>(core.size()), &cp) > 0) {
          const utf8proc_category_t cat = utf8proc_category(cp);
          if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
              cat == UTF8PROC_CATEGORY_LT) {
            ++s.cased_words;
            s.capitalized += cat != UTF8PROC_CATEGORY_LL;
          }
        }
      }
    }
    if (!ascii_letters_only || core_letters < 4) continue;
    if (core_upper == core_letters && core_letters <= 5) continue;  // an acronym
    lower.clear();
    for (char c : core) {
      if (c != '\'') lower.push_back(AsciiLower(c));
    }
    ++s.checked_words;
    s.wordlike += LooksLikeWord(lower);
  }
  return s;
}

// Phrases of site furniture (C4's policy phrases and more) and, with
// `advertising`, of advertising mail too, matched ignoring ASCII case.
// Returns how many different ones occur; `phrase` = the first.
int FindBoilerplate(std::string_view text, bool advertising, std::string* phrase) {
  static const char* const kFurniture[] = {
      "all rights reserved", "skip to content", "skip to main content", "enable javascript",
      "javascript is disabled", "javascript is required", "javascript must be enabled",
      "cookie policy", "privacy policy", "terms of use", "terms of service", "uses cookies",
      "use of cookies", "we use cookies", "accept cookies", "accept all cookies", "click here",
      "subscribe to our newsletter", "sign up for our newsletter", "follow us on",
      "share on facebook", "share on twitter", "back to top", "add to cart",
      "powered by wordpress", "\u00A9", "(c) copyright", "copyright (c)"};
  static const char* const kAdvertising[] = {
      "terms and conditions", "to be removed", "remove me", "opt-out", "opt out", "unsubscribe",
      "act now", "order now", "risk free", "risk-free", "money back", "100% free",
      "limited time"};
  std::string lower;
  lower.reserve(text.size());
  for (char c : text) lower.push_back(AsciiLower(c));
  int found = 0;
  auto look = [&](const char* p) {
    if (lower.find(p) == std::string::npos) return;
    if (found++ == 0) *phrase = p;
  };
  for (const char* p : kFurniture) look(p);
  if (advertising) {
    for (const char* p : kAdvertising) look(p);
  }
  return found;
}

bool CheckTextRules(const TextRulesOptions& o, bool page, std::string_view text, const Tokens& t,
                    FilterVerdict* v) {
  const TextStats s = MeasureText(text);
  if (!page && o.min_words > 0 && s.words < o.min_words) {
    return Reject(v, "text_too_short",
                  absl::StrFormat("%d words, minimum %d (documents that are not pages)", s.words,
                                  o.min_words));
  }
  if (o.min_wordlike_ratio > 0 && s.checked_words >= std::max<int64_t>(1, o.gibberish_min_words)) {
    const double ratio = static_cast<double>(s.wordlike) / static_cast<double>(s.checked_words);
    if (ratio < o.min_wordlike_ratio) {
      return Reject(v, "text_gibberish",
                    Ratio("words of 4+ letters that look like words", ratio, "minimum",
                          o.min_wordlike_ratio));
    }
  }
  if (o.max_separator_ratio > 0 && s.words > 0) {
    const double ratio = static_cast<double>(s.separators) / static_cast<double>(s.words);
    if (ratio > o.max_separator_ratio) {
      return Reject(v, "text_navigation",
                    Ratio("separators ('|', '>', '\u00BB', '\u2022') per word", ratio, "maximum",
                          o.max_separator_ratio));
    }
  }
  if (o.max_capitalized_ratio > 0 && !s.sentence_end && s.cased_words >= 5) {
    const double ratio = static_cast<double>(s.capitalized) / static_cast<double>(s.cased_words);
    if (ratio > o.max_capitalized_ratio) {
      return Reject(v, "text_navigation",
                    Ratio("capitalized words, no sentence end,", ratio, "maximum",
                          o.max_capitalized_ratio));
    }
  }
  if (o.max_uppercase_ratio > 0 && s.letters >= 20) {
    const double ratio = static_cast<double>(s.upper) / static_cast<double>(s.letters);
    if (ratio > o.max_uppercase_ratio) {
      return Reject(v, "text_shouting",
                    Ratio("uppercase letters", ratio, "maximum", o.max_uppercase_ratio));
    }
  }
  if (o.max_url_ratio > 0 && s.urls >= 2 && s.words > 0) {
    const double ratio = static_cast<double>(s.urls) / static_cast<double>(s.words);
    if (ratio > o.max_url_ratio) {
      return Reject(v, "text_url_ratio", Ratio("URLs per word", ratio, "maximum", o.max_url_ratio));
    }
  }
  std::string phrase;
  if (o.drop_boilerplate) {
    // A page may carry some furniture (C4 removes such lines); phrases of
    // `page_boilerplate_phrases` kinds make it an advertisement.
    if (!page && FindBoilerplate(text, /*advertising=*/false, &phrase) > 0) {
      return Reject(v, "text_boilerplate", absl::StrFormat("site boilerplate \"%s\"", phrase));
    }
    const int found = page ? FindBoilerplate(text, /*advertising=*/true, &phrase) : 0;
    if (o.page_boilerplate_phrases > 0 && found >= o.page_boilerplate_phrases) {
      return Reject(v, "text_boilerplate",
                    absl::StrFormat("%d boilerplate and advertising phrases (\"%s\", ...), "
                                    "maximum %d on a page",
                                    found, phrase, o.page_boilerplate_phrases - 1));
    }
  }
  if (page) return false;
  if (t.words > 0) {
    const double avg = static_cast<double>(t.word_chars) / static_cast<double>(t.words);
    if (o.min_avg_word_length > 0 && avg < o.min_avg_word_length) {
      return Reject(v, "text_avg_word_length",
                    Ratio("mean word length", avg, "minimum", o.min_avg_word_length));
    }
    if (o.max_avg_word_length > 0 && avg > o.max_avg_word_length) {
      return Reject(v, "text_avg_word_length",
                    Ratio("mean word length", avg, "maximum", o.max_avg_word_length));
    }
  }
  if (o.min_alpha_words_ratio > 0 && t.pieces > 0) {
    const double ratio = static_cast<double>(t.words_with_letter) / static_cast<double>(t.pieces);
    if (ratio < o.min_alpha_words_ratio) {
      return Reject(v, "text_alpha_words",
                    Ratio("words with a letter", ratio, "minimum", o.min_alpha_words_ratio));
    }
  }
  const auto tokens = static_cast<double>(t.count());
  if (o.max_symbol_word_ratio > 0 && tokens > 0) {
    int64_t symbols = CountEllipses(text);
    for (size_t i = text.find('#'); i != std::string_view::npos; i = text.find('#', i + 1))
      ++symbols;
    const double ratio = static_cast<double>(symbols) / tokens;
    if (ratio > o.max_symbol_word_ratio) {
      return Reject(v, "text_symbol_word_ratio",
                    Ratio("'#' and ellipses per word", ratio, "maximum", o.max_symbol_word_ratio));
    }
  }
  return false;
}

// ---------------------------------------------------------------------------
// Language (LanguageOptions; CLD2).

// CLD2's code in today's ISO 639-1 where it still uses a withdrawn one.
std::string IsoCode(CLD2::Language lang) {
  std::string code = CLD2::LanguageCode(lang);
  if (code == "iw") return "he";
  if (code == "jw") return "jv";
  return code;
}

bool Accepted(const std::vector<std::string>& accept, const std::string& code) {
  for (const std::string& a : accept) {
    if (code == a || (StartsWith(code, a) && code.size() > a.size() && code[a.size()] == '-'))
      return true;
  }
  return false;
}

constexpr size_t kLanguageSampleBytes = 16 * 1024;

bool CheckLanguage(const LanguageOptions& o, std::string_view text, FilterVerdict* v) {
  if ((o.accept.empty() && o.max_unrecognized_bytes <= 0) || text.empty()) return false;
  CLD2::Language language3[3];
  int percent3[3];
  double normalized_score3[3];
  int text_bytes = 0;
  bool reliable = false;
  const CLD2::CLDHints hints = {nullptr, nullptr, CLD2::UNKNOWN_ENCODING, CLD2::UNKNOWN_LANGUAGE};
  int valid_prefix_bytes = 0;
  // The checking variant: with normalization off the text may be any bytes.
  // The first 16 KiB decide (cut at a character boundary): enough for
  // CLD2, and a long page costs no more than a short one.
  size_t judged = std::min<size_t>(text.size(), kLanguageSampleBytes);
  while (judged < text.size() && judged > 0 &&
         (static_cast<unsigned char>(text[judged]) & 0xC0) == 0x80) {
    --judged;
  }
  const CLD2::Language top = CLD2::ExtDetectLanguageSummaryCheckUTF8(
      text.data(), static_cast<int>(judged),
      /*is_plain_text=*/true, &hints, /*flags=*/0, language3, percent3, normalized_score3,
      /*resultchunkvector=*/nullptr, &text_bytes, &reliable, &valid_prefix_bytes);
  if (top == CLD2::UNKNOWN_LANGUAGE && o.max_unrecognized_bytes > 0 &&
      text_bytes >= o.max_unrecognized_bytes) {
    return Reject(v, "language_unrecognized",
                  absl::StrFormat("no language recognized in %d bytes of text, maximum %d",
                                  text_bytes, o.max_unrecognized_bytes));
  }
  if (o.accept.empty()) return false;
  if (!reliable || top == CLD2::UNKNOWN_LANGUAGE || text_bytes < o.min_text_bytes) return false;
  const std::string code = IsoCode(top);
  if (Accepted(o.accept, code)) return false;
  return Reject(v, "language",
                absl::StrFormat("detected %s (%s, %d%% of %d bytes, reliable); accepted: %s",
                                code, CLD2::LanguageName(top), percent3[0], text_bytes,
                                absl::StrJoin(o.accept, ",")));
}

}  // namespace

QualityFilter::QualityFilter(const CleanOptions& options) : options_(options) {}

FilterVerdict QualityFilter::Apply(std::string& text) const {
  FilterVerdict v;
  // The shape is judged on the text as it came, before C4 removes lines.
  const bool page = IsPageShaped(options_.page, text);
  v.page_shaped = page;
  const C4Options c4 = page ? options_.c4 : C4ForNonPage(options_.c4);
  C4LineResult lines_result;
  if (c4.enabled) {
    lines_result = ApplyC4Lines(c4, text);
    v.lines_dropped = lines_result.lines_dropped;
    if (text.empty()) {
      Reject(&v, "c4_empty_after_line_filters",
             absl::StrFormat("all %d lines removed", lines_result.lines_seen));
      return v;
    }
  }
  const bool rep = options_.gopher_repetition.enabled;
  const bool gq = options_.gopher_quality.enabled && page;
  const bool fw = options_.fineweb.enabled && page;
  const bool tr = options_.text_rules.enabled;
  if (CheckLanguage(options_.language, text, &v)) return v;
  if (!rep && !gq && !fw && !tr && !c4.enabled) return v;

  Tokens tokens;
  LineStats lines;
  if (rep || gq || fw || tr) {
    tokens = Tokenize(text);
    lines = MeasureLines(text, options_.fineweb.short_line_chars);
  }
  if (tr && CheckTextRules(options_.text_rules, page, text, tokens, &v)) return v;
  const bool ngrams = page || !tr || tokens.words >= options_.text_rules.ngram_min_words;
  if (rep && CheckRepetition(options_.gopher_repetition, text, lines, tokens, ngrams, &v)) {
    return v;
  }
  if (gq && CheckGopherQuality(options_.gopher_quality, text, lines, tokens, &v)) return v;
  if (c4.enabled) {
    if (lines_result.page_reason != nullptr) {
      Reject(&v, lines_result.page_reason, lines_result.page_detail);
      return v;
    }
    if (lines_result.sentences < c4.min_sentences) {
      Reject(&v, "c4_too_few_sentences",
             absl::StrFormat("%d sentences, minimum %d", lines_result.sentences, c4.min_sentences));
      return v;
    }
  }
  if (fw && CheckFineWeb(options_.fineweb, lines, tokens, &v)) return v;
  return v;
}

}  // namespace streamlm
