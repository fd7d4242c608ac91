// Stages 2 and 3 of cleaning: repair and normalize text, and turn HTML into
// text. Each step is a pure function (valid UTF-8 in, valid UTF-8 out,
// except RepairUtf8 which makes any bytes valid); Normalizer runs them in
// order under NormalizeOptions / MarkupOptions.
//
// Thread-safety: everything here may be called from many threads at once.
#ifndef STREAMLM_INGEST_NORMALIZE_H_
#define STREAMLM_INGEST_NORMALIZE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ingest/clean_options.h"

namespace streamlm {

// Text that was UTF-8 but got decoded as CP1252 or Latin-1 and re-encoded
// ("cafÃ©", "â€™") is decoded back ("café", "’"). Each candidate sequence
// must re-encode to one well-formed multi-byte UTF-8 character; anything
// else is left alone. Applied twice at most (double-encoded text).
std::string FixMojibake(std::string_view text, int* fixed = nullptr);

// Decodes HTML character references in plain text: named (HTML 4 set via
// libxml2, plus &apos;), decimal and hex. Numeric references to
// U+0080..U+009F are read as CP1252, as browsers do; references to
// surrogates, zero or beyond U+10FFFF become U+FFFD. References need the
// closing ';'.
std::string DecodeHtmlEntities(std::string_view text, int* decoded = nullptr);

// Removes C0 controls other than tab, LF and CR; DEL; C1 controls; zero-width
// characters (U+200B, U+2060, U+FEFF, U+180E, soft hyphen U+00AD); and
// bidirectional controls (U+200E, U+200F, U+061C, U+202A..U+202E,
// U+2066..U+2069). ZWJ and ZWNJ (U+200D, U+200C) stay: emoji sequences and
// several scripts need them.
std::string StripInvisible(std::string_view text, int* removed = nullptr);

// Unicode normalization form `form` ("nfc" or "nfkc"; anything else returns
// the text unchanged) with utf8proc. Only spans with non-ASCII characters
// are processed, so ASCII text costs one scan.
std::string UnicodeNormalize(std::string_view text, std::string_view form);

// Line endings to LF, Unicode spaces to ' ', U+2028/U+2029 to LF, runs of
// spaces and tabs to one space, no spaces at line ends, at most one blank
// line in a row, ends trimmed. Drops remaining C0/C1 controls.
std::string NormalizeSpaces(std::string_view text);

// True when the text looks like an HTML document or fragment: an <html>,
// <body> or <!doctype> tag, or at least three tags of common HTML elements.
bool LooksLikeHtml(std::string_view text);

// HTML to text with libxml2's HTML parser (recovering from broken markup):
// text of every element but script, style, head, noscript, template, svg,
// iframe, object and select; block elements (p, div, li, tr, h1..h6, br, ...)
// become line breaks. Entities are decoded. nullopt when the parser gives up.
std::optional<std::string> HtmlToText(std::string_view html);

struct NormalizeStats {
  int invalid_bytes = 0;     // replaced by U+FFFD
  int mojibake_fixed = 0;    // characters repaired
  int entities_decoded = 0;
  int invisible_removed = 0;
  bool was_html = false;
};

// The outcome of stages 2-3 on one text.
struct NormalizeResult {
  // nullptr = usable; otherwise `invalid_utf8` (policy "reject"),
  // `bad_markup` (HTML the parser gave up on) or `empty` (nothing left).
  const char* reason = nullptr;
  std::string detail;
  std::string text;
  NormalizeStats stats;
};

// Runs stages 2 and 3 in this order: UTF-8 repair (or reject), mojibake,
// HTML to text (when the record is markup; otherwise entity decoding),
// invisible characters, Unicode normalization, whitespace. Any bytes are
// valid input.
NormalizeResult NormalizeText(std::string_view raw, const NormalizeOptions& normalize,
                              const MarkupOptions& markup);

}  // namespace streamlm

#endif  // STREAMLM_INGEST_NORMALIZE_H_
