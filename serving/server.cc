#include "serving/server.h"

#include <arpa/inet.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string_view>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/kafka.h"
#include "common/log.h"
#include "model/language_model.h"
#include "serving/admin_api.h"
#include "serving/chat_template.h"
#include "serving/dashboard.h"
#include "serving/guarded_http_server.h"
#include "serving/scheduler.h"

namespace streamlm {
namespace {

// Response bodies keep their keys in the order written (OpenAI's field order;
// top_logprobs best first).
using OJson = nlohmann::ordered_json;

void SendJson(httplib::Response& res, int status, const OJson& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, OJson::error_handler_t::replace), "application/json");
}

// OpenAI's error object: {"error": {"message", "type", "param", "code"}}.
OJson ErrorBody(const std::string& message, const std::string& type, const std::string& param,
                const std::string& code) {
  return {{"error", {{"message", message},
                     {"type", type},
                     {"param", param.empty() ? OJson(nullptr) : OJson(param)},
                     {"code", code.empty() ? OJson(nullptr) : OJson(code)}}}};
}

void SendError(httplib::Response& res, int status, const std::string& message,
               const std::string& param = "",
               const std::string& type = "invalid_request_error",
               const std::string& code = "") {
  SendJson(res, status, ErrorBody(message, type, param, code));
}

// HTTP status and OpenAI error type for a scheduler or model error.
void SendStatus(httplib::Response& res, const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kResourceExhausted:
      res.set_header("Retry-After", "1");
      SendError(res, 429, std::string(s.message()), "", "rate_limit_error", "queue_full");
      return;
    case absl::StatusCode::kDeadlineExceeded:
      SendError(res, 504, std::string(s.message()), "", "timeout_error", "timeout");
      return;
    case absl::StatusCode::kUnavailable:
      SendError(res, 503, std::string(s.message()), "", "server_error", "unavailable");
      return;
    default:
      SendError(res, 500, std::string(s.message()), "", "server_error");
  }
}

