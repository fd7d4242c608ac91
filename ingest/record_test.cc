#include "ingest/record.h"

#include <random>

#include "gtest/gtest.h"

namespace streamlm {
namespace {

TEST(RecordTest, ParsesSchemaFields) {
  auto r = ParseTextRecord(
      R"({"text":"  Hello\r\n\r\n\r\n\tworld  ","id":"d1","source":"web","ts":17,"meta":{"a":1}})",
      1024);
  ASSERT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.record.text, "  Hello\r\n\r\n\r\n\tworld  ");  // cleaning is stage 2
  EXPECT_EQ(r.record.id, "d1");
  EXPECT_EQ(r.record.source, "web");
  EXPECT_EQ(r.record.ts, 17);
}

struct BadCase {
  std::string payload;
  RejectReason reason;
};

TEST(RecordTest, EachBadInputNamesItsReason) {
  std::vector<BadCase> cases = {
      {"{\"text\": \"unterminated", RejectReason::kMalformedJson},
      {"not json at all", RejectReason::kMalformedJson},
      {"[1,2,3]", RejectReason::kNotAnObject},
      {"\"just a string\"", RejectReason::kNotAnObject},
      {"{\"body\":\"hi\"}", RejectReason::kMissingText},
      {"{\"text\":42}", RejectReason::kTextNotString},
      {"{\"text\":null}", RejectReason::kTextNotString},
      {"{\"text\":\"caf\xC3\"}", RejectReason::kInvalidUtf8},
      {"{\"text\":\"\xFF\xFE\"}", RejectReason::kInvalidUtf8},
      {"{\"text\":\"\\ud800 lone surrogate\"}", RejectReason::kMalformedJson},
      {"", RejectReason::kEmpty},
      {"{\"text\":\"   \\n\\t  \"}", RejectReason::kEmpty},
      {"{\"text\":\"" + std::string(2000, 'a') + "\"}", RejectReason::kOversized},
      {"{\"text\":\"hi\",\"id\":7}", RejectReason::kBadField},
      {"{\"text\":\"hi\",\"ts\":\"yesterday\"}", RejectReason::kBadField},
      {"{\"text\":\"hi\",\"ts\":1.5}", RejectReason::kBadField},
      {"{\"text\":\"hi\",\"meta\":[1]}", RejectReason::kBadField},
      {"{\"text\":\"hi\",\"source\":null}", RejectReason::kBadField},
      {"{\"text\":\"hi\",\"schema\":2}", RejectReason::kUnsupportedSchema},
      {"{\"text\":\"hi\",\"schema\":\"1\"}", RejectReason::kBadField},
  };
  for (const BadCase& c : cases) {
    auto r = ParseTextRecord(c.payload, 1024);
    EXPECT_EQ(r.reason, c.reason) << c.payload.substr(0, 40) << " -> "
                                  << RejectReasonName(r.reason) << ": " << r.detail;
    EXPECT_FALSE(r.detail.empty());
  }
}

TEST(RecordTest, SchemaOneAndRepairPolicy) {
  EXPECT_TRUE(ParseTextRecord(R"({"text":"hi","schema":1})", 1024).ok());
  // With repair, each invalid byte becomes U+FFFD instead of a rejection.
  auto r = ParseTextRecord("{\"text\":\"caf\xC3 ok\"}", 1024, /*repair_utf8=*/true);
  ASSERT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.record.text, "caf\xEF\xBF\xBD ok");
  // A lone surrogate escape is not valid JSON text either way.
  EXPECT_FALSE(ParseTextRecord(R"({"text":"\ud800"})", 1024, true).ok());
}

TEST(RecordTest, RejectRecordCarriesPositionReasonAndReadablePrefix) {
  Json j = MakeRejectRecord("streamlm.text", 2, 99, RejectReasonName(RejectReason::kInvalidUtf8),
                            "bad", std::string("ab\xFF", 3));
  EXPECT_EQ(j["topic"], "streamlm.text");
  EXPECT_EQ(j["partition"], 2);
  EXPECT_EQ(j["offset"], 99);
  EXPECT_EQ(j["reason"], "invalid_utf8");
  EXPECT_EQ(j["payload_prefix"], "ab\\xff");
  EXPECT_NO_THROW(j.dump());
  EXPECT_EQ(RejectKey("streamlm.text", 2, 99), "streamlm.text/2/99");
}

// Property: arbitrary bytes never crash the parser, and whatever it accepts
// is valid, non-empty UTF-8.
TEST(RecordTest, RandomBytesNeverCrashAndAcceptedTextIsValid) {
  std::mt19937 rng(123);
  std::vector<std::string> seeds = {R"({"text":"hello"})", R"({"text":"a\u00e9b"})",
                                    R"({"text":"x","meta":{"k":[1,2]}})"};
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s = seeds[i % seeds.size()];
    int edits = 1 + rng() % 4;
    for (int e = 0; e < edits; ++e) {
      size_t pos = rng() % (s.size() + 1);
      switch (rng() % 3) {
        case 0: s.insert(pos, 1, static_cast<char>(rng() % 256)); break;
        case 1: if (pos < s.size()) s.erase(pos, 1); break;
        default: if (pos < s.size()) s[pos] = static_cast<char>(rng() % 256);
      }
    }
    auto r = ParseTextRecord(s, 4096);
    if (r.ok()) {
      ++accepted;
      EXPECT_TRUE(IsValidUtf8(r.record.text));
      EXPECT_FALSE(r.record.text.empty());
    }
    EXPECT_NO_THROW(MakeRejectRecord("t", 0, 0, RejectReasonName(r.reason), r.detail, s).dump());
  }
  EXPECT_GT(accepted, 100);
}

}  // namespace
}  // namespace streamlm
