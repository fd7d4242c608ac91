// Test helpers for judging models on held-out stream text (header-only, no
// tensors): the tiny test config, Brown corpus documents no tiny model has
// seen, and held-out records written the way the learner writes them.
#ifndef STREAMLM_TESTS_UTIL_HELDOUT_STREAM_H_
#define STREAMLM_TESTS_UTIL_HELDOUT_STREAM_H_

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/config.h"
#include "gtest/gtest.h"
#include "store/store.h"
#include "tests/util/temp_dir.h"

namespace streamlm::testing {

// tests/data/tiny.yaml, bootstrapping from data/corpus/brown.txt into `data_dir`.
inline Config TinyConfig(const std::string& data_dir) {
  Config c;
  EXPECT_TRUE(ApplyYamlFile(c, SourceDir() + "/tests/data/tiny.yaml").ok());
  c.data_dir = data_dir;
  c.bootstrap.corpus = {SourceDir() + "/data/corpus/brown.txt"};
  return c;
}

// `n` Brown corpus documents (the first `max_chars` of each, skipping the
// first `skip`) past what bootstrap reads (tiny.yaml:
// bootstrap.max_corpus_bytes 400000), so no tiny model has seen them.
inline std::vector<std::string> UnseenDocuments(size_t skip, size_t n, size_t max_chars = 300) {
  std::string text = ReadTestFile(SourceDir() + "/data/corpus/brown.txt");
  std::vector<std::string> out;
  size_t seen = 0;
  for (absl::string_view doc : absl::StrSplit(text.substr(1000000), "\n\n")) {
    std::string d(absl::StripAsciiWhitespace(doc));
    if (d.size() < 200) continue;
    if (seen++ < skip) continue;
    out.push_back(d.substr(0, max_chars));
    if (out.size() == n) break;
  }
  EXPECT_EQ(out.size(), n);
  return out;
}

// Writes `docs` as held-out stream records, as the learner's checkpoint does.
inline void AddHeldout(Store* store, const std::vector<std::string>& docs,
                       const std::string& checkpoint_name = "test") {
  LearnerCheckpoint c;
  c.name = checkpoint_name;
  c.new_heldout = docs;
  absl::Status s = store->PutCheckpoint(c);
  ASSERT_TRUE(s.ok()) << s;
}

}  // namespace streamlm::testing

#endif  // STREAMLM_TESTS_UTIL_HELDOUT_STREAM_H_
