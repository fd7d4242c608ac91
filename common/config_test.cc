#include "common/config.h"

#include <cstdlib>

#include "gtest/gtest.h"

namespace streamlm {
namespace {

TEST(ConfigTest, YamlNestedKeysApply) {
  Config c;
  ASSERT_TRUE(ApplyYamlText(c,
                            "learner:\n  batch_size: 3\n  lr: 0.5\n"
                            "bootstrap:\n  corpus: [a.txt, b.txt]\n"
                            "kafka: 10.0.0.1:9093\n",
                            "test")
                  .ok());
  EXPECT_EQ(c.learner.batch_size, 3);
  EXPECT_DOUBLE_EQ(c.learner.lr, 0.5);
  ASSERT_EQ(c.bootstrap.corpus.size(), 2u);
  EXPECT_EQ(c.bootstrap.corpus[1], "b.txt");
  EXPECT_EQ(c.kafka, "10.0.0.1:9093");
}

TEST(ConfigTest, UnknownKeyIsNamed) {
  Config c;
  absl::Status s = ApplyYamlText(c, "learner:\n  batchsize: 3\n", "test");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("learner.batchsize"), std::string::npos) << s;
}

TEST(ConfigTest, BadValueIsNamedWithExpectation) {
  Config c;
  absl::Status s = SetConfigValue(c, "learner.batch_size", "many");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("learner.batch_size"), std::string::npos);
  EXPECT_NE(s.message().find("integer"), std::string::npos);
  EXPECT_FALSE(SetConfigValue(c, "learner.batch_size", "0").ok());
  EXPECT_FALSE(SetConfigValue(c, "kafka", "nohostport").ok());
  EXPECT_FALSE(SetConfigValue(c, "learner.replay_fraction", "1.5").ok());
  EXPECT_EQ(c.learner.batch_size, Config().learner.batch_size);
}

TEST(ConfigTest, KeepSnapshotsIsAtLeastOne) {
  Config c;
  EXPECT_EQ(c.store.keep_snapshots, 8);
  ASSERT_TRUE(ApplyYamlText(c, "store:\n  keep_snapshots: 3\n", "test").ok());
  EXPECT_EQ(c.store.keep_snapshots, 3);
  absl::Status s = SetConfigValue(c, "store.keep_snapshots", "0");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("store.keep_snapshots"), std::string::npos) << s;
  EXPECT_EQ(c.store.keep_snapshots, 3);
}

TEST(ConfigTest, MalformedYamlIsReported) {
  Config c;
  absl::Status s = ApplyYamlText(c, "learner: [unclosed\n", "x.yaml");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("x.yaml"), std::string::npos);
}

// Found by tests/fuzz/config_fuzz.cc: a sequence used as a map key threw
// from yaml-cpp instead of returning an error.
TEST(ConfigTest, OddYamlStructuresAreErrorsNotCrashes) {
  Config c;
  EXPECT_FALSE(ApplyYamlText(c, "? [a, b]\n: 1\n", "t").ok());
  EXPECT_FALSE(ApplyYamlText(c, "bootstrap:\n  corpus: [[a], b]\n", "t").ok());
  EXPECT_FALSE(ApplyYamlText(c, "learner: [unclosed, learner:\n  x\n", "t").ok());
}

TEST(ConfigTest, EnvironmentOverrides) {
  Config c;
  setenv("STREAMLM_EVAL_MIN_STREAM_TOKENS", "77", 1);
  ASSERT_TRUE(ApplyEnvironment(c).ok());
  unsetenv("STREAMLM_EVAL_MIN_STREAM_TOKENS");
  EXPECT_EQ(c.eval.min_stream_tokens, 77);
  setenv("STREAMLM_THREADS", "-2", 1);
  absl::Status s = ApplyEnvironment(c);
  unsetenv("STREAMLM_THREADS");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("STREAMLM_THREADS"), std::string::npos);
}

TEST(ConfigTest, CleaningProfilesAreSeparateAndChecked) {
  Config c;
  // Defaults: web-document filters on for text, off for feedback.
  EXPECT_TRUE(c.clean_text.gopher_quality.enabled);
  EXPECT_EQ(c.clean_text.gopher_quality.min_doc_words, 50);
  EXPECT_FALSE(c.clean_feedback.gopher_quality.enabled);
  EXPECT_TRUE(c.clean_feedback.pii.enabled);
  ASSERT_TRUE(ApplyYamlText(c,
                            "clean:\n"
                            "  text:\n"
                            "    gopher_quality: {min_doc_words: 20, enabled: yes}\n"
                            "    normalize: {unicode_form: NFKC, invalid_utf8: reject}\n"
                            "    fineweb: {enabled: false, max_newline_ratio: 0.5}\n"
                            "  feedback:\n"
                            "    pii: {max_hits: 3, email: off}\n",
                            "t")
                  .ok());
  EXPECT_EQ(c.clean_text.gopher_quality.min_doc_words, 20);
  EXPECT_EQ(c.clean_text.normalize.unicode_form, "nfkc");
  EXPECT_EQ(c.clean_text.normalize.invalid_utf8, "reject");
  EXPECT_FALSE(c.clean_text.fineweb.enabled);
  EXPECT_DOUBLE_EQ(c.clean_text.fineweb.max_newline_ratio, 0.5);
  EXPECT_EQ(c.clean_feedback.pii.max_hits, 3);
  EXPECT_FALSE(c.clean_feedback.pii.email);
  EXPECT_TRUE(c.clean_text.pii.email);                     // other profile untouched
  EXPECT_EQ(c.clean_feedback.gopher_quality.min_doc_words, 50);
  // Bad values name the key.
  for (auto [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"clean.text.normalize.unicode_form", "nfd"},
           {"clean.text.pii.email", "maybe"},
           {"clean.feedback.fineweb.min_line_punct_ratio", "1.5"},
           {"clean.text.gopher_quality.min_doc_words", "ten"}}) {
    absl::Status s = SetConfigValue(c, key, value);
    ASSERT_FALSE(s.ok()) << key;
    EXPECT_NE(s.message().find(key), std::string::npos) << s;
  }
  absl::Status s = SetConfigValue(c, "clean.text.gopher_quality.min_words", "3");
  EXPECT_NE(s.message().find("unknown config key"), std::string::npos) << s;
}

TEST(ConfigTest, EveryKeyRoundTripsThroughItsOwnText) {
  Config c;
  for (const ConfigKey& k : ConfigKeys()) {
    std::string v = k.get(c);
    if (v.empty()) continue;
    EXPECT_TRUE(k.set(c, v).ok()) << k.name << "=" << v;
    EXPECT_EQ(k.get(c), v) << k.name;
  }
}

}  // namespace
}  // namespace streamlm
