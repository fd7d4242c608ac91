// Options of the cleaning pipeline (ingest/cleaner.h), one set per source
// profile: `clean.text.*` for `streamlm.text`, `clean.feedback.*` for the text
// fields of `streamlm.feedback`. Plain data, owned by ingest/, which applies
// them; the config (common/config.h) only maps the `clean.*` keys onto them. Defaults follow the published recipes
// (Gopher: Rae et al. 2021, appendix A; C4: Raffel et al. 2020, section 2.2;
// FineWeb: Penedo et al. 2024, as implemented in datatrove), cited per field.
#ifndef STREAMLM_INGEST_CLEAN_OPTIONS_H_
#define STREAMLM_INGEST_CLEAN_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

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

// Stage 4: which rules apply to which document (ingest/README.md has the
// table). A document is page-shaped when it has at least `min_lines`
// non-blank lines, or, with `markup_makes_page`, markup remnants (an HTML
// tag such as "<div" or "</p>" closed on its line, "{{", "}}", "[[", "]]"
// left after stage 3). The web-page rules (Gopher quality, C4's
// words-per-line, javascript, policy, sentence and curly-bracket rules,
// FineWeb) apply only to page-shaped documents; chat lines, posts,
// quotations, reviews and news paragraphs are judged by `TextRulesOptions`.
// min_lines = 1 makes every document a page (the published recipes).
struct PageShapeOptions {
  int64_t min_lines = 6;
  bool markup_makes_page = true;
};

// Stage 4e: rules for every document, page-shaped or not: ordinary human
// text of any length passes; gibberish, navigation and boilerplate
// fragments and shouted or link-stuffed spam do not. Thresholds tuned on
// held-in Brown corpus genres and SpamAssassin mail (ingest/
// stream_profile_test.cc says which; it measures keep rates on others).
// A limit <= 0 switches its rule off.
struct TextRulesOptions {
  bool enabled = true;
  // Fewer words (whitespace-separated pieces with a letter or digit):
  // dropped (`text_too_short`). Applies to documents that are not pages;
  // pages have Gopher's min_doc_words.
  int64_t min_words = 1;
  // Share of Latin-script words of 4+ letters that look like words (a
  // vowel, no run of 5+ consonants, no letter 4 times in a row) below
  // this: `text_gibberish`. Needs `gibberish_min_words` such words.
  double min_wordlike_ratio = 0.75;
  int64_t gibberish_min_words = 3;
  // Separator pieces (made only of | > < / \ : » « › ‹ • · → ←; a '>'
  // opening a line quotes mail and does not count) per word above this:
  // navigation text (`text_navigation`).
  double max_separator_ratio = 0.15;
  // Share of capitalized words (first letter uppercase) above this in a
  // document of at least 5 words with no sentence end: a menu or title
  // list (`text_navigation`).
  double max_capitalized_ratio = 0.8;
  // Share of letters in uppercase above this, with 20+ letters: shouting
  // (`text_shouting`).
  double max_uppercase_ratio = 0.6;
  // URLs per word above this, with 2+ URLs: link spam (`text_url_ratio`).
  double max_url_ratio = 0.1;
  // Boilerplate phrases ("all rights reserved", "skip to content", "enable
  // javascript", cookie notices, "click here", ...) on a document that is
  // not a page: `text_boilerplate`.
  bool drop_boilerplate = true;
  // A page (which may carry some furniture) with this many different
  // phrases of that list or of advertising mail ("unsubscribe", "order
  // now", "risk free", ...) is dropped too; 0 = never.
  int64_t page_boilerplate_phrases = 2;
  // Gopher's n-gram repetition rules (top 2-4-gram, duplicated 5-10-grams)
  // judge a document that is not a page only from this many words on: in a
  // sentence or two one repeated phrase ("a good man, a good friend") is
  // style, not spam. Line and paragraph repetition always count.
  int64_t ngram_min_words = 50;
  // Gopher-style checks for documents that are not pages, with limits
  // measured on short ordinary text (Gopher's own are for pages).
  double min_avg_word_length = 1.5;
  double max_avg_word_length = 15;
  double min_alpha_words_ratio = 0.5;    // words with a letter
  double max_symbol_word_ratio = 0.34;   // '#' and ellipses per word
};

// Stage 4f: language identification (CLD2, Debian's libcld2). A document
// is dropped (`language`) only when CLD2 calls its answer reliable and the
// language is not accepted; CLD2 is unreliable on short texts, which then
// pass (gibberish is `TextRulesOptions`' job).
struct LanguageOptions {
  // ISO 639-1 codes as CLD2 reports them ("en", "fr", "zh", "he" for
  // Hebrew); empty = any language (the filter is off).
  std::vector<std::string> accept = {"en"};
  // Texts with fewer letter bytes (CLD2's text_bytes) are not judged.
  int64_t min_text_bytes = 30;
  // CLD2 recognizes no language at all in this many bytes or more (its
  // text_bytes): gibberish (`language_unrecognized`), whatever `accept`
  // says. 0 = off.
  int64_t max_unrecognized_bytes = 24;
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
  PageShapeOptions page;
  TextRulesOptions text_rules;
  LanguageOptions language;
  PiiOptions pii;
};

// Feedback texts (prompts, responses) are short by nature: the document
// filters are off for them (a prompt may be code, a list or another
// language); repair and PII stay on.
inline CleanOptions DefaultFeedbackCleanOptions() {
  CleanOptions o;
  o.text_rules.enabled = false;
  o.language.accept.clear();
  o.language.max_unrecognized_bytes = 0;
  o.gopher_quality.enabled = false;
  o.gopher_repetition.enabled = false;
  o.c4.enabled = false;
  o.fineweb.enabled = false;
  o.markup.html = "never";
  return o;
}

}  // namespace streamlm

#endif  // STREAMLM_INGEST_CLEAN_OPTIONS_H_
