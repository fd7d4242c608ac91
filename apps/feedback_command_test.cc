#include "apps/feedback_command.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "common/json_util.h"
#include "gtest/gtest.h"
#include "ingest/pipeline.h"
#include "tests/util/skip.h"
#include "tests/util/subprocess.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using ::streamlm::testing::TempDir;

// One record of each kind; the cleaner (clean.feedback profile) decodes the
// entities and redacts the e-mail address.
constexpr char kGoodLines[] =
    R"({"prompt": "Who is &lt;ann&gt;?", "response": "Write to ann@example.com", "rating": 1, "user": "alice"})"
    "\n"
    "\n"
    R"({"prompt": "Name a sea bird.", "chosen": "The gull.", "rejected": "A trout.", "id": "fb-2"})"
    "\n"
    R"({"prompt": "Capital of France?", "response": "Lyon.", "correction": "Paris."})"
    "\r\n";

Config TestConfig(const std::string& data_dir) {
  Config c;
  c.data_dir = data_dir;
  return c;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

// The stored trusted set, parsed; a missing set fails the test.
Json StoredSet(const std::string& dir) {
  auto store = Store::Open(dir, /*read_only=*/true);
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return Json();
  auto bytes = (*store)->GetEvalSet(kTrustedFeedbackSet);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  if (!bytes.ok()) return Json();
  auto j = ParseJson(*bytes);
  EXPECT_TRUE(j.ok()) << j.status();
  return j.ok() ? *j : Json();
}

TEST(FeedbackTrust, StoresTheCleanedRecordsAndCountsKinds) {
  TempDir tmp;
  const std::string file = tmp.Sub("trusted.jsonl");
  WriteFile(file, kGoodLines);
  std::istringstream unused;
  std::ostringstream out, err;
  ASSERT_EQ(RunFeedbackTrust(TestConfig(tmp.Sub("store")), file, /*clear=*/false, unused, out, err),
            0)
      << err.str();
  EXPECT_EQ(out.str(),
            "stored 3 trusted feedback records: 1 pair, 1 rating, 1 correction "
            "(replacing any previous set)\n");
  EXPECT_EQ(err.str(), "");

  Json stored = StoredSet(tmp.Sub("store"));
  Json expected = Json::array();
  expected.push_back({{"prompt", "Who is <ann>?"},
                      {"response", "Write to <EMAIL>"},
                      {"rating", 1},
                      {"user", "alice"}});
  expected.push_back({{"prompt", "Name a sea bird."},
                      {"chosen", "The gull."},
                      {"rejected", "A trout."},
                      {"id", "fb-2"}});
  expected.push_back(
      {{"prompt", "Capital of France?"}, {"response", "Lyon."}, {"correction", "Paris."}});
  EXPECT_EQ(stored, expected) << stored.dump(2);

  // The same records CleanFeedbackRecord gives line by line (what the
  // learner does to `streamlm.feedback`).
  Config c;
  Cleaner cleaner(c.clean_feedback);
  std::istringstream lines(kGoodLines);
  std::string line;
  size_t i = 0;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    FeedbackResult f = CleanFeedbackRecord(line, c.learner.max_record_bytes, cleaner);
    ASSERT_TRUE(f.ok()) << line;
    ASSERT_LT(i, stored.size());
    EXPECT_EQ(stored[i++], f.record);
  }
  EXPECT_EQ(i, stored.size());
}

TEST(FeedbackTrust, ReadsStdinAndReplacesThePreviousSet) {
  TempDir tmp;
  const Config config = TestConfig(tmp.Sub("store"));
  std::istringstream first(kGoodLines);
  std::ostringstream out, err;
  ASSERT_EQ(RunFeedbackTrust(config, "-", false, first, out, err), 0) << err.str();
  std::istringstream second(R"({"prompt": "2+2?", "chosen": "4", "rejected": "5"})"
                            "\n"
                            R"({"prompt": "3+3?", "chosen": "6", "rejected": "7"})"
                            "\n");
  out.str("");
  ASSERT_EQ(RunFeedbackTrust(config, "-", false, second, out, err), 0) << err.str();
  EXPECT_EQ(out.str(), "stored 2 trusted feedback records: 2 pairs (replacing any previous set)\n");
  Json stored = StoredSet(tmp.Sub("store"));
  ASSERT_EQ(stored.size(), 2u) << stored.dump();
  EXPECT_EQ(stored[0]["prompt"], "2+2?");
  EXPECT_EQ(stored[1]["rejected"], "7");
}

