// Stage 1 of ingest: parsing and validating `streamlm.text` records against
// the schema in DESIGN.md. Cleaning is stages 2-6 (pipeline.h). Thread-safe
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
  kBadField,           // an optional field of the wrong type
  kUnsupportedSchema,  // "schema" other than 1
};

// Stable snake_case name used in metrics and on `streamlm.rejects`.
const char* RejectReasonName(RejectReason reason);

struct TextRecord {
  std::string text;  // as sent until stages 2-6 clean it
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

// What every topic's records share: at most `max_bytes`, UTF-8 (invalid
// bytes are `invalid_utf8`, or replaced by U+FFFD when `repair_utf8`),
// JSON, an object at the top. Reasons: `oversized`, `empty`,
// `invalid_utf8`, `malformed_json`, `not_an_object`.
struct JsonRecord {
  RejectReason reason = RejectReason::kNone;
  std::string detail;
  Json value;
  bool ok() const { return reason == RejectReason::kNone; }
};
JsonRecord ParseJsonObjectRecord(std::string_view payload, size_t max_bytes, bool repair_utf8);

// The schema version this build reads; a record may say `"schema": 1`.
inline constexpr int kTextSchemaVersion = 1;

// Parses one record value: `{"text": str, "id"?: str, "source"?: str,
// "ts"?: int, "meta"?: object, "schema"?: 1}`. Larger than `max_bytes` is
// `oversized`; invalid UTF-8 is `invalid_utf8` unless `repair_utf8`, which
// replaces each bad byte by U+FFFD first. The text comes back as sent (only
// an all-whitespace text is `empty`). Never throws; any bytes are safe input.
ParsedRecord ParseTextRecord(std::string_view payload, size_t max_bytes,
                             bool repair_utf8 = false);

// The Kafka key of a record's reject on `streamlm.rejects`:
// "<topic>/<partition>/<offset>", the record's position in its source topic.
// A record read again (after a crash the learner re-reads from the offsets in
// its last checkpoint) is rejected under the same key, so consumers can
// de-duplicate on it and a compacted rejects topic keeps one copy.
std::string RejectKey(std::string_view topic, int32_t partition, int64_t offset);

// The JSON value written to `streamlm.rejects`; `topic`, `partition` and
// `offset` are the same position RejectKey() names.
Json MakeRejectRecord(const std::string& topic, int32_t partition,
                      int64_t offset, std::string_view reason,
                      const std::string& detail, std::string_view payload);

}  // namespace streamlm

#endif  // STREAMLM_INGEST_RECORD_H_
