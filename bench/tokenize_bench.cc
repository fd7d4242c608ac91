#include "bench/tokenize_bench.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <thread>
#include <vector>

namespace streamlm {
namespace {

double Seconds(const std::chrono::steady_clock::time_point& t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Json RunTokenizeBench(const Tokenizer& tokenizer, const std::string& text, int repeats) {
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  size_t tokens = 0;
  double best_1t = std::numeric_limits<double>::max();
  for (int r = 0; r < repeats; ++r) {
    std::thread t([&] {
      auto t0 = std::chrono::steady_clock::now();
      tokens = tokenizer.Encode(text).size();
      best_1t = std::min(best_1t, Seconds(t0));
    });
    t.join();
  }
  // Slices end at line breaks so no piece is cut in two.
  std::vector<size_t> cuts = {0};
  for (int i = 1; i < threads; ++i) {
    size_t pos = text.find('\n', text.size() * i / threads);
    cuts.push_back(pos == std::string::npos ? text.size() : pos + 1);
  }
  cuts.push_back(text.size());
  double best_all = std::numeric_limits<double>::max();
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) {
      pool.emplace_back([&, i] {
        (void)tokenizer.Encode(std::string_view(text).substr(cuts[i], cuts[i + 1] - cuts[i]));
      });
    }
    for (std::thread& t : pool) t.join();
    best_all = std::min(best_all, Seconds(t0));
  }
  const double mb = static_cast<double>(text.size()) / 1e6;
  return {{"bytes", text.size()},
          {"tokens", tokens},
          {"mb_per_s_1t", mb / best_1t},
          {"mb_per_s_all", mb / best_all},
          {"threads", threads}};
}

}  // namespace streamlm
