// Chat templates render as transformers renders them. Expected outputs come
// from outside this code: tests/data/chat_templates.json is written by
// tools/chat_template_reference.mjs with @huggingface/jinja (real published
// templates over several conversations; every case there also agrees with
// Python's Jinja2 3.1.6, which transformers uses), and the Python-semantics
// cases below were rendered with Jinja2 3.1.6 in transformers' environment
// (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols).
#include "serving/chat_template.h"

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/json_util.h"
#include "gtest/gtest.h"
#include "tests/util/skip.h"
#include "tests/util/temp_dir.h"

namespace streamlm {
namespace {

using testing::ReadTestFile;
using testing::SourceDir;

Json Fixture() {
  auto j = ParseJson(ReadTestFile(SourceDir() + "/tests/data/chat_templates.json"));
  EXPECT_TRUE(j.ok()) << j.status();
  return j.ok() ? *j : Json::object();
}

// Renders every case of a fixture and checks output or error against it.
void ExpectFixtureMatches(const Json& fixture) {
  ASSERT_TRUE(fixture.contains("cases"));
  ASSERT_GE(fixture["cases"].size(), 100u);
  int checked = 0;
  for (const Json& c : fixture["cases"]) {
    const std::string name = c["template"].get<std::string>();
    const std::string what = name + " / " + c["conversation"].get<std::string>() +
                             (c["add_generation_prompt"].get<bool>() ? " / +gen" : "");
    auto t = ChatTemplate::Parse(fixture["templates"][name].get<std::string>());
    ASSERT_TRUE(t.ok()) << what << ": " << t.status();
    auto out = t->Render(c["messages"], c["add_generation_prompt"].get<bool>(), c["vars"]);
    if (c.contains("expected")) {
      ASSERT_TRUE(out.ok()) << what << ": " << out.status();
      EXPECT_EQ(*out, c["expected"].get<std::string>()) << what;
    } else {
      ASSERT_FALSE(out.ok()) << what << ": rendered " << *out;
      const std::string expected_error = c["error"].get<std::string>();
      EXPECT_NE(out.status().message().find(expected_error), std::string::npos)
          << what << ": " << out.status() << " should carry '" << expected_error << "'";
      EXPECT_TRUE(absl::IsInvalidArgument(out.status()));
    }
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(fixture["cases"].size()));
}

TEST(ChatTemplateFixtureTest, RealTemplatesMatchHuggingFaceJinja) {
  Json fixture = Fixture();
  for (const char* t : {"chatml_qwen2_5", "llama2_chat", "llama3_instruct", "mistral_instruct",
                        "zephyr", "gpt2_plain", "default"}) {
    EXPECT_TRUE(fixture["templates"].contains(t)) << t;
  }
  ExpectFixtureMatches(fixture);
}

TEST(ChatTemplateFixtureTest, DefaultTemplateIsTheOneInTheFixture) {
  EXPECT_EQ(DefaultChatTemplate(), Fixture()["templates"]["default"].get<std::string>());
  auto t = ChatTemplate::Parse(DefaultChatTemplate());
  ASSERT_TRUE(t.ok()) << t.status();
  Json messages = Json::parse(
      R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": " Hi "}])");
  auto out = t->Render(messages, true, Json::object());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "System: Be brief.\n\nUser: Hi\n\nAssistant:");
}

// Re-runs the reference script with the installed @huggingface/jinja: the
// checked-in fixture must be what it produces now, and we must match it.
TEST(ChatTemplateFixtureTest, FreshReferenceRunMatches) {
  const char* dir = std::getenv("STREAMLM_NODE_MODULES");
  std::string modules = dir ? dir : "";
  if (modules.empty() || !std::filesystem::exists(modules + "/@huggingface/jinja")) {
    SLM_SKIP_OR_FAIL("@huggingface/jinja not found under '"
                     << modules
                     << "' (scripts/npm_deps.sh installs it; the npm registry may be unreachable)");
  }
  testing::TempDir tmp;
  std::string out = tmp.Sub("chat_templates.json");
  std::string cmd = "node '" + SourceDir() + "/tools/chat_template_reference.mjs' '" + modules +
                    "' '" + out + "' > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto fresh = ParseJson(ReadTestFile(out));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ((*fresh)["cases"], Fixture()["cases"])
      << "tests/data/chat_templates.json is stale: regenerate it with the command in "
         "tools/chat_template_reference.mjs";
  ExpectFixtureMatches(*fresh);
}

// --- Python Jinja semantics (expected strings from Jinja2 3.1.6) ----------

std::string Render(const std::string& source, const Json& vars = Json::object()) {
  auto t = ChatTemplate::Parse(source);
  if (!t.ok()) return "PARSE ERROR: " + std::string(t.status().message());
  Json messages = Json::parse(
      R"([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])");
  auto out = t->Render(messages, false, vars);
  if (!out.ok()) return "RENDER ERROR: " + std::string(out.status().message());
  return *out;
}

TEST(ChatTemplateSemanticsTest, MatchesPythonJinja) {
  struct Case {
    const char* source;
    const char* expected;
  };
  const Case cases[] = {
      {"{{ 'xxhixx'.strip('x') }}|{{ '--a--'.lstrip('-') }}|{{ 'a\u00a0 '.strip() }}|"
       "{{ 'x y'.split(' ', 1) }}",
       "hi|a--|a|['x', 'y']"},
      {"{{ -7 % 3 }} {{ 'ab' * 3 }} {{ 7 // -2 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}",
       "2 ababab -4 0.5 3.0 0.5"},
      {"{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 2.5e-7 }} {{ 0.0001 }} {{ -0.5 }} "
       "{{ 123456789.125 }}",
       "1.0 0.30000000000000004 1e+16 1000000000000000.0 2.5e-07 0.0001 -0.5 123456789.125"},
      {"{{ none }} {{ true }} {{ false }} {{ [1, 'a', none, true, 1.5] }} "
       "{{ {'k': 'v', 'n': [1]} }} {{ [\"it's\"] }}",
       "None True False [1, 'a', None, True, 1.5] {'k': 'v', 'n': [1]} [\"it's\"]"},
      {"{{ 9 is divisibleby 3 }} {{ 'a' 'b' }} {{ 2.5 is float }} {{ 1_000 }} "
       "{{ 'ABC' is upper }} {{ 'abc' is lower }} {{ 'x' is sameas 'x' }}",
       "True ab True 1000 True True True"},
      {"[{{ nothing }}] {{ nothing | length }} {{ nothing is defined }} "
       "{{ nothing | default('d') }} {{ nothing ~ 'x' }} {% for x in nothing %}never{% endfor %}"
       "{{ 'in' if 'a' in nothing else 'out' }}",
       "[] 0 False d x out"},
      {"{% for m in messages %}{{ loop.previtem.role if loop.previtem is defined else '-' }}>"
       "{{ loop.nextitem.role if loop.nextitem is defined else '-' }} "
       "{{ loop.cycle('odd', 'even') }};{% endfor %}",
       "->assistant odd;user>- even;"},
      {"{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set t = (1, 2) %}{{ t | length }}{{ (1, 2)[0] }}",
       "1221"},
      {"{{ 'Hello World' | title }} {{ 'hello wORLD'.title() }} {{ \"they're\".title() }} "
       "{{ \"they're\" | title }}",
       "Hello World Hello World They'Re They're"},
      {"{{ [3, 1, 2] | reverse | list }} {{ 'abc' | reverse }} {{ [1, 2] | first }} "
       "{{ 'abc' | last }} {{ -3 | abs }} {{ 2.567 | round(2) }} {{ '0x1A' | int(0, 16) }} "
       "{{ '1.5' | float }}",
       "[2, 1, 3] cba 1 c 3 2.57 26 1.5"},
      {"{{ {'a': 1, 'b': 2}.keys() | list }} {{ {'a': 1}.values() | list }} "
       "{{ messages | selectattr('role', 'equalto', 'user') | list | length }} "
       "{{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='content') | first }} "
       "{{ [0, 1, '', 'x'] | select | list }} {{ ['A', 'b'] | map('lower') | join }}",
       "['a', 'b'] [1] 1 yo [1, 'x'] ab"},
      {"{{ 'line1\\nline2\\n\\nline4' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}",
       "line1\n  line2\n\n  line4|  a\n  b"},
      {"{{ {'a': 'x', 'b': [1, {'c': none}]} | tojson(indent=2) }}",
       "{\n  \"a\": \"x\",\n  \"b\": [\n    1,\n    {\n      \"c\": null\n    }\n  ]\n}"},
      {"{{ '\\d \\x41 \\u00e9' }}", "\\d A \u00e9"},
      {"{% macro m(a, b) %}{{ a }}-{{ b }}-{{ b is defined }}{% endmacro %}{{ m(1) }}|"
       "{{ m(b=2, a=3) }}",
       "1--False|3-2-True"},
      {"{% set ns = namespace(items=[]) %}{% set ns.items = ns.items + ['x'] %}"
       "{% set ns.items = ns.items + ['y'] %}{{ ns.items | join(',') }}",
       "x,y"},
      {"a  {%- if true %} b {% endif -%}  c\n  {%+ if true %}d{% endif %}\n{# c #}\ne",
       "a b c\n  de"},
      {"{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ [1, [2]] == [1, [2]] }} "
       "{{ 'b' > 'a' }} {{ [1, 2] < [1, 3] }}",
       "True False True True True True"},
      {"{{ 'hello'.find('l') }} {{ ', '.join(['a', 'b']) }} {{ 'abc'.replace('', '-') }} "
       "{{ 'aaa'.replace('a', 'b', 2) }} {{ 'Hello'.capitalize() }}",
       "2 a, b -a-b-c- bba Hello"},
  };
  for (const Case& c : cases) EXPECT_EQ(Render(c.source), c.expected) << c.source;
}

TEST(ChatTemplateSemanticsTest, VarsAndMessagesReachTheTemplate) {
  EXPECT_EQ(Render("{{ bos_token }}{{ messages | length }}{{ add_generation_prompt }}",
                   Json{{"bos_token", "<s>"}}),
            "<s>2False");
  auto t = ChatTemplate::Parse("{{ x }}");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->Render(Json::object(), false, Json::object()).ok());  // messages not a list
  EXPECT_FALSE(t->Render(Json::array(), false, Json::array()).ok());    // vars not an object
  EXPECT_TRUE(t->Render(Json::array(), false, Json()).ok());            // null vars: none
}

