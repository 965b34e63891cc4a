#pragma once
// A caching allocator for CPU tensor storage.
//
// A U-Net forward allocates and frees a few hundred activation buffers of a handful of sizes,
// the same sizes at every sampler step. With plain malloc the large ones are mmap'ed and
// unmapped each time, so every step pays the kernel for fresh zeroed pages (measured: ~15 % of
// an Origin forward at T = 512 went to page faults and clear_page). Freed large blocks are kept
// here by size class and handed out again; the cache never grows beyond what the largest
// forward needed at once, and `release_cached_memory()` returns it to the system.
//
// Small requests (< 64 KiB) go straight to operator new: malloc serves those from its arenas
// without system calls.
#include <atomic>
#include <cstddef>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <type_traits>
#include <utility>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "diffblocks/core/error.hpp"

namespace diffblocks {
namespace memory {

namespace detail {

constexpr std::size_t kMinCached = std::size_t{1} << 16;
constexpr std::size_t kAlignment = 64;  // a cache line, and an AVX-512 vector

/// operator new for `bytes` of storage; a refusal becomes an OutOfMemoryError that says how much
/// was asked for (tensor sizes follow from inputs and configs, so the number is the clue).
inline void* aligned_new(std::size_t bytes, const char* what) {
  try {
    return ::operator new(bytes, std::align_val_t{kAlignment});
  } catch (const std::bad_alloc&) {
    throw OutOfMemoryError("out of memory: cannot allocate " + std::to_string(bytes) + " bytes of " + what);
  }
}

inline std::size_t checked_bytes(std::size_t n, std::size_t size, const char* what) {
  if (n > static_cast<std::size_t>(-1) / size)
    throw OutOfMemoryError("cannot allocate " + std::to_string(n) + " elements of " + std::to_string(size) +
                           " bytes of " + what + " (more than the address space)");
  return n * size;
}

/// Rounds up to 4 classes per power of two (at most 25 % slack), so buffers of nearby sizes
/// (e.g. T and T + 1 frames) share blocks.
inline std::size_t size_class(std::size_t bytes) {
  std::size_t top = kMinCached;
  while (top < bytes) top <<= 1;
  const std::size_t step = top / 8;  // classes: 5/8, 6/8, 7/8, 8/8 of top
  return (bytes + step - 1) / step * step;
}

class BlockCache {
 public:
  void* allocate(std::size_t bytes) {
    // No machine has 2^48 bytes; beyond that size_class() would shift its bound past 2^63.
    if (bytes > (std::size_t{1} << 48))
      throw OutOfMemoryError("out of memory: cannot allocate " + std::to_string(bytes) + " bytes of tensor storage");
    const std::size_t cls = size_class(bytes);
    if (tracking_.load(std::memory_order_relaxed)) {
      const std::ptrdiff_t now = live_.fetch_add(std::ptrdiff_t(cls)) + std::ptrdiff_t(cls);
      for (std::ptrdiff_t p = peak_.load(); now > p && !peak_.compare_exchange_weak(p, now);) {
      }
    }
    {
      std::lock_guard<std::mutex> lk(m_);
      // The smallest cached block that fits, up to kReuseSlack times the class: with exact
      // classes only, the cache kept the sum over classes of each class's peak (136 MB after an
      // Origin forward at T = 512 whose live peak was 52 MB); borrowing a larger block lets the
      // sizes of one forward share blocks.
      auto it = free_.lower_bound(cls);
      if (it != free_.end() && it->first <= kReuseSlack * cls) {
        void* p = it->second.back();
        const std::size_t real = it->first;
        it->second.pop_back();
        if (it->second.empty()) free_.erase(it);
        cached_ -= real;
        if (real != cls) {
          try {
            borrowed_[p] = real;
          } catch (const std::bad_alloc&) {  // then it is filed under the smaller class: still big enough
          }
        }
        return p;
      }
    }
    return aligned_new(cls, "tensor storage");
  }

  void deallocate(void* p, std::size_t bytes) {
    std::size_t cls = size_class(bytes);
    if (tracking_.load(std::memory_order_relaxed)) live_.fetch_sub(std::ptrdiff_t(cls));
    {
      std::lock_guard<std::mutex> lk(m_);
      if (!borrowed_.empty()) {  // a larger block lent to this request goes back to its own class
        auto b = borrowed_.find(p);
        if (b != borrowed_.end()) {
          cls = b->second;
          borrowed_.erase(b);
        }
      }
      if (cached_ + cls <= limit_.load()) {
        try {
          free_[cls].push_back(p);
          cached_ += cls;
          return;
        } catch (const std::bad_alloc&) {  // no room to remember it: free it instead
          auto e = free_.find(cls);
          if (e != free_.end() && e->second.empty()) free_.erase(e);
        }
      }
    }
    ::operator delete(p, std::align_val_t{kAlignment});
  }

  void release() {
    std::lock_guard<std::mutex> lk(m_);
    for (auto& [cls, blocks] : free_)
      for (void* p : blocks) ::operator delete(p, std::align_val_t{kAlignment});
    free_.clear();
    cached_ = 0;
  }

  std::size_t cached_bytes() {
    std::lock_guard<std::mutex> lk(m_);
    return cached_;
  }

  /// Memory probe (see PeakMemoryProbe): counts only while enabled, from zero.
  void start_tracking() {
    live_.store(0);
    peak_.store(0);
    tracking_.store(true);
  }
  void stop_tracking() { tracking_.store(false); }
  std::ptrdiff_t live_bytes() const { return live_.load(); }
  std::ptrdiff_t peak_bytes() const { return peak_.load(); }

