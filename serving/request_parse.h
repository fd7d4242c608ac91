// Request bodies of the HTTP API: the parsing and validation that needs no
// model, shared by serving/server.cc (which answers with it) and
// tests/fuzz/http_body_fuzz.cc (which feeds it any bytes). No libtorch.
//
// The functions that take an `httplib::Response& res` return true and leave
// `res` untouched when the input is acceptable; otherwise they return false
// with `res` holding a 400 and OpenAI's error object
// {"error": {"message", "type", "param", "code"}}. Stateless and
// thread-safe.
#ifndef STREAMLM_SERVING_REQUEST_PARSE_H_
#define STREAMLM_SERVING_REQUEST_PARSE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/json_util.h"
#include "model/sampling_params.h"

namespace httplib {
class Request;
class Response;
}  // namespace httplib

namespace streamlm {
namespace request_parse {

// Response bodies keep their keys in the order written (OpenAI's field order).
using OJson = nlohmann::ordered_json;

// OpenAI's error object: {"error": {"message", "type", "param", "code"}};
// an empty `param` or `code` is null.
OJson ErrorBody(const std::string& message, const std::string& type, const std::string& param,
                const std::string& code);
// Sets `res` to `status` with `body` as JSON (invalid UTF-8 replaced).
void SendJson(httplib::Response& res, int status, const OJson& body);
void SendError(httplib::Response& res, int status, const std::string& message,
               const std::string& param = "",
               const std::string& type = "invalid_request_error",
               const std::string& code = "");

// Optional fields of `body` (absent or null: true, `*out` unchanged).
// NumberField: any JSON number in [lo, hi]; IntField: a JSON integer in
// [lo, hi]; BoolField: true or false.
bool NumberField(const Json& body, const char* name, double lo, double hi, double* out,
                 httplib::Response& res);
bool IntField(const Json& body, const char* name, int64_t lo, int64_t hi, int64_t* out,
              httplib::Response& res);
bool BoolField(const Json& body, const char* name, bool* out, httplib::Response& res);

// Where `s` stops being UTF-8 (RFC 3629: no overlong forms, no surrogates,
// nothing past U+10FFFF), or npos when all of it is.
size_t FirstInvalidUtf8(std::string_view s);
// The 400 message for a body that is not UTF-8, or "" when it is.
std::string Utf8Problem(const std::string& body);

// Token ids from a JSON array of integers in [0, vocab_size); false when
// `a` is not such an array (`ids` then holds an unspecified prefix).
bool TokenIds(const Json& a, int vocab_size, std::vector<int32_t>* ids);

// The request body as a JSON object (UTF-8, valid JSON, an object).
bool ParseBody(const httplib::Request& req, Json* body, httplib::Response& res);

// What completions (`chat` false) and chat share: max_tokens (chat also
// max_completion_tokens) in [0, config.serving.max_tokens], top_k, n = 1,
// seed, temperature, top_p, repetition_penalty, ignore_eos, stream,
// stream_options.include_usage, stop (a string or up to 4 strings).
bool ParseSampling(const Json& body, const Config& config, bool chat, SamplingParams* p,
                   bool* stream, bool* include_usage, httplib::Response& res);

// POST /v1/completions `prompt`: a string or an array of one string
// (`*is_text` true, `*text` set), or an array of token ids in
// [0, vocab_size) (`*is_text` false, `*ids` set).
bool ParseCompletionPrompt(const Json& body, int vocab_size, bool* is_text, std::string* text,
                           std::vector<int32_t>* ids, httplib::Response& res);
// POST /v1/completions `logprobs` (0-5; -1 when absent) and `echo`.
bool ParseCompletionLogprobs(const Json& body, int* logprobs, bool* echo,
                             httplib::Response& res);

// POST /v1/chat/completions `messages`, as the chat template sees them:
// `*messages` is a non-empty array of {"role": system|user|assistant,
// "content": string} (role developer becomes system; text parts are
// joined; null or absent content is "").
bool ParseChatMessages(const Json& body, Json* messages, httplib::Response& res);
// POST /v1/chat/completions `logprobs` and `top_logprobs` (0-20, only with
// logprobs): `*logprobs` is top_logprobs when logprobs is true, else -1.
bool ParseChatLogprobs(const Json& body, int* logprobs, httplib::Response& res);

// POST /v1/tokenize: `prompt`, a string.
bool ParseTokenizePrompt(const Json& body, std::string* text, httplib::Response& res);
// POST /v1/detokenize: `tokens`, integers in [0, vocab_size).
bool ParseDetokenizeTokens(const Json& body, int vocab_size, std::vector<int32_t>* ids,
                           httplib::Response& res);

// Why a POST /v1/feedback body was refused: HTTP status (400), the reason
// label of streamlm_feedback_api_rejected_total, the message and param.
struct FeedbackRejection {
  int status = 400;
  std::string reason;
  std::string message;
  std::string param;
};
// POST /v1/feedback, before the completion log is consulted. On true,
// `*body` is a JSON object whose `completion_id` is a non-empty string,
// whose `user` is null, absent or a string, and with exactly one of these
// non-null: `rating` (1 or -1), `correction` (a string that is not all
// whitespace) or `preferred_over` (a non-empty string other than
// completion_id).
bool ParseFeedbackBody(const std::string& raw, Json* body, FeedbackRejection* why);

// POST /v1/admin/promote: {"snapshot": non-empty string}. On false,
// `*param` is "snapshot" when that field is the problem ("" for the body).
bool ParsePromoteBody(const std::string& raw, std::string* snapshot, std::string* message,
                      std::string* param);
// POST /v1/admin/rollback: empty, or a JSON object (its fields are unused).
bool ParseRollbackBody(const std::string& raw, std::string* message);

}  // namespace request_parse
}  // namespace streamlm

#endif  // STREAMLM_SERVING_REQUEST_PARSE_H_
