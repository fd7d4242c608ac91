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

std::string NormalizeWhitespace(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  int newlines = 0;
  bool pending_space = false;
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\r') {
      if (i + 1 < text.size() && text[i + 1] == '\n') continue;
      c = '\n';
    }
    // C1 controls (U+0080..U+009F) are encoded as C2 80..C2 9F.
    if (c == 0xC2 && i + 1 < text.size() &&
        static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(text[i + 1]) <= 0x9F) {
      ++i;
      continue;
    }
    if (c == '\n') {
      pending_space = false;
      if (!out.empty() && newlines < 2) out.push_back('\n');
      ++newlines;
      continue;
    }
    if (c == ' ' || c == '\t') {
      pending_space = !out.empty() && newlines == 0;
      continue;
    }
    if (c < 0x20 || c == 0x7F) continue;  // other C0 controls
    if (newlines > 0) newlines = 0;
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(static_cast<char>(c));
  }
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

ParsedRecord ParseTextRecord(std::string_view payload, size_t max_bytes) {
  if (payload.size() > max_bytes) {
    return Reject(RejectReason::kOversized,
                  absl::StrCat("record is ", payload.size(),
                               " bytes, limit is ", max_bytes));
  }
  if (payload.empty()) return Reject(RejectReason::kEmpty, "record value is empty");
  if (!IsValidUtf8(payload)) {
    return Reject(RejectReason::kInvalidUtf8, "record is not valid UTF-8");
  }
  Json j;
  try {
    j = Json::parse(payload.begin(), payload.end());
  } catch (const Json::exception& e) {
    return Reject(RejectReason::kMalformedJson, e.what());
  }
  if (!j.is_object()) {
    return Reject(RejectReason::kNotAnObject,
                  absl::StrCat("expected a JSON object, got ", j.type_name()));
  }
  auto it = j.find("text");
  if (it == j.end()) return Reject(RejectReason::kMissingText, "no \"text\" field");
  if (!it->is_string()) {
    return Reject(RejectReason::kTextNotString,
                  absl::StrCat("\"text\" is ", it->type_name(), ", not a string"));
  }
  const std::string& raw = it->get_ref<const std::string&>();
  // \uXXXX escapes can encode lone surrogates; check what we got.
  if (!IsValidUtf8(raw)) {
    return Reject(RejectReason::kInvalidUtf8, "\"text\" decodes to invalid UTF-8");
  }
  ParsedRecord r;
  r.record.text = NormalizeWhitespace(raw);
  if (r.record.text.empty()) {
    return Reject(RejectReason::kEmpty, "\"text\" is empty after cleaning");
  }
  auto str = [&](const char* key) {
    auto f = j.find(key);
    return (f != j.end() && f->is_string()) ? f->get<std::string>() : std::string();
  };
  r.record.id = str("id");
  r.record.source = str("source");
  auto ts = j.find("ts");
  if (ts != j.end() && ts->is_number_integer()) r.record.ts = ts->get<int64_t>();
  return r;
}

Json MakeRejectRecord(const std::string& topic, int32_t partition,
                      int64_t offset, RejectReason reason,
                      const std::string& detail, std::string_view payload) {
  return {{"topic", topic},   {"partition", partition},
          {"offset", offset}, {"reason", RejectReasonName(reason)},
          {"detail", EscapeInvalidUtf8(detail)},
          {"payload_prefix", EscapeInvalidUtf8(Utf8Prefix(payload, 256))}};
}

}  // namespace streamlm