// Reads an optional number field; false (with the response filled) on error.
bool NumberField(const Json& body, const char* name, double lo, double hi,
                 double* out, httplib::Response& res) {
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

bool IntField(const Json& body, const char* name, int64_t lo, int64_t hi,
              int64_t* out, httplib::Response& res) {
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

bool IsLoopback(const std::string& host) {
  if (host == "localhost") return true;
  in_addr a4;
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  in6_addr a6;
  if (inet_pton(AF_INET6, h.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

// Where `s` stops being UTF-8 (RFC 3629: no overlong forms, no surrogates,
// nothing past U+10FFFF), or npos when all of it is.
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

// The 400 message for a body that is not UTF-8, or "" when it is.
std::string Utf8Problem(const std::string& body) {
  const size_t at = FirstInvalidUtf8(body);
  if (at == std::string_view::npos) return "";
  return absl::StrCat("request body is not valid UTF-8 (invalid byte 0x",
                      absl::Hex(static_cast<unsigned char>(body[at]), absl::kZeroPad2),
                      " at offset ", at, "); JSON must be sent as UTF-8");
}

// GET /healthz and /readyz: the status and body for `path`, false for other
// paths. `champion` is the id of the served model ("" while none is loaded).
// Also answered at the connection limit (GuardedHttpServer's HealthAnswer).
bool HealthCheck(const std::string& path, const std::string& champion, int* status,
                 OJson* body) {
  if (path == "/healthz") {
    *status = 200;
    *body = {{"status", "ok"}};
    return true;
  }
  if (path == "/readyz") {
    *status = champion.empty() ? 503 : 200;
    *body = champion.empty() ? OJson{{"status", "no champion loaded"}}
                             : OJson{{"status", "ready"}, {"model", champion}};
    return true;
  }
  return false;
}

// The methods a known path takes ("" for an unknown path), for 405's Allow
// header: cpp-httplib itself answers 404 to a known path with another
// method. Keep in step with the routes of Server::Start, RegisterAdminApi
// and RegisterDashboard (hostile_clients_test checks some of each).
std::string AllowedMethods(const std::string& path) {
  static const char* const kGet[] = {"/healthz", "/readyz",  "/metrics",
                                     "/v1/models", "/v1/admin/decisions",
                                     "/v1/admin/snapshots", "/ui", "/ui/"};
  static const char* const kPost[] = {"/v1/completions", "/v1/chat/completions",
                                      "/v1/tokenize",    "/v1/detokenize",
                                      "/v1/feedback",    "/v1/admin/promote",
                                      "/v1/admin/rollback"};
  for (const char* p : kGet) {
    if (path == p) return "GET, HEAD";
  }
  if (path.size() > 4 && path.compare(0, 4, "/ui/") == 0) return "GET, HEAD";
  for (const char* p : kPost) {
    if (path == p) return "POST";
  }
  return "";
}

// The OpenAI legacy completions logprobs object, built as tokens arrive.
struct LegacyLogprobs {
  OJson tokens = OJson::array(), token_logprobs = OJson::array(), top_logprobs = OJson::array(),
        text_offset = OJson::array();
  void Add(const std::string& token, const TokenLogprob* lp,
           const std::vector<std::string>& top_text, size_t offset) {
    tokens.push_back(token);
    text_offset.push_back(offset);
    if (lp == nullptr) {
      token_logprobs.push_back(nullptr);
      top_logprobs.push_back(nullptr);
      return;
    }
    token_logprobs.push_back(lp->logprob);
    OJson top = OJson::object();
    for (size_t i = 0; i < lp->top.size() && i < top_text.size(); ++i) {
      if (!top.contains(top_text[i])) top[top_text[i]] = lp->top[i].second;
    }
    top_logprobs.push_back(top);
  }
  // The prompt's tokens (the first has no logprob); returns their bytes.
  size_t AddPrompt(const GenerationEvent& e) {
    size_t offset = 0;
    for (size_t i = 0; i < e.prompt.size(); ++i) {
      Add(e.token_text[i], i == 0 ? nullptr : &e.prompt[i], e.top_text[i], offset);
      offset += e.token_text[i].size();
    }
    return offset;
  }
  OJson ToJson() const {
    return {{"tokens", tokens}, {"token_logprobs", token_logprobs},
            {"top_logprobs", top_logprobs}, {"text_offset", text_offset}};
  }
};

// Token ids from a JSON array of integers in [0, vocab_size); false when
// `a` is not such an array.
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

// The chat logprobs entry of one token.
OJson ChatLogprob(const std::string& token, const TokenLogprob& lp,
                  const std::vector<std::string>& top_text) {
  auto bytes = [](const std::string& s) {
    OJson b = OJson::array();
    for (unsigned char c : s) b.push_back(static_cast<int>(c));
    return b;
  };
  OJson top = OJson::array();
  for (size_t i = 0; i < lp.top.size() && i < top_text.size(); ++i) {
    const std::string& t = top_text[i];
    top.push_back({{"token", t}, {"logprob", lp.top[i].second}, {"bytes", bytes(t)}});
  }
  return {{"token", token}, {"logprob", lp.logprob}, {"bytes", bytes(token)},
          {"top_logprobs", top}};
}

}  // namespace

// A validated generation request and how to answer it.
struct Server::Call {
  bool chat = false;
  bool stream = false;
  bool include_usage = false;
  bool echo = false;
  int logprobs = -1;  // completions: top-N per token; chat: top_logprobs when logprobs is true
  std::string id;     // cmpl-... / chatcmpl-...
  int64_t created_s = 0;
  // The prompt as text: what echo repeats, and (for chat: the rendered
  // template) what the completion log keeps for feedback.
  std::string prompt_text;
  std::shared_ptr<const Served> served;
  GenerationRequest request;
};

Server::Server(const Config& config, Store* store, Counters* counters)
    : config_(config), store_(store), counters_(counters),
      completion_log_(static_cast<size_t>(std::max(0, config.serving_completion_log_size)),
                      config.serving_completion_log_ttl_s),
      http_(std::make_unique<GuardedHttpServer>(
          ConnectionLimits{config.serving_max_connections, config.serving_header_timeout_s,
                           config.serving_body_timeout_s},
          [](int status, const std::string& message) {
            const bool refused = status == 503;
            return ErrorBody(message, refused ? "server_error" : "invalid_request_error", "",
                             refused ? "too_many_connections" : "request_timeout")
                .dump();
          },
          [this](const std::string& path, int* status, std::string* body) {
            auto served = current();
            OJson j;
            if (!HealthCheck(path, served ? served->id : "", status, &j)) return false;
            *body = j.dump();
            return true;
          })) {
  Scheduler::Options o;
  o.max_batch = config.serving_max_batch;
  o.max_queue = config.serving_max_queue;
  o.threads = ServingThreads(config);
  o.idle_threads = config.serving_idle_threads > 0
                       ? config.serving_idle_threads
                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // The learner (in this process) counts records and steps as it works.
  o.learner_progress = [counters] {
    return counters->Get("streamlm_records_consumed_total") +
           counters->Get("streamlm_learner_steps_total");
  };
  scheduler_ = std::make_unique<Scheduler>(o, counters);
}

Server::~Server() { Stop(); }

std::shared_ptr<const Server::Served> Server::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return served_;
}

absl::Status Server::RefreshChampion() {
  std::lock_guard<std::mutex> refresh(refresh_mu_);
  auto id = store_->GetAlias(kChampion);
  if (!id.ok()) return id.status();
  auto now = current();
  if (now && now->id == *id) return absl::OkStatus();
  auto snap = store_->GetSnapshot(*id);
  if (!snap.ok()) return snap.status();
  auto model = LanguageModel::Load(snap->meta.model_config, snap->weights, snap->tokenizer);
  if (!model.ok()) return model.status();
  auto next = std::make_shared<Served>();
  next->id = *id;
  next->created_ms = snap->meta.created_ms;
  next->lineage = LineageToJson(snap->meta.lineage);
  next->model = *model;
  const ModelConfig& mc = (*model)->config();
  auto tmpl = ChatTemplate::Parse(mc.chat_template.empty() ? DefaultChatTemplate()
                                                           : mc.chat_template);
  if (tmpl.ok()) {
    next->chat_template = std::make_shared<ChatTemplate>(std::move(*tmpl));
  } else {
    next->chat_template_error = std::string(tmpl.status().message());
    SLM_LOG(kWarning) << "snapshot " << *id << ": chat template cannot be used: "
                      << tmpl.status();
  }
  // Freshness: how long after their Kafka timestamps the records this
  // snapshot was trained on reach serving.
  const Lineage& lin = snap->meta.lineage;
  if (now && lin.newest_record_ms > 0) {
    double seconds = std::max<int64_t>(0, NowMs() - lin.newest_record_ms) / 1e3;
    counters_->Observe("streamlm_freshness_seconds", seconds, Counters::FreshnessBuckets());
    if (lin.oldest_record_ms > 0) {
      counters_->Observe("streamlm_freshness_oldest_seconds",
                         std::max<int64_t>(0, NowMs() - lin.oldest_record_ms) / 1e3,
                         Counters::FreshnessBuckets());
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    served_ = next;
    recent_ids_.push_back(*id);
    while (recent_ids_.size() > 8) recent_ids_.pop_front();
  }
  counters_->Add("streamlm_serving_model_swaps_total", 1);
  SLM_LOG(kInfo) << "serving " << *id << (now ? " (was " + now->id + ")" : "");
  return absl::OkStatus();
}

void Server::OnDecision(const Json& decision) {
  const std::string verdict = decision.value("verdict", "");
  if (verdict != "promoted" && verdict != "rolled_back") return;
  absl::Status s = RefreshChampion();
  if (!s.ok()) SLM_LOG(kWarning) << "serving cannot load new champion: " << s;
}

ModelServingSignals Server::ModelSignals(const std::string& model_id) const {
  std::lock_guard<std::mutex> lock(signals_mu_);
  auto it = signals_.find(model_id);
  return it == signals_.end() ? ModelServingSignals() : it->second;
}

void Server::CountOutcome(const std::string& model_id, bool error) {
  std::lock_guard<std::mutex> lock(signals_mu_);
  ModelServingSignals& m = signals_[model_id];
  ++m.requests;
  if (error) ++m.errors;
}

void Server::CountFeedback(const std::string& model_id, bool negative) {
  if (model_id.empty()) return;
  std::lock_guard<std::mutex> lock(signals_mu_);
  ModelServingSignals& m = signals_[model_id];
  ++m.feedback;
  if (negative) ++m.negative_feedback;
}

void Server::PollLoop() {
  std::unique_lock<std::mutex> lock(poll_mu_);
  while (!stopping_) {
    poll_cv_.wait_for(lock, std::chrono::milliseconds(config_.serving_poll_ms));
    if (stopping_) break;
    lock.unlock();
    absl::Status s = RefreshChampion();
    if (!s.ok() && !absl::IsNotFound(s)) {
      counters_->Add("streamlm_serving_refresh_failures_total", 1);
      SLM_LOG(kWarning) << "champion refresh: " << s;
    }
    lock.lock();
  }
}

bool Server::CheckAdmin(const httplib::Request& req, httplib::Response& res) {
  if (config_.serving_admin_token.empty()) {
    if (loopback_only_) return true;
    SendError(res, 401,
              "the admin API is closed: serving listens on a non-loopback address and "
              "serving.admin_token is not set",
              "", "authentication_error", "admin_token_required");
    return false;
  }
  if (req.get_header_value("Authorization") == "Bearer " + config_.serving_admin_token) {
    return true;
  }
  SendError(res, 401, "admin API needs 'Authorization: Bearer <serving.admin_token>'", "",
            "authentication_error", "invalid_token");
  return false;
}

bool Server::CheckModel(const Json& body, const Served& served, httplib::Response& res) {
  auto it = body.find("model");
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_string()) {
    SendError(res, 400, "'model' must be a string", "model");
    return false;
  }
  const std::string& m = it->get_ref<const std::string&>();
  if (m == served.id || m == "streamlm" || m == kChampion) return true;
  {
    // A client that listed the models just before a swap still gets served.
    std::lock_guard<std::mutex> lock(mu_);
    if (std::find(recent_ids_.begin(), recent_ids_.end(), m) != recent_ids_.end()) return true;
  }
  SendError(res, 404,
            absl::StrCat("model '", m, "' is not served; GET /v1/models lists ", served.id),
            "model", "invalid_request_error", "model_not_found");
  return false;
}

namespace {

// Parses what completions and chat share; false with `res` filled on error.
bool ParseSampling(const Json& body, const Config& config, bool chat, SamplingParams* p,
                   bool* stream, bool* include_usage, httplib::Response& res) {
  int64_t max_tokens = chat ? config.serving_max_tokens : 16, top_k = 0, n = 1, seed = -1;
  double temperature = 1.0, top_p = 1.0, repetition_penalty = 1.0;
  if (!IntField(body, "max_tokens", 0, config.serving_max_tokens, &max_tokens, res) ||
      (chat && !IntField(body, "max_completion_tokens", 0, config.serving_max_tokens,
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

// The body as a JSON object, or false with a 400 naming the problem.
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

}  // namespace

std::shared_ptr<const Server::Served> Server::Begin(const httplib::Request& req, Json* body,
                                                    httplib::Response& res) {
  if (!ParseBody(req, body, res)) return nullptr;
  auto served = current();
  if (!served) {
    SendError(res, 503, "no champion model is loaded yet", "", "server_error");
    return nullptr;
  }
  if (!CheckModel(*body, *served, res)) return nullptr;
  return served;
}

void Server::HandleCompletions(const httplib::Request& req, httplib::Response& res) {
  counters_->Add("streamlm_http_completions_total", 1);
  Json body;
  auto served = Begin(req, &body, res);
  if (!served) return;
  auto call = std::make_shared<Call>();
  call->served = served;
  auto prompt_it = body.find("prompt");
  if (prompt_it == body.end()) {
    SendError(res, 400, "'prompt' is required", "prompt");
    return;
  }
  const Tokenizer& tok = served->model->tokenizer();
  std::vector<int32_t> ids;
  if (prompt_it->is_string()) {
    call->prompt_text = prompt_it->get<std::string>();
    ids = tok.Encode(call->prompt_text);
  } else if (prompt_it->is_array() && prompt_it->size() == 1 && (*prompt_it)[0].is_string()) {
    call->prompt_text = (*prompt_it)[0].get<std::string>();
    ids = tok.Encode(call->prompt_text);
  } else if (!prompt_it->empty() && TokenIds(*prompt_it, tok.vocab_size(), &ids)) {
    call->prompt_text = tok.Decode(ids);
  } else {
    SendError(res, 400,
              absl::StrCat("'prompt' must be a string, an array of one string, or an array of "
                           "token ids in [0, ", tok.vocab_size(), ")"),
              "prompt");
    return;
  }
  SamplingParams& p = call->request.params;
  if (!ParseSampling(body, config_, false, &p, &call->stream, &call->include_usage, res)) return;
  int64_t logprobs = -1;
  if (!IntField(body, "logprobs", 0, 5, &logprobs, res) ||
      !BoolField(body, "echo", &call->echo, res)) {
    return;
  }
  call->logprobs = static_cast<int>(logprobs);
  call->id = absl::StrCat("cmpl-", NowMs(), "-", next_request_++);
  call->request.prompt_ids = std::move(ids);
  call->request.logprobs = call->logprobs;
  if (call->echo && call->logprobs >= 0) call->request.prompt_logprobs = call->logprobs;
  Run(call, res);
}

void Server::HandleChat(const httplib::Request& req, httplib::Response& res) {
  counters_->Add("streamlm_http_chat_completions_total", 1);
  Json body;
  auto served = Begin(req, &body, res);
  if (!served) return;
  auto messages_it = body.find("messages");
  if (messages_it == body.end() || !messages_it->is_array() || messages_it->empty()) {
    SendError(res, 400, "'messages' must be a non-empty array of {role, content}", "messages");
    return;
  }
  // Content may be a string or OpenAI's array of text parts; the template
  // sees strings.
  Json messages = Json::array();
  for (size_t i = 0; i < messages_it->size(); ++i) {
    const Json& m = (*messages_it)[i];
    std::string where = absl::StrCat("messages[", i, "]");
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      SendError(res, 400, where + " must be an object with a string 'role'", where);
      return;
    }
    const std::string role = m["role"];
    if (role != "system" && role != "user" && role != "assistant" && role != "developer") {
      SendError(res, 400,
                absl::StrCat(where, ".role '", role,
                             "' is not one of system, developer, user, assistant"),
                where + ".role");
      return;
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
          return;
        }
        content += part["text"].get<std::string>();
      }
    } else {
      SendError(res, 400, where + ".content must be a string or an array of text parts",
                where + ".content");
      return;
    }
    messages.push_back({{"role", role == "developer" ? "system" : role}, {"content", content}});
  }
  if (!served->chat_template) {
    CountOutcome(served->id, /*error=*/true);
    SendError(res, 500,
              "the served model's chat template cannot be rendered: " +
                  served->chat_template_error,
              "", "server_error", "chat_template_error");
    return;
  }
  const ModelConfig& mc = served->model->config();
  Json vars = {{"bos_token", mc.bos_token}, {"eos_token", mc.eos_token}};
  auto prompt = served->chat_template->Render(messages, /*add_generation_prompt=*/true, vars);
  if (!prompt.ok()) {
    SendError(res, 400, absl::StrCat("chat template: ", prompt.status().message()), "messages",
              "invalid_request_error", "chat_template_error");
    return;
  }
  auto call = std::make_shared<Call>();
  call->chat = true;
  call->served = served;
  call->prompt_text = *prompt;
  SamplingParams& p = call->request.params;
  if (!ParseSampling(body, config_, true, &p, &call->stream, &call->include_usage, res)) return;
  bool logprobs = false;
  int64_t top = 0;
  if (!BoolField(body, "logprobs", &logprobs, res) ||
      !IntField(body, "top_logprobs", 0, 20, &top, res)) {
    return;
  }
  if (body.contains("top_logprobs") && !body["top_logprobs"].is_null() && !logprobs) {
    SendError(res, 400, "'top_logprobs' needs 'logprobs': true", "top_logprobs");
    return;
  }
  call->logprobs = logprobs ? static_cast<int>(top) : -1;
  if (mc.chat_template.empty()) {
    // The default template's transcript: the model's turn ends where it
    // starts writing the user's next one.
    p.stop.push_back("\n\nUser:");
  }
  call->id = absl::StrCat("chatcmpl-", NowMs(), "-", next_request_++);
  // Special tokens of the template (BOS, header markers) are in the text;
  // the tokenizer maps its added tokens to their ids.
  call->request.prompt_ids = served->model->tokenizer().Encode(*prompt);
  call->request.logprobs = call->logprobs;
  Run(call, res);
}

void Server::Run(std::shared_ptr<Call> call, httplib::Response& res) {
  const LanguageModel& model = *call->served->model;
  const int64_t context = model.config().context_tokens;
  const int64_t prompt_tokens = static_cast<int64_t>(call->request.prompt_ids.size());
  if (prompt_tokens > context) {
    SendError(res, 400,
              absl::StrCat("This model's maximum context length is ", context,
                           " tokens, but the prompt has ", prompt_tokens,
                           " tokens. Shorten the prompt."),
              call->chat ? "messages" : "prompt", "invalid_request_error",
              "context_length_exceeded");
    return;
  }
  call->created_s = NowMs() / 1000;
  call->request.model = call->served->model;
  if (config_.serving_request_timeout_s > 0) {
    call->request.deadline_ms =
        NowMs() + static_cast<int64_t>(config_.serving_request_timeout_s * 1000);
  }
  call->request.wake_per_token = call->stream;
  auto submitted = scheduler_->Submit(call->request);
  if (!submitted.ok()) {
    // A full queue is load, not the model's fault.
    if (!absl::IsResourceExhausted(submitted.status())) CountOutcome(call->served->id, true);
    SendStatus(res, submitted.status());
    return;
  }
  std::shared_ptr<GenerationStream> stream = *submitted;
  const std::string object = call->chat ? "chat.completion" : "text_completion";
  auto usage = [prompt_tokens](int completion) {
    return OJson{{"prompt_tokens", prompt_tokens},
                {"completion_tokens", completion},
                {"total_tokens", prompt_tokens + completion}};
  };
  // Waits for the next event, giving up when the scheduler is gone.
  auto next = [stream](GenerationEvent* e) {
    for (int waited_s = 0; waited_s < 3600; ++waited_s) {
      if (stream->Next(e, 1000)) return true;
    }
    return false;
  };

  if (!call->stream) {
    std::string text;
    LegacyLogprobs legacy;
    OJson chat_logprobs = OJson::array();
    if (call->echo) text = call->prompt_text;
    const size_t echo_bytes = text.size();
    GenerationEvent e;
    std::string pending_token_text;
    while (true) {
      if (!next(&e)) {
        CountOutcome(call->served->id, /*error=*/true);
        SendError(res, 503, "serving stopped before the answer was complete", "", "server_error");
        stream->Cancel();
        return;
      }
      if (e.kind == GenerationEvent::kError) {
        if (!absl::IsResourceExhausted(e.error)) CountOutcome(call->served->id, /*error=*/true);
        SendStatus(res, e.error);
        return;
      }
      if (e.kind == GenerationEvent::kPrompt) {
        legacy.AddPrompt(e);
        continue;
      }
      if (e.kind == GenerationEvent::kToken) {
        if (call->logprobs >= 0) {
          if (call->chat) {
            chat_logprobs.push_back(ChatLogprob(e.token_text[0], e.logprob, e.top_text[0]));
          } else {
            legacy.Add(e.token_text[0], &e.logprob, e.top_text[0], text.size());
          }
        }
        text += e.text;
        continue;
      }
      text += e.text;  // kDone
      OJson choice;
      if (call->chat) {
        choice = {{"index", 0},
                  {"message", {{"role", "assistant"}, {"content", text}}},
                  {"logprobs", call->logprobs >= 0 ? OJson{{"content", chat_logprobs}} : OJson()},
                  {"finish_reason", e.finish_reason}};
      } else {
        choice = {{"text", text},
                  {"index", 0},
                  {"logprobs", call->logprobs >= 0 ? legacy.ToJson() : OJson()},
                  {"finish_reason", e.finish_reason}};
      }
      counters_->Add("streamlm_http_completion_tokens_total", e.completion_tokens);
      CountOutcome(call->served->id, /*error=*/false);
      RecordCompletion(*call, text.substr(echo_bytes));
      SendJson(res, 200,
               OJson{{"id", call->id},
                {"object", object},
                {"created", call->created_s},
                {"model", call->served->id},
                {"system_fingerprint", call->served->id},
                {"choices", OJson::array({choice})},
                {"usage", usage(e.completion_tokens)}});
      return;
    }
  }

  // Server-sent events in OpenAI's chunk format.
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  const std::string chunk_object = call->chat ? "chat.completion.chunk" : "text_completion";
  auto chunk = [call, chunk_object](OJson choices) {
    return OJson{{"id", call->id},
                {"object", chunk_object},
                {"created", call->created_s},
                {"model", call->served->id},
                {"system_fingerprint", call->served->id},
                {"choices", std::move(choices)}};
  };
  auto state = std::make_shared<std::pair<bool, size_t>>(false, 0);  // role sent, text bytes
  auto response = std::make_shared<std::string>();  // generated text sent so far (no echo)
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, call, stream, chunk, usage, state, response, next](size_t,
                                                                httplib::DataSink& sink) {
        auto send = [&sink](const OJson& j) {
          std::string line =
              "data: " + j.dump(-1, ' ', false, OJson::error_handler_t::replace) + "\n\n";
          return sink.write(line.data(), line.size());
        };
        auto text_choice = [&](const std::string& text, OJson logprobs, OJson finish) {
          if (call->chat) {
            OJson delta = OJson::object();
            if (!state->first) {
              delta["role"] = "assistant";
              state->first = true;
            }
            if (!text.empty() || finish.is_null()) delta["content"] = text;
            return OJson{{"index", 0}, {"delta", delta}, {"logprobs", logprobs},
                        {"finish_reason", finish}};
          }
          return OJson{{"text", text}, {"index", 0}, {"logprobs", logprobs},
                      {"finish_reason", finish}};
        };
        if (call->chat && !state->first) {
          if (!send(chunk(OJson::array({text_choice("", OJson(), OJson())})))) {
            stream->Cancel();
            return false;
          }
        }
        if (call->echo && !call->chat && state->second == 0 && !call->prompt_text.empty()) {
          // The prompt's logprobs come first when asked for; without them the
          // echoed prompt is the first chunk.
          if (call->request.prompt_logprobs < 0 &&
              !send(chunk(OJson::array({text_choice(call->prompt_text, OJson(), OJson())})))) {
            stream->Cancel();
            return false;
          }
        }
        GenerationEvent e;
        while (true) {
          if (!next(&e)) {
            stream->Cancel();
            return false;
          }
          if (e.kind == GenerationEvent::kError) {
            CountOutcome(call->served->id, /*error=*/true);
            send(ErrorBody(std::string(e.error.message()), "server_error", "",
                           std::string(absl::StatusCodeToString(e.error.code()))));
            sink.write("data: [DONE]\n\n", 14);
            sink.done();
            return true;
          }
          if (e.kind == GenerationEvent::kPrompt) {
            LegacyLogprobs legacy;
            state->second += legacy.AddPrompt(e);
            if (!send(chunk(OJson::array({text_choice(call->prompt_text, legacy.ToJson(), OJson())})))) {
              stream->Cancel();
              return false;
            }
            continue;
          }
          if (e.kind == GenerationEvent::kToken) {
            // A chunk per token even when its text is held back (an
            // incomplete character or stop string): a client that went
            // away is noticed at the next write, and no generation runs on
            // for nobody.
            OJson lp;
            if (call->logprobs >= 0) {
              if (call->chat) {
                lp = {{"content", OJson::array({ChatLogprob(e.token_text[0], e.logprob,
                                                           e.top_text[0])})}};
              } else {
                LegacyLogprobs legacy;
                legacy.Add(e.token_text[0], &e.logprob, e.top_text[0], state->second);
                lp = legacy.ToJson();
              }
            }
            state->second += e.text.size();
            *response += e.text;
            if (!send(chunk(OJson::array({text_choice(e.text, lp, OJson())})))) {
              stream->Cancel();  // the client went away: stop generating
              return false;
            }
            continue;
          }
          // kDone. Recorded before the client can see the end, so feedback
          // sent right after [DONE] finds it.
          *response += e.text;
          CountOutcome(call->served->id, /*error=*/false);
          RecordCompletion(*call, *response);
          if (!e.text.empty()) {
            state->second += e.text.size();
            if (!send(chunk(OJson::array({text_choice(e.text, OJson(), OJson())})))) {
              stream->Cancel();
              return false;
            }
          }
          send(chunk(OJson::array({text_choice("", OJson(), e.finish_reason)})));
          if (call->include_usage) {
            OJson u = chunk(OJson::array());
            u["usage"] = usage(e.completion_tokens);
            send(u);
          }
          counters_->Add("streamlm_http_completion_tokens_total", e.completion_tokens);
          sink.write("data: [DONE]\n\n", 14);
          sink.done();
          return true;
        }
      },
      [stream](bool success) {
        if (!success) stream->Cancel();
      });
}

void Server::HandleTokenize(const httplib::Request& req, httplib::Response& res) {
  Json body;
  auto served = Begin(req, &body, res);
  if (!served) return;
  std::string text;
  if (body.contains("prompt") && body["prompt"].is_string()) {
    text = body["prompt"];
  } else if (body.contains("messages")) {
    SendError(res, 400, "tokenize takes 'prompt' (a string); render chat messages yourself",
              "messages");
    return;
  } else {
    SendError(res, 400, "'prompt' must be a string", "prompt");
    return;
  }
  std::vector<int32_t> ids = served->model->tokenizer().Encode(text);
  SendJson(res, 200, {{"tokens", ids},
                      {"count", ids.size()},
                      {"max_model_len", served->model->config().context_tokens},
                      {"model", served->id}});
}

void Server::HandleDetokenize(const httplib::Request& req, httplib::Response& res) {
  Json body;
  auto served = Begin(req, &body, res);
  if (!served) return;
  const Tokenizer& tok = served->model->tokenizer();
  auto it = body.find("tokens");
  if (it == body.end() || !it->is_array()) {
    SendError(res, 400, "'tokens' must be an array of token ids", "tokens");
    return;
  }
  std::vector<int32_t> ids;
  if (!TokenIds(*it, tok.vocab_size(), &ids)) {
    SendError(res, 400,
              absl::StrCat("'tokens' must hold integers in [0, ", tok.vocab_size(), ")"),
              "tokens");
    return;
  }
  SendJson(res, 200, {{"prompt", tok.Decode(ids)}, {"model", served->id}});
}

void Server::RecordCompletion(const Call& call, const std::string& response) {
  if (completion_log_.capacity() == 0) return;
  CompletionRecord r;
  r.id = call.id;
  r.prompt = call.prompt_text;
  r.response = response;
  r.snapshot = call.served->id;
  absl::Status s = completion_log_.Add(std::move(r));
  if (!s.ok()) SLM_LOG(kWarning) << "completion log: " << s;
}

void Server::HandleFeedback(const httplib::Request& req, httplib::Response& res) {
  auto reject = [&](int status, const std::string& reason, const std::string& message,
                    const std::string& param, const std::string& type = "invalid_request_error",
                    const std::string& code = "") {
    counters_->Add("streamlm_feedback_api_rejected_total", 1, reason);
    SendError(res, status, message, param, type, code);
  };
  if (feedback_producer_ == nullptr || completion_log_.capacity() == 0) {
    reject(503, "unavailable",
           feedback_producer_ == nullptr
               ? "feedback is not accepted: this server has no Kafka producer for the "
                 "feedback topic"
               : "feedback is not accepted: completions are not recorded "
                 "(serving.completion_log_size is 0)",
           "", "server_error", "feedback_unavailable");
    return;
  }
  if (std::string bad = Utf8Problem(req.body); !bad.empty()) {
    reject(400, "invalid_utf8", bad, "");
    return;
  }
  auto parsed = ParseJson(req.body);
  if (!parsed.ok() || !parsed->is_object()) {
    reject(400, "invalid_json",
           parsed.ok() ? "request body must be a JSON object"
                       : absl::StrCat("request body is not valid JSON: ",
                                      parsed.status().message()),
           "");
    return;
  }
  const Json body = std::move(*parsed);
  auto field = [&body](const char* name) -> const Json* {
    auto it = body.find(name);
    return it == body.end() || it->is_null() ? nullptr : &*it;
  };
  const Json* id_field = field("completion_id");
  if (id_field == nullptr || !id_field->is_string() || id_field->get<std::string>().empty()) {
    reject(400, "invalid_completion_id",
           "'completion_id' must be the id of a completion (a string, e.g. 'cmpl-...')",
           "completion_id");
    return;
  }
  const std::string completion_id = id_field->get<std::string>();
  const Json* user = field("user");
  if (user != nullptr && !user->is_string()) {
    reject(400, "invalid_user", "'user' must be a string", "user");
    return;
  }
  const Json* rating = field("rating");
  const Json* correction = field("correction");
  const Json* preferred_over = field("preferred_over");
  const int kinds = (rating != nullptr) + (correction != nullptr) + (preferred_over != nullptr);
  if (kinds != 1) {
    reject(400, "invalid_kind",
           absl::StrCat("feedback needs exactly one of 'rating' (1 or -1), 'correction' (the "
                        "better response) or 'preferred_over' (the id of a worse completion "
                        "of the same prompt); got ",
                        kinds),
           "");
    return;
  }
  if (rating != nullptr && !(rating->is_number_integer() &&
                             (rating->get<int64_t>() == 1 || rating->get<int64_t>() == -1))) {
    reject(400, "invalid_rating", "'rating' must be 1 (good) or -1 (bad)", "rating");
    return;
  }
  if (correction != nullptr) {
    if (!correction->is_string()) {
      reject(400, "invalid_correction", "'correction' must be a string: the better response",
             "correction");
      return;
    }
    if (correction->get_ref<const std::string&>().find_first_not_of(" \t\r\n") ==
        std::string::npos) {
      reject(400, "invalid_correction", "'correction' must not be empty", "correction");
      return;
    }
  }
  if (preferred_over != nullptr) {
    if (!preferred_over->is_string() || preferred_over->get<std::string>().empty()) {
      reject(400, "invalid_preferred_over",
             "'preferred_over' must be the id of another completion (a string)",
             "preferred_over");
      return;
    }
    if (preferred_over->get<std::string>() == completion_id) {
      reject(400, "invalid_preferred_over",
             "'preferred_over' names the same completion as 'completion_id'; it must be "
             "another completion of the same prompt",
             "preferred_over");
      return;
    }
  }
  // The completion(s) the feedback is about.
  auto lookup = [&](const std::string& id, const char* param, CompletionRecord* out) {
    auto got = completion_log_.Get(id);
    if (got.ok()) {
      *out = std::move(*got);
      return true;
    }
    if (CompletionLog::IsExpired(got.status())) {
      reject(410, "completion_expired", std::string(got.status().message()), param,
             "invalid_request_error", "completion_expired");
    } else {
      reject(404, "completion_not_found", std::string(got.status().message()), param,
             "invalid_request_error", "completion_not_found");
    }
    return false;
  };
  CompletionRecord c;
  if (!lookup(completion_id, "completion_id", &c)) return;
  std::string rejected_snapshot;  // a preference: who answered the rejected one
  // The contract's field order (DESIGN.md "Data contracts").
  OJson record = {{"prompt", c.prompt}};
  std::string kind;
  if (rating != nullptr) {
    kind = "rating";
    record["response"] = c.response;
    record["rating"] = rating->get<int64_t>();
  } else if (correction != nullptr) {
    kind = "correction";
    const std::string& text = correction->get_ref<const std::string&>();
    if (text == c.response) {
      reject(400, "correction_unchanged",
             "'correction' is the same text as the completion's response; send the better "
             "response, or a rating",
             "correction");
      return;
    }
    record["response"] = c.response;
    record["correction"] = text;
  } else {
    kind = "preference";
    CompletionRecord other;
    if (!lookup(preferred_over->get<std::string>(), "preferred_over", &other)) return;
    if (other.prompt != c.prompt) {
      reject(400, "prompt_mismatch",
             absl::StrCat("'preferred_over' must name a completion of the same prompt: the "
                          "prompts of ", completion_id, " and ", other.id,
                          " differ (for chat: the rendered conversations)"),
             "preferred_over");
      return;
    }
    if (other.response == c.response) {
      reject(400, "identical_responses",
             absl::StrCat("completions ", completion_id, " and ", other.id,
                          " have the same response text: there is nothing to prefer"),
             "preferred_over");
      return;
    }
    record["chosen"] = c.response;
    record["rejected"] = other.response;
    rejected_snapshot = other.snapshot;
  }
  record["completion_id"] = completion_id;
  record["snapshot"] = c.snapshot;
  if (user != nullptr) record["user"] = user->get<std::string>();

  // One record keyed by the completion id, answered once delivered. The
  // producer is shared (the evaluator writes decisions with it), so a
  // delivery failure during this flush is taken as ours: the client may
  // retry, and a duplicate is possible.
  const int64_t failures_before = feedback_producer_->delivery_failures();
  absl::Status s = feedback_producer_->Produce(
      config_.topic_feedback, completion_id,
      record.dump(-1, ' ', false, OJson::error_handler_t::replace));
  if (s.ok()) s = feedback_producer_->Flush(feedback_flush_timeout_ms_);
  if (s.ok() && feedback_producer_->delivery_failures() > failures_before) {
    s = absl::UnavailableError(
        absl::StrCat("delivery to ", config_.topic_feedback, " failed (see the server log)"));
  }
  if (!s.ok()) {
    reject(503, "produce_failed",
           absl::StrCat("feedback could not be written to Kafka: ", s.message()), "",
           "server_error", "feedback_unavailable");
    return;
  }
  counters_->Add("streamlm_feedback_received_total", 1, "kind=" + kind);
  // For the rollback monitor: feedback about the model that answered.
  if (kind == "rating") {
    CountFeedback(c.snapshot, rating->get<int64_t>() < 0);
  } else if (kind == "preference") {
    CountFeedback(c.snapshot, /*negative=*/false);
    CountFeedback(rejected_snapshot, /*negative=*/true);
  }
  SendJson(res, 200, OJson{{"object", "feedback"},
                           {"id", completion_id},
                           {"topic", config_.topic_feedback},
                           {"kind", kind}});
}

absl::Status Server::Start() {
  size_t colon = config_.http.rfind(':');
  std::string host = config_.http.substr(0, colon);
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(config_.http.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError("config key 'http': expected HOST:PORT, got '" +
                                      config_.http + "'");
  }
  loopback_only_ = IsLoopback(host);
  if (!loopback_only_ && config_.serving_admin_token.empty()) {
    SLM_LOG(kWarning) << "serving listens on " << config_.http
                      << " without serving.admin_token: the admin API refuses every request";
  }
  // A descriptor per connection: raise the soft limit (as Go's runtime
  // does) so serving.max_connections is reachable; warn when it is not.
  rlimit files;
  const rlim_t wanted = static_cast<rlim_t>(config_.serving_max_connections) + 256;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < wanted) {
    files.rlim_cur = std::min(wanted, files.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &files) != 0) getrlimit(RLIMIT_NOFILE, &files);
    if (files.rlim_cur < wanted) {
      SLM_LOG(kWarning) << "open files limit " << files.rlim_cur
                        << " is below serving.max_connections + 256 (" << wanted
                        << "): raise `ulimit -n` or lower serving.max_connections";
    }
  }
  absl::Status s = RefreshChampion();
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  httplib::Server& h = *http_;
  // Each connection has a thread of its own (GuardedHttpServer), up to
  // serving.max_connections: health checks never wait for a worker.
  h.set_payload_max_length(static_cast<size_t>(config_.serving_max_body_bytes));
  // cpp-httplib's default also sets SO_REUSEPORT, which lets a second server
  // share the port silently; a port in use must be an error.
  // Streamed chunks are small writes: without TCP_NODELAY, Nagle's
  // algorithm holds them back (measured: ~85 ms to the first token).
  h.set_tcp_nodelay(true);
  h.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // Health checks never wait for generation: every connection has its own
  // thread, and at the connection limit GuardedHttpServer still answers them.
  auto health = [this](const httplib::Request& req, httplib::Response& res) {
    auto served = current();
    int status = 500;
    OJson body;
    HealthCheck(req.path, served ? served->id : "", &status, &body);
    SendJson(res, status, body);
  };
  h.Get("/healthz", health);
  h.Get("/readyz", health);
  h.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    Json data = Json::array();
    if (auto served = current()) {
      std::string root = served->id;
      // Walk the lineage to the bootstrap or imported ancestor.
      std::string parent = served->lineage.value("parent", "");
      for (int hops = 0; !parent.empty() && hops < 10000; ++hops) {
        root = parent;
        auto meta = store_->GetSnapshotMeta(parent);
        if (!meta.ok()) break;
        parent = meta->lineage.parent;
      }
      const ModelConfig& mc = served->model->config();
      data.push_back({{"id", served->id},
                      {"object", "model"},
                      {"created", served->created_ms / 1000},
                      {"owned_by", "streamlm"},
                      {"root", root},
                      {"parent", served->lineage.value("parent", "").empty()
                                     ? Json()
                                     : Json(served->lineage["parent"])},
                      {"max_model_len", mc.context_tokens},
                      {"family", mc.family},
                      {"lineage", served->lineage}});
    }
    SendJson(res, 200, {{"object", "list"}, {"data", data}});
  });
  h.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleCompletions(req, res);
  });
  h.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleChat(req, res);
  });
  h.Post("/v1/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    HandleTokenize(req, res);
  });
  h.Post("/v1/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    HandleDetokenize(req, res);
  });
  // Not an admin route: any client may rate the answers it got.
  h.Post("/v1/feedback", [this](const httplib::Request& req, httplib::Response& res) {
    HandleFeedback(req, res);
  });
  RegisterAdminApi(
      h, store_,
      [this](const httplib::Request& q, httplib::Response& s) { return CheckAdmin(q, s); },
      [this] { return RefreshChampion(); },
      [this](const Json& decision) {
        // A manual rollback's record goes where every decision goes.
        if (feedback_producer_ == nullptr) return;
        absl::Status s = feedback_producer_->Produce(
            config_.topic_decisions, decision.value("candidate", ""), decision.dump());
        if (s.ok()) s = feedback_producer_->Flush(10000);
        if (!s.ok()) SLM_LOG(kWarning) << "cannot publish rollback decision: " << s;
      });
  RegisterDashboard(h, store_, [this](const httplib::Request& q, httplib::Response& s) {
    return CheckAdmin(q, s);
  });
  h.Get("/v1/admin/decisions", [this](const httplib::Request& req, httplib::Response& res) {
    if (!CheckAdmin(req, res)) return;
    size_t limit = 100;
    if (req.has_param("limit") &&
        !absl::SimpleAtoi(req.get_param_value("limit"), &limit)) {
      SendError(res, 400, "'limit' must be a non-negative integer", "limit");
      return;
    }
    auto decisions = store_->ListDecisions(limit);
    if (!decisions.ok()) {
      SendError(res, 500, std::string(decisions.status().message()), "", "server_error");
      return;
    }
    SendJson(res, 200, Json(*decisions));
  });
  h.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    counters_->Set("streamlm_num_requests_running", scheduler_->running());
    counters_->Set("streamlm_num_requests_waiting", scheduler_->waiting());
    const auto& guard = static_cast<const GuardedHttpServer&>(*http_);
    counters_->Set("streamlm_http_connections_open", guard.open_connections());
    counters_->Set("streamlm_http_connections_refused_total",
                   static_cast<double>(guard.refused_connections()));
    counters_->Set("streamlm_http_health_answered_at_limit_total",
                   static_cast<double>(guard.health_answered_at_limit()));
    counters_->Set("streamlm_http_header_timeouts_total",
                   static_cast<double>(guard.header_timeouts()));
    counters_->Set("streamlm_http_body_timeouts_total",
                   static_cast<double>(guard.body_timeouts()));
    res.set_content(counters_->RenderPrometheus(), "text/plain; version=0.0.4");
  });
  // Errors raised before a handler runs (unknown route, body over the
  // limit) get OpenAI's error object too.
  h.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413) {
      if (req.path == "/v1/feedback") {
        counters_->Add("streamlm_feedback_api_rejected_total", 1, "request_too_large");
      }
      SendError(res, 413,
                absl::StrCat("request body is larger than serving.max_body_bytes (",
                             config_.serving_max_body_bytes, " bytes)"),
                "", "invalid_request_error", "request_too_large");
    } else if (res.status == 404 && !AllowedMethods(req.path).empty()) {
      const std::string allow = AllowedMethods(req.path);
      res.set_header("Allow", allow);
      SendError(res, 405,
                absl::StrCat("method ", req.method, " is not allowed on ", req.path,
                             "; it takes ", allow),
                "", "invalid_request_error", "method_not_allowed");
    } else if (res.status == 404) {
      SendError(res, 404, absl::StrCat("no route ", req.method, " ", req.path), "",
                "invalid_request_error", "not_found");
    } else if (res.status == 405) {
      SendError(res, 405, absl::StrCat("method ", req.method, " is not allowed on ", req.path));
    } else {
      SendError(res, res.status, absl::StrCat("HTTP ", res.status));
    }
  });
  h.set_exception_handler([](const httplib::Request&, httplib::Response& res,
                             std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendError(res, 500, what, "", "server_error");
  });

  port_ = port == 0 ? h.bind_to_any_port(host) : (h.bind_to_port(host, port) ? port : -1);
  if (port_ <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", config_.http, " (config key http / --http): address in use or invalid"));
  }
  if (!static_cast<GuardedHttpServer&>(h).WidenListenBacklog()) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", config_.http));
  }
  scheduler_->Start();
  listen_thread_ = std::thread([this] { http_->listen_after_bind(); });
  poll_thread_ = std::thread([this] { PollLoop(); });
  return absl::OkStatus();
}

void Server::Stop() {
  {
    std::lock_guard<std::mutex> lock(poll_mu_);
    stopping_ = true;
  }
  poll_cv_.notify_all();
  if (scheduler_) scheduler_->Stop();
  if (http_) http_->stop();
  if (listen_thread_.joinable()) listen_thread_.join();
  if (poll_thread_.joinable()) poll_thread_.join();
}

}  // namespace streamlm
