// The operator dashboard (`GET /ui`, see README.md): static assets compiled
// into the binary, plus the admin route the page needs for lineage,
// `GET /v1/admin/snapshots`. No libtorch.
#ifndef STREAMLM_SERVING_DASHBOARD_H_
#define STREAMLM_SERVING_DASHBOARD_H_

#include <functional>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/json_util.h"
#include "store/store.h"

namespace httplib {
class Server;
class Request;
class Response;
}  // namespace httplib

namespace streamlm {

// One file of serving/ui/, embedded at build time (see embed_assets.cmake).
// `path` is relative to serving/ui/, e.g. "vendor/chart.umd.min.js".
struct DashboardAsset {
  std::string_view path;
  std::string_view bytes;
};

// The embedded asset at `path`, or nullptr. Thread-safe (immutable data).
const DashboardAsset* FindDashboardAsset(std::string_view path);

// Content-Type for an asset path, by extension.
std::string_view DashboardContentType(std::string_view path);

// Every snapshot, oldest first, as `streamlm snapshots --json` prints it:
// SnapshotMetaToJson plus "aliases" (comma-separated alias names, or "").
[[nodiscard]] absl::StatusOr<Json> SnapshotListJson(const Store& store);

// Registers on `http`:
//   GET /ui, /ui/          the page (serving/ui/index.html)
//   GET /ui/<asset>        any other embedded file; 404 when unknown
//   GET /v1/admin/snapshots  SnapshotListJson; `check_admin` runs first and
//                            fills the response itself when it returns false
// Call before `http` starts listening. `store` must outlive `http`.
void RegisterDashboard(
    httplib::Server& http, Store* store,
    std::function<bool(const httplib::Request&, httplib::Response&)> check_admin);

}  // namespace streamlm

#endif  // STREAMLM_SERVING_DASHBOARD_H_
