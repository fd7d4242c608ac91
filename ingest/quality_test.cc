#include "ingest/quality.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/json_util.h"
#include "gtest/gtest.h"
#include "ingest/normalize.h"
#include "tests/util/skip.h"
#include "tests/util/spam_assassin.h"
#include "tests/util/temp_dir.h"
#include "tests/util/timing.h"

namespace streamlm {
namespace {

// Every reason quality.cc may give.
const std::set<std::string>& AllReasons() {
  static const std::set<std::string> kReasons = {"language",
                                                 "language_unrecognized",
                                                 "text_too_short",
                                                 "text_gibberish",
                                                 "text_navigation",
                                                 "text_shouting",
                                                 "text_url_ratio",
                                                 "text_boilerplate",
                                                 "text_avg_word_length",
                                                 "text_alpha_words",
                                                 "text_symbol_word_ratio",
                                                 "c4_empty_after_line_filters",
                                                 "gopher_dup_para_frac",
                                                 "gopher_dup_para_char_frac",
                                                 "gopher_dup_line_frac",
                                                 "gopher_dup_line_char_frac",
                                                 "gopher_top_2gram",
                                                 "gopher_top_3gram",
                                                 "gopher_top_4gram",
                                                 "gopher_dup_5gram",
                                                 "gopher_dup_6gram",
                                                 "gopher_dup_7gram",
                                                 "gopher_dup_8gram",
                                                 "gopher_dup_9gram",
                                                 "gopher_dup_10gram",
                                                 "gopher_short_doc",
                                                 "gopher_long_doc",
                                                 "gopher_below_avg_word_length",
                                                 "gopher_above_avg_word_length",
                                                 "gopher_symbol_word_ratio",
                                                 "gopher_bullet_lines",
                                                 "gopher_ellipsis_lines",
                                                 "gopher_alpha_words",
                                                 "gopher_stop_words",
                                                 "c4_lorem_ipsum",
                                                 "c4_curly_bracket",
                                                 "c4_too_few_sentences",
                                                 "fineweb_line_punct_ratio",
                                                 "fineweb_short_line_ratio",
                                                 "fineweb_char_dup_ratio",
                                                 "fineweb_newline_ratio"};
  return kReasons;
}

enum class Filter { kGopherQuality, kGopherRepetition, kC4, kFineWeb };

// The published web-page recipe these tests check: every document is a
// page, and the stream profile's own rules (text rules, language) are off.
// The clean.text defaults, which apply the web-page rules to page-shaped
// documents only, are tested in stream_profile_test.cc.
CleanOptions WebPageRecipe() {
  CleanOptions o;
  o.page.min_lines = 1;
  o.text_rules.enabled = false;
  o.language.accept.clear();
  o.language.max_unrecognized_bytes = 0;
  return o;
}

// Default options with only `which` enabled.
CleanOptions Only(Filter which) {
  CleanOptions o = WebPageRecipe();
  o.gopher_quality.enabled = which == Filter::kGopherQuality;
  o.gopher_repetition.enabled = which == Filter::kGopherRepetition;
  o.c4.enabled = which == Filter::kC4;
  o.fineweb.enabled = which == Filter::kFineWeb;
  return o;
}

// The n-gram limits of Gopher repetition, 2-grams to 10-grams.
double GopherRepetitionOptions::*const kNgramLimits[] = {
    &GopherRepetitionOptions::max_top_2gram_char_frac,
    &GopherRepetitionOptions::max_top_3gram_char_frac,
    &GopherRepetitionOptions::max_top_4gram_char_frac,
    &GopherRepetitionOptions::max_dup_5gram_char_frac,
    &GopherRepetitionOptions::max_dup_6gram_char_frac,
    &GopherRepetitionOptions::max_dup_7gram_char_frac,
    &GopherRepetitionOptions::max_dup_8gram_char_frac,
    &GopherRepetitionOptions::max_dup_9gram_char_frac,
    &GopherRepetitionOptions::max_dup_10gram_char_frac};

// Only Gopher repetition, with every rule off (limit 0) but `keep`.
CleanOptions RepetitionOnly(double GopherRepetitionOptions::*keep) {
  CleanOptions o = Only(Filter::kGopherRepetition);
  GopherRepetitionOptions& r = o.gopher_repetition;
  const double limit = r.*keep;
  for (double GopherRepetitionOptions::*f :
       {&GopherRepetitionOptions::max_dup_line_frac, &GopherRepetitionOptions::max_dup_para_frac,
        &GopherRepetitionOptions::max_dup_line_char_frac,
        &GopherRepetitionOptions::max_dup_para_char_frac}) {
    r.*f = 0;
  }
  for (double GopherRepetitionOptions::*f : kNgramLimits) r.*f = 0;
  r.*keep = limit;
  return o;
}

FilterVerdict Check(const CleanOptions& options, std::string text) {
  return QualityFilter(options).Apply(text);
}

std::string ReasonOf(const FilterVerdict& v) { return v.ok() ? "kept" : v.reason; }

// A made-up word, distinct for each i, only letters, at least six of them.
std::string Word(int i) {
  static const char* const kSyllables[] = {"ka", "lo", "mi", "ne", "ru",
                                           "ta", "vo", "si", "de", "pu"};
  std::string w;
  for (int v = i + 100; v > 0; v /= 10) w = kSyllables[v % 10] + w;
  return w;
}

// `n` ordinary words (three stop words among them), then a full stop.
std::string Words(int n) {
  static const char* const kPool[] = {"the",   "river", "and",   "valley", "were",  "quiet",
                                      "under", "early", "light", "with",   "birds", "singing"};
  std::vector<std::string> w;
  for (int i = 0; i < n; ++i) w.push_back(kPool[i % 12]);
  return absl::StrJoin(w, " ") + ".";
}

// A line of more than 30 characters, distinct for each i, ending in '.'.
std::string LongLine(int i) { return "The " + Word(i) + " report arrived late on Monday."; }

// Prose that every filter keeps with the default options.
const char kProse[] =
    "The river rose slowly through the night, and by morning the low fields were under water.\n"
    "Farmers moved their animals to the high ground before the roads were closed.\n"
    "\n"
    "Volunteers filled sandbags at the school and carried them to the houses near the bank.\n"
    "The mayor said that the town had seen worse floods, but never one so early in the year.\n"
    "\n"
    "By evening the water had begun to fall, leaving mud and broken fences behind it.\n"
    "Most families expect to return home within a week, once the power lines are repaired.";

TEST(QualityFilterTest, KeepsOrdinaryProseUnchanged) {
  std::string text = kProse;
  FilterVerdict v = QualityFilter(WebPageRecipe()).Apply(text);
  EXPECT_TRUE(v.ok()) << v.reason << ": " << v.detail;
  EXPECT_EQ(v.lines_dropped, 0);
  EXPECT_EQ(text, kProse);
}

TEST(QualityFilterTest, EveryReasonIsListed) {
  // A reject always names a listed rule and says what it measured.
  for (const std::string& text : {std::string("Too short."), std::string("{ x } { y } { z }"),
                                  Words(60) + " # # # # # # # # #"}) {
    FilterVerdict v = Check(WebPageRecipe(), text);
    ASSERT_FALSE(v.ok()) << text;
    EXPECT_EQ(AllReasons().count(v.reason), 1u) << v.reason;
    EXPECT_FALSE(v.detail.empty()) << v.reason;
  }
}

// ---------------------------------------------------------------------------
// C4 line filters

TEST(C4Test, DropsBoilerplateLinesAndCitationsKeepingParagraphs) {
  const std::string text =
      "The river rose slowly through the night.[1]\n"
      "Please enable JavaScript to see the comments.\n"
      "By using this site you agree to our Terms of Use.\n"
      "Share this\n"
      "\n"
      "Farmers moved their animals to high ground.[citation needed]\n"
      "Read the cookie policy for details.\n"
      "\n"
      "Menu\n"
      "\n"
      "Volunteers filled sandbags at the school.[edit]\n"
      "The mayor said the town had seen worse.[12][]";
  std::string out = text;
  FilterVerdict v = QualityFilter(Only(Filter::kC4)).Apply(out);
  // Dropped: javascript, terms of use, "Share this" (2 words), cookie
  // policy, "Menu" (1 word). The empty paragraph leaves no blank lines.
  EXPECT_EQ(v.lines_dropped, 5);
  EXPECT_EQ(out,
            "The river rose slowly through the night.\n"
            "\n"
            "Farmers moved their animals to high ground.\n"
            "\n"
            "Volunteers filled sandbags at the school.\n"
            "The mayor said the town had seen worse.");
  // Four sentences are left, one short of the minimum of 5.
  EXPECT_EQ(ReasonOf(v), "c4_too_few_sentences");
  EXPECT_EQ(v.detail, "4 sentences, minimum 5");

  // Each line rule can be switched off.
  CleanOptions o = Only(Filter::kC4);
  o.c4.drop_javascript_lines = false;
  o.c4.drop_policy_lines = false;
  o.c4.min_words_per_line = 1;
  o.c4.remove_citations = false;
  out = text;
  v = QualityFilter(o).Apply(out);
  EXPECT_TRUE(v.ok()) << v.reason << ": " << v.detail;
  EXPECT_EQ(v.lines_dropped, 0);
  EXPECT_TRUE(absl::StrContains(out, "[citation needed]"));
  EXPECT_TRUE(absl::StrContains(out, "JavaScript"));
}

TEST(C4Test, DropsLinesWithAWordLongerThanTheMaximum) {
  const std::string base =
      Words(12) + "\n" + Words(13) + "\n" + Words(14) + "\n" + Words(15) + "\n" + Words(16);
  std::string text = base + "\nA very " + std::string(1001, 'a') + " word.";
  FilterVerdict v = Check(Only(Filter::kC4), text);
  EXPECT_TRUE(v.ok()) << v.detail;
  EXPECT_EQ(v.lines_dropped, 1);
  text = base + "\nA very " + std::string(1000, 'a') + " word.";
  EXPECT_EQ(Check(Only(Filter::kC4), text).lines_dropped, 0);
  // The maximum counts code points, not bytes: 600 'é' are 1200 bytes.
  std::string e_acute;
  for (int i = 0; i < 600; ++i) e_acute += "\xC3\xA9";
  EXPECT_EQ(Check(Only(Filter::kC4), base + "\nA very " + e_acute + " word.").lines_dropped, 0);
  CleanOptions o = Only(Filter::kC4);
  o.c4.max_word_length = 500;
  EXPECT_EQ(Check(o, base + "\nA very " + e_acute + " word.").lines_dropped, 1);
}

TEST(C4Test, TerminalPunctuationRuleIsOffByDefault) {
  const std::string text = Words(10) + "\n" + Words(11) + "\n" + Words(12) + "\n" + Words(13) +
                           "\n" + Words(14) +
                           "\nThis line has no end mark\nThis line trails off...\n"
                           "He said \xE2\x80\x9Cyes.\xE2\x80\x9D";
  std::string out = text;
  FilterVerdict v = QualityFilter(Only(Filter::kC4)).Apply(out);
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.lines_dropped, 0);
  CleanOptions o = Only(Filter::kC4);
  o.c4.drop_lines_without_terminal_punct = true;
  out = text;
  v = QualityFilter(o).Apply(out);
  EXPECT_TRUE(v.ok()) << v.detail;
  EXPECT_EQ(v.lines_dropped, 2);  // no end mark; ellipsis. A curly quote ends a line.
  EXPECT_FALSE(absl::StrContains(out, "no end mark"));
  EXPECT_FALSE(absl::StrContains(out, "trails off"));
  EXPECT_TRUE(absl::StrContains(out, "He said"));
}

TEST(C4Test, LoremIpsumOnAKeptLineDropsTheDocument) {
  const std::string prose = kProse;
  FilterVerdict v = Check(Only(Filter::kC4), prose + "\nLorem ipsum dolor sit amet.");
  EXPECT_EQ(ReasonOf(v), "c4_lorem_ipsum");
  EXPECT_EQ(v.detail, "\"lorem ipsum\" on line 9");  // 8 lines of prose, 2 blank
  // A line of fewer than 3 words goes before the phrase is looked at.
  EXPECT_TRUE(Check(Only(Filter::kC4), prose + "\nLorem ipsum").ok());
  EXPECT_TRUE(Check(Only(Filter::kC4), prose + "\nLorem dolor sit amet.").ok());
  CleanOptions o = Only(Filter::kC4);
  o.c4.drop_lorem_ipsum = false;
  EXPECT_TRUE(Check(o, prose + "\nLorem ipsum dolor sit amet.").ok());
}

TEST(C4Test, CurlyBracketOnAKeptLineDropsTheDocument) {
  const std::string prose = kProse;
  EXPECT_EQ(ReasonOf(Check(Only(Filter::kC4), prose + "\nThe set {1, 2, 3} is finite.")),
            "c4_curly_bracket");
  EXPECT_TRUE(Check(Only(Filter::kC4), prose + "\nThe set (1, 2, 3) is finite.").ok());
  EXPECT_TRUE(Check(Only(Filter::kC4), prose + "\nvar x={}").ok());  // 2 words: the line goes
  CleanOptions o = Only(Filter::kC4);
  o.c4.drop_curly_bracket = false;
  EXPECT_TRUE(Check(o, prose + "\nThe set {1, 2, 3} is finite.").ok());
  // The first line that hits decides, as in datatrove.
  EXPECT_EQ(
      ReasonOf(Check(Only(Filter::kC4), prose + "\nThe set {1} is small.\nLorem ipsum dolor sit.")),
      "c4_curly_bracket");
  EXPECT_EQ(
      ReasonOf(Check(Only(Filter::kC4), prose + "\nLorem ipsum dolor sit.\nThe set {1} is small.")),
      "c4_lorem_ipsum");
  // A javascript line goes before its bracket is seen.
  EXPECT_TRUE(Check(Only(Filter::kC4), prose + "\nfunction() { javascript here }").ok());
}

// Sentences C4 counts in `text` (read back from the verdict's detail).
int64_t C4Sentences(const std::string& text) {
  CleanOptions o = Only(Filter::kC4);
  o.c4.min_sentences = 1000;
  o.c4.min_words_per_line = 1;
  FilterVerdict v = Check(o, text);
  EXPECT_EQ(ReasonOf(v), "c4_too_few_sentences") << text;
  return std::stoll(v.detail);
}

TEST(C4Test, CountsSentencesWithASimpleSplitter) {
  EXPECT_EQ(C4Sentences("One. Two! Three? Four"), 4);
  EXPECT_EQ(C4Sentences("He said \"stop.\" Then he left."), 2);
  EXPECT_EQ(C4Sentences("Version 3.5 is out"), 1);  // no break after '.'
  EXPECT_EQ(C4Sentences("Wait... what?! Really"), 3);
  EXPECT_EQ(C4Sentences("Dr. Smith came."), 2);  // abbreviations count
  EXPECT_EQ(C4Sentences("... !!! ?"), 0);        // no words, no sentence
  EXPECT_EQ(C4Sentences("\xE4\xBD\xA0\xE5\xA5\xBD\xE3\x80\x82\xE5\x86\x8D\xE8\xA7\x81\xEF\xBC\x81"),
            2);
  EXPECT_EQ(C4Sentences("First line\nsecond line.\n\nthird"), 3);  // each line is one at least
}

TEST(C4Test, TooFewSentences) {
  // Five lines, one sentence each.
  const std::string five =
      Words(10) + "\n" + Words(11) + "\n" + Words(12) + "\n" + Words(13) + "\n" + Words(14);
  EXPECT_TRUE(Check(Only(Filter::kC4), five).ok());
  const std::string four = Words(10) + "\n" + Words(11) + "\n" + Words(12) + "\n" + Words(13);
  FilterVerdict v = Check(Only(Filter::kC4), four);
  EXPECT_EQ(ReasonOf(v), "c4_too_few_sentences");
  EXPECT_EQ(v.detail, "4 sentences, minimum 5");
  CleanOptions o = Only(Filter::kC4);
  o.c4.min_sentences = 4;
  EXPECT_TRUE(Check(o, four).ok());
}

TEST(C4Test, EmptyAfterLineFilters) {
  std::string text = "Home\n\nAbout us\n\nEnable javascript to continue please.";
  FilterVerdict v = QualityFilter(WebPageRecipe()).Apply(text);
  EXPECT_EQ(ReasonOf(v), "c4_empty_after_line_filters");
  EXPECT_EQ(v.detail, "all 3 lines removed");
  EXPECT_EQ(v.lines_dropped, 3);
  EXPECT_EQ(text, "");
}

TEST(C4Test, DisabledLeavesTextAlone) {
  CleanOptions o = Only(Filter::kC4);
  o.c4.enabled = false;
  std::string text = "Menu\n\nLorem ipsum dolor sit amet {x}.[1]";
  FilterVerdict v = QualityFilter(o).Apply(text);
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.lines_dropped, 0);
  EXPECT_EQ(text, "Menu\n\nLorem ipsum dolor sit amet {x}.[1]");
}

