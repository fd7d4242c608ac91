#include "learner/schedule.h"

#include <cmath>

#include "gtest/gtest.h"

namespace streamlm {
namespace {

TEST(ScheduleTest, RewarmsThenRedecaysToTheFloor) {
  LrCycle c;
  c.peak = 1.0;
  c.min_ratio = 0.1;
  c.warmup_steps = 4;
  c.decay_steps = 10;
  // Warm-up: 0.1 + 0.9 * (k+1)/4.
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 0), 0.325);
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 1), 0.55);
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 3), 1.0);
  // Decay: the peak at its start, halfway (cos(pi/2) = 0) 0.55, the floor after.
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 4), 1.0);
  EXPECT_NEAR(CycleLearningRate(c, 9), 0.55, 1e-12);
  EXPECT_NEAR(CycleLearningRate(c, 13), 0.1 + 0.45 * (1 + std::cos(M_PI * 0.9)), 1e-12);
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 14), 0.1);
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 1000), 0.1);
  // Monotone decay.
  for (int k = 4; k < 20; ++k) EXPECT_LE(CycleLearningRate(c, k + 1), CycleLearningRate(c, k));
}

TEST(ScheduleTest, ConstantAndNoWarmup) {
  LrCycle c;
  c.peak = 0.003;
  c.schedule = "constant";
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 0), 0.003);
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 12345), 0.003);
  c.schedule = "cosine";
  c.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 0), 0.003);  // straight into the decay
}

}  // namespace
}  // namespace streamlm
