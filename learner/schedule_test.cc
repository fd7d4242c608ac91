#include "learner/schedule.h"

#include <cmath>

#include "gtest/gtest.h"

namespace streamlm {
namespace {

TEST(ScheduleTest, RewarmsThenRedecaysToTheFloorAtTheCandidate) {
  LrCycle c;
  c.peak = 1.0;
  c.min_ratio = 0.1;
  c.warmup_steps = 4;
  c.length = 14;  // 4 warm-up steps, 10 decay steps
  // Warm-up: 0.1 + 0.9 * (k+1)/4, the peak at step 3.
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 0), 0.325);
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 1), 0.55);
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 3), 1.0);
  // Decay step j (1..10) at 0.1 + 0.45 * (1 + cos(pi * j / 10)): halfway
  // (j = 5, cos(pi/2) = 0) 0.55; the last step of the cycle (13) at the floor.
  EXPECT_NEAR(CycleLearningRate(c, 4), 0.1 + 0.45 * (1 + std::cos(M_PI * 0.1)), 1e-12);
  EXPECT_NEAR(CycleLearningRate(c, 8), 0.55, 1e-12);
  EXPECT_NEAR(CycleLearningRate(c, 12), 0.1 + 0.45 * (1 + std::cos(M_PI * 0.9)), 1e-12);
  EXPECT_NEAR(CycleLearningRate(c, 13), 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 14), 0.1);
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 1000), 0.1);
  // Monotone decay.
  for (int k = 3; k < 20; ++k) EXPECT_LE(CycleLearningRate(c, k + 1), CycleLearningRate(c, k));
}

TEST(ScheduleTest, ShortCyclesWarmForAtMostHalf) {
  LrCycle c;
  c.peak = 1.0;
  c.min_ratio = 0.1;
  c.warmup_steps = 10;
  c.length = 6;  // warm-up cut to 3 steps, decay over 3
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 0), 0.4);
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 2), 1.0);
  EXPECT_NEAR(CycleLearningRate(c, 3), 0.1 + 0.45 * (1 + std::cos(M_PI / 3)), 1e-12);  // 0.775
  EXPECT_NEAR(CycleLearningRate(c, 5), 0.1, 1e-12);
  c.length = 1;  // one step: the candidate follows it, at the floor
  EXPECT_NEAR(CycleLearningRate(c, 0), 0.1, 1e-12);
}

TEST(ScheduleTest, ConstantAndNoWarmup) {
  LrCycle c;
  c.peak = 0.003;
  c.schedule = "constant";
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 0), 0.003);
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 12345), 0.003);
  c.schedule = "cosine";
  c.warmup_steps = 0;
  c.length = 2;
  EXPECT_NEAR(CycleLearningRate(c, 0), 0.003 * (0.1 + 0.45 * 1), 1e-15);  // cos(pi/2) = 0
  EXPECT_NEAR(CycleLearningRate(c, 1), 0.0003, 1e-15);
}

TEST(ScheduleTest, WsdHoldsThePeakAndDecaysOverTheCyclesLastShare) {
  LrCycle c;
  c.schedule = "wsd";
  c.peak = 1.0;
  c.min_ratio = 0.1;
  c.warmup_steps = 4;
  c.length = 20;
  c.decay_fraction = 0.25;  // the last 5 steps (15..19) decay
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 0), 0.325);  // warm-up as under cosine
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 3), 1.0);
  for (int k = 4; k < 15; ++k) EXPECT_DOUBLE_EQ(CycleLearningRate(c, k), 1.0) << k;
  // Decay step j (1..5) at 0.1 + 0.45 * (1 + cos(pi * j / 5)).
  EXPECT_NEAR(CycleLearningRate(c, 15), 0.1 + 0.45 * (1 + std::cos(M_PI * 0.2)), 1e-12);
  EXPECT_NEAR(CycleLearningRate(c, 17), 0.1 + 0.45 * (1 + std::cos(M_PI * 0.6)), 1e-12);
  EXPECT_NEAR(CycleLearningRate(c, 19), 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 20), 0.1);
  // The decay never eats into the warm-up, and is at least one step.
  c.decay_fraction = 1.0;
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 3), 1.0);
  EXPECT_NEAR(CycleLearningRate(c, 4), 0.1 + 0.45 * (1 + std::cos(M_PI / 16)), 1e-12);
  c.decay_fraction = 0;
  EXPECT_DOUBLE_EQ(CycleLearningRate(c, 18), 1.0);
  EXPECT_NEAR(CycleLearningRate(c, 19), 0.1, 1e-12);
  EXPECT_TRUE(IsCyclicSchedule("wsd"));
  EXPECT_TRUE(IsCyclicSchedule("cosine"));
  EXPECT_FALSE(IsCyclicSchedule("constant"));
}

}  // namespace
}  // namespace streamlm
