// Opening the store as a configured StreamLM process does: Store (store.h)
// knows nothing of Config; this is the one place that maps the config keys
// a writer must apply onto it.
#ifndef STREAMLM_STORE_STORE_OPEN_H_
#define STREAMLM_STORE_STORE_OPEN_H_

#include <memory>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "store/store.h"

namespace streamlm {

// Opens the store at config.data_dir for writing with the config's
// retention (store.keep_snapshots) and held-out window
// (eval.stream_window_records). Every commit applies them, so every writer
// must open the store this way. Errors are Store::Open's (IsStoreLocked()
// tells a store held by another process).
[[nodiscard]] absl::StatusOr<std::unique_ptr<Store>> OpenStore(const Config& config);

}  // namespace streamlm

#endif  // STREAMLM_STORE_STORE_OPEN_H_
