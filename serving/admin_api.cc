#include "serving/admin_api.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
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

Json ManualDecision(const std::string& verdict, const std::string& candidate,
                    const std::string& champion, const std::string& how) {
  const int64_t now = NowMs();
  return {{"time", FormatTimeMs(now)},
          {"time_ms", now},
          {"candidate", candidate},
          {"champion", champion},
          {"verdict", verdict},
          {"trigger", "manual"},
          {"rules", Json::array()},
          {"metrics", Json::object()},
          {"reason", "manual: " + how},
          {"duration_s", 0.0}};
}

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
    const std::string champion = store->GetAlias(kChampion).value_or("");
    auto stored = store->AppendDecision(
        ManualDecision("promoted", id, champion,
                       absl::StrCat("POST /v1/admin/promote promoted ", id,
                                    champion.empty() ? "" : " over " + champion)),
        /*promote=*/true);
    if (!stored.ok()) {
      SendStoreError(res, stored.status(), "snapshot");
      return;
    }
    if (on_decision) on_decision(*stored);
    FinishAliasChange(store, refresh_champion, "promoted " + id, res);
  });
  http.Post("/v1/admin/rollback", [=](const httplib::Request& req, httplib::Response& res) {
    if (!check_admin(req, res)) return;
    if (std::string message; !request_parse::ParseRollbackBody(req.body, &message)) {
      SendError(res, 400, message, "invalid_request_error");
      return;
    }
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
    const Json decision =
        ManualDecision("rolled_back", *previous, *champion,
                       absl::StrCat("POST /v1/admin/rollback rolled ", *champion, " back to ",
                                    *previous));
    auto stored = store->AppendRollback(decision);
    if (!stored.ok()) {
      SendStoreError(res, stored.status(), "");
      return;
    }
    if (on_decision) on_decision(*stored);
    FinishAliasChange(store, refresh_champion, "rolled back", res);
  });
}

namespace {

// The status of a non-200 answer from `where`: the server's error message,
// the code following the HTTP status.
absl::Status AnswerStatus(const std::string& where, const httplib::Response& res) {
  std::string message = Utf8Prefix(res.body, 300);
  auto answer = ParseJson(res.body);
  if (answer.ok() && answer->is_object() && answer->contains("error") &&
      (*answer)["error"].is_object()) {
    message = (*answer)["error"].value("message", message);
  }
  message = absl::StrCat(where, " answered ", res.status, ": ", message);
  switch (res.status) {
    case 400: return absl::InvalidArgumentError(message);
    case 401:
    case 403: return absl::PermissionDeniedError(message);
    case 404: return absl::NotFoundError(message);
    case 409: return absl::FailedPreconditionError(message);
    default: return absl::InternalError(message);
  }
}

}  // namespace

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
  return AnswerStatus(where, *res);
}

}  // namespace streamlm

