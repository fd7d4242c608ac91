#include "model/safetensors_header.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/json_util.h"

namespace streamlm {

absl::StatusOr<std::vector<SafetensorsEntry>> ParseSafetensorsHeader(std::string_view file) {
  if (file.size() < 8) return absl::InvalidArgumentError("safetensors: shorter than its header length");
  uint64_t n;
  std::memcpy(&n, file.data(), 8);
  if (n > file.size() - 8 || n > (100u << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "safetensors: header length ", n, " exceeds the ", file.size(), "-byte file"));
  }
  auto header = ParseJson(file.substr(8, n));
  if (!header.ok() || !header->is_object()) {
    return absl::InvalidArgumentError("safetensors: header is not a JSON object");
  }
  const uint64_t data_begin = 8 + n;
  const uint64_t data_size = file.size() - data_begin;
  std::vector<SafetensorsEntry> out;
  for (const auto& [name, info] : header->items()) {
    if (name == "__metadata__") continue;
    try {
      SafetensorsEntry e;
      e.name = name;
      e.dtype = info.at("dtype").get<std::string>();
      if (e.dtype != "F32" && e.dtype != "F16" && e.dtype != "BF16") {
        return absl::InvalidArgumentError(absl::StrCat(
            "safetensors: tensor '", name, "' has dtype ", e.dtype, " (supported: F32, F16, BF16)"));
      }
      const uint64_t element = e.dtype == "F32" ? 4 : 2;
      e.shape = info.at("shape").get<std::vector<int64_t>>();
      auto offs = info.at("data_offsets").get<std::vector<uint64_t>>();
      uint64_t numel = 1;
      for (int64_t d : e.shape) {
        if (d < 0 || (d > 0 && numel > (uint64_t{1} << 40) / static_cast<uint64_t>(d))) {
          return absl::InvalidArgumentError("safetensors: bad shape of '" + name + "'");
        }
        numel *= static_cast<uint64_t>(d);
      }
      if (offs.size() != 2 || offs[0] > offs[1] || offs[1] > data_size ||
          offs[1] - offs[0] != numel * element) {
        return absl::InvalidArgumentError("safetensors: bad data_offsets of '" + name + "'");
      }
      e.begin = data_begin + offs[0];
      e.end = data_begin + offs[1];
      out.push_back(std::move(e));
    } catch (const Json::exception& ex) {
      return absl::InvalidArgumentError(absl::StrCat("safetensors: entry '", name, "': ", ex.what()));
    }
  }
  return out;
}

}  // namespace streamlm
