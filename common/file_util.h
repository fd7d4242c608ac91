// Whole-file reads and writes with errors that name the path.
#ifndef STREAMLM_COMMON_FILE_UTIL_H_
#define STREAMLM_COMMON_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace streamlm {

[[nodiscard]] absl::StatusOr<std::string> ReadFileToString(const std::string& path);
[[nodiscard]] absl::Status WriteStringToFile(const std::string& path, const std::string& bytes);

}  // namespace streamlm

#endif  // STREAMLM_COMMON_FILE_UTIL_H_
