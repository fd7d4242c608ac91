#include "serving/request_parse.h"

#include <httplib.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace streamlm {
namespace request_parse {

OJson ErrorBody(const std::string& message, const std::string& type, const std::string& param,
                const std::string& code) {
  return {{"error", {{"message", message},
                     {"type", type},
                     {"param", param.empty() ? OJson(nullptr) : OJson(param)},
                     {"code", code.empty() ? OJson(nullptr) : OJson(code)}}}};
}

void SendJson(httplib::Response& res, int status, const OJson& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, OJson::error_handler_t::replace), "application/json");
}

void SendError(httplib::Response& res, int status, const std::string& message,
               const std::string& param, const std::string& type, const std::string& code) {
  SendJson(res, status, ErrorBody(message, type, param, code));
}

bool NumberField(const Json& body, const char* name, double lo, double hi, double* out,
                 httplib::Response& res) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_number() || it->get<double>() < lo || it->get<double>() > hi) {
    SendError(res, 400, absl::StrCat("'", name, "' must be a number in [", lo, ", ", hi, "]"),
              name);
    return false;
  }
  *out = it->get<double>();
  return true;
}

bool IntField(const Json& body, const char* name, int64_t lo, int64_t hi, int64_t* out,
              httplib::Response& res) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_number_integer() || it->get<int64_t>() < lo || it->get<int64_t>() > hi) {
    SendError(res, 400,
              absl::StrCat("'", name, "' must be an integer in [", lo, ", ", hi, "]"), name);
    return false;
  }
  *out = it->get<int64_t>();
  return true;
}

bool BoolField(const Json& body, const char* name, bool* out, httplib::Response& res) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_boolean()) {
    SendError(res, 400, absl::StrCat("'", name, "' must be true or false"), name);
    return false;
  }
  *out = it->get<bool>();
  return true;
}

size_t FirstInvalidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;  // range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return i;
    }
    if (i + len > s.size()) return i;
    const unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
    if (c1 < lo || c1 > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      const unsigned char ck = static_cast<unsigned char>(s[i + k]);
      if (ck < 0x80 || ck > 0xbf) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

std::string Utf8Problem(const std::string& body) {
  const size_t at = FirstInvalidUtf8(body);
  if (at == std::string_view::npos) return "";
  return absl::StrCat("request body is not valid UTF-8 (invalid byte 0x",
                      absl::Hex(static_cast<unsigned char>(body[at]), absl::kZeroPad2),
                      " at offset ", at, "); JSON must be sent as UTF-8");
}

bool TokenIds(const Json& a, int vocab_size, std::vector<int32_t>* ids) {
  if (!a.is_array()) return false;
  ids->clear();
  for (const Json& v : a) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab_size) {
      return false;
    }
    ids->push_back(v.get<int32_t>());
  }
  return true;
}

bool ParseBody(const httplib::Request& req, Json* body, httplib::Response& res) {
  if (std::string bad = Utf8Problem(req.body); !bad.empty()) {
    SendError(res, 400, bad, "", "invalid_request_error", "invalid_utf8");
    return false;
  }
  auto parsed = ParseJson(req.body);
  if (!parsed.ok()) {
    SendError(res, 400, absl::StrCat("request body is not valid JSON: ",
                                     parsed.status().message()));
    return false;
  }
  if (!parsed->is_object()) {
    SendError(res, 400, "request body must be a JSON object");
    return false;
  }
  *body = std::move(*parsed);
  return true;
}

bool ParseSampling(const Json& body, const Config& config, bool chat, SamplingParams* p,
                   bool* stream, bool* include_usage, httplib::Response& res) {
  int64_t max_tokens = chat ? config.serving.max_tokens : 16, top_k = 0, n = 1, seed = -1;
  double temperature = 1.0, top_p = 1.0, repetition_penalty = 1.0;
  if (!IntField(body, "max_tokens", 0, config.serving.max_tokens, &max_tokens, res) ||
      (chat && !IntField(body, "max_completion_tokens", 0, config.serving.max_tokens,
                         &max_tokens, res)) ||
      !IntField(body, "top_k", 0, 1 << 20, &top_k, res) ||
      !IntField(body, "n", 1, 1, &n, res) ||
      !IntField(body, "seed", INT64_MIN, INT64_MAX, &seed, res) ||
      !NumberField(body, "temperature", 0, 2, &temperature, res) ||
      !NumberField(body, "top_p", 1e-9, 1, &top_p, res) ||
      !NumberField(body, "repetition_penalty", 1e-3, 100, &repetition_penalty, res) ||
      !BoolField(body, "ignore_eos", &p->ignore_eos, res) ||
      !BoolField(body, "stream", stream, res)) {
    return false;
  }
  auto so = body.find("stream_options");
  if (so != body.end() && !so->is_null()) {
    if (!so->is_object()) {
      SendError(res, 400, "'stream_options' must be an object", "stream_options");
      return false;
    }
    if (!*stream) {
      SendError(res, 400, "'stream_options' is only allowed with 'stream': true",
                "stream_options");
      return false;
    }
    if (!BoolField(*so, "include_usage", include_usage, res)) return false;
  }
  auto stop_it = body.find("stop");
  if (stop_it != body.end() && !stop_it->is_null()) {
    if (stop_it->is_string()) {
      p->stop.push_back(stop_it->get<std::string>());
    } else if (stop_it->is_array() && stop_it->size() <= 4 &&
               std::all_of(stop_it->begin(), stop_it->end(),
                           [](const Json& s) { return s.is_string(); })) {
      for (const Json& s : *stop_it) p->stop.push_back(s.get<std::string>());
    } else {
      SendError(res, 400, "'stop' must be a string or an array of up to 4 strings", "stop");
      return false;
    }
  }
  p->max_tokens = static_cast<int>(max_tokens);
  p->temperature = temperature;
  p->top_k = static_cast<int>(top_k);
  p->top_p = top_p;
  p->repetition_penalty = repetition_penalty;
  if (seed != -1) {
    p->has_seed = true;
    p->seed = static_cast<uint64_t>(seed);
  }
  return true;
}

