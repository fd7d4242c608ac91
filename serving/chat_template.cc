#include "serving/chat_template.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "serving/internal/jinja_ast.h"
#include "serving/internal/jinja_parser.h"

namespace streamlm {

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(std::string_view source,
                                                 ChatTemplateLimits limits) {
  auto program = jinja_internal::ParseJinja(source);
  if (!program.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("chat template: ", program.status().message()));
  }
  return ChatTemplate(std::shared_ptr<const jinja_internal::Program>(std::move(*program)), limits);
}

absl::StatusOr<std::string> ChatTemplate::Render(const Json& messages, bool add_generation_prompt,
                                                 const Json& vars) const {
  if (!messages.is_array()) {
    return absl::InvalidArgumentError("chat template: messages must be a JSON array");
  }
  if (!vars.is_null() && !vars.is_object()) {
    return absl::InvalidArgumentError("chat template: vars must be a JSON object");
  }
  Json globals = vars.is_object() ? vars : Json::object();
  globals["messages"] = messages;
  globals["add_generation_prompt"] = add_generation_prompt;
  auto out = jinja_internal::RenderProgram(*program_, globals, limits_);
  if (!out.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("chat template: ", out.status().message()));
  }
  return out;
}

const std::string& DefaultChatTemplate() {
  // Kept identical to "default" in tools/chat_template_reference.mjs (the
  // test checks), so the fixture covers it.
  static const std::string* const kTemplate = new std::string(
      R"jinja({#- StreamLM default chat template: a plain transcript. -#}
{%- for message in messages %}
    {%- if message['role'] == 'system' %}
        {{- 'System: ' }}
    {%- elif message['role'] == 'user' %}
        {{- 'User: ' }}
    {%- elif message['role'] == 'assistant' %}
        {{- 'Assistant: ' }}
    {%- else %}
        {{- message['role'] | capitalize + ': ' }}
    {%- endif %}
    {{- message['content'] | trim + '\n\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- 'Assistant:' }}
{%- endif %}
)jinja");
  return *kTemplate;
}

}  // namespace streamlm