// ---------------------------------------------------------------------------
// Gopher repetition (each test keeps one rule on; the others are off)

TEST(GopherRepetitionTest, DuplicateParagraphFraction) {
  const CleanOptions o = RepetitionOnly(&GopherRepetitionOptions::max_dup_para_frac);
  const std::string p1 = LongLine(1), p2 = LongLine(2), p3 = LongLine(3), p4 = LongLine(4);
  const std::string s = "Read more below.";
  // 2 of 6 paragraphs repeat an earlier one: 0.3333 > 0.3.
  FilterVerdict v = Check(o, absl::StrJoin({p1, s, p2, s, p3, s}, "\n\n"));
  EXPECT_EQ(ReasonOf(v), "gopher_dup_para_frac");
  EXPECT_EQ(v.detail, "duplicate paragraphs 0.3333, maximum 0.3");
  EXPECT_TRUE(Check(o, absl::StrJoin({p1, s, p2, s, p3, p4}, "\n\n")).ok());  // 1 of 6
  // Paragraphs, not lines: the same lines in one paragraph do not count.
  EXPECT_TRUE(Check(o, absl::StrJoin({p1, s, p2, s, p3, s}, "\n")).ok());
}

TEST(GopherRepetitionTest, DuplicateParagraphCharacterFraction) {
  const CleanOptions o = RepetitionOnly(&GopherRepetitionOptions::max_dup_para_char_frac);
  // LongLine(i) has 41 characters. Paragraphs A, B, A: 41 duplicated
  // characters of 41 * 3 + 2 * 2 (blank lines) = 127: 0.3228 > 0.2.
  const std::string a = LongLine(1), b = LongLine(2);
  ASSERT_EQ(a.size(), 41u);
  FilterVerdict v = Check(o, a + "\n\n" + b + "\n\n" + a);
  EXPECT_EQ(ReasonOf(v), "gopher_dup_para_char_frac");
  EXPECT_EQ(v.detail, "characters in duplicate paragraphs 0.3228, maximum 0.2");
  EXPECT_TRUE(Check(o, a + "\n\n" + b + "\n\n" + LongLine(3)).ok());
}

