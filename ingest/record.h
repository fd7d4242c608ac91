// Parsing and minimal cleaning of `streamlm.text` records. Thread-safe
// (pure functions).
#ifndef STREAMLM_INGEST_RECORD_H_
#define STREAMLM_INGEST_RECORD_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "common/json_util.h"

namespace streamlm {

enum class RejectReason {
  kNone = 0,
  kMalformedJson,
  kNotAnObject,
  kMissingText,
  kTextNotString,
  kInvalidUtf8,
  kEmpty,
  kOversized,
  kDuplicate,
  kNearDuplicate,
};

// Stable snake_case name used in metrics and on `streamlm.rejects`.
const char* RejectReasonName(RejectReason reason);

struct TextRecord {
  std::string text;  // cleaned
  std::string id;
  std::string source;
  int64_t ts = 0;
};

struct ParsedRecord {
  RejectReason reason = RejectReason::kNone;  // kNone = usable
  std::string detail;                          // why, for humans
  TextRecord record;
  bool ok() const { return reason == RejectReason::kNone; }
};

// Parses one record value. Never throws; any byte string is safe input.
ParsedRecord ParseTextRecord(std::string_view payload, size_t max_bytes);

// Minimal cleaning: CRLF/CR to LF, control characters other than tab and
// newline dropped, runs of spaces/tabs collapsed to one space, trailing
// spaces cut from lines, more than two newlines collapsed, ends trimmed.
// Input must be valid UTF-8; output is valid UTF-8.
std::string NormalizeWhitespace(std::string_view text);

// The JSON value written to `streamlm.rejects`.
Json MakeRejectRecord(const std::string& topic, int32_t partition,
                      int64_t offset, RejectReason reason,
                      const std::string& detail, std::string_view payload);

}  // namespace streamlm

#endif  // STREAMLM_INGEST_RECORD_H_
