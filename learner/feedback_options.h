// Options struct of this module, plain values with their defaults; common/config
// maps the config keys onto them (Config::feedback).
#ifndef STREAMLM_LEARNER_FEEDBACK_OPTIONS_H_
#define STREAMLM_LEARNER_FEEDBACK_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace streamlm {

// The feedback.* keys: learning from human feedback (learner/objectives.h).
struct FeedbackOptions {
  // Learning from human feedback (learner/objectives.h): DPO for preference
  // pairs, KTO for ratings, SFT for corrections, each against a frozen
  // reference model (the champion when the cycle started).
  int batch_size = 8;         // feedback records per feedback step
  double lr = 1e-4;           // learning rate of feedback steps
  // LM blocks replayed in each feedback step, per feedback record, so
  // feedback steps do not forget the language-modelling objective.
  double replay_ratio = 0.5;
  double lm_weight = 1.0;     // weight of those replayed blocks' loss
  double beta = 0.1;          // DPO / KTO temperature
  double dpo_weight = 1.0;
  double kto_weight = 1.0;
  double sft_weight = 1.0;
  double kto_desirable_weight = 1.0;
  double kto_undesirable_weight = 1.0;
  int heldout_every = 5;      // 1 in N feedback records is held out
  // A user's feedback beyond this share of the last feedback.user_window
  // trained records (and beyond feedback.user_min_quota) is kept but not
  // trained on.
  double max_user_share = 0.25;
  int user_window = 1000;
  int user_min_quota = 50;
  // Trusted feedback (JSON lines of feedback records): never trained on,
  // always evaluated. `streamlm feedback trust FILE` stores one in the store.
  std::string trusted_file;
};

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_FEEDBACK_OPTIONS_H_