bool ParseCompletionPrompt(const Json& body, int vocab_size, bool* is_text, std::string* text,
                           std::vector<int32_t>* ids, httplib::Response& res) {
  auto prompt_it = body.find("prompt");
  if (prompt_it == body.end()) {
    SendError(res, 400, "'prompt' is required", "prompt");
    return false;
  }
  if (prompt_it->is_string()) {
    *is_text = true;
    *text = prompt_it->get<std::string>();
  } else if (prompt_it->is_array() && prompt_it->size() == 1 && (*prompt_it)[0].is_string()) {
    *is_text = true;
    *text = (*prompt_it)[0].get<std::string>();
  } else if (!prompt_it->empty() && TokenIds(*prompt_it, vocab_size, ids)) {
    *is_text = false;
  } else {
    SendError(res, 400,
              absl::StrCat("'prompt' must be a string, an array of one string, or an array of "
                           "token ids in [0, ", vocab_size, ")"),
              "prompt");
    return false;
  }
  return true;
}

bool ParseCompletionLogprobs(const Json& body, int* logprobs, bool* echo,
                             httplib::Response& res) {
  int64_t n = -1;
  if (!IntField(body, "logprobs", 0, 5, &n, res) || !BoolField(body, "echo", echo, res)) {
    return false;
  }
  *logprobs = static_cast<int>(n);
  return true;
}

bool ParseChatMessages(const Json& body, Json* messages, httplib::Response& res) {
  auto messages_it = body.find("messages");
  if (messages_it == body.end() || !messages_it->is_array() || messages_it->empty()) {
    SendError(res, 400, "'messages' must be a non-empty array of {role, content}", "messages");
    return false;
  }
  // Content may be a string or OpenAI's array of text parts; the template
  // sees strings.
  *messages = Json::array();
  for (size_t i = 0; i < messages_it->size(); ++i) {
    const Json& m = (*messages_it)[i];
    std::string where = absl::StrCat("messages[", i, "]");
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      SendError(res, 400, where + " must be an object with a string 'role'", where);
      return false;
    }
    const std::string role = m["role"];
    if (role != "system" && role != "user" && role != "assistant" && role != "developer") {
      SendError(res, 400,
                absl::StrCat(where, ".role '", role,
                             "' is not one of system, developer, user, assistant"),
                where + ".role");
      return false;
    }
    std::string content;
    auto c = m.find("content");
    if (c == m.end() || c->is_null()) {
      content = "";
    } else if (c->is_string()) {
      content = c->get<std::string>();
    } else if (c->is_array()) {
      for (const Json& part : *c) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string()) {
          SendError(res, 400, where + ".content parts must be {\"type\": \"text\", \"text\": str}",
                    where + ".content");
          return false;
        }
        content += part["text"].get<std::string>();
      }
    } else {
      SendError(res, 400, where + ".content must be a string or an array of text parts",
                where + ".content");
      return false;
    }
    messages->push_back({{"role", role == "developer" ? "system" : role}, {"content", content}});
  }
  return true;
}

bool ParseChatLogprobs(const Json& body, int* logprobs, httplib::Response& res) {
  bool want = false;
  int64_t top = 0;
  if (!BoolField(body, "logprobs", &want, res) ||
      !IntField(body, "top_logprobs", 0, 20, &top, res)) {
    return false;
  }
  if (body.contains("top_logprobs") && !body["top_logprobs"].is_null() && !want) {
    SendError(res, 400, "'top_logprobs' needs 'logprobs': true", "top_logprobs");
    return false;
  }
  *logprobs = want ? static_cast<int>(top) : -1;
  return true;
}