// --- errors ---------------------------------------------------------------

std::string ParseError(const std::string& source) {
  auto t = ChatTemplate::Parse(source);
  EXPECT_FALSE(t.ok()) << source;
  if (t.ok()) return "";
  EXPECT_TRUE(absl::IsInvalidArgument(t.status())) << t.status();
  return std::string(t.status().message());
}

TEST(ChatTemplateErrorsTest, UnsupportedFilterIsNamedWithItsLine) {
  EXPECT_EQ(ParseError("{% for m in messages %}\n{{ m.content | wordwrap }}\n{% endfor %}"),
            "chat template: unsupported filter 'wordwrap' at line 2");
  EXPECT_EQ(ParseError("\n\n{{ x is prime }}"), "chat template: unsupported test 'prime' at line 3");
  EXPECT_EQ(ParseError("{% include 'other.jinja' %}"),
            "chat template: unsupported statement 'include' at line 1");
  EXPECT_EQ(ParseError("{% for x in y recursive %}{% endfor %}"),
            "chat template: unsupported 'recursive' loop at line 1");
}

TEST(ChatTemplateErrorsTest, MalformedTemplatesGiveParseErrorsWithLines) {
  EXPECT_EQ(ParseError("line 1\n{% if x %}\nno end"), "chat template: missing '{% endif %}' at line 3");
  EXPECT_EQ(ParseError("{{ 1 + }}"),
            "chat template: expected an expression but found '}}' at line 1");
  EXPECT_EQ(ParseError("a\nb\n{{ 'open"), "chat template: unterminated string literal at line 3");
  EXPECT_EQ(ParseError("{{ x "), "chat template: unterminated '{{' at line 1");
  EXPECT_EQ(ParseError("{# never closed"), "chat template: unterminated comment at line 1");
  EXPECT_EQ(ParseError("{% endfor %}"), "chat template: unexpected '{% endfor %}' at line 1");
  EXPECT_EQ(ParseError("{% break %}"), "chat template: 'break' outside a loop at line 1");
  EXPECT_EQ(ParseError("{{ a $ b }}"), "chat template: unexpected character '$' at line 1");
  EXPECT_NE(ParseError("{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}").find("too deeply"),
            std::string::npos);
  std::string nested;
  for (int i = 0; i < 300; ++i) nested += "{% if true %}";
  EXPECT_NE(ParseError(nested).find("too deeply"), std::string::npos);
}

