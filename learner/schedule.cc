#include "learner/schedule.h"

#include <algorithm>
#include <cmath>

namespace streamlm {

bool IsCyclicSchedule(const std::string& schedule) { return schedule != "constant"; }

double CycleLearningRate(const LrCycle& c, int64_t step) {
  if (c.schedule == "constant") return c.peak;
  const double floor = c.peak * c.min_ratio;
  const int64_t length = std::max<int64_t>(1, c.length);
  const int64_t warmup = std::min<int64_t>(std::max<int64_t>(0, c.warmup_steps), length / 2);
  step = std::max<int64_t>(0, step);
  if (step < warmup) {
    return floor + (c.peak - floor) * static_cast<double>(step + 1) / static_cast<double>(warmup);
  }
  if (step >= length) return floor;
  int64_t decay = length - warmup;  // >= 1; its last step reaches the floor
  if (c.schedule == "wsd") {
    const int64_t d = std::llround(std::clamp(c.decay_fraction, 0.0, 1.0) * length);
    decay = std::clamp<int64_t>(d, 1, decay);
  }
  const int64_t decay_start = length - decay;
  if (step < decay_start) return c.peak;
  const double p = static_cast<double>(step - decay_start + 1) / static_cast<double>(decay);
  return floor + 0.5 * (c.peak - floor) * (1 + std::cos(M_PI * p));
}

}  // namespace streamlm