TEST(GopherRepetitionTest, DuplicateLineFraction) {
  const CleanOptions o = RepetitionOnly(&GopherRepetitionOptions::max_dup_line_frac);
  const std::string a = "Call us today.";
  // Lines A B A C A D: 2 of 6 repeat (0.3333 > 0.3); blank lines are not lines.
  FilterVerdict v =
      Check(o, absl::StrJoin({a, LongLine(1), a, LongLine(2), a, LongLine(3)}, "\n\n"));
  EXPECT_EQ(ReasonOf(v), "gopher_dup_line_frac");
  EXPECT_EQ(v.detail, "duplicate lines 0.3333, maximum 0.3");
  EXPECT_TRUE(
      Check(o, absl::StrJoin({a, LongLine(1), a, LongLine(2), LongLine(4), LongLine(3)}, "\n"))
          .ok());
}

TEST(GopherRepetitionTest, DuplicateLineCharacterFractionByHand) {
  const CleanOptions o = RepetitionOnly(&GopherRepetitionOptions::max_dup_line_char_frac);
  // "Click here to subscribe." (24) among lines of 41 (LongLine):
  //   A L1 L2 A L3 -> 5 lines, 4 newlines, 24*2 + 41*3 + 4 = 175 characters;
  //   one duplicate line: 24 / 175 = 0.137143 <= 0.2: kept.
  //   A L1 A L2 A  -> 24*3 + 41*2 + 4 = 158 characters, 2 of 5 lines repeat
  //   (0.4, but that rule is off): 48 / 158 = 0.303797 > 0.2.
  const std::string a = "Click here to subscribe.";
  ASSERT_EQ(a.size(), 24u);
  FilterVerdict v = Check(o, absl::StrJoin({a, LongLine(1), LongLine(2), a, LongLine(3)}, "\n"));
  EXPECT_TRUE(v.ok()) << v.detail;
  v = Check(o, absl::StrJoin({a, LongLine(1), a, LongLine(2), a}, "\n"));
  EXPECT_EQ(ReasonOf(v), "gopher_dup_line_char_frac");
  EXPECT_EQ(v.detail, "characters in duplicate lines 0.3038, maximum 0.2");
  // Raising the limit keeps it.
  CleanOptions higher = o;
  higher.gopher_repetition.max_dup_line_char_frac = 0.31;
  EXPECT_TRUE(Check(higher, absl::StrJoin({a, LongLine(1), a, LongLine(2), a}, "\n")).ok());
}

TEST(GopherRepetitionTest, TopTwoGramByHand) {
  const CleanOptions o = RepetitionOnly(&GopherRepetitionOptions::max_top_2gram_char_frac);
  // "the cat the cat the cat sat" (27 characters): "the cat" occurs 3 times,
  // 7 characters each: 21 / 27 = 0.7778.
  FilterVerdict v = Check(o, "the cat the cat the cat sat");
  EXPECT_EQ(ReasonOf(v), "gopher_top_2gram");
  EXPECT_EQ(v.detail, "characters in the top 2-gram 0.7778, maximum 0.2");
  // Ties go to the n-gram seen first (Counter.most_common): in
  // "aa b aa b ccc d ccc d" (21 characters) "aa b" and "ccc d" both occur
  // twice; "aa b" came first: 2 * 4 / 21 = 0.3810 (not 2 * 5 / 21).
  v = Check(o, "aa b aa b ccc d ccc d");
  EXPECT_EQ(v.detail, "characters in the top 2-gram 0.3810, maximum 0.2");
  // All unique: nothing repeats, so no limit drops it (datatrove would
  // count the first 2-gram once: 5 / (5 + 9 * 7) = 0.0735 > 0.07).
  std::string unique = "xx yy";
  for (int i = 0; i < 9; ++i) unique += " " + Word(i);
  CleanOptions strict = o;
  strict.gopher_repetition.max_top_2gram_char_frac = 0.07;
  EXPECT_TRUE(Check(strict, unique).ok()) << Check(strict, unique).detail;
  // One repeat of a 2-gram and it counts: "xx yy" twice = 10 / (11 + 9 * 7).
  EXPECT_EQ(Check(strict, unique + " xx yy").detail,
            "characters in the top 2-gram 0.1351, maximum 0.07");
}

