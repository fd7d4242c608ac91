// libFuzzer target: the `streamlm.text` record parser and the reject record
// it builds must accept any bytes without crashing, and whatever they emit
// must be valid UTF-8 JSON.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/json_util.h"
#include "ingest/record.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view payload(reinterpret_cast<const char*>(data), size);
  streamlm::ParsedRecord r = streamlm::ParseTextRecord(payload, 4096);
  if (r.ok()) {
    if (r.record.text.empty() || !streamlm::IsValidUtf8(r.record.text)) std::abort();
  }
  std::string out =
      streamlm::MakeRejectRecord("t", 0, 0, streamlm::RejectReasonName(r.reason), r.detail,
                                 payload).dump();
  if (!streamlm::IsValidUtf8(out)) std::abort();
  // The repair policy accepts what the strict one refused for bad bytes only.
  streamlm::ParsedRecord repaired = streamlm::ParseTextRecord(payload, 4096, true);
  if (repaired.ok() && !streamlm::IsValidUtf8(repaired.record.text)) std::abort();
  if (r.ok() && !repaired.ok()) std::abort();
  return 0;
}
