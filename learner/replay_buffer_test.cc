#include "learner/replay_buffer.h"

#include <map>

#include "gtest/gtest.h"

namespace streamlm {
namespace {

TEST(ReplayBufferTest, KeepsAUniformSampleWithinCapacity) {
  // Offer 0..9999 to a 1000-block reservoir many times: each value's chance
  // of being kept is 1/10, so the kept values' mean is near the stream's.
  ReplayBuffer buf(1000, 9);
  for (int i = 0; i < 10000; ++i) buf.Add({i});
  EXPECT_EQ(buf.size(), 1000u);
  EXPECT_EQ(buf.offered(), 10000);
  auto sample = buf.Sample(20000);
  double mean = 0;
  for (const TokenBlock& b : sample) mean += b[0];
  mean /= sample.size();
  EXPECT_NEAR(mean, 5000, 300);
  int early = 0;
  for (const TokenBlock& b : sample) early += b[0] < 1000;
  EXPECT_NEAR(early / 20000.0, 0.1, 0.03);  // old data is not crowded out
}

TEST(ReplayBufferTest, SerializeRestoresContentAndCount) {
  ReplayBuffer a(10, 1);
  for (int i = 0; i < 25; ++i) a.Add({i, i + 1, i + 2});
  ReplayBuffer b(10, 1);
  ASSERT_TRUE(b.Restore(a.Serialize()).ok());
  EXPECT_EQ(b.size(), 10u);
  EXPECT_EQ(b.offered(), 25);
  EXPECT_EQ(b.Serialize(), a.Serialize());
  EXPECT_FALSE(b.Restore("garbage").ok());
  EXPECT_FALSE(b.Restore(a.Serialize().substr(0, 30)).ok());
}

TEST(ReplayBufferTest, EmptyBufferSamplesNothing) {
  ReplayBuffer buf(4, 1);
  EXPECT_TRUE(buf.Sample(3).empty());
}

}  // namespace
}  // namespace streamlm
