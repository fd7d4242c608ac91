// Bootstrap: batch pretraining from text files into the first champion.
#ifndef STREAMLM_LEARNER_BOOTSTRAP_H_
#define STREAMLM_LEARNER_BOOTSTRAP_H_

#include <atomic>
#include <functional>
#include <string>
#include <vector>

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

// Reads the corpus (config.bootstrap.corpus files, or the whole history of
// config.bootstrap.topic on config.kafka), trains a tokenizer and a model of
// the model.* config for bootstrap.steps, and writes snapshot + eval set +
// replay seed to `store`, pointing `champion` at the snapshot. `progress`
// receives one human-readable line every bootstrap.progress_every_steps
// (loss, tokens/s, MFU, ETA).
//
// Every bootstrap.checkpoint_every_steps the model, optimizer, sampling RNG
// and tokenizer are checkpointed; a later run with the same settings resumes
// there and ends with the same weights as an uninterrupted run. When `stop`
// becomes true, it checkpoints and returns Cancelled. A non-empty
// `tokenizer` (a snapshot's serialized tokenizer, Tokenizer::serialized())
// is used instead of training one (`streamlm bench continual` re-trains
// under its bootstrap's tokenizer).
[[nodiscard]] absl::StatusOr<BootstrapResult> RunBootstrap(
    const Config& config, Store* store,
    const std::function<void(const std::string&)>& progress,
    const std::atomic<bool>* stop = nullptr, const std::string& tokenizer = {});

// Gives a champion made elsewhere (`import-hf --base-corpus FILE...`) what
// bootstrap gives its own: a base evaluation set of held-out documents, one
// slice per file (each document {"text", "source": the file's name}), and
// a replay seed from the other documents. Files are read as bootstrap reads
// them (documents separated by blank lines, within
// bootstrap.max_corpus_bytes each); 1 in 1/bootstrap.heldout_fraction
// documents is held out. Returns a one-line summary.
[[nodiscard]] absl::StatusOr<std::string> WriteBaseCorpus(const Config& config,
                                                        const std::vector<std::string>& files,
                                                        Store* store);

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_BOOTSTRAP_H_
