#include "apps/control_http.h"

#include <httplib.h>

#include "serving/admin_api.h"
#include "store/store.h"

namespace streamlm {

ControlHttp::ControlHttp(const Config& config, Counters* counters, Store* store)
    : config_(config), counters_(counters), store_(store) {}

ControlHttp::~ControlHttp() { Stop(); }

absl::Status ControlHttp::Start() {
  std::string host;
  int port = 0;
  if (absl::Status s = ParseHttpAddress(config_.http, &host, &port); !s.ok()) return s;
  http_ = std::make_unique<httplib::Server>();
  http_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  http_->Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    res.status = ready_ ? 200 : 503;
    res.set_content(ready_ ? R"({"status":"ready"})" : R"({"status":"starting"})",
                    "application/json");
  });
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(counters_->RenderPrometheus(), "text/plain; version=0.0.4");
  });
  if (store_ != nullptr) {
    const bool loopback_only = IsLoopbackHost(host);
    const std::string token = config_.serving.admin_token;
    RegisterSnapshotTransfer(
        *http_, store_, [token, loopback_only](const httplib::Request& q, httplib::Response& s) {
          return CheckAdminRequest(token, loopback_only, q, s);
        });
  }
  if (port == 0) {
    port_ = http_->bind_to_any_port(host);
  } else {
    port_ = http_->bind_to_port(host, port) ? port : -1;
  }
  if (port_ <= 0) {
    return absl::UnavailableError("config key 'http': cannot listen on " + config_.http);
  }
  // Bound: connections wait in the backlog until the thread accepts them.
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  return absl::OkStatus();
}

void ControlHttp::Stop() {
  if (http_ != nullptr) http_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace streamlm
