#include "model/cpu_tensor_cache.h"

#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

namespace streamlm {
namespace {

// Cached scopes open on this thread.
thread_local int tl_scope_depth = 0;

// libtorch's CPU allocator, with freed blocks of cached-scope allocations
// kept for reuse. Outside a cached scope it is libtorch's default allocator
// (c10::alloc_cpu / c10::free_cpu) without the profiler's memory reporting.
class CachingCpuAllocator final : public c10::Allocator {
 public:
  static CachingCpuAllocator& Get() {
    static auto* allocator = new CachingCpuAllocator();  // never destroyed
    return *allocator;
  }

  c10::DataPtr allocate(size_t nbytes) const override {
    if (tl_scope_depth == 0 || nbytes < ScopedCpuTensorCache::kMinCachedBytes) {
      void* p = c10::alloc_cpu(nbytes);
      return {p, p, &c10::free_cpu, c10::Device(c10::DeviceType::CPU)};
    }
    std::lock_guard<std::mutex> lock(mu_);
    void* p = nullptr;
    size_t bytes = nbytes;
    // Best fit, at most 1/8 larger than asked.
    auto it = free_.lower_bound(nbytes);
    if (it != free_.end() && it->first <= nbytes + nbytes / 8) {
      p = it->second.ptr;
      bytes = it->first;
      cached_bytes_ -= static_cast<int64_t>(bytes);
      free_.erase(it);
      ++hits_;
    } else {
      p = c10::alloc_cpu(nbytes);
      ++misses_;
    }
    live_[p] = bytes;
    return {p, p, &Free, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &Free; }

  // Frees blocks of cached-scope allocations into the cache, others to the
  // system (raw_allocate() hands out both kinds with this deleter).
  static void Free(void* p) {
    if (p == nullptr) return;
    CachingCpuAllocator& a = Get();
    {
      std::lock_guard<std::mutex> lock(a.mu_);
      auto it = a.live_.find(p);
      if (it != a.live_.end()) {
        a.free_.emplace(it->second, Entry{p, a.epoch_});
        a.cached_bytes_ += static_cast<int64_t>(it->second);
        a.live_.erase(it);
        return;
      }
    }
    c10::free_cpu(p);
  }

  // At the end of an outermost scope: returns the blocks that sat unused
  // through the whole of the scope that just ended (and any other scope
  // running meanwhile) to the system.
  void EndScope() {
    std::vector<void*> unused;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++epoch_;
      for (auto it = free_.begin(); it != free_.end();) {
        if (it->second.epoch + 1 < epoch_) {
          unused.push_back(it->second.ptr);
          cached_bytes_ -= static_cast<int64_t>(it->first);
          it = free_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (void* p : unused) c10::free_cpu(p);
  }

  void Release() {
    std::multimap<size_t, Entry> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      all.swap(free_);
      cached_bytes_ = 0;
    }
    for (const auto& e : all) c10::free_cpu(e.second.ptr);
  }

  CpuTensorCacheStats Stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return {cached_bytes_, hits_, misses_};
  }

 private:
  struct Entry {
    void* ptr;
    uint64_t epoch;  // epoch_ when it was freed
  };
  CachingCpuAllocator() = default;

  mutable std::mutex mu_;
  // Blocks handed out in cached scopes and not yet freed: size in bytes.
  mutable std::unordered_map<void*, size_t> live_;     // GUARDED_BY(mu_)
  mutable std::multimap<size_t, Entry> free_;          // GUARDED_BY(mu_), by size
  mutable int64_t cached_bytes_ = 0;                   // GUARDED_BY(mu_)
  mutable int64_t hits_ = 0, misses_ = 0;              // GUARDED_BY(mu_)
  uint64_t epoch_ = 0;                                 // GUARDED_BY(mu_): outermost scopes ended
};

}  // namespace

ScopedCpuTensorCache::ScopedCpuTensorCache() {
  static std::once_flag installed;
  std::call_once(installed, [] {
    // The default allocator registers with priority 0; a higher one wins.
    c10::SetCPUAllocator(&CachingCpuAllocator::Get(), /*priority=*/1);
  });
  ++tl_scope_depth;
}

ScopedCpuTensorCache::~ScopedCpuTensorCache() {
  if (--tl_scope_depth == 0) CachingCpuAllocator::Get().EndScope();
}

CpuTensorCacheStats GetCpuTensorCacheStats() { return CachingCpuAllocator::Get().Stats(); }

void ReleaseCpuTensorCache() { CachingCpuAllocator::Get().Release(); }

}  // namespace streamlm
