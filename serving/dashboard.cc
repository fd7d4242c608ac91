#include "serving/dashboard.h"

#include <httplib.h>

#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "serving/dashboard_assets.h"

namespace streamlm {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void SendJsonError(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  Json body = {{"error", {{"message", message},
                          {"type", status == 404 ? "invalid_request_error" : "server_error"},
                          {"param", nullptr},
                          {"code", nullptr}}}};
  res.set_content(body.dump(), "application/json");
}

// Serves one asset with a strong ETag (FNV-1a of the bytes). The page and
// its own scripts change with every build, so browsers revalidate them
// (no-cache, answered 304 when unchanged); vendored libraries may be cached.
void SendAsset(const DashboardAsset& asset, const httplib::Request& req,
               httplib::Response& res) {
  std::string etag = absl::StrFormat("\"%016x\"", Fnv1a64(asset.bytes));
  res.set_header("ETag", etag);
  res.set_header("Cache-Control", asset.path.substr(0, 7) == "vendor/"
                                      ? "public, max-age=86400"
                                      : "no-cache");
  res.set_header("X-Content-Type-Options", "nosniff");
  if (req.get_header_value("If-None-Match") == etag) {
    res.status = 304;
    return;
  }
  res.status = 200;
  res.set_content(std::string(asset.bytes), std::string(DashboardContentType(asset.path)));
}

}  // namespace

const DashboardAsset* FindDashboardAsset(std::string_view path) {
  for (size_t i = 0; i < dashboard_internal::kAssetCount; ++i) {
    if (dashboard_internal::kAssets[i].path == path) return &dashboard_internal::kAssets[i];
  }
  return nullptr;
}

std::string_view DashboardContentType(std::string_view path) {
  if (EndsWith(path, ".html")) return "text/html; charset=utf-8";
  if (EndsWith(path, ".js")) return "text/javascript; charset=utf-8";
  if (EndsWith(path, ".css")) return "text/css; charset=utf-8";
  if (EndsWith(path, ".json")) return "application/json";
  if (EndsWith(path, ".svg")) return "image/svg+xml";
  if (EndsWith(path, ".png")) return "image/png";
  return "text/plain; charset=utf-8";
}

absl::StatusOr<Json> SnapshotListJson(const Store& store) {
  auto snaps = store.ListSnapshots();
  if (!snaps.ok()) return snaps.status();
  std::map<std::string, std::string> aliases;
  for (const char* a : {kChampion, kCandidate, kPrevious}) {
    auto id = store.GetAlias(a);
    if (id.ok()) aliases[*id] += aliases[*id].empty() ? a : std::string(",") + a;
  }
  Json out = Json::array();
  for (const SnapshotMeta& m : *snaps) {
    Json j = SnapshotMetaToJson(m);
    auto it = aliases.find(m.id);
    j["aliases"] = it == aliases.end() ? std::string() : it->second;
    out.push_back(std::move(j));
  }
  return out;
}

void RegisterDashboard(
    httplib::Server& http, Store* store,
    std::function<bool(const httplib::Request&, httplib::Response&)> check_admin) {
  auto index = [](const httplib::Request& req, httplib::Response& res) {
    const DashboardAsset* page = FindDashboardAsset("index.html");
    if (page == nullptr) {
      SendJsonError(res, 500, "dashboard was built without serving/ui/index.html");
      return;
    }
    SendAsset(*page, req, res);
  };
  http.Get("/ui", index);
  http.Get("/ui/", index);
  http.Get(R"(/ui/(.+))", [](const httplib::Request& req, httplib::Response& res) {
    // Only names in the embedded table are served, so no path can escape it.
    const DashboardAsset* asset = FindDashboardAsset(req.matches[1].str());
    if (asset == nullptr) {
      SendJsonError(res, 404, absl::StrCat("no dashboard asset '", req.matches[1].str(),
                                           "'; the page is at /ui"));
      return;
    }
    SendAsset(*asset, req, res);
  });
  http.Get("/v1/admin/snapshots",
           [store, check_admin = std::move(check_admin)](const httplib::Request& req,
                                                         httplib::Response& res) {
             if (!check_admin(req, res)) return;
             auto list = SnapshotListJson(*store);
             if (!list.ok()) {
               SendJsonError(res, 500, std::string(list.status().message()));
               return;
             }
             res.status = 200;
             res.set_content(list->dump(), "application/json");
           });
}

}  // namespace streamlm