// Segments "G w_i" with G an n-gram and w_i unique words: the top n-gram is
// G. With two alternating n-grams, each covers half as much.
class TopNgramTest : public ::testing::TestWithParam<int> {};

TEST_P(TopNgramTest, TripsOnlyWithOneDominantNgram) {
  const int n = GetParam();
  const CleanOptions o = RepetitionOnly(kNgramLimits[n - 2]);
  const char* const kA[] = {"red", "fox", "ran", "far"};
  const char* const kB[] = {"old", "owl", "sat", "low"};
  std::string one, two;
  int filler = 0;
  for (int i = 0; i < 20; ++i) {
    for (int k = 0; k < n; ++k) {
      one += std::string(kA[k]) + " ";
      two += std::string(i % 2 ? kB[k] : kA[k]) + " ";
    }
    // n + 1 unique words of 6 letters: G (4n - 1 characters) covers about
    // (4n - 1) / (4n + 7(n + 1)) of the text: 0.24, 0.28, 0.29 for n = 2, 3,
    // 4, above each limit; half of that is below.
    for (int k = 0; k <= n; ++k, ++filler) {
      one += Word(filler) + " ";
      two += Word(filler) + " ";
    }
  }
  const std::string reason = "gopher_top_" + std::to_string(n) + "gram";
  EXPECT_EQ(ReasonOf(Check(o, one)), reason);
  EXPECT_TRUE(Check(o, two).ok()) << Check(o, two).detail;
}

INSTANTIATE_TEST_SUITE_P(N, TopNgramTest, ::testing::Values(2, 3, 4));

TEST(GopherRepetitionTest, DuplicateFiveGramsJumpPastEachDuplicate) {
  const CleanOptions o = RepetitionOnly(&GopherRepetitionOptions::max_dup_5gram_char_frac);
  // "one two three four five six one two three four five six": 55
  // characters. Scanning 5-grams, the first repeat starts at word 7
  // ("one two three four five", 19 characters without spaces); datatrove
  // then jumps 5 words, past the end. 19 / 55 = 0.3455. (Counting every
  // repeated 5-gram would give (19 + 20) / 55.)
  FilterVerdict v = Check(o, "one two three four five six one two three four five six");
  EXPECT_EQ(ReasonOf(v), "gopher_dup_5gram");
  EXPECT_EQ(v.detail, "characters in duplicate 5-grams 0.3455, maximum 0.15");
}

// A block of n words that appears twice among unique words trips the
// n-gram rule; change one word of the second copy and nothing repeats.
class DupNgramTest : public ::testing::TestWithParam<int> {};

TEST_P(DupNgramTest, TripsOnlyWhenTheBlockRepeats) {
  const int n = GetParam();
  const CleanOptions o = RepetitionOnly(kNgramLimits[n - 2]);
  std::vector<std::string> block;
  for (int k = 0; k < n; ++k) block.push_back(Word(500 + k));
  std::vector<std::string> changed = block;
  changed.back() = Word(999);
  // Block, 3 unique words, block: the block's characters (no spaces) are
  // about a third of the text, above every limit.
  const std::string middle = " " + Word(1) + " " + Word(2) + " " + Word(3) + " ";
  const std::string repeated = absl::StrJoin(block, " ") + middle + absl::StrJoin(block, " ");
  const std::string near = absl::StrJoin(block, " ") + middle + absl::StrJoin(changed, " ");
  EXPECT_EQ(ReasonOf(Check(o, repeated)), "gopher_dup_" + std::to_string(n) + "gram");
  EXPECT_TRUE(Check(o, near).ok()) << Check(o, near).detail;
}

INSTANTIATE_TEST_SUITE_P(N, DupNgramTest, ::testing::Values(5, 6, 7, 8, 9, 10));

// The n-gram rules against a plain rewrite of datatrove's find_top_duplicate
// (but counting the top n-gram only when it occurs twice or more) and
// find_all_duplicate (strings and a map, no shortcuts), on random word
// sequences from a small vocabulary (words = tokens: no punctuation).
TEST(GopherRepetitionTest, NgramRulesMatchAPlainReimplementation) {
  const std::vector<std::string> vocab = {"a", "bb", "ccc", "dd", "e", "ffff"};
  std::mt19937 rng(7);
  for (int iter = 0; iter < 300; ++iter) {
    std::vector<std::string> words;
    const int count = 1 + static_cast<int>(rng() % 60);
    const size_t v = 2 + rng() % (vocab.size() - 1);
    for (int i = 0; i < count; ++i) words.push_back(vocab[rng() % v]);
    const std::string text = absl::StrJoin(words, " ");
    for (int n = 2; n <= 10; ++n) {
      double expected = 0;  // characters / len(text)
      if (words.size() >= static_cast<size_t>(n)) {
        std::vector<std::string> grams, joined;  // " ".join and "".join
        for (size_t i = 0; i + n <= words.size(); ++i) {
          grams.push_back(absl::StrJoin(words.begin() + i, words.begin() + i + n, " "));
          joined.push_back(absl::StrJoin(words.begin() + i, words.begin() + i + n, ""));
        }
        if (n <= 4) {
          std::map<std::string, int> counts;
          for (const std::string& g : grams) ++counts[g];
          std::string top = grams[0];
          for (const std::string& g : grams) {
            if (counts[g] > counts[top]) top = g;  // first seen wins ties
          }
          // StreamLM counts the top n-gram only when it repeats.
          if (counts[top] >= 2) {
            expected =
                static_cast<double>(top.size() * counts[top]) / static_cast<double>(text.size());
          }
        } else {
          std::set<std::string> unique;
          size_t repeated = 0;
          for (size_t i = 0; i < joined.size();) {
            if (unique.insert(joined[i]).second) {
              ++i;
            } else {
              repeated += joined[i].size();
              i += static_cast<size_t>(n);
            }
          }
          expected = static_cast<double>(repeated) / static_cast<double>(text.size());
        }
      }
      CleanOptions o = RepetitionOnly(kNgramLimits[n - 2]);
      o.gopher_repetition.*kNgramLimits[n - 2] = 1e-9;  // always report the value
      const FilterVerdict verdict = Check(o, text);
      if (expected == 0) {
        EXPECT_TRUE(verdict.ok()) << text << " n=" << n;
        continue;
      }
      ASSERT_FALSE(verdict.ok()) << text << " n=" << n;
      char value[32];
      std::snprintf(value, sizeof(value), " %.4f,", expected);
      EXPECT_TRUE(absl::StrContains(verdict.detail, value))
          << text << " n=" << n << ": " << verdict.detail << " vs" << value;
    }
  }
}

TEST(GopherRepetitionTest, DefaultsKeepProseAndDropARepeatedBlock) {
  EXPECT_TRUE(Check(Only(Filter::kGopherRepetition), kProse).ok());
  const std::string prose = kProse;
  const FilterVerdict v = Check(Only(Filter::kGopherRepetition), prose + "\n\n" + prose);
  EXPECT_EQ(ReasonOf(v), "gopher_dup_para_frac");  // 3 of 6 paragraphs
  CleanOptions off = Only(Filter::kGopherRepetition);
  off.gopher_repetition.enabled = false;
  EXPECT_TRUE(Check(off, prose + "\n\n" + prose).ok());
}

// ---------------------------------------------------------------------------
// Gopher quality

