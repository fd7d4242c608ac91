// `streamlm promote` / `streamlm rollback`: move the champion alias.
#include "apps/commands.h"

#include <cstdio>
#include <string>

#include "apps/command_util.h"
#include "common/json_util.h"
#include "absl/strings/str_cat.h"
#include "serving/admin_api.h"
#include "store/store.h"
#include "store/store_open.h"

namespace streamlm {

namespace {

// `streamlm promote` / `rollback` while `streamlm run` owns the store: the
// same change through the running server's admin API.
int RunAliasChangeOverHttp(const Config& c, const std::string& promote_id) {
  std::fprintf(stderr,
               "streamlm: the store at '%s' is in use by a running StreamLM; asking its "
               "admin API at http://%s (--http) instead\n",
               c.data_dir.c_str(), c.http.c_str());
  auto answer = promote_id.empty()
                    ? PostAdmin(c.http, "/v1/admin/rollback", Json::object(),
                                c.serving.admin_token)
                    : PostAdmin(c.http, "/v1/admin/promote", {{"snapshot", promote_id}},
                                c.serving.admin_token);
  if (!answer.ok()) return Fail(answer.status());
  std::printf("champion: %s\n", answer->value("champion", "").c_str());
  return 0;
}

}  // namespace

int RunAliasChange(const Config& c, const std::string& promote_id) {
  auto store = OpenStore(c);
  if (!store.ok()) {
    if (IsStoreLocked(store.status())) return RunAliasChangeOverHttp(c, promote_id);
    return Fail(store.status());
  }
  absl::Status s;
  if (promote_id.empty()) {
    // On record as a decision (verdict rolled_back, reason "manual: ..."),
    // in the same commit as the alias swap.
    auto champion = (*store)->GetAlias(kChampion);
    auto previous = (*store)->GetAlias(kPrevious);
    if (!champion.ok() || !previous.ok()) {
      return Fail(absl::FailedPreconditionError("no previous champion to roll back to"));
    }
    s = (*store)->AppendRollback(ManualDecision(
                    "rolled_back", *previous, *champion,
                    absl::StrCat("streamlm rollback rolled ", *champion, " back to ", *previous)))
            .status();
  } else {
    // On record too, so `streamlm decisions` and the dashboard show it.
    const std::string champion = (*store)->GetAlias(kChampion).value_or("");
    s = (*store)->AppendDecision(
                    ManualDecision("promoted", promote_id, champion,
                                   absl::StrCat("streamlm promote promoted ", promote_id,
                                                champion.empty() ? "" : " over " + champion)),
                    /*promote=*/true)
            .status();
  }
  if (!s.ok()) return Fail(s);
  std::printf("champion: %s\n", (*(*store)->GetAlias(kChampion)).c_str());
  return 0;
}

}  // namespace streamlm
