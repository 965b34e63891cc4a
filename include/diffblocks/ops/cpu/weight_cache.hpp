#pragma once
// Process-wide cache of data derived from weights (Winograd-transformed 3x3 kernels), so that a
// model run many times (a sampler's steps, a server's requests) transforms each weight once
// instead of at every forward: at T = 128 the transform alone was ~9 % of an Origin forward.
//
// Weights are plain public tensors that users may overwrite in place (load_state_dict, a
// researcher editing one kernel), so an entry is trusted only while the weights still hash the
// same: every lookup re-hashes them (one read of the weights, a quarter of what the transform
// itself moves), and any change computes the entry afresh. The hash runs 64 interleaved 32-bit
// FNV-1a lanes folded by a bijective 64-bit mix, so a change confined to one lane (any change
// of a single value, in particular) always changes it. Entries live until evicted (least
// recently used first) when the total passes the limit, by default 256 MiB; 0 disables the cache.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "diffblocks/core/allocator.hpp"
#include "diffblocks/core/parallel.hpp"

namespace diffblocks {
namespace ops {
namespace cpu {

namespace detail {
/// One step of the bijective fold that combines lane and run hashes (odd multiplier).
inline std::uint64_t fold(std::uint64_t f, std::uint64_t h) { return (f ^ h) * 0x100000001b3ull; }

/// The lane hash of one run of bytes (see the file comment).
inline std::uint64_t lane_hash(const unsigned char* p, std::size_t bytes) {
  constexpr int kLanes = 64;
  constexpr std::uint32_t kPrime32 = 16777619u;
  std::uint32_t h[kLanes];
  for (int l = 0; l < kLanes; ++l) h[l] = 2166136261u + static_cast<std::uint32_t>(l);
  const std::size_t words = bytes / 4, blocks = words / kLanes;
  for (std::size_t b = 0; b < blocks; ++b) {
    std::uint32_t u[kLanes];
    std::memcpy(u, p + b * kLanes * 4, sizeof u);
    for (int l = 0; l < kLanes; ++l) h[l] = (h[l] ^ u[l]) * kPrime32;
  }
  for (std::size_t i = blocks * kLanes * 4; i < bytes; ++i) h[i % kLanes] = (h[i % kLanes] ^ p[i]) * kPrime32;
  std::uint64_t f = 0xcbf29ce484222325ull ^ bytes;
  for (int l = 0; l < kLanes; ++l) f = fold(f, h[l]);
  return f;
}
}  // namespace detail

/// 64-bit content hash of `bytes` bytes (see the file comment). From 1 MiB on, the bytes are
/// cut into 16 runs (a fixed cut, so the hash does not depend on the thread count) hashed on
/// the pool and folded in order by the same bijective step: a change inside one run changes
/// that run's hash, and so the result. (The weights are hashed at every lookup; serially, that
/// was ~2 % of an Origin forward at T = 128, with the other thread idle.)
inline std::uint64_t content_hash(const void* data, std::size_t bytes) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  constexpr std::size_t kParallelFrom = std::size_t{1} << 20;
  constexpr int kRuns = 16;
  if (bytes < kParallelFrom) return detail::lane_hash(p, bytes);
  const std::size_t run = bytes / kRuns / 256 * 256;  // whole lane blocks
  std::uint64_t h[kRuns];
  parallel_for(kRuns, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    for (std::ptrdiff_t r = first; r < last; ++r)
      h[r] = detail::lane_hash(p + r * run, r + 1 < kRuns ? run : bytes - (kRuns - 1) * run);
  });
  std::uint64_t f = 0x9e3779b97f4a7c15ull ^ bytes;
  for (int r = 0; r < kRuns; ++r) f = detail::fold(f, h[r]);
  return f;
}

namespace detail {
struct WeightCacheState {
  std::atomic<std::size_t> limit{std::size_t{256} << 20};
  std::atomic<std::size_t> bytes{0};
};
inline WeightCacheState& weight_cache_state() {
  static WeightCacheState s;
  return s;
}

/// One cache per element type and kind of derived data.
template <class T>
class WeightCache {
 public:
  using Value = std::shared_ptr<const memory::WeightBuffer<T>>;
  static WeightCache& instance() {
    static WeightCache c;
    return c;
  }

  /// The entry for (w, n, kind, shape), made by make() when missing or stale.
  template <class Make>
  Value get(const T* w, std::size_t n, int kind, int shape_a, int shape_b, Make&& make) {
    WeightCacheState& st = weight_cache_state();
    if (st.limit.load() == 0) return std::make_shared<const memory::WeightBuffer<T>>(make());
    const Key key{w, n, kind, shape_a, shape_b};
    const std::uint64_t hash = content_hash(w, n * sizeof(T));
    {
      std::lock_guard<std::mutex> lk(mu_);
      auto it = map_.find(key);
      if (it != map_.end() && it->second.hash == hash) {
        it->second.used = ++clock_;
        return it->second.value;
      }
    }
    Value v = std::make_shared<const memory::WeightBuffer<T>>(make());  // outside the lock: may be slow
    std::lock_guard<std::mutex> lk(mu_);
    auto& e = map_[key];
    if (e.value) st.bytes -= e.value->size() * sizeof(T);
    e = Entry{hash, ++clock_, v};
    st.bytes += v->size() * sizeof(T);
    evict_locked(st);
    return v;
  }

  void clear() {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& kv : map_) weight_cache_state().bytes -= kv.second.value->size() * sizeof(T);
    map_.clear();
  }

 private:
  struct Key {
    const T* w;
    std::size_t n;
    int kind, a, b;
    bool operator==(const Key& o) const { return std::tie(w, n, kind, a, b) == std::tie(o.w, o.n, o.kind, o.a, o.b); }
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const {
      return std::hash<const void*>()(k.w) ^ (k.n * 0x9e3779b97f4a7c15ull) ^ (std::size_t(k.kind) << 7) ^
             (std::size_t(k.a) << 17) ^ (std::size_t(k.b) << 37);
    }
  };
  struct Entry {
    std::uint64_t hash = 0, used = 0;
    Value value;
  };

  void evict_locked(WeightCacheState& st) {
    while (st.bytes.load() > st.limit.load() && !map_.empty()) {
      auto oldest = map_.begin();
      for (auto it = map_.begin(); it != map_.end(); ++it)
        if (it->second.used < oldest->second.used) oldest = it;
      st.bytes -= oldest->second.value->size() * sizeof(T);
      map_.erase(oldest);  // users holding the shared_ptr keep their copy alive
    }
  }

  std::mutex mu_;
  std::unordered_map<Key, Entry, KeyHash> map_;
  std::uint64_t clock_ = 0;
};
}  // namespace detail

/// Most bytes of derived weights kept (process-wide; 0 turns the cache off and frees it).
inline void set_weight_cache_limit(std::size_t bytes) {
  detail::weight_cache_state().limit.store(bytes);
  if (bytes == 0) {
    detail::WeightCache<float>::instance().clear();
    detail::WeightCache<double>::instance().clear();
  }
}
inline std::size_t weight_cache_limit() { return detail::weight_cache_state().limit.load(); }
/// Bytes held by the cache now.
inline std::size_t weight_cache_bytes() { return detail::weight_cache_state().bytes.load(); }

}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
