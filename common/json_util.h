// Small helpers shared by modules that speak JSON or need clocks and ids.
#ifndef STREAMLM_COMMON_JSON_UTIL_H_
#define STREAMLM_COMMON_JSON_UTIL_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace streamlm {

using Json = nlohmann::json;

// Parses JSON; the error says where it broke. Its message is valid UTF-8
// (invalid bytes of `text` it quotes are shown as "\xHH").
[[nodiscard]] absl::StatusOr<Json> ParseJson(std::string_view text);

// 64-bit FNV-1a of `s`: a stable hash (same on every build and machine).
uint64_t Fnv1a64(std::string_view s);

// Wall-clock milliseconds since the Unix epoch.
int64_t NowMs();

// ISO-8601 UTC time with milliseconds, e.g. "2026-11-28T19:30:00.123Z".
std::string FormatTimeMs(int64_t ms);

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF).
bool IsValidUtf8(std::string_view s);

// `s` with each byte of an invalid UTF-8 sequence shown as "\xHH", so the
// result is always valid UTF-8 (and safe to put in JSON).
std::string EscapeInvalidUtf8(std::string_view s);

// `s` with each byte outside a well-formed UTF-8 sequence replaced by U+FFFD
// (the WHATWG "replacement" policy, one U+FFFD per bad byte); `replaced`
// gets how many.
std::string ReplaceInvalidUtf8(std::string_view s, int* replaced = nullptr);

// Truncates to at most `max_bytes` without splitting a UTF-8 sequence.
std::string Utf8Prefix(std::string_view s, size_t max_bytes);

}  // namespace streamlm

#endif  // STREAMLM_COMMON_JSON_UTIL_H_
