// Options struct of this module, plain values with their defaults; common/config
// maps the config keys onto them (Config::learner).
#ifndef STREAMLM_LEARNER_LEARNER_OPTIONS_H_
#define STREAMLM_LEARNER_LEARNER_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace streamlm {

// The learner.* keys: the online learner (learner/learner.h).
struct LearnerOptions {
  std::string group = "streamlm-learner";
  int batch_size = 8;
  double lr = 1e-4;
  double replay_fraction = 0.5;
  int replay_capacity_blocks = 4096;
  int snapshot_every_steps = 50;
  double snapshot_every_s = 60;
  // Data-parallel learners (learn --world-size): how long a collective may
  // wait for a peer, and how long ranks with a batch wait for the others
  // before stepping without them.
  double dp_timeout_s = 600;
  double dp_max_wait_s = 10;
  int heldout_every_records = 10;  // 1 in N records never trained on
  int64_t max_record_bytes = 1 << 20;
  // After a rejected candidate or a rollback: "reset" goes back to the
  // champion's weights (fresh optimizer state); "continue" keeps training
  // the learner's own weights.
  std::string on_rejection = "reset";
  // Learning rate per cycle, a cycle being the training between two
  // candidates (snapshot_every_steps, fewer when snapshot_every_s comes
  // first; a new one also after a reset). "cosine": linear re-warm from
  // min_lr_ratio*lr to lr over warmup_steps (at most half the cycle), cosine
  // re-decay to min_lr_ratio*lr at the cycle's last step. "wsd" re-warms the
  // same way, holds lr, and re-decays over only the cycle's last
  // decay_fraction (the default: bench/README.md, "Continual learning",
  // measured it ahead of cosine). "constant" keeps learner.lr.
  std::string lr_schedule = "wsd";
  int warmup_steps = 10;
  double min_lr_ratio = 0.1;
  double decay_fraction = 0.2;
  // Replay by slice (each stream source, and "base" for the base corpus).
  double replay_base_share = 0.5;
  int replay_max_slices = 8;
  double replay_max_boost = 4;  // a forgotten slice's weight, at most
};

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_LEARNER_OPTIONS_H_