std::string RenderError(const std::string& source, ChatTemplateLimits limits = {}) {
  auto t = ChatTemplate::Parse(source, limits);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return "";
  auto out = t->Render(Json::array({{{"role", "user"}, {"content", "hi"}}}), true, Json::object());
  EXPECT_FALSE(out.ok()) << source;
  if (out.ok()) return "";
  EXPECT_TRUE(absl::IsInvalidArgument(out.status())) << out.status();
  return std::string(out.status().message());
}

TEST(ChatTemplateErrorsTest, RaiseExceptionMessageSurfaces) {
  EXPECT_EQ(RenderError("{% if messages[0].role != 'system' %}\n"
                        "{{ raise_exception('System message required, got ' + messages[0].role) }}"
                        "{% endif %}"),
            "chat template: System message required, got user");
}

TEST(ChatTemplateErrorsTest, RenderErrorsNameTheProblemAndLine) {
  EXPECT_EQ(RenderError("\n{{ nothing.attr }}"),
            "chat template: 'nothing' is undefined (reading its 'attr') at line 2");
  EXPECT_EQ(RenderError("{{ messages[0].missing.deeper }}"),
            "chat template: 'missing' is undefined (reading its 'deeper') at line 1");
  EXPECT_EQ(RenderError("{{ 'a' + 1 }}"),
            "chat template: unsupported operand types for +: 'str' and 'int' at line 1");
  EXPECT_EQ(RenderError("{{ messages.append(1) }}"),
            "chat template: unsupported method 'append' on list at line 1");
  EXPECT_EQ(RenderError("{{ 'x'.zfill(3) }}"),
            "chat template: unsupported method 'zfill' on str at line 1");
  EXPECT_EQ(RenderError("{{ 1 // 0 }}"), "chat template: division by zero at line 1");
  EXPECT_EQ(RenderError("{{ 1 < 'a' }}"),
            "chat template: '<' not supported between 'int' and 'str' at line 1");
  EXPECT_EQ(RenderError("{% set x = 1 %}{% set x.y = 2 %}"),
            "chat template: cannot set 'y' on 'x': it is not a namespace() at line 1");
  EXPECT_EQ(RenderError("{{ undefined_fn() }}"),
            "chat template: 'undefined_fn' is undefined (called) at line 1");
}

