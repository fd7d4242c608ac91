// Options struct of this module, plain values with their defaults; common/config
// maps the config keys onto them (Config::store).
#ifndef STREAMLM_STORE_STORE_OPTIONS_H_
#define STREAMLM_STORE_STORE_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace streamlm {

// The store.* keys: retention and free-space guard (store/store.h).
struct StoreOptions {
  // Store retention: weights of the newest N snapshots are kept, plus the
  // aliased ones (champion, previous, candidate) and those the current
  // checkpoints need; older snapshots keep only their metadata (lineage).
  int keep_snapshots = 8;
  int min_free_mb = 64;
};

}  // namespace streamlm

#endif  // STREAMLM_STORE_STORE_OPTIONS_H_
