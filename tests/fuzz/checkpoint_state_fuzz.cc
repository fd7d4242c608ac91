// libFuzzer target: a learner checkpoint state (any JSON) must never crash
// or throw in the decoder; corruption comes back as a DataLossError.
#include <cstdint>
#include <string>

#include "common/json_util.h"
#include "learner/checkpoint_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto json = streamlm::ParseJson(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (!json.ok()) return 0;
  auto st = streamlm::DecodeLearnerState(*json);
  if (!st.ok() && st.status().code() != absl::StatusCode::kDataLoss) __builtin_trap();
  return 0;
}
