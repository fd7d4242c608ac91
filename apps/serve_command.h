// `streamlm serve`: the serving role alone (docs/architecture.md, "Roles as
// processes"). It follows a store another process owns on the same
// --data-dir (a RocksDB secondary) and the decisions topic on --kafka, and
// swaps to each new champion as its decision arrives.
#ifndef STREAMLM_APPS_SERVE_COMMAND_H_
#define STREAMLM_APPS_SERVE_COMMAND_H_

#include "common/config.h"

namespace streamlm {

// Runs until SIGINT/SIGTERM; the process exit code.
int RunServe(const Config& c);

}  // namespace streamlm

#endif  // STREAMLM_APPS_SERVE_COMMAND_H_