TEST(FeedbackTrust, BadLineNamesItsLineAndStoresNothing) {
  TempDir tmp;
  const Config config = TestConfig(tmp.Sub("store"));
  std::istringstream first(kGoodLines);
  std::ostringstream out, err;
  ASSERT_EQ(RunFeedbackTrust(config, "-", false, first, out, err), 0) << err.str();
  const Json before = StoredSet(tmp.Sub("store"));
  ASSERT_EQ(before.size(), 3u);

  struct Case {
    std::string input;
    std::string message;
  };
  const Case cases[] = {
      // Line 3 (after a blank line 2) lacks the rating.
      {R"({"prompt": "a", "chosen": "b", "rejected": "c"})"
       "\n\n"
       R"({"prompt": "a", "response": "b"})"
       "\n"
       R"({"prompt": "a", "chosen": "b", "rejected": "c"})"
       "\n",
       "streamlm: error: stdin line 3: missing_field (needs \"rating\", \"chosen\"/\"rejected\" "
       "or \"correction\"); nothing was stored\n"},
      {R"({"prompt": "a", "response": "b", "rating": 5})"
       "\n",
       "streamlm: error: stdin line 1: bad_field (\"rating\" must be 1 or -1); nothing was "
       "stored\n"},
      {R"({"prompt": "a", "chosen": "b"})"
       "\n",
       "streamlm: error: stdin line 1: missing_field (no \"rejected\" field); nothing was "
       "stored\n"},
  };
  for (const Case& c : cases) {
    std::istringstream in(c.input);
    out.str("");
    err.str("");
    EXPECT_EQ(RunFeedbackTrust(config, "-", false, in, out, err), 2) << c.input;
    EXPECT_EQ(err.str(), c.message);
    EXPECT_EQ(out.str(), "");
    EXPECT_EQ(StoredSet(tmp.Sub("store")), before) << "store changed by: " << c.input;
  }

  // Broken JSON: the reason comes from the JSON parser; the line is named.
  std::istringstream broken(R"({"prompt": "a", "chosen": "b", "rejected": "c"})"
                            "\n{broken\n");
  err.str("");
  EXPECT_EQ(RunFeedbackTrust(config, "-", false, broken, out, err), 2);
  EXPECT_NE(err.str().find("stdin line 2: "), std::string::npos) << err.str();
  EXPECT_EQ(StoredSet(tmp.Sub("store")), before);

  // A file with no records at all is refused rather than silently clearing.
  std::istringstream empty("\n  \n");
  err.str("");
  EXPECT_EQ(RunFeedbackTrust(config, "-", false, empty, out, err), 2);
  EXPECT_NE(err.str().find("--clear"), std::string::npos) << err.str();
  EXPECT_EQ(StoredSet(tmp.Sub("store")), before);
}

TEST(FeedbackTrust, MissingFileIsNamed) {
  TempDir tmp;
  std::istringstream unused;
  std::ostringstream out, err;
  EXPECT_EQ(RunFeedbackTrust(TestConfig(tmp.Sub("store")), tmp.Sub("nope.jsonl"), false, unused,
                             out, err),
            1);
  EXPECT_EQ(err.str(), "streamlm: error: cannot read '" + tmp.Sub("nope.jsonl") + "'\n");
}

TEST(FeedbackTrust, ClearStoresAnEmptySet) {
  TempDir tmp;
  const Config config = TestConfig(tmp.Sub("store"));
  std::istringstream first(kGoodLines);
  std::ostringstream out, err;
  ASSERT_EQ(RunFeedbackTrust(config, "-", false, first, out, err), 0) << err.str();
  ASSERT_EQ(StoredSet(tmp.Sub("store")).size(), 3u);
  std::istringstream unused;
  out.str("");
  ASSERT_EQ(RunFeedbackTrust(config, "", /*clear=*/true, unused, out, err), 0) << err.str();
  EXPECT_EQ(StoredSet(tmp.Sub("store")), Json::array());
  EXPECT_NE(out.str().find("cleared"), std::string::npos) << out.str();
  // FILE and --clear together, or neither, is a usage error.
  err.str("");
  EXPECT_EQ(RunFeedbackTrust(config, "x.jsonl", true, unused, out, err), 2);
  EXPECT_NE(err.str().find("not both"), std::string::npos) << err.str();
  err.str("");
  EXPECT_EQ(RunFeedbackTrust(config, "", false, unused, out, err), 2);
  EXPECT_NE(err.str().find("--clear"), std::string::npos) << err.str();
}

