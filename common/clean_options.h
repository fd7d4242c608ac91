// Options of the cleaning pipeline (ingest/cleaner.h), one set per source
// profile: `clean.text.*` for `streamlm.text`, `clean.feedback.*` for the text
// fields of `streamlm.feedback`. Plain data: the config (common/config.h)
// reads them, ingest/ applies them. Defaults follow the published recipes
// (Gopher: Rae et al. 2021, appendix A; C4: Raffel et al. 2020, section 2.2;
// FineWeb: Penedo et al. 2024, as implemented in datatrove), cited per field.
#ifndef STREAMLM_COMMON_CLEAN_OPTIONS_H_
#define STREAMLM_COMMON_CLEAN_OPTIONS_H_

#include <cstdint>
#include <string>

namespace streamlm {

// Stage 2: repair and normalize.
struct NormalizeOptions {
  bool enabled = true;
  // "replace": each invalid byte becomes U+FFFD; "reject": the record is
  // dropped with reason `invalid_utf8`.
  std::string invalid_utf8 = "replace";
  bool fix_mojibake = true;     // UTF-8 read as CP1252/Latin-1 ("Ã©" -> "é")
  bool html_entities = true;    // &amp; &eacute; &#233; &#xE9; in plain text
  bool strip_controls = true;   // C0 (but tab, newline), C1, zero-width, bidi
  // "nfc", "nfkc" or "none" (utf8proc).
  std::string unicode_form = "nfc";
  bool whitespace = true;       // CRLF, Unicode spaces, runs, trailing spaces
};

// Stage 3: markup.
struct MarkupOptions {
  // "auto": records that look like HTML are converted to text; "always";
  // "never".
  std::string html = "auto";
};

// Stage 4a: Gopher quality (Rae et al. 2021, appendix A; datatrove defaults).
struct GopherQualityOptions {
  bool enabled = true;
  int64_t min_doc_words = 50;
  int64_t max_doc_words = 100000;
  double min_avg_word_length = 3;
  double max_avg_word_length = 10;
  double max_symbol_word_ratio = 0.1;      // '#' and '...' per word
  double max_bullet_lines_ratio = 0.9;     // lines starting with a bullet
  double max_ellipsis_lines_ratio = 0.3;   // lines ending with '...' or '…'
  double min_alpha_words_ratio = 0.8;      // words with a letter
  int64_t min_stop_words = 2;              // the, be, to, of, and, that, have, with
};

// Stage 4b: Gopher repetition (Rae et al. 2021, table A1).
struct GopherRepetitionOptions {
  bool enabled = true;
  double max_dup_line_frac = 0.3;
  double max_dup_para_frac = 0.3;
  double max_dup_line_char_frac = 0.2;
  double max_dup_para_char_frac = 0.2;
  // Most frequent 2-, 3-, 4-gram: share of characters it covers.
  double max_top_2gram_char_frac = 0.20;
  double max_top_3gram_char_frac = 0.18;
  double max_top_4gram_char_frac = 0.16;
  // Characters in duplicated 5..10-grams.
  double max_dup_5gram_char_frac = 0.15;
  double max_dup_6gram_char_frac = 0.14;
  double max_dup_7gram_char_frac = 0.13;
  double max_dup_8gram_char_frac = 0.12;
  double max_dup_9gram_char_frac = 0.11;
  double max_dup_10gram_char_frac = 0.10;
};

// Stage 3/4c: C4 (Raffel et al. 2020) as FineWeb applies it: line filters
// (boilerplate lines with "javascript" or cookie/privacy/terms phrases, lines
// of fewer than `min_words_per_line` words, citation markers) and page
// filters (lorem ipsum, curly brackets, too few sentences).
struct C4Options {
  bool enabled = true;
  bool remove_citations = true;              // "[1]", "[citation needed]"
  // C4 drops lines that do not end in terminal punctuation; FineWeb found
  // this removes too much and turned it off, as do we by default.
  bool drop_lines_without_terminal_punct = false;
  int64_t min_words_per_line = 3;
  int64_t max_word_length = 1000;            // lines with a longer word go
  bool drop_javascript_lines = true;
  bool drop_policy_lines = true;             // cookie / privacy policy / terms of use
  bool drop_lorem_ipsum = true;              // whole document
  bool drop_curly_bracket = true;            // whole document
  int64_t min_sentences = 5;
};

// Stage 4d: FineWeb's extra filters (datatrove FineWebQualityFilter).
struct FineWebOptions {
  bool enabled = true;
  double min_line_punct_ratio = 0.12;  // lines ending in terminal punctuation
  double max_short_line_ratio = 0.67;  // lines of <= short_line_chars
  int64_t short_line_chars = 30;
  double max_char_dup_ratio = 0.01;    // characters in duplicated lines
  double max_newline_ratio = 0.3;      // newlines per word
};

// Stage 6: PII redaction.
struct PiiOptions {
  bool enabled = true;
  bool email = true;        // <EMAIL>
  bool phone = true;        // <PHONE>
  bool ip = true;           // <IP_ADDRESS> (IPv4 and IPv6)
  bool credit_card = true;  // <CREDIT_CARD> (Luhn-checked)
  bool iban = true;         // <IBAN> (mod-97 checked)
  bool secrets = true;      // <API_KEY>, <PRIVATE_KEY>
  // A record with more hits than this is dropped (`pii_too_many`) instead of
  // redacted; 0 = never drop.
  int64_t max_hits = 0;
};

struct CleanOptions {
  NormalizeOptions normalize;
  MarkupOptions markup;
  GopherQualityOptions gopher_quality;
  GopherRepetitionOptions gopher_repetition;
  C4Options c4;
  FineWebOptions fineweb;
  PiiOptions pii;
};

// Feedback texts (prompts, responses) are short by nature: the document
// filters written for web pages are off for them; repair and PII stay on.
inline CleanOptions DefaultFeedbackCleanOptions() {
  CleanOptions o;
  o.gopher_quality.enabled = false;
  o.gopher_repetition.enabled = false;
  o.c4.enabled = false;
  o.fineweb.enabled = false;
  o.markup.html = "never";
  return o;
}

}  // namespace streamlm

#endif  // STREAMLM_COMMON_CLEAN_OPTIONS_H_