TEST(GopherQualityTest, DocumentLength) {
  const CleanOptions o = Only(Filter::kGopherQuality);
  FilterVerdict v = Check(o, Words(49));
  EXPECT_EQ(ReasonOf(v), "gopher_short_doc");
  EXPECT_EQ(v.detail, "49 words, minimum 50");  // the full stop is no word
  EXPECT_TRUE(Check(o, Words(50)).ok());
  // Punctuation-only pieces are not words either.
  EXPECT_EQ(ReasonOf(Check(o, Words(49) + " -- !! ...")), "gopher_short_doc");

  CleanOptions small = o;
  small.gopher_quality.max_doc_words = 100;
  v = Check(small, Words(101));
  EXPECT_EQ(ReasonOf(v), "gopher_long_doc");
  EXPECT_EQ(v.detail, "101 words, maximum 100");
  EXPECT_TRUE(Check(small, Words(100)).ok());
  EXPECT_EQ(ReasonOf(Check(o, Words(100001))), "gopher_long_doc");
  small.gopher_quality.min_doc_words = 10;
  EXPECT_TRUE(Check(small, Words(10)).ok());
}

TEST(GopherQualityTest, MeanWordLength) {
  const CleanOptions o = Only(Filter::kGopherQuality);
  std::vector<std::string> two, mixed;
  for (int i = 0; i < 60; ++i) {
    two.push_back(i % 2 ? "to" : "be");
    mixed.push_back(i % 2 ? "to" : "bees");
  }
  // All words of 2 letters: 2.0 < 3.
  FilterVerdict v = Check(o, absl::StrJoin(two, " "));
  EXPECT_EQ(ReasonOf(v), "gopher_below_avg_word_length");
  EXPECT_EQ(v.detail, "mean word length 2.0000, minimum 3");
  // Half 2, half 4 letters: exactly 3, not below.
  EXPECT_TRUE(Check(o, absl::StrJoin(mixed, " ")).ok());

  std::vector<std::string> longer, shorter;
  for (int i = 0; i < 60; ++i) {
    // "the" and "information" (11): 1 in 6 -> (3 + 55) / 6 = 9.67;
    // 1 in 12 -> (3 + 121) / 12 = 10.33.
    shorter.push_back(i % 6 ? "information" : "the");
    longer.push_back(i % 12 ? "information" : "the");
  }
  v = Check(o, absl::StrJoin(longer, " "));
  EXPECT_EQ(ReasonOf(v), "gopher_above_avg_word_length");
  EXPECT_EQ(v.detail, "mean word length 10.3333, maximum 10");
  EXPECT_TRUE(Check(o, absl::StrJoin(shorter, " ")).ok());
  CleanOptions wide = o;
  wide.gopher_quality.max_avg_word_length = 11;
  EXPECT_TRUE(Check(wide, absl::StrJoin(longer, " ")).ok());
}

TEST(GopherQualityTest, HashAndEllipsisPerWord) {
  const CleanOptions o = Only(Filter::kGopherQuality);
  // Words(60): 60 words and a full stop, 61 tokens. Each "# " adds a token
  // and a '#': 7 / 68 = 0.1029 > 0.1; 6 / 67 = 0.0896. (In front, so that
  // the line does not end with an ellipsis.)
  auto with = [](const std::string& symbol, int k) {
    std::string t;
    for (int i = 0; i < k; ++i) t += symbol + " ";
    return t + Words(60);
  };
  FilterVerdict v = Check(o, with("#", 7));
  EXPECT_EQ(ReasonOf(v), "gopher_symbol_word_ratio");
  EXPECT_EQ(v.detail, "'#' per word 0.1029, maximum 0.1");
  EXPECT_TRUE(Check(o, with("#", 6)).ok());
  v = Check(o, with("...", 7));
  EXPECT_EQ(ReasonOf(v), "gopher_symbol_word_ratio");
  EXPECT_EQ(v.detail, "ellipses per word 0.1029, maximum 0.1");
  EXPECT_EQ(ReasonOf(Check(o, with("\xE2\x80\xA6", 7))), "gopher_symbol_word_ratio");  // '…'
  EXPECT_TRUE(Check(o, with("...", 6)).ok());
  CleanOptions loose = o;
  loose.gopher_quality.max_symbol_word_ratio = 0.2;
  EXPECT_TRUE(Check(loose, with("#", 7)).ok());
}

TEST(GopherQualityTest, BulletAndEllipsisLines) {
  const CleanOptions o = Only(Filter::kGopherQuality);
  auto lines = [](int bullets, const std::string& bullet, int ellipses) {
    std::vector<std::string> out;
    for (int i = 0; i < 10; ++i) {
      std::string line = Words(12);
      if (i < ellipses) line = line.substr(0, line.size() - 1) + "...";
      out.push_back(i < bullets ? bullet + " " + line : line);
    }
    return absl::StrJoin(out, "\n");
  };
  // 10 of 10 lines start with a bullet (> 0.9); 9 of 10 do not exceed it.
  FilterVerdict v = Check(o, lines(10, "-", 0));
  EXPECT_EQ(ReasonOf(v), "gopher_bullet_lines");
  EXPECT_EQ(v.detail, "lines starting with a bullet 1.0000, maximum 0.9");
  EXPECT_EQ(ReasonOf(Check(o, lines(10, "\xE2\x80\xA2", 0))), "gopher_bullet_lines");  // '•'
  EXPECT_TRUE(Check(o, lines(9, "-", 0)).ok());
  // 4 of 10 lines end with "..." (> 0.3); 3 of 10 do not exceed it.
  v = Check(o, lines(0, "-", 4));
  EXPECT_EQ(ReasonOf(v), "gopher_ellipsis_lines");
  EXPECT_EQ(v.detail, "lines ending with an ellipsis 0.4000, maximum 0.3");
  EXPECT_TRUE(Check(o, lines(0, "-", 3)).ok());
  CleanOptions loose = o;
  loose.gopher_quality.max_ellipsis_lines_ratio = 0.5;
  loose.gopher_quality.max_bullet_lines_ratio = 0;  // 0: rule off
  EXPECT_TRUE(Check(loose, lines(0, "-", 4)).ok());
  EXPECT_TRUE(Check(loose, lines(10, "-", 0)).ok());
}

TEST(GopherQualityTest, WordsWithALetter) {
  const CleanOptions o = Only(Filter::kGopherQuality);
  // Words(60) is 60 whitespace pieces, all with a letter. k numbers add k
  // pieces: 60 / 76 = 0.7895 < 0.8 for k = 16; 60 / 75 = 0.8 for k = 15.
  auto with_numbers = [](int k) {
    std::string t = Words(60);
    for (int i = 0; i < k; ++i) t += " " + std::to_string(1990 + i);
    return t;
  };
  FilterVerdict v = Check(o, with_numbers(16));
  EXPECT_EQ(ReasonOf(v), "gopher_alpha_words");
  EXPECT_EQ(v.detail, "words with a letter 0.7895, minimum 0.8");
  EXPECT_TRUE(Check(o, with_numbers(15)).ok());
  // Pieces, not tokens: punctuation around a number makes no extra words,
  // so "(1990)," x 16 is 60 / 76 again, and punctuation attached to words
  // ("word.", "(word),") costs nothing.
  std::string t = Words(60);
  for (int i = 0; i < 16; ++i) t += " (" + std::to_string(1990 + i) + "),";
  EXPECT_EQ(Check(o, t).detail, "words with a letter 0.7895, minimum 0.8");
  std::string punctuated;
  for (int i = 0; i < 60; ++i) punctuated += (i % 2 ? " (" : " ") + Word(i) + (i % 2 ? ")," : ".");
  punctuated += " the and of";
  EXPECT_TRUE(Check(o, punctuated).ok()) << Check(o, punctuated).detail;
  // Letters beyond ASCII count: Greek, Cyrillic, CJK.
  std::string intl;
  for (int i = 0; i < 60; ++i) {
    // λόγος; слово the; 言葉の話 and
    intl += i % 3 == 0   ? "\xCE\xBB\xCF\x8C\xCE\xB3\xCE\xBF\xCF\x82 "
            : i % 3 == 1 ? "\xD1\x81\xD0\xBB\xD0\xBE\xD0\xB2\xD0\xBE the "
                         : "\xE8\xA8\x80\xE8\x91\x89\xE3\x81\xAE\xE8\xA9\xB1 and ";
  }
  EXPECT_TRUE(Check(o, intl).ok()) << Check(o, intl).detail;
}

