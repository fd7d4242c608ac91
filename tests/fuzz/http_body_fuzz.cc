// libFuzzer target: any bytes as the request body of every endpoint that
// takes one (POST /v1/completions, /v1/chat/completions, /v1/tokenize,
// /v1/detokenize, /v1/feedback, /v1/admin/promote, /v1/admin/rollback),
// through the parsing and validation the server runs before it needs a
// model (serving/request_parse.h). Each step must accept, with its promised
// postconditions holding, or answer 400 with OpenAI's error object as valid
// UTF-8 JSON; never crash, throw or leak.
//
// Not reached here (they need a loaded model): tokenizer Encode/Decode of
// the prompt, the chat template render (tests/fuzz/chat_template_fuzz.cc),
// the context-length check, and the completion-log lookups of feedback.
#include <httplib.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/json_util.h"
#include "serving/request_parse.h"

namespace rp = streamlm::request_parse;
using streamlm::Json;

namespace {

constexpr int kVocab = 1000;

// A refusal: 400 with {"error": {"message": non-empty string, "type":
// string, "param": string or null, "code": string or null}} as UTF-8 JSON.
void CheckRefusal(const httplib::Response& res) {
  if (res.status != 400 || !streamlm::IsValidUtf8(res.body)) std::abort();
  auto j = streamlm::ParseJson(res.body);
  if (!j.ok() || !j->is_object() || !j->contains("error")) std::abort();
  const Json& e = (*j)["error"];
  if (!e.is_object() || !e.contains("message") || !e["message"].is_string() ||
      e["message"].get<std::string>().empty() || !e.contains("type") || !e["type"].is_string()) {
    std::abort();
  }
  for (const char* k : {"param", "code"}) {
    if (!e.contains(k) || !(e[k].is_null() || e[k].is_string())) std::abort();
  }
}

// An acceptance leaves the response as it was.
void CheckUntouched(const httplib::Response& res) {
  if (res.status != -1 || !res.body.empty()) std::abort();
}

// Runs one step on a fresh response and checks the answer's shape.
template <typename Step>
bool Run(Step step) {
  httplib::Response res;
  const bool ok = step(res);
  if (ok) {
    CheckUntouched(res);
  } else {
    CheckRefusal(res);
  }
  return ok;
}

void CheckSampling(const Json& body, const streamlm::Config& config, bool chat) {
  streamlm::SamplingParams p;
  bool stream = false, include_usage = false;
  if (!Run([&](httplib::Response& res) {
        return rp::ParseSampling(body, config, chat, &p, &stream, &include_usage, res);
      })) {
    return;
  }
  if (p.max_tokens < 0 || p.max_tokens > config.serving.max_tokens) std::abort();
  if (!(p.temperature >= 0 && p.temperature <= 2)) std::abort();
  if (!(p.top_p >= 1e-9 && p.top_p <= 1)) std::abort();
  if (p.top_k < 0 || p.top_k > (1 << 20)) std::abort();
  if (!(p.repetition_penalty >= 1e-3 && p.repetition_penalty <= 100)) std::abort();
  if (p.stop.size() > 4) std::abort();
  if (include_usage && !stream) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string raw(reinterpret_cast<const char*>(data), size);
  static const streamlm::Config* const config = new streamlm::Config();

  // The UTF-8 check agrees with the one in common/json_util.
  if ((rp::FirstInvalidUtf8(raw) == std::string::npos) != streamlm::IsValidUtf8(raw)) {
    std::abort();
  }

  // POST /v1/feedback parses its own body (its refusals are counted by reason).
  Json feedback;
  rp::FeedbackRejection why;
  if (rp::ParseFeedbackBody(raw, &feedback, &why)) {
    auto field = [&feedback](const char* name) -> const Json* {
      auto it = feedback.find(name);
      return it == feedback.end() || it->is_null() ? nullptr : &*it;
    };
    const Json* id = field("completion_id");
    if (id == nullptr || !id->is_string() || id->get<std::string>().empty()) std::abort();
    const Json* user = field("user");
    if (user != nullptr && !user->is_string()) std::abort();
    const Json* rating = field("rating");
    const Json* correction = field("correction");
    const Json* preferred = field("preferred_over");
    if ((rating != nullptr) + (correction != nullptr) + (preferred != nullptr) != 1) std::abort();
    if (rating != nullptr && !(rating->is_number_integer() && (rating->get<int64_t>() == 1 ||
                                                               rating->get<int64_t>() == -1))) {
      std::abort();
    }
    if (correction != nullptr &&
        (!correction->is_string() ||
         correction->get<std::string>().find_first_not_of(" \t\r\n") == std::string::npos)) {
      std::abort();
    }
    if (preferred != nullptr &&
        (!preferred->is_string() || preferred->get<std::string>().empty() || *preferred == *id)) {
      std::abort();
    }
  } else if (why.status != 400 || why.reason.empty() || why.message.empty() ||
             !streamlm::IsValidUtf8(why.message)) {
    std::abort();
  }

  // The admin API.
  std::string snapshot, message, param;
  if (rp::ParsePromoteBody(raw, &snapshot, &message, &param)) {
    if (snapshot.empty()) std::abort();
  } else if (message.empty() || (param != "" && param != "snapshot")) {
    std::abort();
  }
  message.clear();
  if (!rp::ParseRollbackBody(raw, &message) && (raw.empty() || message.empty())) std::abort();

  // The model endpoints: the body must be a JSON object first.
  httplib::Request req;
  req.body = raw;
  Json body;
  if (!Run([&](httplib::Response& res) { return rp::ParseBody(req, &body, res); })) return 0;
  if (!body.is_object()) std::abort();

  // POST /v1/completions.
  bool is_text = false;
  std::string text;
  std::vector<int32_t> ids;
  if (Run([&](httplib::Response& res) {
        return rp::ParseCompletionPrompt(body, kVocab, &is_text, &text, &ids, res);
      }) &&
      !is_text) {
    if (ids.empty()) std::abort();
    for (int32_t id : ids) {
      if (id < 0 || id >= kVocab) std::abort();
    }
  }
  CheckSampling(body, *config, /*chat=*/false);
  int logprobs = -7;
  bool echo = false;
  if (Run([&](httplib::Response& res) {
        return rp::ParseCompletionLogprobs(body, &logprobs, &echo, res);
      }) &&
      (logprobs < -1 || logprobs > 5)) {
    std::abort();
  }

  // POST /v1/chat/completions.
  Json messages;
  if (Run([&](httplib::Response& res) { return rp::ParseChatMessages(body, &messages, res); })) {
    if (!messages.is_array() || messages.empty()) std::abort();
    for (const Json& m : messages) {
      if (!m.is_object() || m.size() != 2 || !m["content"].is_string()) std::abort();
      const std::string role = m.value("role", "");
      if (role != "system" && role != "user" && role != "assistant") std::abort();
    }
  }
  CheckSampling(body, *config, /*chat=*/true);
  logprobs = -7;
  if (Run([&](httplib::Response& res) { return rp::ParseChatLogprobs(body, &logprobs, res); }) &&
      (logprobs < -1 || logprobs > 20)) {
    std::abort();
  }

  // POST /v1/tokenize and /v1/detokenize.
  text.clear();
  if (Run([&](httplib::Response& res) { return rp::ParseTokenizePrompt(body, &text, res); }) &&
      !body["prompt"].is_string()) {
    std::abort();
  }
  ids.clear();
  if (Run([&](httplib::Response& res) {
        return rp::ParseDetokenizeTokens(body, kVocab, &ids, res);
      })) {
    if (ids.size() != body["tokens"].size()) std::abort();
    for (int32_t id : ids) {
      if (id < 0 || id >= kVocab) std::abort();
    }
  }
  return 0;
}
