// Bootstrap: batch pretraining from text files into the first champion.
#ifndef STREAMLM_LEARNER_BOOTSTRAP_H_
#define STREAMLM_LEARNER_BOOTSTRAP_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "common/config.h"
#include "store/store.h"

namespace streamlm {

struct BootstrapResult {
  std::string snapshot_id;
  double heldout_loss = 0;   // nats/token on the held-out slice
  double unigram_loss = 0;   // add-one unigram model on the same tokens
  int64_t tokens_trained = 0;
  double tokens_per_s = 0;
  double seconds = 0;
};

// Reads config.bootstrap_corpus, trains a tokenizer and a model of the
// model.* config for bootstrap.steps, and writes snapshot + eval set +
// replay seed to `store`, pointing `champion` at the snapshot. `progress`
// receives one human-readable line every bootstrap.progress_every_steps.
[[nodiscard]] absl::StatusOr<BootstrapResult> RunBootstrap(
    const Config& config, Store* store,
    const std::function<void(const std::string&)>& progress);

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_BOOTSTRAP_H_
