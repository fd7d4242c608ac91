// Lexer and parser for the Jinja subset of chat templates, with the
// whitespace handling Hugging Face transformers renders with: trim_blocks and
// lstrip_blocks on, "{%-"/"-%}" style stripping, one trailing newline of the
// source dropped.
#ifndef STREAMLM_SERVING_INTERNAL_JINJA_PARSER_H_
#define STREAMLM_SERVING_INTERNAL_JINJA_PARSER_H_

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "serving/internal/jinja_ast.h"

namespace streamlm::jinja_internal {

// InvalidArgument naming the construct and its 1-based line on bad or
// unsupported syntax (e.g. "unsupported filter 'wordwrap' at line 3"); the
// message has no "chat template:" prefix (the caller adds it).
[[nodiscard]] absl::StatusOr<std::unique_ptr<Program>> ParseJinja(std::string_view source);

// Whether `name` is a filter / test the interpreter implements.
bool IsSupportedFilter(std::string_view name);
bool IsSupportedTest(std::string_view name);

}  // namespace streamlm::jinja_internal

#endif  // STREAMLM_SERVING_INTERNAL_JINJA_PARSER_H_
