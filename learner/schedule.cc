#include "learner/schedule.h"

#include <algorithm>
#include <cmath>

namespace streamlm {

double CycleLearningRate(const LrCycle& c, int64_t step) {
  if (c.schedule == "constant") return c.peak;
  const double floor = c.peak * c.min_ratio;
  step = std::max<int64_t>(0, step);
  if (step < c.warmup_steps) {
    return floor + (c.peak - floor) * static_cast<double>(step + 1) /
                       static_cast<double>(c.warmup_steps);
  }
  const int64_t into = step - c.warmup_steps;
  if (c.decay_steps > 0 && into < c.decay_steps) {
    const double p = static_cast<double>(into) / static_cast<double>(c.decay_steps);
    return floor + 0.5 * (c.peak - floor) * (1 + std::cos(M_PI * p));
  }
  return floor;
}

}  // namespace streamlm