bool ParseTokenizePrompt(const Json& body, std::string* text, httplib::Response& res) {
  if (body.contains("prompt") && body["prompt"].is_string()) {
    *text = body["prompt"];
    return true;
  }
  if (body.contains("messages")) {
    SendError(res, 400, "tokenize takes 'prompt' (a string); render chat messages yourself",
              "messages");
  } else {
    SendError(res, 400, "'prompt' must be a string", "prompt");
  }
  return false;
}

bool ParseDetokenizeTokens(const Json& body, int vocab_size, std::vector<int32_t>* ids,
                           httplib::Response& res) {
  auto it = body.find("tokens");
  if (it == body.end() || !it->is_array()) {
    SendError(res, 400, "'tokens' must be an array of token ids", "tokens");
    return false;
  }
  if (!TokenIds(*it, vocab_size, ids)) {
    SendError(res, 400,
              absl::StrCat("'tokens' must hold integers in [0, ", vocab_size, ")"), "tokens");
    return false;
  }
  return true;
}

bool ParseFeedbackBody(const std::string& raw, Json* out, FeedbackRejection* why) {
  auto reject = [why](const std::string& reason, const std::string& message,
                      const std::string& param) {
    why->status = 400;
    why->reason = reason;
    why->message = message;
    why->param = param;
    return false;
  };
  if (std::string bad = Utf8Problem(raw); !bad.empty()) {
    return reject("invalid_utf8", bad, "");
  }
  auto parsed = ParseJson(raw);
  if (!parsed.ok() || !parsed->is_object()) {
    return reject("invalid_json",
                  parsed.ok() ? "request body must be a JSON object"
                              : absl::StrCat("request body is not valid JSON: ",
                                             parsed.status().message()),
                  "");
  }
  const Json& body = *parsed;
  auto field = [&body](const char* name) -> const Json* {
    auto it = body.find(name);
    return it == body.end() || it->is_null() ? nullptr : &*it;
  };
  const Json* id_field = field("completion_id");
  if (id_field == nullptr || !id_field->is_string() || id_field->get<std::string>().empty()) {
    return reject("invalid_completion_id",
                  "'completion_id' must be the id of a completion (a string, e.g. 'cmpl-...')",
                  "completion_id");
  }
  const std::string completion_id = id_field->get<std::string>();
  const Json* user = field("user");
  if (user != nullptr && !user->is_string()) {
    return reject("invalid_user", "'user' must be a string", "user");
  }
  const Json* rating = field("rating");
  const Json* correction = field("correction");
  const Json* preferred_over = field("preferred_over");
  const int kinds = (rating != nullptr) + (correction != nullptr) + (preferred_over != nullptr);
  if (kinds != 1) {
    return reject("invalid_kind",
                  absl::StrCat("feedback needs exactly one of 'rating' (1 or -1), 'correction' "
                               "(the better response) or 'preferred_over' (the id of a worse "
                               "completion of the same prompt); got ",
                               kinds),
                  "");
  }
  if (rating != nullptr && !(rating->is_number_integer() &&
                             (rating->get<int64_t>() == 1 || rating->get<int64_t>() == -1))) {
    return reject("invalid_rating", "'rating' must be 1 (good) or -1 (bad)", "rating");
  }
  if (correction != nullptr) {
    if (!correction->is_string()) {
      return reject("invalid_correction", "'correction' must be a string: the better response",
                    "correction");
    }
    if (correction->get_ref<const std::string&>().find_first_not_of(" \t\r\n") ==
        std::string::npos) {
      return reject("invalid_correction", "'correction' must not be empty", "correction");
    }
  }
  if (preferred_over != nullptr) {
    if (!preferred_over->is_string() || preferred_over->get<std::string>().empty()) {
      return reject("invalid_preferred_over",
                    "'preferred_over' must be the id of another completion (a string)",
                    "preferred_over");
    }
    if (preferred_over->get<std::string>() == completion_id) {
      return reject("invalid_preferred_over",
                    "'preferred_over' names the same completion as 'completion_id'; it must "
                    "be another completion of the same prompt",
                    "preferred_over");
    }
  }
  *out = std::move(*parsed);
  return true;
}

bool ParsePromoteBody(const std::string& raw, std::string* snapshot, std::string* message,
                      std::string* param) {
  auto body = ParseJson(raw);
  if (!body.ok() || !body->is_object()) {
    *message = "request body must be a JSON object {\"snapshot\": ID}";
    *param = "";
    return false;
  }
  auto it = body->find("snapshot");
  if (it == body->end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
    *message = "'snapshot' must be a snapshot id (GET /v1/admin/snapshots lists them)";
    *param = "snapshot";
    return false;
  }
  *snapshot = it->get<std::string>();
  return true;
}

bool ParseRollbackBody(const std::string& raw, std::string* message) {
  if (raw.empty()) return true;
  auto body = ParseJson(raw);
  if (!body.ok() || !body->is_object()) {
    *message = "request body must be empty or a JSON object";
    return false;
  }
  return true;
}

}  // namespace request_parse
}  // namespace streamlm
