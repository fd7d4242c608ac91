// Timing for tests that bound speed without an absolute rate: CPU time of
// the calling thread (other processes on a shared machine do not count),
// best of a few repeats, compared with a reference measured in the same run
// (the same code on a smaller input, or a plain pass over the same bytes).
#ifndef STREAMLM_TESTS_UTIL_TIMING_H_
#define STREAMLM_TESTS_UTIL_TIMING_H_

#include <time.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace streamlm::testing {

// CPU seconds this thread has used.
inline double ThreadCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// Least CPU seconds of this thread that one call of `fn` took, over
// `repeats` calls (the minimum resists interruptions and cold caches).
template <typename Fn>
double BestCpuSeconds(int repeats, Fn&& fn) {
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    const double t0 = ThreadCpuSeconds();
    fn();
    best = std::min(best, ThreadCpuSeconds() - t0);
  }
  return best;
}

// The yardstick "a plain pass over the bytes": reads every byte once and
// folds it into a polynomial hash, a serial dependency the compiler cannot
// vectorize away, so it runs at about one byte per multiply latency on any
// machine. Returns the hashes so the work cannot be elided.
inline uint64_t ReferencePass(const std::vector<std::string>& docs) {
  uint64_t h = 1469598103934665603ull;
  for (const std::string& d : docs) {
    for (unsigned char c : d) h = (h ^ c) * 1099511628211ull;  // FNV-1a
  }
  return h;
}

}  // namespace streamlm::testing

#endif  // STREAMLM_TESTS_UTIL_TIMING_H_
