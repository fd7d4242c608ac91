// `streamlm tokenize`: token ids of a file, or text of ids.
#include "apps/commands.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "apps/command_util.h"
#include "common/json_util.h"
#include "model/tokenizer.h"

namespace streamlm {

int RunTokenize(const std::string& tokenizer_path, const std::string& input, bool decode) {
  auto tok = LoadTokenizerFromPath(tokenizer_path);
  if (!tok.ok()) return Fail(tok.status());
  auto text = ReadInput(input);
  if (!text.ok()) return Fail(text.status());
  if (!decode) {
    std::printf("%s\n", Json((*tok)->Encode(*text)).dump().c_str());
    return 0;
  }
  auto ids = ParseJson(*text);
  if (!ids.ok() || !ids->is_array() ||
      !std::all_of(ids->begin(), ids->end(), [](const Json& v) { return v.is_number_integer(); })) {
    return Fail(absl::InvalidArgumentError("--decode expects a JSON array of integer token ids"));
  }
  std::string out = (*tok)->Decode(ids->get<std::vector<int32_t>>());
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace streamlm