TEST(GopherQualityTest, StopWords) {
  const CleanOptions o = Only(Filter::kGopherQuality);
  std::vector<std::string> w;
  for (int i = 0; i < 60; ++i) w.push_back(Word(i));
  FilterVerdict v = Check(o, absl::StrJoin(w, " "));
  EXPECT_EQ(ReasonOf(v), "gopher_stop_words");
  EXPECT_EQ(v.detail, "0 stop words, minimum 2");
  w[10] = "the";
  EXPECT_EQ(ReasonOf(Check(o, absl::StrJoin(w, " "))), "gopher_stop_words");
  w[20] = "The";  // matched case-sensitively, as datatrove does
  EXPECT_EQ(ReasonOf(Check(o, absl::StrJoin(w, " "))), "gopher_stop_words");
  w[30] = "with,";  // punctuation is split off
  EXPECT_TRUE(Check(o, absl::StrJoin(w, " ")).ok());
  CleanOptions more = o;
  more.gopher_quality.min_stop_words = 3;
  EXPECT_EQ(ReasonOf(Check(more, absl::StrJoin(w, " "))), "gopher_stop_words");
}

TEST(GopherQualityTest, DisabledKeepsEverything) {
  CleanOptions o = Only(Filter::kGopherQuality);
  o.gopher_quality.enabled = false;
  EXPECT_TRUE(Check(o, "# # #").ok());
  EXPECT_TRUE(Check(o, "").ok());
}

// ---------------------------------------------------------------------------
// FineWeb

TEST(FineWebTest, LinePunctuationRatio) {
  const CleanOptions o = Only(Filter::kFineWeb);
  auto doc = [](int punct) {
    std::vector<std::string> lines;
    for (int i = 0; i < 10; ++i) {
      std::string l = LongLine(i);
      lines.push_back(i < punct ? l : l.substr(0, l.size() - 1));
    }
    return absl::StrJoin(lines, "\n");
  };
  // 1 of 10 lines ends in punctuation: 0.1 <= 0.12; 2 of 10 pass.
  FilterVerdict v = Check(o, doc(1));
  EXPECT_EQ(ReasonOf(v), "fineweb_line_punct_ratio");
  EXPECT_EQ(v.detail, "lines ending in punctuation 0.1000, must exceed 0.12");
  EXPECT_TRUE(Check(o, doc(2)).ok());
  // Blank lines are not lines (FineWeb sees the text after C4 drops them).
  EXPECT_TRUE(Check(o, absl::StrReplaceAll(doc(2), {{"\n", "\n\n"}})).ok());
  CleanOptions strict = o;
  strict.fineweb.min_line_punct_ratio = 0.2;
  EXPECT_EQ(ReasonOf(Check(strict, doc(2))), "fineweb_line_punct_ratio");
}

TEST(FineWebTest, ShortLineRatio) {
  const CleanOptions o = Only(Filter::kFineWeb);
  auto doc = [](int short_lines) {
    std::vector<std::string> lines;
    for (int i = 0; i < 10; ++i)
      lines.push_back(i < short_lines ? Word(i) + " is short." : LongLine(i));
    return absl::StrJoin(lines, "\n");
  };
  // 7 of 10 lines have <= 30 characters: 0.7 >= 0.67; 6 of 10 pass.
  FilterVerdict v = Check(o, doc(7));
  EXPECT_EQ(ReasonOf(v), "fineweb_short_line_ratio");
  EXPECT_EQ(v.detail, "lines of <= 30 chars 0.7000, must stay below 0.67");
  EXPECT_TRUE(Check(o, doc(6)).ok());
  CleanOptions shorter = o;
  shorter.fineweb.short_line_chars = 10;  // "kaloka is short." has 16
  EXPECT_TRUE(Check(shorter, doc(7)).ok());
}

TEST(FineWebTest, CharacterDuplicateRatioByHand) {
  const CleanOptions o = Only(Filter::kFineWeb);
  // 30 distinct lines of 41 characters and "Share this article now." (23)
  // twice: 1230 + 46 = 1276 characters without line breaks; one duplicate
  // line: 23 / 1276 = 0.018025 >= 0.01.
  std::vector<std::string> lines;
  for (int i = 0; i < 30; ++i) lines.push_back(LongLine(i));
  lines.insert(lines.begin() + 5, "Share this article now.");
  lines.insert(lines.begin() + 20, "Share this article now.");
  FilterVerdict v = Check(o, absl::StrJoin(lines, "\n"));
  EXPECT_EQ(ReasonOf(v), "fineweb_char_dup_ratio");
  EXPECT_EQ(v.detail, "characters in duplicate lines 0.0180, must stay below 0.01");
  lines[20] = "Share this article today.";
  EXPECT_TRUE(Check(o, absl::StrJoin(lines, "\n")).ok());
}

TEST(FineWebTest, NewlinesPerWord) {
  const CleanOptions o = Only(Filter::kFineWeb);
  // Lines of two long words and a full stop: 3 tokens each. 11 lines: 10
  // line breaks / 33 tokens = 0.3030 > 0.3; 10 lines: 9 / 30 = 0.3.
  auto doc = [](int n, const char* sep) {
    std::vector<std::string> lines;
    for (int i = 0; i < n; ++i)
      lines.push_back(Word(i) + "ification " + Word(i + 50) + "ification.");
    return absl::StrJoin(lines, sep);
  };
  FilterVerdict v = Check(o, doc(11, "\n"));
  EXPECT_EQ(ReasonOf(v), "fineweb_newline_ratio");
  EXPECT_EQ(v.detail, "line breaks per word 0.3030, maximum 0.3");
  EXPECT_TRUE(Check(o, doc(10, "\n")).ok());
  // A blank line between paragraphs is one break, as after C4's line filter.
  EXPECT_TRUE(Check(o, doc(10, "\n\n")).ok());
  CleanOptions off = o;
  off.fineweb.enabled = false;
  EXPECT_TRUE(Check(off, doc(11, "\n")).ok());
}

// ---------------------------------------------------------------------------
// The whole filter