TEST(FeedbackTrust, LockedStoreIsReportedAsARunningStreamLM) {
  TempDir tmp;
  const Config config = TestConfig(tmp.Sub("store"));
  auto holder = Store::Open(config.data_dir);  // as `streamlm run` holds it
  ASSERT_TRUE(holder.ok()) << holder.status();
  std::istringstream in(kGoodLines);
  std::ostringstream out, err;
  EXPECT_EQ(RunFeedbackTrust(config, "-", false, in, out, err), 1);
  EXPECT_NE(err.str().find("locked by a running StreamLM"), std::string::npos) << err.str();
  EXPECT_EQ(out.str(), "");
  auto set = (*holder)->GetEvalSet(kTrustedFeedbackSet);
  EXPECT_FALSE(set.ok()) << "nothing may be stored: " << *set;
}

// A decision as the evaluator writes it with feedback (DESIGN.md "Decision
// record" plus metrics.feedback), made by hand.
Json DecisionWithFeedback() {
  auto e = [](double mean, double lo, double hi, int n) {
    return Json{{"mean", mean}, {"ci95", {lo, hi}}, {"n", n}};
  };
  Json heldout = {{"records", 50},
                  {"pairs", 40},
                  {"ratings", 5},
                  {"corrections", 5},
                  {"preference_accuracy",
                   {{"candidate", e(0.8125, 0.70, 0.90, 40)},
                    {"champion", e(0.52, 0.40, 0.64, 40)},
                    {"reference", e(0.5, 0.38, 0.62, 40)},
                    {"delta", e(0.2925, 0.15, 0.43, 40)}}},
                  {"reward_margin",
                   {{"candidate", e(0.9, 0.5, 1.3, 40)},
                    {"champion", e(0.1, -0.2, 0.4, 40)},
                    {"delta", e(0.8, 0.4, 1.2, 40)}}},
                  {"correction_logprob",
                   {{"candidate", e(-1.2, -1.5, -0.9, 5)},
                    {"champion", e(-1.4, -1.7, -1.1, 5)},
                    {"reference", e(-1.4, -1.7, -1.1, 5)},
                    {"delta", e(0.2, 0.05, 0.35, 5)}}}};
  Json trusted = {{"records", 3},
                  {"pairs", 0},
                  {"ratings", 1},
                  {"corrections", 2},
                  {"correction_logprob",
                   {{"candidate", e(-2.0, -2.5, -1.5, 2)},
                    {"champion", e(-1.9, -2.4, -1.4, 2)},
                    {"reference", e(-1.9, -2.4, -1.4, 2)},
                    {"delta", e(-0.1, -0.3, 0.1, 2)}}},
                  {"rating_reward",
                   {{"candidate", e(0.3, 0.3, 0.3, 1)},
                    {"champion", e(0.2, 0.2, 0.2, 1)},
                    {"delta", e(0.1, 0.1, 0.1, 1)}}}};
  return {{"id", "dec-000007"},
          {"candidate", "snap-000009"},
          {"champion", "snap-000006"},
          {"reference", "snap-000003"},
          {"verdict", "promoted"},
          {"metrics",
           {{"feedback",
             {{"reference", "snap-000003"},
              {"trained", {{"records", 120}, {"users", {{"alice", 40}, {"bob", 80}}}}},
              {"sets", {{"heldout", heldout}, {"trusted", trusted}}}}}}}};
}

TEST(FeedbackDecisionLines, HeldOutAndTrustedSets) {
  EXPECT_EQ(FeedbackDecisionLines(DecisionWithFeedback()),
            (std::vector<std::string>{
                "feedback  held-out pref acc 0.81 [0.70,0.90] vs 0.52 [0.40,0.64] "
                "(delta +0.29 [+0.15,+0.43]), 40 pairs; ref snap-000003",
                "feedback  trusted correction logprob delta -0.10 [-0.30,+0.10], 2 corrections; "
                "rating reward delta +0.10 [+0.10,+0.10], 1 rating; ref snap-000003"}));
}

TEST(FeedbackDecisionLines, OnlyWhatIsThere) {
  // An old decision: no feedback, no lines.
  EXPECT_TRUE(
      FeedbackDecisionLines(Json{{"id", "dec-000001"}, {"metrics", Json::object()}}).empty());
  EXPECT_TRUE(FeedbackDecisionLines(Json{{"id", "dec-000001"}}).empty());
  // Held-out only, the reference only inside metrics.feedback.
  Json d = DecisionWithFeedback();
  d.erase("reference");
  d["metrics"]["feedback"]["sets"].erase("trusted");
  EXPECT_EQ(
      FeedbackDecisionLines(d),
      (std::vector<std::string>{"feedback  held-out pref acc 0.81 [0.70,0.90] vs 0.52 [0.40,0.64] "
                                "(delta +0.29 [+0.15,+0.43]), 40 pairs; ref snap-000003"}));
  // No reference at all, no sets scored, 120 records trained.
  d["metrics"]["feedback"].erase("reference");
  d["metrics"]["feedback"]["sets"] = Json::object();
  EXPECT_EQ(FeedbackDecisionLines(d),
            (std::vector<std::string>{"feedback  120 records trained since the champion, no "
                                      "held-out or trusted set scored"}));
  // Nothing trained, nothing scored (what the evaluator writes before any
  // feedback arrives): no line.
  d["metrics"]["feedback"]["trained"] = {{"records", 0}, {"users", Json::object()}};
  EXPECT_TRUE(FeedbackDecisionLines(d).empty());
}

