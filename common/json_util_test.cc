#include "common/json_util.h"

#include "gtest/gtest.h"

namespace streamlm {
namespace {

// Found by tests/fuzz/safetensors_fuzz.cc: numbers that do not fit threw
// out_of_range, which escaped ParseJson and terminated the process.
TEST(JsonUtilTest, HostileJsonIsAnErrorNotACrash) {
  EXPECT_FALSE(ParseJson("1e999999").ok());
  EXPECT_FALSE(ParseJson("[1, 2").ok());
  EXPECT_FALSE(ParseJson("\"\\ud800\"").ok());
  std::string deep = std::string(600000, '[') + std::string(600000, ']');
  auto nested = ParseJson(deep);  // must not overflow the stack, now or on dump()
  ASSERT_FALSE(nested.ok());
  EXPECT_NE(nested.status().message().find("nested deeper than 512"), std::string::npos);
  std::string ok_deep = std::string(500, '[') + std::string(500, ']');
  auto fine = ParseJson(ok_deep);
  ASSERT_TRUE(fine.ok());
  EXPECT_EQ(fine->dump(), ok_deep);
  // Brackets inside strings (escaped quotes included) are not nesting.
  EXPECT_TRUE(ParseJson("{\"a\": \"" + std::string(1000, '[') + "\\\"\"}").ok());
  EXPECT_TRUE(ParseJson("{\"a\": [1, 2.5, null]}").ok());
}

// Found by tests/fuzz/http_body_fuzz.cc: the parse error quotes the input
// where it broke, and cut a two-byte character in half; that message went
// into HTTP error bodies and logs.
TEST(JsonUtilTest, ParseErrorMessageIsUtf8) {
  auto bad = ParseJson("[\xDE\x99r/ay\"#,\"not\"]");
  ASSERT_FALSE(bad.ok());
  const std::string message(bad.status().message());
  EXPECT_TRUE(IsValidUtf8(message)) << message;
  EXPECT_NE(message.find("\\xde"), std::string::npos) << message;
}

TEST(JsonUtilTest, Utf8ValidationAndEscaping) {
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9 \xF0\x9F\x99\x82"));
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_EQ(EscapeInvalidUtf8("a\xFF" "b"), "a\\xffb");
  EXPECT_EQ(Utf8Prefix("\xE6\x9D\xB1\xE4\xBA\xAC", 4), "\xE6\x9D\xB1");
}

}  // namespace
}  // namespace streamlm
