// Admin API routes that steer promotion (DESIGN.md, "HTTP API"):
//   POST /v1/admin/promote   {"snapshot": ID}  -> champion <- ID
//   POST /v1/admin/rollback  (body optional)   -> champion <- previous,
//                                                 with a rolled_back decision
// They move the `champion` alias with the same Store calls as the CLI's
// `streamlm promote` / `streamlm rollback`, then ask serving to load the new
// champion before answering, so the next request is served by it.
// Also the client the CLI uses to reach these routes when another process
// (`streamlm run`) holds the store's lock.
#ifndef STREAMLM_SERVING_ADMIN_API_H_
#define STREAMLM_SERVING_ADMIN_API_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/json_util.h"
#include "store/store.h"

namespace httplib {
class Server;
class Request;
class Response;
}  // namespace httplib

namespace streamlm {

// Fills `res` with 401 and returns false when `req` is not authorized.
using AdminCheck = std::function<bool(const httplib::Request&, httplib::Response&)>;

// The host and port of the `http` config key's HOST:PORT; InvalidArgument
// naming the key when it is not that.
[[nodiscard]] absl::Status ParseHttpAddress(const std::string& http, std::string* host,
                                            int* port);
// True for "localhost", 127.0.0.0/8 and ::1 (bracketed or not).
bool IsLoopbackHost(const std::string& host);
// The admin routes' guard (an AdminCheck): "Authorization: Bearer <token>"
// passes; with no token set, every request passes on a server listening
// only on a loopback address (`loopback_only`) and none elsewhere. Refusals
// are 401 with an OpenAI error naming serving.admin_token.
bool CheckAdminRequest(const std::string& token, bool loopback_only,
                       const httplib::Request& req, httplib::Response& res);

// The decision record of a manual alias change, as the evaluator's and the
// rollback monitor's: `verdict` "promoted" (`candidate` becomes champion)
// or "rolled_back" (`candidate` is the previous champion), trigger
// "manual", no rules or metrics, reason "manual: <how>".
Json ManualDecision(const std::string& verdict, const std::string& candidate,
                    const std::string& champion, const std::string& how);

// Adds the promote/rollback routes to `http`. Call before `http` listens.
// `store` must outlive `http`. `refresh_champion` loads the champion alias's
// snapshot into serving (blocking until it is swapped in). Answers:
//   200 {"object": "champion", "champion": ID, "previous": ID or null}
//   400 bad body, 401 (from check_admin), 404 unknown snapshot,
//   409 nothing to roll back to, 500 store or load failure;
// errors in OpenAI's {"error": {"message", "type", "param", "code"}} shape.
// Handlers are thread-safe (Store is; swaps are serialized by the hook).
// Both append a decision record (ManualDecision: verdict "promoted" or
// "rolled_back", reason "manual: ...") in the same commit as the alias
// change (Store::AppendDecision, Store::AppendRollback) and pass it to
// `on_decision` when set (to publish it on the decisions topic, so serving
// replicas switch at once).
void RegisterAdminApi(httplib::Server& http, Store* store, AdminCheck check_admin,
                      std::function<absl::Status()> refresh_champion,
                      std::function<void(const Json&)> on_decision = nullptr);

// Client side: POSTs `body` to `path` on a StreamLM server at `http_address`
// (HOST:PORT, as the `http` config key), with "Authorization: Bearer
// <bearer_token>" unless the token is empty. Returns the JSON body of a 200
// answer; otherwise an error whose code follows the HTTP status (404
// NotFound, 400 InvalidArgument, 401 PermissionDenied, 409
// FailedPrecondition, no answer Unavailable) and whose message is the
// server's. Blocks for at most `timeout_s` seconds.
[[nodiscard]] absl::StatusOr<Json> PostAdmin(const std::string& http_address,
                                             const std::string& path, const Json& body,
                                             const std::string& bearer_token,
                                             int timeout_s = 120);

// Snapshot transfer, for serving replicas on hosts without the data dir
// (`streamlm serve --snapshots-from URL`; docs/architecture.md). Routes,
// behind `check_admin`; {id} is a snapshot id or an alias (champion,
// previous, candidate):
//   GET /v1/admin/snapshots/{id}/manifest  -> {"object": "snapshot.manifest",
//       "id", "meta" (the stored metadata), "chunks": [CRC-32 per 1 MiB
//       weight chunk], "tokenizer_bytes", "tokenizer_crc32"}
//   GET /v1/admin/snapshots/{id}/chunks/{n} -> chunk n's bytes
//   GET /v1/admin/snapshots/{id}/tokenizer  -> the tokenizer's bytes
// The byte answers carry the stored CRC-32 in X-StreamLM-CRC32 (written
// with the chunk, verified on reading). 404 unknown snapshot or chunk, 500
// a chunk that fails its checksum.
void RegisterSnapshotTransfer(httplib::Server& http, Store* store, AdminCheck check_admin);

struct FetchStats {
  int chunks_fetched = 0;  // over HTTP
  int chunks_reused = 0;   // from an interrupted fetch, checked against the manifest
  int retries = 0;         // chunk requests repeated after a failure or a bad checksum
};

// Fetches snapshot `id_or_alias` from the StreamLM server at `base_url`
// (http://HOST:PORT): the manifest, then each chunk, each checked against
// the manifest's CRC-32 and retried (5 tries) when it does not match or the
// request fails. Chunks land in `partial_dir`/<id>/ as they arrive, so a
// fetch cut short (the process killed, the server gone) resumes there,
// reusing every chunk that still matches; the directory is removed once the
// snapshot is whole. `stats` may be null.
[[nodiscard]] absl::StatusOr<Snapshot> FetchSnapshot(const std::string& base_url,
                                                     const std::string& id_or_alias,
                                                     const std::string& bearer_token,
                                                     const std::string& partial_dir,
                                                     FetchStats* stats = nullptr);

// Makes `store`'s champion the one of the server at `base_url`: nothing
// when they are the same snapshot; else fetches it (FetchSnapshot, partial
// chunks under `partial_dir`) unless `store` has it, and points `champion`
// at it. Returns the champion's id.
[[nodiscard]] absl::StatusOr<std::string> SyncChampion(const std::string& base_url,
                                                       const std::string& bearer_token,
                                                       Store* store,
                                                       const std::string& partial_dir,
                                                       FetchStats* stats = nullptr);

}  // namespace streamlm

#endif  // STREAMLM_SERVING_ADMIN_API_H_
