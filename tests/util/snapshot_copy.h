// Test helper that writes model snapshots derived from a stored one: an
// imported copy, or a child with noise on its weights (a damaged or a barely
// changed candidate). Header-only; uses tensors, so only TORCH test targets
// may include it.
#ifndef STREAMLM_TESTS_UTIL_SNAPSHOT_COPY_H_
#define STREAMLM_TESTS_UTIL_SNAPSHOT_COPY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/json_util.h"
#include "gtest/gtest.h"
#include "model/language_model.h"
#include "store/store.h"

namespace streamlm::testing {

// Writes snapshot `id` of `from` to `to` under a new id (with `aliases`) and
// returns that id ("" after a failure, which is also reported to gtest).
// With `noise` == 0 it is an import (origin "import", no parent); with
// `noise` > 0 it is a child of `id` (origin "learner", lineage.parent = `id`,
// so `to` should be `from`) whose every weight has N(0, noise^2) added, drawn
// after torch::manual_seed(`seed`).
inline std::string CopySnapshot(Store* from, const std::string& id, Store* to, double noise,
                                uint64_t seed, const std::vector<std::string>& aliases = {}) {
  auto snap = from->GetSnapshot(id);
  if (!snap.ok()) {
    ADD_FAILURE() << "snapshot " << id << ": " << snap.status();
    return "";
  }
  auto model = LanguageModel::Load(snap->meta.model_config, snap->weights, snap->tokenizer);
  if (!model.ok()) {
    ADD_FAILURE() << "loading " << id << ": " << model.status();
    return "";
  }
  if (noise > 0) {
    torch::NoGradGuard no_grad;
    torch::manual_seed(seed);
    for (auto& p : (*model)->net().parameters()) p.add_(torch::randn_like(p) * noise);
  }
  auto new_id = to->NewSnapshotId();
  if (!new_id.ok()) {
    ADD_FAILURE() << new_id.status();
    return "";
  }
  Snapshot out;
  out.meta.id = *new_id;
  out.meta.created_ms = NowMs();
  out.meta.origin = noise > 0 ? "learner" : "import";
  out.meta.model_config = snap->meta.model_config;
  if (noise > 0) out.meta.lineage.parent = id;
  out.weights = (*model)->SerializeWeights();
  out.tokenizer = snap->tokenizer;
  absl::Status s = to->PutSnapshot(out, aliases);
  if (!s.ok()) {
    ADD_FAILURE() << "storing a copy of " << id << ": " << s;
    return "";
  }
  return *new_id;
}

// A child snapshot of `parent` in `store` whose every weight has
// N(0, noise^2) added (noise > 0), drawn after torch::manual_seed(`seed`).
inline std::string PerturbedChild(Store* store, const std::string& parent, double noise,
                                  uint64_t seed) {
  return CopySnapshot(store, parent, store, noise, seed);
}

}  // namespace streamlm::testing

#endif  // STREAMLM_TESTS_UTIL_SNAPSHOT_COPY_H_
