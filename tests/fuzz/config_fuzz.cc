// libFuzzer target: YAML config text must never crash the loader; errors
// come back as a Status.
#include <cstdint>
#include <string>

#include "common/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  streamlm::Config c;
  std::string text(reinterpret_cast<const char*>(data), size);
  (void)streamlm::ApplyYamlText(c, text, "fuzz");
  return 0;
}