TEST(ChatTemplateErrorsTest, HostileTemplatesStopAtTheLimits) {
  ChatTemplateLimits small;
  small.max_output_bytes = 1 << 16;
  small.max_steps = 200000;
  EXPECT_NE(RenderError("{% for i in range(1000000000) %}{% endfor %}", small).find("work limit"),
            std::string::npos);
  EXPECT_NE(RenderError("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                        "{% endfor %}",
                        small)
                .find("work limit"),
            std::string::npos);
  EXPECT_NE(RenderError("{{ 'x' * 100000000000 }}", small).find("limit"), std::string::npos);
  EXPECT_NE(RenderError("{% for i in range(10000) %}xxxxxxxxxx{% endfor %}", small)
                .find("output longer than the limit of 65536 bytes"),
            std::string::npos);
  EXPECT_NE(RenderError("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("nested deeper"),
            std::string::npos);
  EXPECT_NE(RenderError("{% set ns = namespace(x=[]) %}{% for i in range(200) %}"
                        "{% set ns.x = [ns.x, ns.x] %}{% endfor %}",
                        small)
                .find("limit"),
            std::string::npos);
  EXPECT_NE(RenderError("{% set ns = namespace(x=[]) %}{% for i in range(1000) %}"
                        "{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}")
                .find("nested deeper"),
            std::string::npos);
  EXPECT_NE(RenderError("{{ 2 ** 64 }}").find("integer overflow"), std::string::npos);
}

// --- copies and threads -----------------------------------------------------

TEST(ChatTemplateTest, CopiesAndConcurrentRendersAgree) {
  Json fixture = Fixture();
  auto parsed = ChatTemplate::Parse(fixture["templates"]["chatml_qwen2_5"].get<std::string>());
  ASSERT_TRUE(parsed.ok());
  ChatTemplate copy = *parsed;
  ChatTemplate moved = std::move(*parsed);
  Json messages = Json::array();
  for (int i = 0; i < 50; ++i) {
    messages.push_back({{"role", i % 2 ? "assistant" : "user"}, {"content", "turn " + std::to_string(i)}});
  }
  auto expected = copy.Render(messages, true, Json::object());
  ASSERT_TRUE(expected.ok()) << expected.status();
  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        auto out = (t % 2 ? copy : moved).Render(messages, true, Json::object());
        if (!out.ok() || *out != *expected) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace streamlm
