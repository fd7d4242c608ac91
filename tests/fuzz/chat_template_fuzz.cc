// libFuzzer target: any template text must parse or fail with a Status, and
// any template that parses must render or fail with a Status, within the
// render limits (no crash, hang, unbounded output or stack overflow).
#include <cstdint>
#include <string>

#include "serving/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string source(reinterpret_cast<const char*>(data), size);
  streamlm::ChatTemplateLimits limits;
  limits.max_output_bytes = 1 << 20;
  limits.max_steps = 200000;
  auto t = streamlm::ChatTemplate::Parse(source, limits);
  if (!t.ok()) return 0;
  static const streamlm::Json* const kMessages = new streamlm::Json(streamlm::Json::parse(R"([
    {"role": "system", "content": "Be kind."},
    {"role": "user", "content": "Hi {{ there }} \u00e9\ud83d\ude42"},
    {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"a": [1, 2.5, null]}}}]},
    {"role": "tool", "content": "42"}])"));
  static const streamlm::Json* const kVars = new streamlm::Json(
      {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"tools", streamlm::Json::array({{{"type", "function"}}})}});
  (void)t->Render(*kMessages, true, *kVars);
  (void)t->Render(streamlm::Json::array(), false, streamlm::Json());
  return 0;
}
