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

// Adds the promote/rollback routes to `http`. Call before `http` listens.
// `store` must outlive `http`. `refresh_champion` loads the champion alias's
// snapshot into serving (blocking until it is swapped in). Answers:
//   200 {"object": "champion", "champion": ID, "previous": ID or null}
//   400 bad body, 401 (from check_admin), 404 unknown snapshot,
//   409 nothing to roll back to, 500 store or load failure;
// errors in OpenAI's {"error": {"message", "type", "param", "code"}} shape.
// Handlers are thread-safe (Store is; swaps are serialized by the hook).
// A rollback appends a decision record (verdict "rolled_back", reason
// "manual: ...") in the same commit as the alias change
// (Store::AppendRollback) and passes it to `on_decision` when set (to
// publish it on the decisions topic).
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

}  // namespace streamlm

#endif  // STREAMLM_SERVING_ADMIN_API_H_
