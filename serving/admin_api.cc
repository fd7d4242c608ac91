#include "serving/admin_api.h"

#include <httplib.h>

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "serving/request_parse.h"

namespace streamlm {
namespace {

void SendJson(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void SendError(httplib::Response& res, int status, const std::string& message,
               const std::string& type, const std::string& param = "",
               const std::string& code = "") {
  SendJson(res, status,
           {{"error", {{"message", message},
                       {"type", type},
                       {"param", param.empty() ? Json(nullptr) : Json(param)},
                       {"code", code.empty() ? Json(nullptr) : Json(code)}}}});
}

// The answer for a failed store call.
void SendStoreError(httplib::Response& res, const absl::Status& s, const std::string& param) {
  if (absl::IsNotFound(s)) {
    SendError(res, 404, std::string(s.message()), "invalid_request_error", param,
              "snapshot_not_found");
  } else if (absl::IsFailedPrecondition(s)) {
    SendError(res, 409, std::string(s.message()), "invalid_request_error", param);
  } else {
    SendError(res, 500, std::string(s.message()), "server_error");
  }
}

// After the alias moved: load it into serving and answer with the aliases.
void FinishAliasChange(Store* store, const std::function<absl::Status()>& refresh_champion,
                       const std::string& what, httplib::Response& res) {
  auto champion = store->GetAlias(kChampion);
  if (!champion.ok()) {
    SendError(res, 500, std::string(champion.status().message()), "server_error");
    return;
  }
  absl::Status loaded = refresh_champion();
  if (!loaded.ok()) {
    SendError(res, 500,
              absl::StrCat(what, ": the champion alias now names ", *champion,
                           " but serving could not load it (it keeps retrying): ",
                           loaded.message()),
              "server_error");
    return;
  }
  auto previous = store->GetAlias(kPrevious);
  SLM_LOG(kInfo) << "admin API: " << what << "; champion " << *champion;
  SendJson(res, 200,
           {{"object", "champion"},
            {"champion", *champion},
            {"previous", previous.ok() ? Json(*previous) : Json(nullptr)}});
}

}  // namespace

void RegisterAdminApi(httplib::Server& http, Store* store, AdminCheck check_admin,
                      std::function<absl::Status()> refresh_champion,
                      std::function<void(const Json&)> on_decision) {
  http.Post("/v1/admin/promote", [=](const httplib::Request& req, httplib::Response& res) {
    if (!check_admin(req, res)) return;
    std::string id, message, param;
    if (!request_parse::ParsePromoteBody(req.body, &id, &message, &param)) {
      SendError(res, 400, message, "invalid_request_error", param);
      return;
    }
    absl::Status s = store->Promote(id);
    if (!s.ok()) {
      SendStoreError(res, s, "snapshot");
      return;
    }
    FinishAliasChange(store, refresh_champion, "promoted " + id, res);
  });
  http.Post("/v1/admin/rollback", [=](const httplib::Request& req, httplib::Response& res) {
    if (!check_admin(req, res)) return;
    if (std::string message; !request_parse::ParseRollbackBody(req.body, &message)) {
      SendError(res, 400, message, "invalid_request_error");
      return;
    }
    // A decision record as the rollback monitor's (verdict rolled_back,
    // reason "manual: ..."; ManualRollbackDecision in evaluator/rollback.h
    // builds the same, but serving's admin routes link without libtorch).
    auto champion = store->GetAlias(kChampion);
    auto previous = store->GetAlias(kPrevious);
    if (!champion.ok() || !previous.ok()) {
      SendStoreError(res,
                     champion.ok() ? absl::FailedPreconditionError(
                                         "no previous champion to roll back to")
                                   : champion.status(),
                     "");
      return;
    }
    const int64_t now = NowMs();
    Json decision = {{"time", FormatTimeMs(now)},
                     {"time_ms", now},
                     {"candidate", *previous},
                     {"champion", *champion},
                     {"verdict", "rolled_back"},
                     {"trigger", "manual"},
                     {"rules", Json::array()},
                     {"metrics", Json::object()},
                     {"reason", absl::StrCat("manual: POST /v1/admin/rollback rolled ", *champion,
                                             " back to ", *previous)},
                     {"duration_s", 0.0}};
    auto stored = store->AppendRollback(decision);
    if (!stored.ok()) {
      SendStoreError(res, stored.status(), "");
      return;
    }
    if (on_decision) on_decision(*stored);
    FinishAliasChange(store, refresh_champion, "rolled back", res);
  });
}

absl::StatusOr<Json> PostAdmin(const std::string& http_address, const std::string& path,
                               const Json& body, const std::string& bearer_token,
                               int timeout_s) {
  size_t colon = http_address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(http_address.substr(colon + 1), &port) || port < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", http_address, "' is not HOST:PORT (config key http / --http)"));
  }
  if (port == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the server's port is not known ('", http_address,
        "' lets it pick one): pass --http HOST:PORT as its banner shows it"));
  }
  std::string host = http_address.substr(0, colon);
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  httplib::Client client(host, port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(timeout_s, 0);
  client.set_write_timeout(timeout_s, 0);
  httplib::Headers headers;
  if (!bearer_token.empty()) headers.emplace("Authorization", "Bearer " + bearer_token);
  auto res = client.Post(path.c_str(), headers, body.dump(), "application/json");
  const std::string where = absl::StrCat("http://", host, ":", port, path);
  if (!res) {
    return absl::UnavailableError(absl::StrCat("no answer from ", where, ": ",
                                               httplib::to_string(res.error())));
  }
  auto answer = ParseJson(res->body);
  if (res->status == 200) {
    if (!answer.ok()) {
      return absl::DataLossError(absl::StrCat(where, " answered 200 with a body that is not "
                                              "JSON: ", Utf8Prefix(res->body, 200)));
    }
    return *std::move(answer);
  }
  std::string message = Utf8Prefix(res->body, 300);
  if (answer.ok() && answer->is_object() && answer->contains("error") &&
      (*answer)["error"].is_object()) {
    message = (*answer)["error"].value("message", message);
  }
  message = absl::StrCat(where, " answered ", res->status, ": ", message);
  switch (res->status) {
    case 400: return absl::InvalidArgumentError(message);
    case 401:
    case 403: return absl::PermissionDeniedError(message);
    case 404: return absl::NotFoundError(message);
    case 409: return absl::FailedPreconditionError(message);
    default: return absl::InternalError(message);
  }
}

}  // namespace streamlm