namespace streamlm {
namespace {

constexpr char kCrcHeader[] = "X-StreamLM-CRC32";

// `id_or_alias` as a snapshot id: an alias resolves in `store`.
absl::StatusOr<std::string> ResolveSnapshot(const Store& store, const std::string& id_or_alias) {
  if (id_or_alias == kChampion || id_or_alias == kPrevious || id_or_alias == kCandidate) {
    return store.GetAlias(id_or_alias);
  }
  return id_or_alias;
}

// The snapshot id the request's path names (an alias resolved); nullopt,
// with the error answered, when there is none.
std::optional<std::string> RequestedSnapshot(const Store& store, const httplib::Request& req,
                                             httplib::Response& res) {
  auto id = ResolveSnapshot(store, req.matches[1].str());
  if (!id.ok()) {
    SendStoreError(res, id.status(), "snapshot");
    return std::nullopt;
  }
  return *id;
}

void SendBytes(httplib::Response& res, std::string bytes, uint32_t crc) {
  res.status = 200;
  res.set_header(kCrcHeader, std::to_string(crc));
  res.set_content(std::move(bytes), "application/octet-stream");
}

}  // namespace

void RegisterSnapshotTransfer(httplib::Server& http, Store* store, AdminCheck check_admin) {
  http.Get(R"(/v1/admin/snapshots/([^/]+)/manifest)",
           [=](const httplib::Request& req, httplib::Response& res) {
             if (!check_admin(req, res)) return;
             const auto id = RequestedSnapshot(*store, req, res);
             if (!id) return;
             auto meta = store->GetSnapshotMeta(*id);
             if (!meta.ok()) return SendStoreError(res, meta.status(), "snapshot");
             auto crcs = store->GetSnapshotChunkCrcs(*id);
             if (!crcs.ok()) return SendStoreError(res, crcs.status(), "snapshot");
             auto tok = store->GetSnapshotTokenizer(*id);
             if (!tok.ok()) return SendStoreError(res, tok.status(), "snapshot");
             SendJson(res, 200,
                      {{"object", "snapshot.manifest"},
                       {"id", *id},
                       {"meta", SnapshotMetaToJson(*meta)},
                       {"chunks", *crcs},
                       {"tokenizer_bytes", tok->size()},
                       {"tokenizer_crc32", Store::Crc32(*tok)}});
           });
  http.Get(R"(/v1/admin/snapshots/([^/]+)/chunks/(\d{1,9}))",
           [=](const httplib::Request& req, httplib::Response& res) {
             if (!check_admin(req, res)) return;
             const auto id = RequestedSnapshot(*store, req, res);
             if (!id) return;
             auto chunk = store->GetSnapshotChunk(*id, std::stoul(req.matches[2].str()));
             if (!chunk.ok()) return SendStoreError(res, chunk.status(), "snapshot");
             SendBytes(res, std::move(chunk->bytes), chunk->crc32);
           });
  http.Get(R"(/v1/admin/snapshots/([^/]+)/tokenizer)",
           [=](const httplib::Request& req, httplib::Response& res) {
             if (!check_admin(req, res)) return;
             const auto id = RequestedSnapshot(*store, req, res);
             if (!id) return;
             auto tok = store->GetSnapshotTokenizer(*id);
             if (!tok.ok()) return SendStoreError(res, tok.status(), "snapshot");
             const uint32_t crc = Store::Crc32(*tok);
             SendBytes(res, std::move(*tok), crc);
           });
}

namespace {

httplib::Headers BearerHeaders(const std::string& token) {
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  return headers;
}

// GET `path` from `base_url`: the body of a 200 answer whose CRC header and
// bytes match `crc` (when given), else an error. Tries up to 5 times; a
// 4xx answer is final.
absl::StatusOr<std::string> GetChecked(const std::string& base_url, const std::string& path,
                                       const httplib::Headers& headers,
                                       std::optional<uint32_t> crc, FetchStats* stats) {
  httplib::Client client(base_url);
  if (!client.is_valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", base_url, "' is not an http://HOST:PORT address"));
  }
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(60, 0);
  absl::Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (attempt > 0) {
      if (stats != nullptr) ++stats->retries;
      std::this_thread::sleep_for(std::chrono::milliseconds(100 << attempt));
    }
    auto res = client.Get(path.c_str(), headers);
    if (!res) {
      last = absl::UnavailableError(absl::StrCat("no answer from ", base_url, path, ": ",
                                                 httplib::to_string(res.error())));
      continue;
    }
    if (res->status != 200) {
      last = AnswerStatus(base_url + path, *res);
      if (res->status < 500) return last;  // asking again would not help
      continue;
    }
    if (crc.has_value()) {
      const std::string header = res->get_header_value(kCrcHeader);
      if (header != std::to_string(*crc) || Store::Crc32(res->body) != *crc) {
        last = absl::DataLossError(absl::StrCat(base_url, path, ": CRC-32 ",
                                                Store::Crc32(res->body), " (header '", header,
                                                "'), the manifest says ", *crc));
        continue;
      }
    }
    return std::move(res->body);
  }
  return last;
}

// The manifest of `id_or_alias` at `base_url`, its shape checked.
absl::StatusOr<Json> GetManifest(const std::string& base_url, const std::string& id_or_alias,
                                 const httplib::Headers& headers, FetchStats* stats) {
  const std::string path = "/v1/admin/snapshots/" + id_or_alias + "/manifest";
  auto body = GetChecked(base_url, path, headers, std::nullopt, stats);
  if (!body.ok()) return body.status();
  auto m = ParseJson(*body);
  if (!m.ok() || !m->is_object() || !m->value("id", Json()).is_string() ||
      !m->value("chunks", Json()).is_array() || !m->value("meta", Json()).is_object() ||
      !m->value("tokenizer_crc32", Json()).is_number_unsigned()) {
    return absl::DataLossError(
        absl::StrCat(base_url, path, " is not a snapshot manifest: ", Utf8Prefix(*body, 200)));
  }
  for (const Json& crc : (*m)["chunks"]) {
    if (!crc.is_number_unsigned()) {
      return absl::DataLossError(absl::StrCat(base_url, path, ": a chunk CRC is not a number"));
    }
  }
  return m;
}

// FetchSnapshot's work once the manifest is here.
absl::StatusOr<Snapshot> FetchWithManifest(const std::string& base_url,
                                           const Json& manifest,
                                           const httplib::Headers& headers,
                                           const std::string& partial_dir, FetchStats* stats) {
  const std::string id = manifest["id"];
  Snapshot snap;
  auto meta = SnapshotMetaFromJson(manifest["meta"]);
  if (!meta.ok()) return meta.status();
  snap.meta = std::move(*meta);
  const std::string base = "/v1/admin/snapshots/" + id;
  auto tok = GetChecked(base_url, base + "/tokenizer", headers,
                        manifest["tokenizer_crc32"].get<uint32_t>(), stats);
  if (!tok.ok()) return tok.status();
  snap.tokenizer = std::move(*tok);
  const std::string dir = partial_dir + "/" + id;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot create '", dir, "': ", ec.message()));
  }
  const Json& crcs = manifest["chunks"];
  for (size_t n = 0; n < crcs.size(); ++n) {
    const uint32_t crc = crcs[n].get<uint32_t>();
    const std::string file = absl::StrCat(dir, "/chunk-", n);
    auto kept = ReadFileToString(file);
    if (kept.ok() && Store::Crc32(*kept) == crc) {
      if (stats != nullptr) ++stats->chunks_reused;
      snap.weights += *kept;
      continue;
    }
    auto chunk = GetChecked(base_url, absl::StrCat(base, "/chunks/", n), headers, crc, stats);
    if (!chunk.ok()) return chunk.status();
    if (absl::Status w = WriteStringToFile(file, *chunk); !w.ok()) return w;
    if (stats != nullptr) ++stats->chunks_fetched;
    snap.weights += *chunk;
  }
  std::filesystem::remove_all(dir, ec);
  return snap;
}

}  // namespace