  void set_limit(std::size_t bytes) {
    limit_.store(bytes);
    std::lock_guard<std::mutex> lk(m_);
    for (auto& [cls, blocks] : free_)
      while (!blocks.empty() && cached_ > bytes) {
        ::operator delete(blocks.back(), std::align_val_t{kAlignment});
        blocks.pop_back();
        cached_ -= cls;
      }
    for (auto it = free_.begin(); it != free_.end();) it = it->second.empty() ? free_.erase(it) : std::next(it);
  }

 private:
  static constexpr std::size_t kReuseSlack = 2;
  std::mutex m_;
  std::map<std::size_t, std::vector<void*>> free_;           // by class, never an empty list
  std::unordered_map<void*, std::size_t> borrowed_;           // blocks handed out for a smaller class
  std::size_t cached_ = 0;
  std::atomic<std::size_t> limit_{std::size_t{4} << 30};
  std::atomic<bool> tracking_{false};
  std::atomic<std::ptrdiff_t> live_{0}, peak_{0};  // while tracking: large blocks handed out minus returned
};

/// Immortal: tensors in other static objects may be destroyed after any static cache would be.
inline BlockCache& cache() {
  static BlockCache* c = new BlockCache;
  return *c;
}

}  // namespace detail

/// Measures how much memory a piece of work needs: while a probe lives, large (>= 64 KiB) tensor
/// and scratch blocks handed out minus those returned are counted, and `peak_bytes()` is the
/// most outstanding at once since the probe started (storage allocated before it is not counted).
/// Process-wide and meant for measurement (benchmarks, tests): one probe at a time. Without a
/// probe the allocator does no accounting at all.
class PeakMemoryProbe {
 public:
  PeakMemoryProbe() { detail::cache().start_tracking(); }
  ~PeakMemoryProbe() { detail::cache().stop_tracking(); }
  PeakMemoryProbe(const PeakMemoryProbe&) = delete;
  PeakMemoryProbe& operator=(const PeakMemoryProbe&) = delete;
  std::ptrdiff_t live_bytes() const { return detail::cache().live_bytes(); }
  std::ptrdiff_t peak_bytes() const { return detail::cache().peak_bytes(); }
};

/// Bytes of freed tensor storage held for reuse.
inline std::size_t cached_bytes() { return detail::cache().cached_bytes(); }
/// Returns every cached block to the system (e.g. after synthesising a very long utterance).
inline void release_cached_memory() { detail::cache().release(); }
/// At most this many bytes are kept for reuse (default 4 GiB); lowering it frees the excess now.
inline void set_cache_limit(std::size_t bytes) { detail::cache().set_limit(bytes); }

namespace detail {
/// What the library's allocators share: they are stateless (any two of a family are equal), and
/// a value-less construction (vector(n), resize(n)) leaves trivial elements uninitialised
/// instead of zeroing them. Scratch is written before it is read, and a memset of the Winograd
/// buffers alone cost ~4 % of an Origin forward; code that needs zeros says so (assign, fill).
/// DIFFBLOCKS_POISON_ALLOCATIONS (the sanitizer build) fills fresh scratch with NaN so that a
/// read of unwritten storage fails the parity tests.
template <template <class> class Family>
struct AllocatorCommon {
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible<U>::value) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <class U>
  bool operator==(const Family<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const Family<U>&) const noexcept {
    return false;
  }
};
}  // namespace detail

/// std::allocator-compatible; all instances share the process-wide cache.
template <class T>
struct CachingAllocator : detail::AllocatorCommon<CachingAllocator> {
  using value_type = T;
  CachingAllocator() noexcept = default;
  template <class U>
  CachingAllocator(const CachingAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    const std::size_t bytes = detail::checked_bytes(n, sizeof(T), "tensor storage");
    if (bytes < detail::kMinCached) {
      T* p = static_cast<T*>(detail::aligned_new(bytes, "tensor storage"));
#ifdef DIFFBLOCKS_POISON_ALLOCATIONS
      std::memset(static_cast<void*>(p), 0xff, bytes);
#endif
      return p;
    }
    T* p = static_cast<T*>(detail::cache().allocate(bytes));
#ifdef DIFFBLOCKS_POISON_ALLOCATIONS
    std::memset(static_cast<void*>(p), 0xff, bytes);  // NaN for float: exposes reads of unwritten storage
#endif
    return p;
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (!p) return;
    const std::size_t bytes = n * sizeof(T);
    if (bytes < detail::kMinCached)
      ::operator delete(p, std::align_val_t{detail::kAlignment});
    else
      detail::cache().deallocate(p, bytes);
  }
};

/// Allocator of long-lived data derived from weights (prepared forms, ops/cpu/prepared.hpp):
/// aligned like tensors, elements left uninitialised like scratch, but outside the caching
/// allocator, so a PeakMemoryProbe measures activations and scratch only (prepared_bytes()
/// reports these).
template <class T>
struct WeightAllocator : detail::AllocatorCommon<WeightAllocator> {
  using value_type = T;
  WeightAllocator() noexcept = default;
  template <class U>
  WeightAllocator(const WeightAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(detail::aligned_new(detail::checked_bytes(n, sizeof(T), "prepared weights"), "prepared weights"));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{detail::kAlignment}); }
};
template <class T>
using WeightBuffer = std::vector<T, WeightAllocator<T>>;

/// Scratch storage of the CPU kernels: 64-byte aligned like tensors, so that vectorised
/// reductions (whose peeling depends on the address) give bit-identical results run to run.
template <class T>
using Buffer = std::vector<T, CachingAllocator<T>>;

}  // namespace memory
}  // namespace diffblocks
