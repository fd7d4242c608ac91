// Chat templates: the Jinja template (tokenizer_config.json "chat_template")
// that turns a list of chat messages into the prompt text a model was tuned
// on, as Hugging Face transformers' apply_chat_template renders it.
//
// Supports the Jinja subset real chat templates use (serving/README.md has
// the list). A template the renderer cannot handle is refused with an error
// naming the construct and line, never rendered into a wrong prompt.
#ifndef STREAMLM_SERVING_CHAT_TEMPLATE_H_
#define STREAMLM_SERVING_CHAT_TEMPLATE_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/json_util.h"
#include "serving/internal/jinja_interpreter.h"

namespace streamlm {

namespace jinja_internal {
struct Program;
}  // namespace jinja_internal

// Bounds on one render (output bytes, macro nesting, work); the defaults are
// generous for real templates and stop hostile ones quickly.
using ChatTemplateLimits = jinja_internal::RenderLimits;

// A parsed template. Immutable: copies share the parsed program, and Render
// may be called from many threads at once.
class ChatTemplate {
 public:
  // Parses Jinja source; InvalidArgument naming the construct and line on
  // error, e.g. "chat template: unsupported filter 'wordwrap' at line 3".
  [[nodiscard]] static absl::StatusOr<ChatTemplate> Parse(std::string_view source,
                                                          ChatTemplateLimits limits = {});

  // messages: JSON array of {"role": str, "content": str, ...}. `vars` (a
  // JSON object, or null) holds extra variables: bos_token, eos_token,
  // tools, ... add_generation_prompt as in transformers: true appends the
  // start of the assistant's turn. Errors are InvalidArgument prefixed
  // "chat template: ": the template's own raise_exception(message) gives
  // that message; type errors, undefined values used as objects, unknown
  // methods and exceeded limits name the problem and line.
  [[nodiscard]] absl::StatusOr<std::string> Render(const Json& messages,
                                                   bool add_generation_prompt,
                                                   const Json& vars) const;

 private:
  ChatTemplate(std::shared_ptr<const jinja_internal::Program> program, ChatTemplateLimits limits)
      : program_(std::move(program)), limits_(limits) {}

  std::shared_ptr<const jinja_internal::Program> program_;
  ChatTemplateLimits limits_;
};

// The template for models that come without one (serving/README.md): a
// plain transcript a base model can continue,
//   "System: ...\n\nUser: ...\n\nAssistant: ...\n\n" ... "Assistant:"
// (other roles capitalized, content trimmed, no special tokens).
const std::string& DefaultChatTemplate();

}  // namespace streamlm

#endif  // STREAMLM_SERVING_CHAT_TEMPLATE_H_
