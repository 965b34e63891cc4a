#pragma once
// Process-wide cache of data derived from weights (Winograd-transformed 3x3 kernels) for the raw
// op calls that no block stands behind (`ops::cpu::conv2d(x, w, ...)`, `ops::conv2d(device, x,
// w, ...)` without a slot), so that such a loop transforms each weight once instead of at every
// call (at T = 128 the transform alone was ~9 % of an Origin forward). The blocks keep their own
// prepared form instead (prepared.hpp) and never come here.
//
// Weights are plain public tensors that users may overwrite in place (load_state_dict, a
// researcher editing one kernel), so an entry is trusted only while the weights still hash the
// same: every lookup re-hashes them (one read of the weights, a quarter of what the transform
// itself moves; the hash is kernels/hash.inl's content_hash, computed by the caller), and any
// change computes the entry afresh. The layout of derived data depends on the kernels' copy
// (packed panels of 8 rows on AVX-512, 6 on AVX2, 4 on the baseline), so entries are keyed by
// the instruction set as well. Entries live until evicted (least recently used first) when the
// total passes the limit, by default 256 MiB; 0 disables the cache.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "diffblocks/core/allocator.hpp"
#include "diffblocks/ops/cpu/isa.hpp"

namespace diffblocks {
namespace ops {
namespace cpu {

/// Kinds of derived weights in the cache.
enum WeightKind : int {
  kWinogradKernels = 0,       ///< Winograd-transformed 3x3 kernels, packed (kernels/winograd.inl)
  kPackedConv = 1,            ///< a conv2d weight packed for the patch GEMM (kernels/conv.inl)
  kPackedConvTranspose = 2,   ///< every phase of a transposed convolution's weight, packed
};

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

  /// The entry for (w, n, kind, shape) in the layout of `isa`'s kernels, made by make() when
  /// missing or stale (its weights no longer hash to hash_of(w, bytes)).
  template <class Hash, class Make>
  Value get(Isa isa, const T* w, std::size_t n, int kind, int shape_a, int shape_b, Hash&& hash_of, Make&& make) {
    WeightCacheState& st = weight_cache_state();
    if (st.limit.load() == 0) return std::make_shared<const memory::WeightBuffer<T>>(make());
    const Key key{w, n, static_cast<int>(isa) << 8 | kind, shape_a, shape_b};
    const std::uint64_t hash = hash_of(static_cast<const void*>(w), n * sizeof(T));
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
