// Learning rate within a continual-learning cycle (learner/README.md,
// "Learning-rate cycles"). Pure function; thread-safe.
#ifndef STREAMLM_LEARNER_SCHEDULE_H_
#define STREAMLM_LEARNER_SCHEDULE_H_

#include <cstdint>
#include <string>

namespace streamlm {

struct LrCycle {
  std::string schedule = "cosine";  // "cosine" or "constant"
  double peak = 1e-4;               // learner.lr
  double min_ratio = 0.1;           // floor = min_ratio * peak
  int64_t warmup_steps = 10;
  int64_t decay_steps = 300;
};

// The rate of step `step` (0-based) of a cycle: "constant" is `peak`;
// "cosine" re-warms linearly from the floor, reaching `peak` at step
// warmup_steps - 1, then decays along half a cosine to the floor over
// decay_steps, and stays at the floor.
double CycleLearningRate(const LrCycle& cycle, int64_t step);

}  // namespace streamlm

#endif  // STREAMLM_LEARNER_SCHEDULE_H_
