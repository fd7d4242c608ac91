// `streamlm bench tokenize`: tokenizer throughput on one thread and on all.
#ifndef STREAMLM_BENCH_TOKENIZE_BENCH_H_
#define STREAMLM_BENCH_TOKENIZE_BENCH_H_

#include <string>

#include "common/json_util.h"
#include "model/tokenizer.h"

namespace streamlm {

// {"bytes", "tokens", "mb_per_s_1t", "mb_per_s_all", "threads"}. Each run
// starts on a fresh thread (cold piece cache); best of `repeats`. The
// all-threads run splits the text at line ends, one slice per core.
Json RunTokenizeBench(const Tokenizer& tokenizer, const std::string& text, int repeats = 3);

}  // namespace streamlm

#endif  // STREAMLM_BENCH_TOKENIZE_BENCH_H_
