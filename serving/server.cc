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

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/kafka.h"
#include "common/log.h"
#include "model/language_model.h"
#include "serving/admin_api.h"
#include "serving/chat_template.h"
#include "serving/dashboard.h"
#include "serving/guarded_http_server.h"
#include "serving/request_parse.h"
#include "serving/scheduler.h"

namespace streamlm {
namespace {

// Response bodies keep their keys in the order written (OpenAI's field order;
// top_logprobs best first).
using OJson = nlohmann::ordered_json;

// Request bodies and error answers (serving/request_parse.h).
using request_parse::ErrorBody;
using request_parse::FeedbackRejection;
using request_parse::ParseBody;
using request_parse::ParseChatLogprobs;
using request_parse::ParseChatMessages;
using request_parse::ParseCompletionLogprobs;
using request_parse::ParseCompletionPrompt;
using request_parse::ParseDetokenizeTokens;
using request_parse::ParseFeedbackBody;
using request_parse::ParseSampling;
using request_parse::ParseTokenizePrompt;
using request_parse::SendError;
using request_parse::SendJson;

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
  if (absl::StartsWith(path, "/v1/admin/snapshots/")) return "GET, HEAD";
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
      completion_log_(static_cast<size_t>(std::max(0, config.serving.completion_log_size)),
                      config.serving.completion_log_ttl_s),
      http_(std::make_unique<GuardedHttpServer>(
          ConnectionLimits{config.serving.max_connections, config.serving.header_timeout_s,
                           config.serving.body_timeout_s},
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
  o.max_batch = config.serving.max_batch;
  o.max_queue = config.serving.max_queue;
  o.threads = ServingThreads(config);
  o.idle_threads = config.serving.idle_threads > 0
                       ? config.serving.idle_threads
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
  // Errors name the snapshot; what is served stays until one loads.
  auto snap = store_->GetSnapshot(*id);
  if (!snap.ok()) {
    return absl::Status(snap.status().code(),
                        absl::StrCat("champion snapshot ", *id, ": ", snap.status().message()));
  }
  auto model = LanguageModel::Load(snap->meta.model_config, snap->weights, snap->tokenizer);
  if (!model.ok()) {
    return absl::Status(model.status().code(), absl::StrCat("champion snapshot ", *id,
                                                            ": ", model.status().message()));
  }
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
  if (!s.ok()) {
    auto kept = current();
    counters_->Add("streamlm_serving_refresh_failures_total", 1);
    SLM_LOG(kWarning) << "serving cannot load the new champion after a " << verdict
                      << " decision; keeps serving " << (kept ? kept->id : "no model")
                      << ": " << s;
  }
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
    poll_cv_.wait_for(lock, std::chrono::milliseconds(config_.serving.poll_ms));
    if (stopping_) break;
    lock.unlock();
    absl::Status s = RefreshChampion();
    // Not found before anything is served: no champion yet, nothing wrong.
    auto kept = current();
    if (!s.ok() && (kept != nullptr || !absl::IsNotFound(s))) {
      counters_->Add("streamlm_serving_refresh_failures_total", 1);
      SLM_LOG(kWarning) << "champion refresh failed; serving keeps "
                        << (kept ? kept->id : "no model") << ": " << s;
    }
    lock.lock();
  }
}

bool Server::CheckAdmin(const httplib::Request& req, httplib::Response& res) {
  return CheckAdminRequest(config_.serving.admin_token, loopback_only_, req, res);
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
  const Tokenizer& tok = served->model->tokenizer();
  std::vector<int32_t> ids;
  bool is_text = false;
  if (!ParseCompletionPrompt(body, tok.vocab_size(), &is_text, &call->prompt_text, &ids, res)) {
    return;
  }
  if (is_text) {
    ids = tok.Encode(call->prompt_text);
  } else {
    call->prompt_text = tok.Decode(ids);
  }
  SamplingParams& p = call->request.params;
  if (!ParseSampling(body, config_, false, &p, &call->stream, &call->include_usage, res)) return;
  if (!ParseCompletionLogprobs(body, &call->logprobs, &call->echo, res)) return;
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
  Json messages;
  if (!ParseChatMessages(body, &messages, res)) return;
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
  if (!ParseChatLogprobs(body, &call->logprobs, res)) return;
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
  if (config_.serving.request_timeout_s > 0) {
    call->request.deadline_ms =
        NowMs() + static_cast<int64_t>(config_.serving.request_timeout_s * 1000);
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
  if (!ParseTokenizePrompt(body, &text, res)) return;
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
  std::vector<int32_t> ids;
  if (!ParseDetokenizeTokens(body, tok.vocab_size(), &ids, res)) return;
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
  Json body;
  FeedbackRejection why;
  if (!ParseFeedbackBody(req.body, &body, &why)) {
    reject(why.status, why.reason, why.message, why.param);
    return;
  }
  // Valid as ParseFeedbackBody promises: exactly one kind, well-typed fields.
  auto field = [&body](const char* name) -> const Json* {
    auto it = body.find(name);
    return it == body.end() || it->is_null() ? nullptr : &*it;
  };
  const std::string completion_id = field("completion_id")->get<std::string>();
  const Json* user = field("user");
  const Json* rating = field("rating");
  const Json* correction = field("correction");
  const Json* preferred_over = field("preferred_over");
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
  std::string host;
  int port = 0;
  if (absl::Status s = ParseHttpAddress(config_.http, &host, &port); !s.ok()) return s;
  loopback_only_ = IsLoopbackHost(host);
  if (!loopback_only_ && config_.serving.admin_token.empty()) {
    SLM_LOG(kWarning) << "serving listens on " << config_.http
                      << " without serving.admin_token: the admin API refuses every request";
  }
  // A descriptor per connection: raise the soft limit (as Go's runtime
  // does) so serving.max_connections is reachable; warn when it is not.
  rlimit files;
  const rlim_t wanted = static_cast<rlim_t>(config_.serving.max_connections) + 256;
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
  h.set_payload_max_length(static_cast<size_t>(config_.serving.max_body_bytes));
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
        // A manual promotion's or rollback's record goes where every decision goes.
        if (feedback_producer_ == nullptr) return;
        absl::Status s = feedback_producer_->Produce(
            config_.topic_decisions, decision.value("candidate", ""), decision.dump());
        if (s.ok()) s = feedback_producer_->Flush(10000);
        if (!s.ok()) SLM_LOG(kWarning) << "cannot publish manual decision: " << s;
      });
  RegisterDashboard(h, store_, [this](const httplib::Request& q, httplib::Response& s) {
    return CheckAdmin(q, s);
  });
  RegisterSnapshotTransfer(h, store_, [this](const httplib::Request& q, httplib::Response& s) {
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
                             config_.serving.max_body_bytes, " bytes)"),
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