TEST(QualityFilterTest, RulesRunInOrderFirstFailureWins) {
  const std::string prose = kProse;
  // C4's line filter runs first: boilerplate lines that repeat are gone
  // before Gopher looks for repetition.
  std::string boiler;
  for (int i = 0; i < 6; ++i) boiler += "\nEnable JavaScript to see this page.";
  std::string text = prose + boiler;
  FilterVerdict v = QualityFilter(WebPageRecipe()).Apply(text);
  EXPECT_TRUE(v.ok()) << v.reason << ": " << v.detail;
  EXPECT_EQ(v.lines_dropped, 6);
  EXPECT_EQ(text, prose);
  CleanOptions no_c4 = WebPageRecipe();
  no_c4.c4.enabled = false;
  EXPECT_EQ(ReasonOf(Check(no_c4, prose + boiler)), "gopher_dup_line_frac");

  // Gopher repetition before Gopher quality: repeated and short.
  EXPECT_EQ(ReasonOf(Check(WebPageRecipe(), "Buy now. Buy now. Buy now.")), "gopher_top_2gram");
  // Gopher quality before C4's page rules: short and with a bracket.
  std::string short_doc;
  for (int i = 0; i < 40; ++i) short_doc += Word(i) + " ";
  EXPECT_EQ(ReasonOf(Check(WebPageRecipe(), short_doc + "and the set {1, 2, 3} is finite.")),
            "gopher_short_doc");
  // C4's page rules before FineWeb: a bracket on a line without punctuation.
  EXPECT_EQ(ReasonOf(Check(WebPageRecipe(), prose + "\nThe set {1, 2, 3} is finite")),
            "c4_curly_bracket");
  // Lines dropped are reported on a reject too.
  v = Check(WebPageRecipe(), prose + "\nMenu\nThe set {1, 2, 3} is finite.");
  EXPECT_EQ(ReasonOf(v), "c4_curly_bracket");
  EXPECT_EQ(v.lines_dropped, 1);
}

TEST(QualityFilterTest, EveryFilterOffKeepsAnything) {
  CleanOptions o = WebPageRecipe();
  o.gopher_quality.enabled = false;
  o.gopher_repetition.enabled = false;
  o.c4.enabled = false;
  o.fineweb.enabled = false;
  std::string text = "x\n\nx\n\n{ lorem ipsum }";
  FilterVerdict v = QualityFilter(o).Apply(text);
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(text, "x\n\nx\n\n{ lorem ipsum }");
  // The feedback profile turns them all off.
  EXPECT_TRUE(Check(DefaultFeedbackCleanOptions(), "ok").ok());
}

// ---------------------------------------------------------------------------
// Real text

// Brown corpus documents: runs of `lines` sentences (one per line) from the
// same text (texts are separated by blank lines), with >= `min_words` words.
std::vector<std::string> BrownDocuments(size_t lines, size_t min_words) {
  const std::string all = testing::ReadTestFile(testing::SourceDir() + "/data/corpus/brown.txt");
  std::vector<std::string> docs;
  std::string doc;
  size_t in_doc = 0;
  auto flush = [&] {
    size_t words = 0;
    bool in_word = false;
    for (char c : doc) {
      const bool space = c == ' ' || c == '\n';
      words += !space && !in_word;
      in_word = !space;
    }
    if (words >= min_words) docs.push_back(doc);
    doc.clear();
    in_doc = 0;
  };
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\n', start);
    if (end == std::string::npos) end = all.size();
    const std::string line = all.substr(start, end - start);
    start = end + 1;
    if (line.empty()) {
      flush();
      continue;
    }
    if (!doc.empty()) doc += "\n";
    doc += line;
    if (++in_doc == lines) flush();
  }
  flush();
  return docs;
}

TEST(RealTextTest, MostBrownProseIsKept) {
  std::vector<std::string> docs = BrownDocuments(10, 60);
  ASSERT_GE(docs.size(), 200u);
  docs.resize(200);
  QualityFilter filter{WebPageRecipe()};
  std::map<std::string, int> reasons;
  int kept = 0;
  for (std::string& d : docs) {
    FilterVerdict v = filter.Apply(d);
    if (v.ok()) {
      ++kept;
    } else {
      ++reasons[v.reason];
    }
  }
  std::string summary;
  for (const auto& [r, c] : reasons) summary += " " + r + "=" + std::to_string(c);
  std::printf("Brown: %d of 200 kept; dropped:%s\n", kept, summary.c_str());
  // Measured: 199 of 200 (one has too few sentences). With datatrove's
  // token-based letter ratio it was 183: Brown's separate '' -- ?? tokens
  // count as words without letters there.
  EXPECT_GE(kept, 190) << summary;
}

// A mail's body (after the first blank line), through stages 2-3 as the
// pipeline runs them.
std::string CleanBody(const std::string& mail, bool markup) {
  const size_t p = mail.find("\n\n");
  const std::string body = p == std::string::npos ? mail : mail.substr(p + 2);
  if (!markup) return NormalizeSpaces(body);
  NormalizeResult r = NormalizeText(body, NormalizeOptions(), MarkupOptions());
  return r.reason == nullptr ? r.text : std::string();
}

TEST(RealTextTest, SpamAssassinHtmlMailIsDropped) {
  if (testing::SpamAssassinDir().empty()) {
    SLM_SKIP_OR_FAIL("SpamAssassin corpus not installed (bash scripts/npm_deps.sh)");
  }
  const std::vector<std::string> mails = testing::SpamAssassinMails("hard-ham-1", 250);
  ASSERT_FALSE(mails.empty());
  QualityFilter filter{WebPageRecipe()};
  int html = 0, raw_dropped = 0, text_dropped = 0;
  std::map<std::string, int> reasons;
  for (const std::string& mail : mails) {
    const size_t p = mail.find("\n\n");
    if (!LooksLikeHtml(p == std::string::npos ? mail : mail.substr(p + 2))) continue;
    ++html;
    // Markup left in (as if the markup stage were off): tags, CSS, tables.
    std::string raw = CleanBody(mail, false);
    FilterVerdict v = filter.Apply(raw);
    raw_dropped += !v.ok();
    if (!v.ok()) {
      EXPECT_EQ(AllReasons().count(v.reason), 1u);
    }
    // After HTML-to-text: newsletters, forms and link lists remain.
    std::string text = CleanBody(mail, true);
    v = filter.Apply(text);
    text_dropped += !v.ok();
    if (!v.ok()) ++reasons[v.reason];
  }
  std::string summary;
  for (const auto& [r, c] : reasons) summary += " " + r + "=" + std::to_string(c);
  std::printf("hard-ham-1 HTML: %d mails; raw markup dropped %d; as text dropped %d:%s\n", html,
              raw_dropped, text_dropped, summary.c_str());
  // Measured: 168 HTML mails; 167 dropped with markup, 99 as text.
  ASSERT_GE(html, 100);
  EXPECT_GE(raw_dropped, html * 95 / 100);
  EXPECT_GE(text_dropped, html * 50 / 100);
  EXPECT_GE(reasons.size(), 5u);  // many different rules find something
}

TEST(RealTextTest, SpamAssassinMailWithRepeatedLinesIsDropped) {
  if (testing::SpamAssassinDir().empty()) {
    SLM_SKIP_OR_FAIL("SpamAssassin corpus not installed (bash scripts/npm_deps.sh)");
  }
  QualityFilter filter{WebPageRecipe()};
  int repetitive = 0, dropped = 0;
  for (const char* group : {"easy-ham-1", "hard-ham-1", "spam-1"}) {
    for (const std::string& mail : testing::SpamAssassinMails(group, 600)) {
      std::string text = CleanBody(mail, true);
      // Lines of 3+ words (what C4 keeps); over 20% repeat an earlier one.
      std::set<std::string> seen;
      int lines = 0, repeats = 0;
      size_t start = 0;
      while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        const std::string line = text.substr(start, end - start);
        start = end + 1;
        if (std::count(line.begin(), line.end(), ' ') < 2) continue;
        ++lines;
        repeats += !seen.insert(line).second;
      }
      if (lines < 5 || repeats * 10 <= lines * 2) continue;
      ++repetitive;
      dropped += !filter.Apply(text).ok();
    }
  }
  std::printf("repetitive mails: %d, dropped %d\n", repetitive, dropped);
  // Measured: 14 such mails, all dropped.
  ASSERT_GE(repetitive, 10);
  EXPECT_EQ(dropped, repetitive);
}

// ---------------------------------------------------------------------------
// Robustness

