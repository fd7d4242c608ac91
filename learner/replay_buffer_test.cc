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

// Blocks whose first token names their slice: 0 base, 1 "news", 2 "chat".
SlicedReplay ThreeSlices(uint64_t seed) {
  SlicedReplay r(100, 0.5, 8, seed);
  for (int i = 0; i < 50; ++i) {
    r.Add(SlicedReplay::kBase, {0, i});
    r.Add("news", {1, i});
    r.Add("chat", {2, i});
  }
  return r;
}

std::map<int, double> Frequencies(const std::vector<TokenBlock>& blocks) {
  std::map<int, double> f;
  for (const TokenBlock& b : blocks) f[b[0]] += 1.0 / static_cast<double>(blocks.size());
  return f;
}

TEST(SlicedReplayTest, SamplesSlicesByTheirShares) {
  SlicedReplay r = ThreeSlices(3);
  // Base 0.5; the two stream sources split the other half.
  auto shares = r.Shares();
  EXPECT_DOUBLE_EQ(shares["base"], 0.5);
  EXPECT_DOUBLE_EQ(shares["news"], 0.25);
  EXPECT_DOUBLE_EQ(shares["chat"], 0.25);
  auto f = Frequencies(r.Sample(20000));
  // Binomial sd at n = 20000: sqrt(.25 * .75 / 20000) = 0.003.
  EXPECT_NEAR(f[0], 0.5, 0.015);
  EXPECT_NEAR(f[1], 0.25, 0.015);
  EXPECT_NEAR(f[2], 0.25, 0.015);
  // A forgotten slice's weight doubles: weights 0.5, 0.5, 0.25 -> 0.4, 0.4, 0.2.
  r.Boost("news", 2, 4);
  f = Frequencies(r.Sample(20000));
  EXPECT_NEAR(f[0], 0.4, 0.015);
  EXPECT_NEAR(f[1], 0.4, 0.015);
  EXPECT_NEAR(f[2], 0.2, 0.015);
  r.Boost("news", 8, 4);  // capped at 4: weights 0.5, 1, 0.25
  EXPECT_NEAR(r.Shares()["news"], 1 / 1.75, 1e-12);
  r.ClearBoosts();
  EXPECT_DOUBLE_EQ(r.Shares()["news"], 0.25);
}

TEST(SlicedReplayTest, WithoutABaseSliceTheStreamSlicesShareEverything) {
  SlicedReplay r(10, 0.5, 2, 1);
  r.Add("a", {1});
  r.Add("b", {2});
  r.Add("c", {3});  // beyond max_slices: shares "(other)"
  r.Add("d", {4});
  auto shares = r.Shares();
  EXPECT_EQ(shares.size(), 3u);
  EXPECT_DOUBLE_EQ(shares["a"], 1.0 / 3);
  EXPECT_EQ(r.slice_size(SlicedReplay::kOther), 2u);
}

TEST(SlicedReplayTest, RestoredReplayContinuesTheSameSampleSequence) {
  SlicedReplay a = ThreeSlices(7);
  a.Boost("chat", 2, 4);
  a.Sample(37);  // move the generators along
  SlicedReplay b(100, 0.5, 8, 12345);  // another seed: the state must come from the bytes
  ASSERT_TRUE(b.Restore(a.Serialize()).ok());
  EXPECT_EQ(b.Serialize(), a.Serialize());
  EXPECT_EQ(b.Sample(500), a.Sample(500));
  for (int i = 0; i < 200; ++i) {  // reservoir replacement draws too
    a.Add("news", {1, 100 + i});
    b.Add("news", {1, 100 + i});
  }
  EXPECT_EQ(b.Serialize(), a.Serialize());
  // Corrupt or truncated bytes are errors, not a silently empty replay.
  std::string bytes = a.Serialize();
  EXPECT_FALSE(b.Restore(bytes.substr(0, bytes.size() - 5)).ok());
  EXPECT_FALSE(b.Restore(bytes.substr(0, 40)).ok());
  std::string bad = bytes;
  bad.replace(bad.find("\"rng\""), 5, "\"rnq\"");
  EXPECT_FALSE(b.Restore(bad).ok());
}

TEST(SlicedReplayTest, ReadsAnOlderSingleReservoirCheckpoint) {
  ReplayBuffer old(10, 1);
  for (int i = 0; i < 5; ++i) old.Add({i});
  SlicedReplay r(10, 0.5, 8, 1);
  ASSERT_TRUE(r.Restore(old.Serialize()).ok());
  EXPECT_EQ(r.size(), 5u);
  EXPECT_EQ(r.slice_size(""), 5u);
  EXPECT_EQ(r.Sample(3).size(), 3u);
}

}  // namespace
}  // namespace streamlm
