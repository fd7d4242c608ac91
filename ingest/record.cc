#include "ingest/record.h"

#include "absl/strings/str_cat.h"

namespace streamlm {

const char* RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kNone: return "none";
    case RejectReason::kMalformedJson: return "malformed_json";
    case RejectReason::kNotAnObject: return "not_an_object";
    case RejectReason::kMissingText: return "missing_text";
    case RejectReason::kTextNotString: return "text_not_string";
    case RejectReason::kInvalidUtf8: return "invalid_utf8";
    case RejectReason::kEmpty: return "empty";
    case RejectReason::kOversized: return "oversized";
    case RejectReason::kDuplicate: return "duplicate";
    case RejectReason::kNearDuplicate: return "near_duplicate";
    case RejectReason::kBadField: return "bad_field";
    case RejectReason::kUnsupportedSchema: return "unsupported_schema";
  }
  return "unknown";
}

namespace {

ParsedRecord Reject(RejectReason reason, std::string detail) {
  ParsedRecord r;
  r.reason = reason;
  r.detail = std::move(detail);
  return r;
}

}  // namespace

JsonRecord ParseJsonObjectRecord(std::string_view payload, size_t max_bytes, bool repair_utf8) {
  JsonRecord r;
  auto reject = [&r](RejectReason reason, std::string detail) {
    r.reason = reason;
    r.detail = std::move(detail);
    return std::move(r);
  };
  if (payload.size() > max_bytes) {
    return reject(RejectReason::kOversized,
                  absl::StrCat("record is ", payload.size(), " bytes, limit is ", max_bytes));
  }
  if (payload.empty()) return reject(RejectReason::kEmpty, "record value is empty");
  std::string repaired;
  if (!IsValidUtf8(payload)) {
    if (!repair_utf8) return reject(RejectReason::kInvalidUtf8, "record is not valid UTF-8");
    repaired = ReplaceInvalidUtf8(payload);
    payload = repaired;
  }
  absl::StatusOr<Json> parsed = ParseJson(payload);
  if (!parsed.ok()) {
    return reject(RejectReason::kMalformedJson, std::string(parsed.status().message()));
  }
  if (!parsed->is_object()) {
    return reject(RejectReason::kNotAnObject,
                  absl::StrCat("expected a JSON object, got ", parsed->type_name()));
  }
  r.value = std::move(*parsed);
  return r;
}

ParsedRecord ParseTextRecord(std::string_view payload, size_t max_bytes, bool repair_utf8) {
  JsonRecord parsed = ParseJsonObjectRecord(payload, max_bytes, repair_utf8);
  if (!parsed.ok()) return Reject(parsed.reason, std::move(parsed.detail));
  Json& j = parsed.value;
  auto it = j.find("text");
  if (it == j.end()) return Reject(RejectReason::kMissingText, "no \"text\" field");
  if (!it->is_string()) {
    return Reject(RejectReason::kTextNotString,
                  absl::StrCat("\"text\" is ", it->type_name(), ", not a string"));
  }
  std::string& raw = it->get_ref<std::string&>();
  // \uXXXX escapes can encode lone surrogates; check what we got.
  if (!IsValidUtf8(raw)) {
    if (!repair_utf8) {
      return Reject(RejectReason::kInvalidUtf8, "\"text\" decodes to invalid UTF-8");
    }
    raw = ReplaceInvalidUtf8(raw);
  }
  bool blank = true;
  for (char c : raw) blank = blank && (c == ' ' || c == '\t' || c == '\n' || c == '\r');
  if (blank) return Reject(RejectReason::kEmpty, "\"text\" is empty");
  // Optional fields must have their schema types.
  struct Field {
    const char* name;
    bool (Json::*is)() const noexcept;
    const char* type;
  };
  static const Field kFields[] = {{"id", &Json::is_string, "a string"},
                                  {"source", &Json::is_string, "a string"},
                                  {"ts", &Json::is_number_integer, "an integer"},
                                  {"meta", &Json::is_object, "an object"},
                                  {"schema", &Json::is_number_integer, "an integer"}};
  for (const Field& f : kFields) {
    auto v = j.find(f.name);
    if (v != j.end() && !((*v).*(f.is))()) {
      return Reject(RejectReason::kBadField, absl::StrCat("\"", f.name, "\" is ", v->type_name(),
                                                          ", not ", f.type));
    }
  }
  if (auto v = j.find("schema"); v != j.end() && v->get<int64_t>() != kTextSchemaVersion) {
    return Reject(RejectReason::kUnsupportedSchema,
                  absl::StrCat("schema ", v->dump(), " is not supported (this build reads ",
                               kTextSchemaVersion, ")"));
  }
  ParsedRecord r;
  r.record.text = std::move(raw);
  auto str = [&](const char* key) {
    auto f = j.find(key);
    return f != j.end() ? f->get<std::string>() : std::string();
  };
  r.record.id = str("id");
  r.record.source = str("source");
  if (auto ts = j.find("ts"); ts != j.end()) r.record.ts = ts->get<int64_t>();
  return r;
}

std::string RejectKey(std::string_view topic, int32_t partition, int64_t offset) {
  return absl::StrCat(std::string(topic), "/", partition, "/", offset);
}

Json MakeRejectRecord(const std::string& topic, int32_t partition,
                      int64_t offset, std::string_view reason,
                      const std::string& detail, std::string_view payload) {
  return {{"topic", topic},   {"partition", partition},
          {"offset", offset}, {"reason", std::string(reason)},
          {"detail", EscapeInvalidUtf8(detail)},
          {"payload_prefix", EscapeInvalidUtf8(Utf8Prefix(payload, 256))}};
}

}  // namespace streamlm