// Lines of `text` (split at '\n') with a character that is not whitespace by
// Python's str.isspace() (datatrove's and so C4's notion), written apart from
// quality.cc: ASCII \t-\r, 0x1C-0x1F and space, U+0085, and the Unicode
// space separators and line/paragraph separators.
int NonBlankLines(const std::string& text) {
  auto is_space = [](uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 ||
           cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
  };
  int lines = 0;
  bool content = false;
  for (size_t i = 0; i <= text.size();) {
    if (i == text.size() || text[i] == '\n') {
      lines += content;
      content = false;
      ++i;
      continue;
    }
    // Decode one UTF-8 sequence (the input is valid UTF-8).
    const auto b = static_cast<unsigned char>(text[i]);
    const int len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    uint32_t cp = len == 1 ? b : b & (0x7F >> len);
    for (int k = 1; k < len && i + k < text.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    }
    content |= !is_space(cp);
    i += static_cast<size_t>(len);
  }
  return lines;
}

TEST(QualityFilterPropertyTest, RandomInputNeverBreaksUtf8) {
  std::mt19937 rng(20240611);
  const std::vector<std::string> pieces = {"the",
                                           "and",
                                           "word",
                                           "Lorem ipsum",
                                           "javascript",
                                           "privacy policy",
                                           "{",
                                           "}",
                                           "[1]",
                                           "[edit]",
                                           "[citation needed]",
                                           "#",
                                           "...",
                                           "\xE2\x80\xA6",
                                           "\xE2\x80\xA2",
                                           "-",
                                           ".",
                                           "!",
                                           "?",
                                           "\"",
                                           "'",
                                           "\xE3\x80\x82",
                                           "\xEF\xBC\x81",
                                           "\xE2\x80\x9D",
                                           "\xC2\xA0",
                                           "\xE3\x80\x80",
                                           "\xE2\x80\xA8",
                                           "\xCC\x81",
                                           "\xF0\x9F\x98\x80",
                                           "\xD1\x81\xD0\xBB\xD0\xBE\xD0\xB2\xD0\xBE",
                                           "\xE8\xA8\x80",
                                           " ",
                                           " ",
                                           " ",
                                           "\n",
                                           "\n\n",
                                           "\t",
                                           "1990",
                                           std::string(1200, 'x')};
  for (int iter = 0; iter < 3000; ++iter) {
    std::string text;
    if (iter % 3 == 0) {
      std::uniform_int_distribution<int> byte(0, 255);
      const int n = static_cast<int>(rng() % 400);
      std::string raw;
      for (int i = 0; i < n; ++i) raw.push_back(static_cast<char>(byte(rng)));
      text = EscapeInvalidUtf8(raw);
    } else {
      const int n = static_cast<int>(rng() % 300);
      for (int i = 0; i < n; ++i) text += pieces[rng() % pieces.size()] + (rng() % 2 ? " " : "");
    }
    ASSERT_TRUE(IsValidUtf8(text));
    CleanOptions o = WebPageRecipe();
    if (iter % 2) {  // random switches and limits, zeros included
      o.c4.enabled = rng() % 4 != 0;
      o.gopher_quality.enabled = rng() % 4 != 0;
      o.gopher_repetition.enabled = rng() % 4 != 0;
      o.fineweb.enabled = rng() % 4 != 0;
      o.c4.min_words_per_line = rng() % 4;
      o.c4.max_word_length = static_cast<int64_t>(rng() % 3) * 5;
      o.c4.min_sentences = rng() % 3;
      o.c4.drop_lines_without_terminal_punct = rng() % 2;
      o.gopher_quality.min_doc_words = rng() % 3;
      o.gopher_repetition.max_top_2gram_char_frac = (rng() % 3) * 0.5;
      o.fineweb.max_char_dup_ratio = (rng() % 3) * 0.5;
    }
    const std::string before = text;
    FilterVerdict v = QualityFilter(o).Apply(text);
    ASSERT_TRUE(IsValidUtf8(text)) << EscapeInvalidUtf8(before);
    // Every line C4 dropped is a non-blank line of the input missing from
    // the output (kept lines are trimmed, never split or merged).
    EXPECT_EQ(v.lines_dropped, NonBlankLines(before) - NonBlankLines(text))
        << EscapeInvalidUtf8(before);
    if (!v.ok()) {
      EXPECT_EQ(AllReasons().count(v.reason), 1u) << v.reason;
    }
    if (!o.c4.enabled) {
      EXPECT_EQ(text, before);
    }
    // Deterministic.
    std::string again = before;
    FilterVerdict w = QualityFilter(o).Apply(again);
    EXPECT_EQ(ReasonOf(v), ReasonOf(w));
    EXPECT_EQ(text, again);
  }
}

TEST(QualityFilterPropertyTest, ConcurrentCallsAgreeWithSerialOnes) {
  const std::vector<std::string> docs = BrownDocuments(5, 0);
  const QualityFilter filter{WebPageRecipe()};
  std::vector<std::string> serial(docs.size());
  for (size_t i = 0; i < docs.size(); ++i) {
    std::string t = docs[i];
    serial[i] = ReasonOf(filter.Apply(t));
  }
  std::vector<std::string> parallel(docs.size());
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (size_t i = static_cast<size_t>(k); i < docs.size(); i += 4) {
        std::string t = docs[i];
        parallel[i] = ReasonOf(filter.Apply(t));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(serial, parallel);
}

// Speed without an absolute rate, in CPU time of this thread, best of 3:
// the web-page recipe over Brown prose is compared with a plain pass over
// the same bytes (testing::ReferencePass, one multiply per byte), and the
// same prose in documents 4x as long (four consecutive ones joined as
// paragraphs) must not take much longer (linear in document length; a
// quadratic step would take 4x). Measured on a shared 2-core VM: 8.5x the
// plain pass's time (~87 MB/s) and 1.01x for the long documents; the bounds
// leave 4x and 2x headroom.
TEST(QualityFilterThroughput, BrownProse) {
  constexpr double kReferenceBound = 35;  // x the plain pass
  constexpr double kLongDocBound = 2;     // x the time of the short documents
  const std::vector<std::string> docs = BrownDocuments(10, 0);
  std::vector<std::string> long_docs;
  for (size_t i = 0; i < docs.size(); i += 4) {
    std::string d = docs[i];
    for (size_t k = i + 1; k < i + 4 && k < docs.size(); ++k) d += "\n\n" + docs[k];
    long_docs.push_back(d);
  }
  size_t bytes = 0;
  for (const std::string& d : docs) bytes += d.size();
  const QualityFilter filter{WebPageRecipe()};
  auto filter_s = [&](const std::vector<std::string>& in, int* kept) {
    return testing::BestCpuSeconds(3, [&] {
      std::vector<std::string> copy = in;
      *kept = 0;
      for (std::string& d : copy) *kept += filter.Apply(d).ok();
    });
  };
  int kept = 0, long_kept = 0;
  const double short_s = filter_s(docs, &kept);
  const double long_s = filter_s(long_docs, &long_kept);
  uint64_t sink = 0;
  const double reference_s = testing::BestCpuSeconds(3, [&] {
    std::vector<std::string> copy = docs;
    sink += testing::ReferencePass(copy);
  });
  std::printf(
      "QualityFilter: %.1f MB/s on %zu Brown documents (%.1f MB, %d kept), %.1fx the plain pass "
      "(%.0f MB/s, %llu); %zu documents 4x as long (%d kept): %.2fx the time\n",
      bytes / short_s / 1e6, docs.size(), bytes / 1e6, kept, short_s / reference_s,
      bytes / reference_s / 1e6, static_cast<unsigned long long>(sink % 10), long_docs.size(),
      long_kept, long_s / short_s);
  EXPECT_LT(short_s, kReferenceBound * reference_s);
  EXPECT_LT(long_s, kLongDocBound * short_s);
}

}  // namespace
}  // namespace streamlm
