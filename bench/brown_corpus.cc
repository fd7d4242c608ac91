#include "bench/brown_corpus.h"

#include "absl/strings/str_split.h"

namespace streamlm {

std::string DetokenizeBrownSentence(absl::string_view tagged) {
  std::string out;
  bool attach = true;  // no space before the next token
  for (absl::string_view tok : absl::StrSplit(tagged, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
    const size_t slash = tok.rfind('/');
    std::string w(slash == absl::string_view::npos || slash == 0 ? tok : tok.substr(0, slash));
    if (w == "``") {
      if (!attach) out += ' ';
      out += '"';
      attach = true;
      continue;
    }
    if (w == "''") {
      out += '"';
      attach = false;
      continue;
    }
    const bool closing = w == "." || w == "," || w == ";" || w == ":" || w == "!" || w == "?" ||
                         w == ")" || w == "'" || w == "'s" || w == "n't";
    if (!attach && !closing) out += ' ';
    out += w;
    attach = w == "(";
  }
  return out;
}

}  // namespace streamlm
