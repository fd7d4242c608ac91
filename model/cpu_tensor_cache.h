// A cache of freed CPU tensor buffers for training steps.
//
// Every training step allocates and frees the same activations and
// gradients (about 500 MB per step for `bench train --config small`). glibc
// hands blocks this large back to the kernel on free, so each step
// page-faults all of them in again: a third of the step's time went to the
// kernel zeroing pages. While a ScopedCpuTensorCache is alive on a thread,
// CPU tensors of at least kMinCachedBytes that the thread allocates are
// kept when freed (by any thread) and handed out again to an allocation of
// the same size (up to 1/8 larger) in a cached scope.
//
// Memory bound: a block that no cached scope reused during a whole scope
// (the outermost one on any thread, i.e. a training step) is returned to
// the system when the next scope ends, so the cache holds about one step's
// working set between steps, never more than the largest two steps.
// ReleaseCpuTensorCache() empties it.
//
// Thread-safety: all functions may be called from any thread. The first
// scope installs the caching allocator as libtorch's CPU allocator for the
// process; allocations outside a scope (other threads, serving) go straight
// to the system as with libtorch's default allocator.
#ifndef STREAMLM_MODEL_CPU_TENSOR_CACHE_H_
#define STREAMLM_MODEL_CPU_TENSOR_CACHE_H_

#include <cstddef>
#include <cstdint>

namespace streamlm {

class ScopedCpuTensorCache {
 public:
  // Smaller buffers come from malloc's own free lists without page faults.
  static constexpr size_t kMinCachedBytes = size_t{1} << 16;

  ScopedCpuTensorCache();
  ~ScopedCpuTensorCache();
  ScopedCpuTensorCache(const ScopedCpuTensorCache&) = delete;
  ScopedCpuTensorCache& operator=(const ScopedCpuTensorCache&) = delete;
};

struct CpuTensorCacheStats {
  int64_t cached_bytes = 0;  // freed blocks held for reuse
  int64_t hits = 0;          // allocations served from the cache (since start)
  int64_t misses = 0;        // allocations in a scope that went to the system
};
CpuTensorCacheStats GetCpuTensorCacheStats();

// Returns every cached block to the system (blocks in use are unaffected).
void ReleaseCpuTensorCache();

}  // namespace streamlm

#endif  // STREAMLM_MODEL_CPU_TENSOR_CACHE_H_
