#include "common/config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "yaml-cpp/yaml.h"

namespace streamlm {
namespace {

absl::Status BadValue(const std::string& key, const std::string& value,
                      const std::string& expected) {
  return absl::InvalidArgumentError(absl::StrCat(
      "config key '", key, "': bad value '", value, "' (expected ", expected,
      ")"));
}

// Keys reach their field through an accessor, so one key type serves a
// Config member and a member of a nested option struct alike.
template <typename T>
using Field = std::function<T&(Config&)>;

template <typename T>
Field<T> Member(T Config::*member) {
  return [member](Config& c) -> T& { return c.*member; };
}

// A field of a module's options struct (Config::learner, ...).
template <typename Options, typename T>
Field<T> In(Options Config::*options, T Options::*member) {
  return [options, member](Config& c) -> T& { return (c.*options).*member; };
}

ConfigKey StringKey(std::string name, std::string help, Field<std::string> field,
                    bool allow_empty = true) {
  ConfigKey k;
  k.name = name;
  k.help = std::move(help);
  k.set = [name, field, allow_empty](Config& c, const std::string& v) {
    if (!allow_empty && v.empty()) return BadValue(name, v, "a non-empty string");
    field(c) = v;
    return absl::OkStatus();
  };
  k.get = [field](const Config& c) { return field(const_cast<Config&>(c)); };
  return k;
}

ConfigKey StringKey(std::string name, std::string help, std::string Config::*field,
                    bool allow_empty = true) {
  return StringKey(std::move(name), std::move(help), Member(field), allow_empty);
}

// A numeric key: `Parsed` is what the text is read as (int64_t or double),
// `T` the field's type; values outside [min, max] are refused.
template <typename Parsed, typename T>
ConfigKey NumberKey(std::string name, std::string help, Field<T> field, Parsed min, Parsed max,
                    const char* kind) {
  ConfigKey k;
  k.name = name;
  k.help = std::move(help);
  k.set = [name, field, min, max, kind](Config& c, const std::string& v) {
    Parsed parsed;
    bool ok;
    if constexpr (std::is_integral_v<Parsed>) {
      ok = absl::SimpleAtoi(absl::StripAsciiWhitespace(v), &parsed);
    } else {
      ok = absl::SimpleAtod(absl::StripAsciiWhitespace(v), &parsed);
    }
    if (!ok || !(parsed >= min && parsed <= max)) {
      return BadValue(name, v, absl::StrCat(kind, " in [", min, ", ", max, "]"));
    }
    field(c) = static_cast<T>(parsed);
    return absl::OkStatus();
  };
  k.get = [field](const Config& c) { return absl::StrCat(field(const_cast<Config&>(c))); };
  return k;
}

template <typename T>
ConfigKey IntKey(std::string name, std::string help, Field<T> field, int64_t min, int64_t max) {
  return NumberKey<int64_t, T>(std::move(name), std::move(help), std::move(field), min, max,
                               "an integer");
}

template <typename T>
ConfigKey IntKey(std::string name, std::string help, T Config::*field, int64_t min,
                 int64_t max) {
  return IntKey<T>(std::move(name), std::move(help), Member(field), min, max);
}

ConfigKey DoubleKey(std::string name, std::string help, Field<double> field, double min,
                    double max) {
  return NumberKey<double, double>(std::move(name), std::move(help), std::move(field), min, max,
                                   "a number");
}

ConfigKey DoubleKey(std::string name, std::string help, double Config::*field, double min,
                    double max) {
  return DoubleKey(std::move(name), std::move(help), Member(field), min, max);
}

ConfigKey ListKey(std::string name, std::string help, Field<std::vector<std::string>> field) {
  ConfigKey k;
  k.name = name;
  k.help = std::move(help);
  k.set = [name, field](Config& c, const std::string& v) {
    std::vector<std::string> parts = absl::StrSplit(v, ',', absl::SkipEmpty());
    if (parts.empty()) return BadValue(name, v, "a comma-separated list");
    field(c) = parts;
    return absl::OkStatus();
  };
  k.get = [field](const Config& c) {
    return absl::StrJoin(field(const_cast<Config&>(c)), ",");
  };
  return k;
}

ConfigKey NestedBoolKey(std::string name, std::string help, Field<bool> field) {
  ConfigKey k;
  k.name = name;
  k.help = std::move(help);
  k.set = [name, field](Config& c, const std::string& v) {
    std::string l = absl::AsciiStrToLower(absl::StripAsciiWhitespace(v));
    if (l == "true" || l == "yes" || l == "on" || l == "1") {
      field(c) = true;
    } else if (l == "false" || l == "no" || l == "off" || l == "0") {
      field(c) = false;
    } else {
      return BadValue(name, v, "true or false");
    }
    return absl::OkStatus();
  };
  k.get = [field](const Config& c) {
    return std::string(field(const_cast<Config&>(c)) ? "true" : "false");
  };
  return k;
}

ConfigKey NestedChoiceKey(std::string name, std::string help, Field<std::string> field,
                          std::vector<std::string> choices) {
  ConfigKey k;
  k.name = name;
  k.help = absl::StrCat(help, " (", absl::StrJoin(choices, "|"), ")");
  k.set = [name, field, choices](Config& c, const std::string& v) {
    std::string l = absl::AsciiStrToLower(absl::StripAsciiWhitespace(v));
    for (const std::string& choice : choices) {
      if (l == choice) {
        field(c) = l;
        return absl::OkStatus();
      }
    }
    return BadValue(name, v, absl::StrCat("one of ", absl::StrJoin(choices, ", ")));
  };
  k.get = [field](const Config& c) { return field(const_cast<Config&>(c)); };
  return k;
}

// The keys of one cleaning profile, `prefix` = "clean.text" or "clean.feedback".
void AddCleanKeys(std::vector<ConfigKey>& keys, const std::string& prefix,
                  CleanOptions Config::*profile) {
  auto key = [&](const std::string& k) { return absl::StrCat(prefix, ".", k); };
#define SLM_FIELD(T, path) Field<T>([profile](Config& c) -> T& { return (c.*profile).path; })
#define SLM_BOOL(k, path, help) keys.push_back(NestedBoolKey(key(k), help, SLM_FIELD(bool, path)))
#define SLM_INT(k, path, lo, hi, help) \
  keys.push_back(IntKey<int64_t>(key(k), help, SLM_FIELD(int64_t, path), lo, hi))
#define SLM_REAL(k, path, lo, hi, help) \
  keys.push_back(DoubleKey(key(k), help, SLM_FIELD(double, path), lo, hi))
  SLM_BOOL("normalize.enabled", normalize.enabled, "repair and normalize text");
  keys.push_back(NestedChoiceKey(key("normalize.invalid_utf8"), "invalid UTF-8 bytes",
                                 SLM_FIELD(std::string, normalize.invalid_utf8),
                                 {"replace", "reject"}));
  SLM_BOOL("normalize.fix_mojibake", normalize.fix_mojibake, "repair UTF-8 read as CP1252/Latin-1");
  SLM_BOOL("normalize.html_entities", normalize.html_entities, "decode HTML entities in plain text");
  SLM_BOOL("normalize.strip_controls", normalize.strip_controls,
           "remove control, zero-width and bidi characters");
  keys.push_back(NestedChoiceKey(key("normalize.unicode_form"), "Unicode normalization",
                                 SLM_FIELD(std::string, normalize.unicode_form),
                                 {"nfc", "nfkc", "none"}));
  SLM_BOOL("normalize.whitespace", normalize.whitespace, "normalize line endings and spaces");
  keys.push_back(NestedChoiceKey(key("markup.html"), "convert HTML records to text",
                                 SLM_FIELD(std::string, markup.html), {"auto", "always", "never"}));
  SLM_BOOL("gopher_quality.enabled", gopher_quality.enabled, "Gopher quality filter");
  SLM_INT("gopher_quality.min_doc_words", gopher_quality.min_doc_words, 0, 1e12, "fewer words: dropped");
  SLM_INT("gopher_quality.max_doc_words", gopher_quality.max_doc_words, 1, 1e12, "more words: dropped");
  SLM_REAL("gopher_quality.min_avg_word_length", gopher_quality.min_avg_word_length, 0, 1e6, "mean word length below: dropped");
  SLM_REAL("gopher_quality.max_avg_word_length", gopher_quality.max_avg_word_length, 0, 1e6, "mean word length above: dropped");
  SLM_REAL("gopher_quality.max_symbol_word_ratio", gopher_quality.max_symbol_word_ratio, 0, 1e6, "'#' and ellipses per word");
  SLM_REAL("gopher_quality.max_bullet_lines_ratio", gopher_quality.max_bullet_lines_ratio, 0, 1, "share of lines starting with a bullet");
  SLM_REAL("gopher_quality.max_ellipsis_lines_ratio", gopher_quality.max_ellipsis_lines_ratio, 0, 1, "share of lines ending with an ellipsis");
  SLM_REAL("gopher_quality.min_alpha_words_ratio", gopher_quality.min_alpha_words_ratio, 0, 1, "share of words with a letter");
  SLM_INT("gopher_quality.min_stop_words", gopher_quality.min_stop_words, 0, 1e9, "English stop words needed");
  SLM_BOOL("gopher_repetition.enabled", gopher_repetition.enabled, "Gopher repetition filter");
  SLM_REAL("gopher_repetition.max_dup_line_frac", gopher_repetition.max_dup_line_frac, 0, 1, "share of duplicated lines");
  SLM_REAL("gopher_repetition.max_dup_para_frac", gopher_repetition.max_dup_para_frac, 0, 1, "share of duplicated paragraphs");
  SLM_REAL("gopher_repetition.max_dup_line_char_frac", gopher_repetition.max_dup_line_char_frac, 0, 1, "characters in duplicated lines");
  SLM_REAL("gopher_repetition.max_dup_para_char_frac", gopher_repetition.max_dup_para_char_frac, 0, 1, "characters in duplicated paragraphs");
  SLM_REAL("gopher_repetition.max_top_2gram_char_frac", gopher_repetition.max_top_2gram_char_frac, 0, 1, "characters in the most frequent 2-gram");
  SLM_REAL("gopher_repetition.max_top_3gram_char_frac", gopher_repetition.max_top_3gram_char_frac, 0, 1, "characters in the most frequent 3-gram");
  SLM_REAL("gopher_repetition.max_top_4gram_char_frac", gopher_repetition.max_top_4gram_char_frac, 0, 1, "characters in the most frequent 4-gram");
  SLM_REAL("gopher_repetition.max_dup_5gram_char_frac", gopher_repetition.max_dup_5gram_char_frac, 0, 1, "characters in duplicated 5-grams");
  SLM_REAL("gopher_repetition.max_dup_6gram_char_frac", gopher_repetition.max_dup_6gram_char_frac, 0, 1, "characters in duplicated 6-grams");
  SLM_REAL("gopher_repetition.max_dup_7gram_char_frac", gopher_repetition.max_dup_7gram_char_frac, 0, 1, "characters in duplicated 7-grams");
  SLM_REAL("gopher_repetition.max_dup_8gram_char_frac", gopher_repetition.max_dup_8gram_char_frac, 0, 1, "characters in duplicated 8-grams");
  SLM_REAL("gopher_repetition.max_dup_9gram_char_frac", gopher_repetition.max_dup_9gram_char_frac, 0, 1, "characters in duplicated 9-grams");
  SLM_REAL("gopher_repetition.max_dup_10gram_char_frac", gopher_repetition.max_dup_10gram_char_frac, 0, 1, "characters in duplicated 10-grams");
  SLM_BOOL("c4.enabled", c4.enabled, "C4 line and page filters");
  SLM_BOOL("c4.remove_citations", c4.remove_citations, "remove [1]-style citation markers");
  SLM_BOOL("c4.drop_lines_without_terminal_punct", c4.drop_lines_without_terminal_punct, "drop lines not ending in . ! ? or a quote");
  SLM_INT("c4.min_words_per_line", c4.min_words_per_line, 0, 1e9, "shorter lines are dropped");
  SLM_INT("c4.max_word_length", c4.max_word_length, 1, 1e12, "lines with a longer word are dropped");
  SLM_BOOL("c4.drop_javascript_lines", c4.drop_javascript_lines, "drop lines mentioning javascript");
  SLM_BOOL("c4.drop_policy_lines", c4.drop_policy_lines, "drop cookie / privacy policy / terms of use lines");
  SLM_BOOL("c4.drop_lorem_ipsum", c4.drop_lorem_ipsum, "drop documents with lorem ipsum");
  SLM_BOOL("c4.drop_curly_bracket", c4.drop_curly_bracket, "drop documents with a curly bracket");
  SLM_INT("c4.min_sentences", c4.min_sentences, 0, 1e9, "fewer sentences: dropped");
  SLM_BOOL("fineweb.enabled", fineweb.enabled, "FineWeb quality filter");
  SLM_REAL("fineweb.min_line_punct_ratio", fineweb.min_line_punct_ratio, 0, 1, "share of lines ending in punctuation");
  SLM_REAL("fineweb.max_short_line_ratio", fineweb.max_short_line_ratio, 0, 1, "share of short lines");
  SLM_INT("fineweb.short_line_chars", fineweb.short_line_chars, 0, 1e9, "a line this long or shorter is short");
  SLM_REAL("fineweb.max_char_dup_ratio", fineweb.max_char_dup_ratio, 0, 1, "characters in duplicated lines");
  SLM_REAL("fineweb.max_newline_ratio", fineweb.max_newline_ratio, 0, 1e6, "newlines per word");
  SLM_INT("page.min_lines", page.min_lines, 1, 1e9, "documents with this many non-blank lines are pages (web-page rules apply); 1 = every document");
  SLM_BOOL("page.markup_makes_page", page.markup_makes_page, "markup remnants (HTML tags, {{ }}, [[ ]]) make a document a page");
  SLM_BOOL("text_rules.enabled", text_rules.enabled, "rules for every document: gibberish, navigation, boilerplate, shouting, link spam");
  SLM_INT("text_rules.min_words", text_rules.min_words, 0, 1e9, "fewer words: dropped (documents that are not pages)");
  SLM_REAL("text_rules.min_wordlike_ratio", text_rules.min_wordlike_ratio, 0, 1, "share of 4+ letter words that look like words; below: gibberish");
  SLM_INT("text_rules.gibberish_min_words", text_rules.gibberish_min_words, 1, 1e9, "4+ letter words needed to judge gibberish");
  SLM_REAL("text_rules.max_separator_ratio", text_rules.max_separator_ratio, 0, 1e6, "navigation separators per word");
  SLM_REAL("text_rules.max_capitalized_ratio", text_rules.max_capitalized_ratio, 0, 1, "share of capitalized words without a sentence end");
  SLM_REAL("text_rules.max_uppercase_ratio", text_rules.max_uppercase_ratio, 0, 1, "share of uppercase letters");
  SLM_REAL("text_rules.max_url_ratio", text_rules.max_url_ratio, 0, 1e6, "URLs per word (with 2+ URLs)");
  SLM_INT("text_rules.ngram_min_words", text_rules.ngram_min_words, 0, 1e12, "Gopher n-gram repetition judges non-page documents from this many words on");
  SLM_BOOL("text_rules.drop_boilerplate", text_rules.drop_boilerplate, "drop short documents with site boilerplate phrases");
  SLM_REAL("text_rules.min_avg_word_length", text_rules.min_avg_word_length, 0, 1e6, "mean word length below: dropped (not pages)");
  SLM_REAL("text_rules.max_avg_word_length", text_rules.max_avg_word_length, 0, 1e6, "mean word length above: dropped (not pages)");
  SLM_REAL("text_rules.min_alpha_words_ratio", text_rules.min_alpha_words_ratio, 0, 1, "share of words with a letter (not pages)");
  SLM_REAL("text_rules.max_symbol_word_ratio", text_rules.max_symbol_word_ratio, 0, 1e6, "'#' and ellipses per word (not pages)");
  {
    ConfigKey k;
    k.name = key("languages");
    k.help = "accepted languages, ISO 639-1 codes as CLD2 reports them (en,fr,...); 'any' = every language";
    Field<std::vector<std::string>> field = SLM_FIELD(std::vector<std::string>, language.accept);
    k.set = [name = k.name, field](Config& c, const std::string& v) {
      std::vector<std::string> codes;
      for (absl::string_view part : absl::StrSplit(v, ',', absl::SkipEmpty())) {
        std::string code(absl::StripAsciiWhitespace(part));
        if (code.empty()) continue;
        if (absl::AsciiStrToLower(code) == "any") {
          codes.clear();
          break;
        }
        for (char ch : code) {
          if (!absl::ascii_isalpha(static_cast<unsigned char>(ch)) && ch != '-') {
            return BadValue(name, v, "comma-separated ISO 639-1 codes such as en,fr, or any");
          }
        }
        codes.push_back(code);
      }
      field(c) = codes;
      return absl::OkStatus();
    };
    k.get = [field](const Config& c) {
      const std::vector<std::string>& codes = field(const_cast<Config&>(c));
      return codes.empty() ? std::string("any") : absl::StrJoin(codes, ",");
    };
    keys.push_back(k);
  }
  SLM_INT("language.min_text_bytes", language.min_text_bytes, 0, 1e12, "shorter texts (letter bytes) are not judged by language");
  SLM_INT("language.max_unrecognized_bytes", language.max_unrecognized_bytes, 0, 1e12, "CLD2 recognizing no language in this many bytes drops the text; 0 = off");
  SLM_BOOL("pii.enabled", pii.enabled, "redact personal data");
  SLM_BOOL("pii.email", pii.email, "redact e-mail addresses");
  SLM_BOOL("pii.phone", pii.phone, "redact phone numbers");
  SLM_BOOL("pii.ip", pii.ip, "redact IPv4 and IPv6 addresses");
  SLM_BOOL("pii.credit_card", pii.credit_card, "redact payment-card numbers");
  SLM_BOOL("pii.iban", pii.iban, "redact IBANs");
  SLM_BOOL("pii.secrets", pii.secrets, "redact API keys and private keys");
  SLM_INT("pii.max_hits", pii.max_hits, 0, 1e9, "more PII hits drop the record; 0 = never");
#undef SLM_REAL
#undef SLM_INT
#undef SLM_BOOL
#undef SLM_FIELD
}

absl::Status ValidHostPort(const std::string& key, const std::string& v) {
  std::vector<std::string> parts = absl::StrSplit(v, ',', absl::SkipEmpty());
  for (const std::string& p : parts) {
    size_t colon = p.rfind(':');
    int port;
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(p.substr(colon + 1), &port) || port < 0 ||
        port > 65535) {
      return BadValue(key, v, "HOST:PORT");
    }
  }
  return absl::OkStatus();
}

std::vector<ConfigKey> BuildKeys() {
  using C = Config;
  std::vector<ConfigKey> keys;
  keys.push_back(StringKey("data_dir", "directory of the RocksDB store", &C::data_dir, false));
  {
    ConfigKey k = StringKey("kafka", "Kafka bootstrap servers HOST:PORT; empty = embedded broker", &C::kafka);
    auto base = k.set;
    k.set = [base](Config& c, const std::string& v) {
      if (!v.empty()) {
        absl::Status s = ValidHostPort("kafka", v);
        if (!s.ok()) return s;
      }
      return base(c, v);
    };
    keys.push_back(k);
  }
  {
    ConfigKey k = StringKey("http", "serving address HOST:PORT", &C::http, false);
    auto base = k.set;
    k.set = [base](Config& c, const std::string& v) {
      absl::Status s = ValidHostPort("http", v);
      if (!s.ok()) return s;
      return base(c, v);
    };
    keys.push_back(k);
  }
  keys.push_back(IntKey("threads", "libtorch threads of learner, bootstrap and evaluator; 0 = all cores less serving.threads", &C::threads, 0, 1024));
  keys.push_back(IntKey("broker.port", "embedded broker port (0 = any)", &C::broker_port, 0, 65535));
  keys.push_back(IntKey("broker.partitions", "partitions of topics the embedded broker creates", &C::broker_partitions, 1, 64));
  keys.push_back(StringKey("topic.text", "topic of new text", &C::topic_text, false));
  keys.push_back(StringKey("topic.feedback", "topic of human feedback", &C::topic_feedback, false));
  keys.push_back(StringKey("topic.rejects", "topic of rejected records", &C::topic_rejects, false));
  keys.push_back(StringKey("topic.decisions", "topic of promotion decisions", &C::topic_decisions, false));
  keys.push_back(StringKey("topic.candidates", "topic where a separate learn process announces candidates", &C::topic_candidates, false));
  keys.push_back(StringKey("topic.verdicts", "topic where a separate evaluate process proposes decisions to the store's owner", &C::topic_verdicts, false));
  keys.push_back(IntKey("model.vocab_size", "tokenizer vocabulary size", In(&C::model, &ModelOptions::vocab_size), 64, 1 << 20));
  keys.push_back(IntKey("model.context_tokens", "context length in tokens", In(&C::model, &ModelOptions::context_tokens), 8, 1 << 16));
  keys.push_back(IntKey("model.d_model", "model width", In(&C::model, &ModelOptions::d_model), 8, 1 << 16));
  keys.push_back(IntKey("model.layers", "transformer layers", In(&C::model, &ModelOptions::layers), 1, 256));
  keys.push_back(IntKey("model.heads", "attention heads (must divide d_model)", In(&C::model, &ModelOptions::heads), 1, 256));
  keys.push_back(ListKey("bootstrap.corpus", "comma-separated text files for bootstrap", In(&C::bootstrap, &BootstrapOptions::corpus)));
  keys.push_back(StringKey("bootstrap.topic", "bootstrap from this topic's whole history on --kafka instead of files", In(&C::bootstrap, &BootstrapOptions::topic)));
  keys.push_back(IntKey("bootstrap.checkpoint_every_steps", "bootstrap checkpoint (for resuming) every N steps", In(&C::bootstrap, &BootstrapOptions::checkpoint_every_steps), 1, 100000000));
  keys.push_back(IntKey("bootstrap.steps", "optimizer steps of bootstrap pretraining", In(&C::bootstrap, &BootstrapOptions::steps), 1, 100000000));
  keys.push_back(IntKey("bootstrap.batch_size", "sequences per bootstrap step", In(&C::bootstrap, &BootstrapOptions::batch_size), 1, 65536));
  keys.push_back(DoubleKey("bootstrap.lr", "peak learning rate of bootstrap", In(&C::bootstrap, &BootstrapOptions::lr), 0, 10));
  keys.push_back(DoubleKey("bootstrap.heldout_fraction", "share of the corpus held out for evaluation", In(&C::bootstrap, &BootstrapOptions::heldout_fraction), 0.001, 0.5));
  keys.push_back(IntKey("bootstrap.eval_sequences", "held-out sequences kept for the forgetting check", In(&C::bootstrap, &BootstrapOptions::eval_sequences), 1, 1000000));
  keys.push_back(IntKey("bootstrap.max_corpus_bytes", "read at most this many corpus bytes; 0 = all", In(&C::bootstrap, &BootstrapOptions::max_corpus_bytes), 0, int64_t{1} << 50));
  keys.push_back(IntKey("bootstrap.progress_every_steps", "progress line every N steps", In(&C::bootstrap, &BootstrapOptions::progress_every_steps), 1, 1000000));
  keys.push_back(IntKey("seed", "random seed", &C::seed, 0, INT64_MAX));
  keys.push_back(StringKey("learner.group", "Kafka group id under which the learner commits offsets (lag monitoring)", In(&C::learner, &LearnerOptions::group), false));
  keys.push_back(IntKey("learner.batch_size", "sequences per online step", In(&C::learner, &LearnerOptions::batch_size), 1, 65536));
  keys.push_back(DoubleKey("learner.lr", "online learning rate", In(&C::learner, &LearnerOptions::lr), 0, 10));
  keys.push_back(DoubleKey("learner.replay_fraction", "share of each batch replayed from earlier data", In(&C::learner, &LearnerOptions::replay_fraction), 0, 0.95));
  keys.push_back(IntKey("learner.replay_capacity_blocks", "blocks the replay buffer keeps", In(&C::learner, &LearnerOptions::replay_capacity_blocks), 1, 100000000));
  keys.push_back(IntKey("learner.snapshot_every_steps", "candidate snapshot every N steps", In(&C::learner, &LearnerOptions::snapshot_every_steps), 1, 100000000));
  keys.push_back(DoubleKey("learner.dp_timeout_s", "data-parallel learners: seconds a collective waits for a peer before the rank stops with an error", In(&C::learner, &LearnerOptions::dp_timeout_s), 1, 86400));
  keys.push_back(DoubleKey("learner.dp_max_wait_s", "data-parallel learners: seconds ranks holding a batch wait for the rest before stepping without them", In(&C::learner, &LearnerOptions::dp_max_wait_s), 0, 1e9));
  keys.push_back(DoubleKey("learner.snapshot_every_s", "candidate snapshot at least every T seconds (if trained)", In(&C::learner, &LearnerOptions::snapshot_every_s), 0.1, 1e9));
  keys.push_back(IntKey("learner.heldout_every_records", "1 in N stream records is held out for evaluation", In(&C::learner, &LearnerOptions::heldout_every_records), 2, 1000000));
  keys.push_back(IntKey("learner.max_record_bytes", "larger records are rejected", In(&C::learner, &LearnerOptions::max_record_bytes), 16, int64_t{1} << 30));
  keys.push_back(NestedChoiceKey("learner.lr_schedule", "learning rate per cycle (the training between two candidates): wsd (re-warm, hold, re-decay to the floor over the cycle's last learner.decay_fraction, the candidate at the floor), cosine (re-warm, then re-decay over the whole cycle) or constant", Field<std::string>([](Config& c) -> std::string& { return c.learner.lr_schedule; }), {"cosine", "wsd", "constant"}));
  keys.push_back(IntKey("learner.warmup_steps", "steps of linear learning-rate re-warm at the start of each cycle (at most half of it)", In(&C::learner, &LearnerOptions::warmup_steps), 0, 1 << 30));
  keys.push_back(DoubleKey("learner.decay_fraction", "under learner.lr_schedule wsd, the share of each cycle spent re-decaying to the floor", In(&C::learner, &LearnerOptions::decay_fraction), 0, 1));
  keys.push_back(DoubleKey("learner.min_lr_ratio", "the learning rate a cycle starts from and decays to, as a share of learner.lr", In(&C::learner, &LearnerOptions::min_lr_ratio), 0, 1));
  keys.push_back(DoubleKey("learner.replay_base_share", "share of replayed blocks drawn from the base corpus (the rest split equally among stream sources)", In(&C::learner, &LearnerOptions::replay_base_share), 0, 1));
  keys.push_back(IntKey("learner.replay_max_slices", "stream sources with a replay slice of their own (later ones share one)", In(&C::learner, &LearnerOptions::replay_max_slices), 1, 1024));
  keys.push_back(DoubleKey("learner.replay_max_boost", "the most a forgotten slice's replay weight is multiplied by", In(&C::learner, &LearnerOptions::replay_max_boost), 1, 1000));
  keys.push_back(NestedChoiceKey("learner.on_rejection", "after a rejected candidate or a rollback: reset (to the champion's weights) or continue", Field<std::string>([](Config& c) -> std::string& { return c.learner.on_rejection; }), {"reset", "continue"}));
  keys.push_back(IntKey("feedback.batch_size", "feedback records per feedback step", In(&C::feedback, &FeedbackOptions::batch_size), 1, 65536));
  keys.push_back(DoubleKey("feedback.lr", "learning rate of feedback steps", In(&C::feedback, &FeedbackOptions::lr), 0, 10));
  keys.push_back(DoubleKey("feedback.replay_ratio", "LM blocks replayed per feedback record in a feedback step", In(&C::feedback, &FeedbackOptions::replay_ratio), 0, 64));
  keys.push_back(DoubleKey("feedback.lm_weight", "weight of the replayed LM loss in a feedback step", In(&C::feedback, &FeedbackOptions::lm_weight), 0, 1000));
  keys.push_back(DoubleKey("feedback.beta", "DPO/KTO temperature beta", In(&C::feedback, &FeedbackOptions::beta), 1e-6, 1000));
  keys.push_back(DoubleKey("feedback.dpo_weight", "weight of the DPO loss (preference pairs)", In(&C::feedback, &FeedbackOptions::dpo_weight), 0, 1000));
  keys.push_back(DoubleKey("feedback.kto_weight", "weight of the KTO loss (ratings)", In(&C::feedback, &FeedbackOptions::kto_weight), 0, 1000));
  keys.push_back(DoubleKey("feedback.sft_weight", "weight of the SFT loss (corrections)", In(&C::feedback, &FeedbackOptions::sft_weight), 0, 1000));
  keys.push_back(DoubleKey("feedback.kto_desirable_weight", "KTO weight of thumbs-up records", In(&C::feedback, &FeedbackOptions::kto_desirable_weight), 0, 1000));
  keys.push_back(DoubleKey("feedback.kto_undesirable_weight", "KTO weight of thumbs-down records", In(&C::feedback, &FeedbackOptions::kto_undesirable_weight), 0, 1000));
  keys.push_back(IntKey("feedback.heldout_every", "1 in N feedback records is held out for evaluation", In(&C::feedback, &FeedbackOptions::heldout_every), 2, 1000000));
  keys.push_back(DoubleKey("feedback.max_user_share", "share of recent trained feedback one user may contribute", In(&C::feedback, &FeedbackOptions::max_user_share), 0.001, 1));
  keys.push_back(IntKey("feedback.user_window", "trained feedback records the per-user share is measured over", In(&C::feedback, &FeedbackOptions::user_window), 1, 100000000));
  keys.push_back(IntKey("feedback.user_min_quota", "records any user may contribute to that window regardless of share", In(&C::feedback, &FeedbackOptions::user_min_quota), 0, 100000000));
  keys.push_back(StringKey("feedback.trusted_file", "JSON lines of trusted feedback: never trained on, always evaluated", In(&C::feedback, &FeedbackOptions::trusted_file)));
  keys.push_back(IntKey("dedup.window_docs", "recent documents remembered for deduplication; 0 = off", In(&C::dedup, &DedupWindowOptions::window_docs), 0, int64_t{1} << 32));
  keys.push_back(IntKey("dedup.window_s", "also forget documents seen longer ago than this (seconds); 0 = no time bound", In(&C::dedup, &DedupWindowOptions::window_s), 0, int64_t{1} << 40));
  keys.push_back(DoubleKey("dedup.threshold", "MinHash agreement that marks a near duplicate", In(&C::dedup, &DedupWindowOptions::threshold), 0.05, 1.0));
  AddCleanKeys(keys, "clean.text", &C::clean_text);
  AddCleanKeys(keys, "clean.feedback", &C::clean_feedback);
  keys.push_back(IntKey("ingest.threads", "threads of the ingest pipeline; 0 = all cores", In(&C::ingest, &IngestOptions::threads), 0, 1024));
  keys.push_back(IntKey("store.min_free_mb", "free space (MiB) every store write leaves on its filesystem; a write that would use it fails with 'no space left on device' (the learner stops, serving goes on)", In(&C::store, &StoreOptions::min_free_mb), 0, 1 << 20));
  keys.push_back(IntKey("store.keep_snapshots", "snapshots whose weights are kept besides champion, previous, candidate and the checkpoint's; older ones keep only metadata", In(&C::store, &StoreOptions::keep_snapshots), 1, 1000000));
  keys.push_back(IntKey("eval.stream_window_records", "held-out stream records kept for evaluation", In(&C::eval, &EvalOptions::stream_window_records), 1, 10000000));
  keys.push_back(IntKey("eval.min_stream_tokens", "hold the decision until this many held-out stream tokens exist", In(&C::eval, &EvalOptions::min_stream_tokens), 0, 1 << 30));
  keys.push_back(DoubleKey("gate.max_forgetting", "max rise of base held-out loss (nats/token)", In(&C::gate, &GateOptions::max_forgetting), 0, 100));
  keys.push_back(DoubleKey("gate.min_adaptation", "min fall of stream held-out loss (nats/token)", In(&C::gate, &GateOptions::min_adaptation), -100, 100));
  keys.push_back(IntKey("eval.feedback_window", "newest held-out feedback records scored per decision", In(&C::eval, &EvalOptions::feedback_window), 0, 1 << 30));
  keys.push_back(IntKey("gate.min_feedback_pairs", "held-out feedback records needed to judge feedback", In(&C::gate, &GateOptions::min_feedback_pairs), 1, 1 << 30));
  keys.push_back(DoubleKey("gate.alpha", "error rate of the gate's sequential test, spent over a candidate's looks", In(&C::gate, &GateOptions::alpha), 1e-6, 0.5));
  keys.push_back(IntKey("gate.max_looks", "looks at a held candidate as held-out evidence grows", In(&C::gate, &GateOptions::max_looks), 1, 20));
  keys.push_back(IntKey("gate.min_slice_tokens", "held-out tokens a source or base set needs for its own forgetting rule", In(&C::gate, &GateOptions::min_slice_tokens), 1, 1 << 30));
  keys.push_back(IntKey("eval.recheck_records", "new held-out stream records before a held candidate is judged again", In(&C::eval, &EvalOptions::recheck_records), 1, 1 << 30));
  keys.push_back(DoubleKey("gate.max_preference_regression", "preference accuracy a candidate may lose on established or trusted feedback", In(&C::gate, &GateOptions::max_preference_regression), 0, 1));
  keys.push_back(NestedBoolKey("rollback.enabled", "roll the champion back on a confident serving-side regression", In(&C::rollback, &RollbackOptions::enabled)));
  keys.push_back(DoubleKey("rollback.check_every_s", "seconds between rollback checks (each scores at most rollback.max_stream_records records)", In(&C::rollback, &RollbackOptions::check_every_s), 0.01, 1e9));
  keys.push_back(IntKey("rollback.min_requests", "requests each of champion and previous must have served before their error rates are compared", In(&C::rollback, &RollbackOptions::min_requests), 1, int64_t{1} << 40));
  keys.push_back(IntKey("rollback.min_feedback", "feedback each of champion and previous must have received before their negative-feedback rates are compared", In(&C::rollback, &RollbackOptions::min_feedback), 1, int64_t{1} << 40));
  keys.push_back(DoubleKey("rollback.max_error_rate_increase", "error rate the champion may exceed the previous champion's by (95% CI lower end)", In(&C::rollback, &RollbackOptions::max_error_rate_increase), 0, 1));
  keys.push_back(DoubleKey("rollback.max_negative_feedback_increase", "negative-feedback rate the champion may exceed the previous champion's by (95% CI lower end)", In(&C::rollback, &RollbackOptions::max_negative_feedback_increase), 0, 1));
  keys.push_back(DoubleKey("rollback.max_stream_loss_increase", "held-out stream loss (nats/token) the champion may exceed the previous champion's by (95% CI lower end)", In(&C::rollback, &RollbackOptions::max_stream_loss_increase), 0, 100));
  keys.push_back(IntKey("rollback.min_stream_tokens", "held-out stream tokens since the promotion needed to compare losses", In(&C::rollback, &RollbackOptions::min_stream_tokens), 1, int64_t{1} << 40));
  keys.push_back(IntKey("rollback.max_stream_records", "newest held-out records since the promotion scored per check", In(&C::rollback, &RollbackOptions::max_stream_records), 1, 1 << 20));
  keys.push_back(StringKey("serving.admin_token", "bearer token for /v1/admin; empty = open", In(&C::serving, &ServingOptions::admin_token)));
  keys.push_back(IntKey("serving.max_tokens", "largest max_tokens a request may ask", In(&C::serving, &ServingOptions::max_tokens), 1, 1 << 20));
  keys.push_back(IntKey("serving.poll_ms", "how often serving checks for a new champion", In(&C::serving, &ServingOptions::poll_ms), 10, 3600000));
  keys.push_back(IntKey("serving.threads", "cores serving computes on while the learner works; 0 = half the cores", In(&C::serving, &ServingOptions::threads), 0, 1024));
  keys.push_back(IntKey("serving.idle_threads", "cores serving may use while the learner is idle; 0 = all cores", In(&C::serving, &ServingOptions::idle_threads), 0, 1024));
  keys.push_back(IntKey("serving.max_batch", "sequences decoded together (continuous batching)", In(&C::serving, &ServingOptions::max_batch), 1, 4096));
  keys.push_back(IntKey("serving.max_queue", "requests that may wait for a batch slot; more get 429", In(&C::serving, &ServingOptions::max_queue), 1, 1 << 20));
  keys.push_back(DoubleKey("serving.request_timeout_s", "deadline of one request, queue included; 0 = none", In(&C::serving, &ServingOptions::request_timeout_s), 0, 86400));
  keys.push_back(IntKey("serving.max_body_bytes", "largest request body; larger ones get 413", In(&C::serving, &ServingOptions::max_body_bytes), 1024, int64_t{1} << 30));
  keys.push_back(IntKey("serving.max_connections", "HTTP connections served at once (a thread each); more get 503", In(&C::serving, &ServingOptions::max_connections), 1, 65536));
  keys.push_back(DoubleKey("serving.header_timeout_s", "seconds a connection may take to send a request's headers (idle keep-alive included); then 408 and close", In(&C::serving, &ServingOptions::header_timeout_s), 0.05, 3600));
  keys.push_back(DoubleKey("serving.body_timeout_s", "seconds a request may take to send its body after the headers; then 408 and close", In(&C::serving, &ServingOptions::body_timeout_s), 0.05, 3600));
  keys.push_back(IntKey("serving.completion_log_size", "completions remembered for POST /v1/feedback", In(&C::serving, &ServingOptions::completion_log_size), 0, 100000000));
  keys.push_back(DoubleKey("serving.completion_log_ttl_s", "how long a completion can receive feedback (seconds)", In(&C::serving, &ServingOptions::completion_log_ttl_s), 1, 1e9));
  return keys;
}

absl::Status ApplyNode(Config& config, const YAML::Node& node,
                       const std::string& prefix, const std::string& origin) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      std::string key = kv.first.as<std::string>();
      std::string full = prefix.empty() ? key : prefix + "." + key;
      absl::Status s = ApplyNode(config, kv.second, full, origin);
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }
  if (node.IsSequence()) {
    std::vector<std::string> items;
    for (const auto& item : node) items.push_back(item.as<std::string>());
    return SetConfigValue(config, prefix, absl::StrJoin(items, ","));
  }
  if (node.IsNull()) return SetConfigValue(config, prefix, "");
  return SetConfigValue(config, prefix, node.as<std::string>());
}

}  // namespace

