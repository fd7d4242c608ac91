// libFuzzer target: any bytes as a safetensors file. Parsing must fail
// cleanly or return entries that lie inside the file.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "model/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view file(reinterpret_cast<const char*>(data), size);
  auto entries = streamlm::ParseSafetensorsHeader(file);
  if (!entries.ok()) return 0;
  for (const auto& e : *entries) {
    if (e.begin > e.end || e.end > size) std::abort();
    // Touch every byte an entry claims, so ASan sees any overrun.
    volatile uint8_t sum = 0;
    for (uint64_t i = e.begin; i < e.end; ++i) sum ^= data[i];
  }
  return 0;
}
