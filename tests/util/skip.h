// Skipping a test for a missing dependency (an npm package, a corpus, a
// binary not built), the one way every test does it: outside CI the test is
// skipped and says what is missing; under CI (the environment variable CI set
// to anything but "", "0" or "false"; .ci/run sets CI=true) it FAILS, so a
// dependency that did not install cannot turn tests into silent passes.
#ifndef STREAMLM_TESTS_UTIL_SKIP_H_
#define STREAMLM_TESTS_UTIL_SKIP_H_

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace streamlm::testing {

// Whether the tests run under CI, where every dependency must be present.
inline bool InCi() {
  const char* ci = std::getenv("CI");
  if (ci == nullptr) return false;
  const std::string v = ci;
  return !v.empty() && v != "0" && v != "false";
}

}  // namespace streamlm::testing

// Skips the current test with `message` (streamable: "x missing at " << path),
// or fails it under CI. Returns from the enclosing void function (a TEST body
// or SetUp(); after either, gtest runs no test body).
#define SLM_SKIP_OR_FAIL(message)                                                       \
  do {                                                                                  \
    if (::streamlm::testing::InCi()) {                                                  \
      FAIL() << "missing dependency (fails because CI is set): " << message;            \
    }                                                                                   \
    GTEST_SKIP() << message;                                                            \
  } while (0)

#endif  // STREAMLM_TESTS_UTIL_SKIP_H_
