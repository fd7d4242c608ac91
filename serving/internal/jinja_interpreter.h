// Renders a parsed Jinja program (jinja_ast.h) with Python Jinja's semantics
// for the subset chat templates use: undefined variables render as "",
// reading an attribute of an undefined value is an error, values print as
// Python prints them (None, True, ['a', 1]), tojson as transformers' filter
// (json.dumps with ensure_ascii=False; keys in nlohmann::json's sorted
// order, which is the one visible difference from transformers).
#ifndef STREAMLM_SERVING_INTERNAL_JINJA_INTERPRETER_H_
#define STREAMLM_SERVING_INTERNAL_JINJA_INTERPRETER_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/json_util.h"
#include "serving/internal/jinja_ast.h"

namespace streamlm::jinja_internal {

// Bounds on one render, so that no template (however hostile) can run
// forever, exhaust memory or the stack.
struct RenderLimits {
  size_t max_output_bytes = size_t{32} << 20;  // also bounds every string value
  int max_call_depth = 64;                     // nested macro calls
  int64_t max_steps = 20'000'000;              // evaluated nodes + loop items + bytes/16 built
};

// Renders `program` with the top-level variables in `globals` (a JSON
// object). Errors are InvalidArgument: raise_exception(msg) gives exactly
// `msg`; others name the problem and the template line. Thread-safe: reads
// `program` only.
[[nodiscard]] absl::StatusOr<std::string> RenderProgram(const Program& program, const Json& globals,
                                                        const RenderLimits& limits);

// Python's repr() of a float ("1.0", "0.1", "1e+16"): what {{ x }} prints.
std::string PythonFloatRepr(double v);

}  // namespace streamlm::jinja_internal

#endif  // STREAMLM_SERVING_INTERNAL_JINJA_INTERPRETER_H_
