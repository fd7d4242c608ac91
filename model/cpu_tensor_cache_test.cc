#include "model/cpu_tensor_cache.h"

#include <thread>

#include <torch/torch.h>

#include "gtest/gtest.h"

namespace streamlm {
namespace {

constexpr int64_t kFloatsPerMiB = (1 << 20) / 4;

class CpuTensorCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { ReleaseCpuTensorCache(); }
  void TearDown() override { ReleaseCpuTensorCache(); }
};

TEST_F(CpuTensorCacheTest, ScopeReusesFreedBlocksOfTheSameSize) {
  ScopedCpuTensorCache scope;
  void* first = nullptr;
  {
    auto t = torch::ones({kFloatsPerMiB});
    first = t.data_ptr();
  }
  EXPECT_EQ(GetCpuTensorCacheStats().cached_bytes, 1 << 20);
  const int64_t hits = GetCpuTensorCacheStats().hits;
  auto again = torch::zeros({kFloatsPerMiB});
  EXPECT_EQ(again.data_ptr(), first);
  EXPECT_EQ(GetCpuTensorCacheStats().hits, hits + 1);
  EXPECT_EQ(GetCpuTensorCacheStats().cached_bytes, 0);
  // The block's old contents do not leak into what the op wrote.
  EXPECT_EQ(again.abs().sum().item<float>(), 0.0f);
}

TEST_F(CpuTensorCacheTest, BestFitAcceptsAtMostAnEighthMore) {
  ScopedCpuTensorCache scope;
  void* block = nullptr;
  {
    auto t = torch::empty({kFloatsPerMiB});
    block = t.data_ptr();
  }
  auto half = torch::empty({kFloatsPerMiB / 2});  // would waste half the block
  EXPECT_NE(half.data_ptr(), block);
  auto slightly_smaller = torch::empty({kFloatsPerMiB - 1024});
  EXPECT_EQ(slightly_smaller.data_ptr(), block);
}

TEST_F(CpuTensorCacheTest, NothingIsCachedOutsideAScopeOrBelowTheMinimum) {
  { ScopedCpuTensorCache install; }  // the allocator is installed from here on
  ReleaseCpuTensorCache();
  { auto t = torch::empty({kFloatsPerMiB}); }
  EXPECT_EQ(GetCpuTensorCacheStats().cached_bytes, 0);
  ScopedCpuTensorCache scope;
  { auto small = torch::empty({static_cast<int64_t>(ScopedCpuTensorCache::kMinCachedBytes / 8)}); }
  EXPECT_EQ(GetCpuTensorCacheStats().cached_bytes, 0);
}

TEST_F(CpuTensorCacheTest, BlockFreedOnAnotherThreadReturnsToTheCache) {
  ScopedCpuTensorCache scope;
  auto t = torch::empty({kFloatsPerMiB});
  void* block = t.data_ptr();
  std::thread([moved = std::move(t)]() mutable { moved.reset(); }).join();
  EXPECT_EQ(GetCpuTensorCacheStats().cached_bytes, 1 << 20);
  EXPECT_EQ(torch::empty({kFloatsPerMiB}).data_ptr(), block);
}

TEST_F(CpuTensorCacheTest, BlocksUnusedForAWholeScopeAreReleased) {
  {
    ScopedCpuTensorCache step1;
    auto t = torch::empty({2 * kFloatsPerMiB});
  }
  EXPECT_EQ(GetCpuTensorCacheStats().cached_bytes, 2 << 20);  // kept for the next step
  { ScopedCpuTensorCache step2; }                              // which does not use it
  EXPECT_EQ(GetCpuTensorCacheStats().cached_bytes, 0);
}

TEST_F(CpuTensorCacheTest, NestedScopesEndAStepOnlyOnce) {
  {
    ScopedCpuTensorCache step1;
    auto t = torch::empty({kFloatsPerMiB});
  }
  {
    ScopedCpuTensorCache step2;
    { ScopedCpuTensorCache inner; }
    // step2 is still running: the block freed in step1 is still offered.
    EXPECT_EQ(GetCpuTensorCacheStats().cached_bytes, 1 << 20);
  }
  EXPECT_EQ(GetCpuTensorCacheStats().cached_bytes, 0);
}

}  // namespace
}  // namespace streamlm
