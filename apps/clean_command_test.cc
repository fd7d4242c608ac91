#include "apps/clean_command.h"

#include <sstream>
#include <string>

#include "common/json_util.h"
#include "gtest/gtest.h"

namespace streamlm {
namespace {

Config ShortText() {
  Config c;
  c.clean_text.gopher_quality.min_doc_words = 5;
  c.clean_text.c4.min_sentences = 1;
  c.ingest.threads = 2;
  return c;
}

TEST(CleanCommand, JsonLinesKeepFieldsAndCountReasons) {
  std::istringstream in(
      R"({"text": "The ferry came in at noon and the crew unloaded the grain.", "id": "a", "meta": {"k": 1}})" "\n"
      R"({"text": "The ferry came in at noon and the crew unloaded the grain.", "id": "b"})" "\n"
      "\n"
      "{broken\n"
      R"({"prompt": "Who is &lt;ann&gt;?", "response": "Write to ann@example.com", "rating": 1})" "\n"
      R"({"text": "Mail me at bob@example.org if the ship and the crew are late."})" "\n");
  std::ostringstream out, err;
  ASSERT_EQ(RunClean(ShortText(), /*text=*/false, in, out, err), 0);
  std::istringstream lines(out.str());
  std::string line;
  std::vector<Json> kept;
  while (std::getline(lines, line)) kept.push_back(*ParseJson(line));
  ASSERT_EQ(kept.size(), 3u) << out.str();
  EXPECT_EQ(kept[0]["id"], "a");
  EXPECT_EQ(kept[0]["meta"]["k"], 1);  // other fields pass through
  EXPECT_EQ(kept[1]["prompt"], "Who is <ann>?");  // feedback: clean.feedback profile
  EXPECT_EQ(kept[1]["response"], "Write to <EMAIL>");
  EXPECT_EQ(kept[2]["text"], "Mail me at <EMAIL> if the ship and the crew are late.");
  Json counts = *ParseJson(err.str());
  EXPECT_EQ(counts["read"], 5);
  EXPECT_EQ(counts["kept"], 3);
  EXPECT_EQ(counts["dropped"]["duplicate"], 1);
  EXPECT_EQ(counts["dropped"]["malformed_json"], 1);
  EXPECT_EQ(counts["redacted"]["email"], 2);
}

TEST(CleanCommand, PlainTextDocumentsInAndOut) {
  std::istringstream in(
      "The harbour was quiet and the boats lay still\nin the water of the bay.\n"
      "\n\n"
      "Home | About | Contact\n"  // navigation: dropped (a short sentence is kept now)
      "\n"
      "Caf&eacute; owners and the fishermen met at the pier, and 10.0.0.1 was down.\n");
  std::ostringstream out, err;
  ASSERT_EQ(RunClean(ShortText(), /*text=*/true, in, out, err), 0);
  EXPECT_EQ(out.str(),
            "The harbour was quiet and the boats lay still\nin the water of the bay.\n"
            "\n"
            "Caf\xC3\xA9 owners and the fishermen met at the pier, and <IP_ADDRESS> was down.\n");
  Json counts = *ParseJson(err.str());
  EXPECT_EQ(counts["read"], 3);
  EXPECT_EQ(counts["kept"], 2);
  EXPECT_EQ(counts["dropped"].size(), 1u) << counts;
  EXPECT_EQ(counts["redacted"]["ip_address"], 1);
}

}  // namespace
}  // namespace streamlm