const std::vector<ConfigKey>& ConfigKeys() {
  static const std::vector<ConfigKey>* keys = new std::vector<ConfigKey>(BuildKeys());
  return *keys;
}

absl::Status SetConfigValue(Config& config, const std::string& key,
                            const std::string& value) {
  for (const ConfigKey& k : ConfigKeys()) {
    if (k.name == key) return k.set(config, value);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown config key '", key, "' (see --help for keys)"));
}

absl::Status ApplyYamlText(Config& config, const std::string& text,
                           const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("config ", origin, ": not valid YAML: ", e.what()));
  }
  if (root.IsNull()) return absl::OkStatus();
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config ", origin, ": top level must be a map of keys"));
  }
  absl::Status s;
  try {
    s = ApplyNode(config, root, "", origin);
  } catch (const YAML::Exception& e) {
    // e.g. a map or sequence used as a key, or a nested list as a value.
    s = absl::InvalidArgumentError(absl::StrCat("unsupported YAML structure: ", e.what()));
  }
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config ", origin, ": ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status ApplyYamlFile(Config& config, const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("config file '", path, "' cannot be read"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ApplyYamlText(config, ss.str(), "'" + path + "'");
}

std::string EnvNameForKey(const std::string& key) {
  std::string env = "STREAMLM_";
  for (char c : key) env += (c == '.') ? '_' : absl::ascii_toupper(c);
  return env;
}

absl::Status ApplyEnvironment(Config& config) {
  for (const ConfigKey& k : ConfigKeys()) {
    const char* v = std::getenv(EnvNameForKey(k.name).c_str());
    if (v == nullptr) continue;
    absl::Status s = k.set(config, v);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "environment ", EnvNameForKey(k.name), ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

std::string DumpConfig(const Config& config) {
  std::string out;
  for (const ConfigKey& k : ConfigKeys()) {
    absl::StrAppend(&out, k.name, ": ", k.get(config), "\n");
  }
  return out;
}

}  // namespace streamlm
