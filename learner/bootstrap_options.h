// Options struct of this module, plain values with their defaults; common/config
// maps the config keys onto them (Config::bootstrap).
#ifndef STREAMLM_LEARNER_BOOTSTRAP_OPTIONS_H_
#define STREAMLM_LEARNER_BOOTSTRAP_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace streamlm {

// The bootstrap.* keys: batch pretraining (learner/bootstrap.h).
struct BootstrapOptions {
  std::vector<std::string> corpus = {"data/corpus/brown.txt"};
  // When set, the corpus is this topic's whole history on `kafka` instead.
  std::string topic;
  int checkpoint_every_steps = 100;
  int steps = 600;
  int batch_size = 16;
  double lr = 3e-3;
  double heldout_fraction = 0.02;
  int eval_sequences = 64;
  int64_t max_corpus_bytes = 0;  // 0 = whole corpus
  int progress_every_steps = 20;
};

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_BOOTSTRAP_OPTIONS_H_