absl::StatusOr<Snapshot> FetchSnapshot(const std::string& base_url,
                                       const std::string& id_or_alias,
                                       const std::string& bearer_token,
                                       const std::string& partial_dir, FetchStats* stats) {
  const httplib::Headers headers = BearerHeaders(bearer_token);
  auto manifest = GetManifest(base_url, id_or_alias, headers, stats);
  if (!manifest.ok()) return manifest.status();
  return FetchWithManifest(base_url, *manifest, headers, partial_dir, stats);
}

absl::StatusOr<std::string> SyncChampion(const std::string& base_url,
                                         const std::string& bearer_token, Store* store,
                                         const std::string& partial_dir, FetchStats* stats) {
  const httplib::Headers headers = BearerHeaders(bearer_token);
  auto manifest = GetManifest(base_url, kChampion, headers, stats);
  if (!manifest.ok()) return manifest.status();
  const std::string id = (*manifest)["id"];
  auto local = store->GetAlias(kChampion);
  if (local.ok() && *local == id) return id;
  auto have = store->GetSnapshotMeta(id);
  if (have.ok() && have->weights_retained) {
    if (absl::Status s = store->SetAlias(kChampion, id); !s.ok()) return s;
  } else {
    auto snap = FetchWithManifest(base_url, *manifest, headers, partial_dir, stats);
    if (!snap.ok()) return snap.status();
    if (absl::Status s = store->PutSnapshot(*snap, {kChampion}); !s.ok()) return s;
  }
  SLM_LOG(kInfo) << "snapshot transfer: champion " << id << " from " << base_url;
  return id;
}

absl::Status ParseHttpAddress(const std::string& http, std::string* host, int* port) {
  const size_t colon = http.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(http.substr(colon + 1), port)) {
    return absl::InvalidArgumentError("config key 'http': expected HOST:PORT, got '" + http +
                                      "'");
  }
  *host = http.substr(0, colon);
  return absl::OkStatus();
}

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  in_addr a4;
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  in6_addr a6;
  if (inet_pton(AF_INET6, h.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

bool CheckAdminRequest(const std::string& token, bool loopback_only,
                       const httplib::Request& req, httplib::Response& res) {
  if (token.empty()) {
    if (loopback_only) return true;
    SendError(res, 401,
              "the admin API is closed: serving listens on a non-loopback address and "
              "serving.admin_token is not set",
              "", "authentication_error", "admin_token_required");
    return false;
  }
  if (req.get_header_value("Authorization") == "Bearer " + token) return true;
  SendError(res, 401, "admin API needs 'Authorization: Bearer <serving.admin_token>'", "",
            "authentication_error", "invalid_token");
  return false;
}

}  // namespace streamlm
