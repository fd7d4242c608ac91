// `streamlm serve`: the serving role alone (docs/architecture.md, "Roles as
// processes"). It follows a store another process owns on the same
// --data-dir (a RocksDB secondary) and the decisions topic on --kafka, and
// swaps to each new champion as its decision arrives. With --snapshots-from
// URL it needs no shared directory: its own --data-dir keeps the champions
// it fetches over HTTP from the server at URL (serving/admin_api.h,
// "Snapshot transfer").
#ifndef STREAMLM_APPS_SERVE_COMMAND_H_
#define STREAMLM_APPS_SERVE_COMMAND_H_

#include <string>

#include "common/config.h"

namespace streamlm {

// Runs until SIGINT/SIGTERM; the process exit code. `snapshots_from`:
// http://HOST:PORT of a StreamLM server with the store (empty: follow the
// store on c.data_dir).
int RunServe(const Config& c, const std::string& snapshots_from);

}  // namespace streamlm

#endif  // STREAMLM_APPS_SERVE_COMMAND_H_