// Runs the streamlm binary; its stdout lines and exit code.
struct CliResult {
  std::vector<std::string> lines;
  int code = -1;
  std::string stderr_tail;
};
CliResult RunCli(const std::vector<std::string>& args, const std::string& stderr_path) {
  std::vector<std::string> argv = {::streamlm::testing::StreamlmBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  ::streamlm::testing::Subprocess proc(argv, stderr_path);
  CliResult r;
  std::string line;
  while (proc.ReadLine(&line, 60000)) r.lines.push_back(line);
  r.code = proc.Wait(60000);
  r.stderr_tail = proc.StderrTail();
  return r;
}

// End to end through apps/main.cc: `feedback trust` is wired with the usual
// --data-dir, and `decisions` prints the feedback lines under a decision
// that has them while --json prints the stored decisions unchanged.
TEST(FeedbackCli, TrustAndDecisionsThroughTheBinary) {
  const std::string binary = ::streamlm::testing::StreamlmBinary();
  if (!std::filesystem::exists(binary)) {
    SLM_SKIP_OR_FAIL("the streamlm binary is missing at " << binary << "; build target streamlm");
  }
  TempDir tmp;
  const std::string dir = tmp.Sub("store");
  WriteFile(tmp.Sub("trusted.jsonl"), kGoodLines);
  CliResult trust =
      RunCli({"feedback", "trust", tmp.Sub("trusted.jsonl"), "--data-dir", dir}, tmp.Sub("err1"));
  ASSERT_EQ(trust.code, 0) << trust.stderr_tail;
  EXPECT_EQ(trust.lines, (std::vector<std::string>{
                             "stored 3 trusted feedback records: 1 pair, 1 rating, 1 correction "
                             "(replacing any previous set)"}));
  EXPECT_EQ(StoredSet(dir).size(), 3u);

  WriteFile(tmp.Sub("bad.jsonl"), std::string(kGoodLines) + "{\"prompt\": \"a\"}\n");
  CliResult bad =
      RunCli({"feedback", "trust", tmp.Sub("bad.jsonl"), "--data-dir", dir}, tmp.Sub("err2"));
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.stderr_tail.find("bad.jsonl line 5: missing_field"), std::string::npos)
      << bad.stderr_tail;

  std::vector<Json> stored;
  {
    auto store = Store::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    Json old_decision = {{"candidate", "snap-000002"},
                         {"champion", "snap-000001"},
                         {"verdict", "held"},
                         {"time", "2026-12-01T12:00:00.000Z"},
                         {"reason", "held: too few tokens"},
                         {"metrics", Json::object()}};
    ASSERT_TRUE((*store)->AppendDecision(old_decision, false).ok());
    Json with_feedback = DecisionWithFeedback();
    with_feedback.erase("id");
    with_feedback["time"] = "2026-12-01T12:05:00.000Z";
    with_feedback["reason"] = "promoted";
    ASSERT_TRUE((*store)->AppendDecision(with_feedback, false).ok());
    auto list = (*store)->ListDecisions();
    ASSERT_TRUE(list.ok());
    stored = *list;
  }
  CliResult text = RunCli({"decisions", "--data-dir", dir}, tmp.Sub("err3"));
  ASSERT_EQ(text.code, 0) << text.stderr_tail;
  ASSERT_EQ(text.lines.size(), 5u) << absl::StrJoin(text.lines, "\n");
  EXPECT_NE(text.lines[1].find("snap-000009"), std::string::npos) << text.lines[1];
  EXPECT_EQ(text.lines[2],
            "  feedback  held-out pref acc 0.81 [0.70,0.90] vs 0.52 [0.40,0.64] "
            "(delta +0.29 [+0.15,+0.43]), 40 pairs; ref snap-000003");
  EXPECT_EQ(text.lines[3].substr(0, 20), "  feedback  trusted ");
  EXPECT_NE(text.lines[4].find("snap-000002"), std::string::npos) << text.lines[4];

  CliResult json = RunCli({"decisions", "--json", "--data-dir", dir}, tmp.Sub("err4"));
  ASSERT_EQ(json.code, 0) << json.stderr_tail;
  auto parsed = ParseJson(absl::StrJoin(json.lines, "\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, Json(stored));
}

}  // namespace
}  // namespace streamlm
