#include "store/store_open.h"

namespace streamlm {

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const Config& config) {
  auto store = Store::Open(config.data_dir);
  if (!store.ok()) return store.status();
  (*store)->set_keep_snapshots(static_cast<size_t>(config.store.keep_snapshots));
  (*store)->set_min_free_bytes(static_cast<uint64_t>(config.store.min_free_mb) << 20);
  (*store)->set_heldout_window(static_cast<size_t>(config.eval.stream_window_records));
  return store;
}

}  // namespace streamlm
