// The safetensors header, parsed and validated without tensors (so it can be
// fuzzed on its own): u64 little-endian header length, a JSON object of
// name -> {dtype, shape, data_offsets}, then the data. Every entry is
// checked against the file's size before anyone reads a byte of data.
#ifndef STREAMLM_MODEL_SAFETENSORS_HEADER_H_
#define STREAMLM_MODEL_SAFETENSORS_HEADER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace streamlm {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // "F32", "F16" or "BF16"
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // absolute byte offsets into the file
  uint64_t end = 0;
};

// Entries in header order; an error names what is wrong.
[[nodiscard]] absl::StatusOr<std::vector<SafetensorsEntry>> ParseSafetensorsHeader(
    std::string_view file);

}  // namespace streamlm

#endif  // STREAMLM_MODEL_SAFETENSORS_HEADER_H_
