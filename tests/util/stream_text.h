// Deterministic stream text for tests: sentences from a small, repetitive
// domain the bootstrap corpus never saw, so a learner adapts to it quickly
// and held-out records resemble the trained ones. Numbers sit between the
// template's words so that no two records are near duplicates (most word
// 5-grams of a record contain one of its numbers).
#ifndef STREAMLM_TESTS_UTIL_STREAM_TEXT_H_
#define STREAMLM_TESTS_UTIL_STREAM_TEXT_H_

#include <string>

#include "absl/strings/str_cat.h"

namespace streamlm::testing {

inline std::string StreamSentence(int i) {
  static const char* kSubjects[] = {"the kafka broker", "the learner", "the evaluator",
                                    "the serving endpoint", "the replay buffer"};
  static const char* kVerbs[] = {"reads", "writes", "checks", "promotes", "stores"};
  static const char* kObjects[] = {"a new snapshot", "the stream offsets", "every record",
                                   "the champion model", "a token block"};
  return absl::StrCat("entry ", i, ": ", kSubjects[i % 5], " ", kVerbs[(i / 5) % 5], " ", i % 13,
                      " copies of ", kObjects[(i / 25) % 5], " after ", (i * 37) % 101,
                      " seconds while the stream keeps flowing past mark ", i % 7, ".");
}

inline std::string StreamRecord(int i) {
  return absl::StrCat("{\"text\": \"", StreamSentence(i), "\", \"id\": \"doc-", i, "\"}");
}

}  // namespace streamlm::testing

#endif  // STREAMLM_TESTS_UTIL_STREAM_TEXT_H_
