// Learning rate within a continual-learning cycle (learner/README.md,
// "Learning-rate cycles"). Pure function; thread-safe.
#ifndef STREAMLM_LEARNER_SCHEDULE_H_
#define STREAMLM_LEARNER_SCHEDULE_H_

#include <cstdint>
#include <string>

namespace streamlm {

struct LrCycle {
  std::string schedule = "cosine";  // "cosine", "wsd" or "constant"
  double peak = 1e-4;               // learner.lr
  double min_ratio = 0.1;           // floor = min_ratio * peak
  int64_t warmup_steps = 10;        // at most half the cycle is warm-up
  int64_t length = 50;              // steps in the cycle; its candidate follows the last
  double decay_fraction = 0.2;      // "wsd": the share of the cycle spent decaying
};

// Whether `schedule` ends each cycle with a candidate at the floor rate
// (every schedule but "constant").
bool IsCyclicSchedule(const std::string& schedule);

// The rate of step `step` (0-based) of a cycle: "constant" is `peak`;
// "cosine" re-warms linearly from the floor over W = min(warmup_steps,
// length / 2) steps, reaching `peak` at step W - 1, then decays along half a
// cosine so that the cycle's last step (length - 1), the one its candidate
// is taken after, is at the floor; steps past the end stay at the floor.
// "wsd" (warm-up, stable, decay: the "infinite" schedules of Ibrahim et al.
// 2024, section 7, and Hägele et al. 2024) warms up the same way, holds
// `peak`, and decays along the same half cosine over only the cycle's last
// D = max(1, round(decay_fraction * length)) steps (at most those after the
// warm-up).
double CycleLearningRate(const LrCycle& cycle, int64_t step);

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_SCHEDULE_H_
