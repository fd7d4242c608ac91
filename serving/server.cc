#include "serving/server.h"

#include <httplib.h>

#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "model/language_model.h"

namespace streamlm {
namespace {

void SendJson(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void SendError(httplib::Response& res, int status, const std::string& message,
               const std::string& param = "",
               const std::string& type = "invalid_request_error") {
  SendJson(res, status,
           {{"error", {{"message", message},
                       {"type", type},
                       {"param", param.empty() ? Json(nullptr) : Json(param)},
                       {"code", nullptr}}}});
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

}  // namespace

Server::Server(const Config& config, Store* store, Counters* counters)
    : config_(config), store_(store), counters_(counters),
      http_(std::make_unique<httplib::Server>()) {}

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
  next->model = *model;
  {
    std::lock_guard<std::mutex> lock(mu_);
    served_ = next;
  }
  counters_->Add("streamlm_serving_model_swaps_total", 1);
  SLM_LOG(kInfo) << "serving " << *id << (now ? " (was " + now->id + ")" : "");
  return absl::OkStatus();
}

void Server::OnDecision(const Json& decision) {
  if (decision.value("verdict", "") != "promoted") return;
  absl::Status s = RefreshChampion();
  if (!s.ok()) SLM_LOG(kWarning) << "serving cannot load new champion: " << s;
}

void Server::PollLoop() {
  std::unique_lock<std::mutex> lock(poll_mu_);
  while (!stopping_) {
    poll_cv_.wait_for(lock, std::chrono::milliseconds(config_.serving_poll_ms));
    if (stopping_) break;
    lock.unlock();
    absl::Status s = RefreshChampion();
    if (!s.ok()) SLM_LOG(kDebug) << "champion refresh: " << s;
    lock.lock();
  }
}

bool Server::CheckAdmin(const httplib::Request& req, httplib::Response& res) {
  if (config_.serving_admin_token.empty()) return true;
  if (req.get_header_value("Authorization") == "Bearer " + config_.serving_admin_token) {
    return true;
  }
  SendError(res, 401, "admin API needs 'Authorization: Bearer <serving.admin_token>'", "",
            "authentication_error");
  return false;
}

void Server::HandleCompletions(const httplib::Request& req, httplib::Response& res) {
  counters_->Add("streamlm_http_completions_total", 1);
  auto body = ParseJson(req.body);
  if (!body.ok() || !body->is_object()) {
    SendError(res, 400, "request body must be a JSON object");
    return;
  }
  auto served = current();
  if (!served) {
    SendError(res, 503, "no champion model is loaded yet", "", "server_error");
    return;
  }
  auto model_it = body->find("model");
  if (model_it != body->end() && !model_it->is_null()) {
    if (!model_it->is_string()) {
      SendError(res, 400, "'model' must be a string", "model");
      return;
    }
    const std::string& m = model_it->get_ref<const std::string&>();
    if (m != served->id && m != "streamlm" && m != kChampion) {
      SendError(res, 404,
                absl::StrCat("model '", m, "' is not served; GET /v1/models lists ",
                             served->id),
                "model", "model_not_found");
      return;
    }
  }
  auto prompt_it = body->find("prompt");
  std::string prompt;
  if (prompt_it == body->end()) {
    SendError(res, 400, "'prompt' is required", "prompt");
    return;
  }
  if (prompt_it->is_string()) {
    prompt = prompt_it->get<std::string>();
  } else if (prompt_it->is_array() && prompt_it->size() == 1 && (*prompt_it)[0].is_string()) {
    prompt = (*prompt_it)[0].get<std::string>();
  } else {
    SendError(res, 400, "'prompt' must be a string (or an array of one string)", "prompt");
    return;
  }
  if (body->value("stream", false) == true) {
    SendError(res, 400, "'stream': true is not supported yet; omit it", "stream");
    return;
  }
  SamplingParams p;
  int64_t max_tokens = 16, top_k = 0, n = 1, seed = -1;
  double temperature = 1.0, top_p = 1.0, repetition_penalty = 1.0;
  if (!IntField(*body, "max_tokens", 0, config_.serving_max_tokens, &max_tokens, res) ||
      !IntField(*body, "top_k", 0, 1 << 20, &top_k, res) ||
      !IntField(*body, "n", 1, 1, &n, res) ||
      !IntField(*body, "seed", 0, INT64_MAX, &seed, res) ||
      !NumberField(*body, "temperature", 0, 2, &temperature, res) ||
      !NumberField(*body, "top_p", 1e-9, 1, &top_p, res) ||
      !NumberField(*body, "repetition_penalty", 1e-3, 100, &repetition_penalty, res)) {
    return;
  }
  auto stop_it = body->find("stop");
  if (stop_it != body->end() && !stop_it->is_null()) {
    if (stop_it->is_string()) {
      p.stop.push_back(stop_it->get<std::string>());
    } else if (stop_it->is_array() && stop_it->size() <= 4 &&
               std::all_of(stop_it->begin(), stop_it->end(),
                           [](const Json& s) { return s.is_string(); })) {
      for (const Json& s : *stop_it) p.stop.push_back(s.get<std::string>());
    } else {
      SendError(res, 400, "'stop' must be a string or an array of up to 4 strings", "stop");
      return;
    }
  }
  p.max_tokens = static_cast<int>(max_tokens);
  p.temperature = temperature;
  p.top_k = static_cast<int>(top_k);
  p.top_p = top_p;
  p.repetition_penalty = repetition_penalty;
  if (seed >= 0) {
    p.has_seed = true;
    p.seed = static_cast<uint64_t>(seed);
  }
  Completion c = served->model->Generate(prompt, p);
  int64_t now_s = NowMs() / 1000;
  int completion_tokens = static_cast<int>(c.ids.size());
  counters_->Add("streamlm_http_completion_tokens_total", completion_tokens);
  SendJson(res, 200,
           {{"id", absl::StrCat("cmpl-", NowMs(), "-", counters_->Get("streamlm_http_completions_total"))},
            {"object", "text_completion"},
            {"created", now_s},
            {"model", served->id},
            {"choices", {{{"text", c.text},
                          {"index", 0},
                          {"logprobs", nullptr},
                          {"finish_reason", c.finish_reason}}}},
            {"usage", {{"prompt_tokens", c.prompt_tokens},
                       {"completion_tokens", completion_tokens},
                       {"total_tokens", c.prompt_tokens + completion_tokens}}}});
}

absl::Status Server::Start() {
  absl::Status s = RefreshChampion();
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  httplib::Server& h = *http_;
  h.set_payload_max_length(1 << 20);
  h.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"status", "ok"}});
  });
  h.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    auto served = current();
    if (served) SendJson(res, 200, {{"status", "ready"}, {"model", served->id}});
    else SendJson(res, 503, {{"status", "no champion loaded"}});
  });
  h.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    Json data = Json::array();
    if (auto served = current()) {
      data.push_back({{"id", served->id},
                      {"object", "model"},
                      {"created", served->created_ms / 1000},
                      {"owned_by", "streamlm"}});
    }
    SendJson(res, 200, {{"object", "list"}, {"data", data}});
  });
  h.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleCompletions(req, res);
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
    res.set_content(counters_->RenderPrometheus(), "text/plain; version=0.0.4");
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

  size_t colon = config_.http.rfind(':');
  std::string host = config_.http.substr(0, colon);
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(config_.http.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError("config key 'http': expected HOST:PORT, got '" +
                                      config_.http + "'");
  }
  port_ = port == 0 ? h.bind_to_any_port(host) : (h.bind_to_port(host, port) ? port : -1);
  if (port_ <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", config_.http, " (config key http / --http): address in use or invalid"));
  }
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
  if (http_) http_->stop();
  if (listen_thread_.joinable()) listen_thread_.join();
  if (poll_thread_.joinable()) poll_thread_.join();
}

}  // namespace streamlm
