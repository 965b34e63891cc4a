#pragma once
// The caching allocator of the Cuda device: plain cudaMalloc (never managed memory) behind free
// lists, so a U-Net forward, which allocates and frees a few hundred buffers of a handful of
// sizes, reaches cudaMalloc only on its first call (cudaMalloc and cudaFree are slow and
// cudaFree synchronises the whole device).
//
// Blocks are rounded up to size classes (512 B minimum, then 4 classes per power of two) and
// remembered with the stream they were allocated on. A freed block goes back to its stream's
// free list at once, without a synchronisation, and is handed out again only to an allocation
// on the same stream: work on one stream runs in order, so the next user of the block runs
// after every earlier use of it. The rule that follows (PyTorch's caching allocator has the
// same one): a tensor used on a stream other than the one it was allocated on must not be freed
// before that other stream's work on it has finished (synchronise that stream first). The
// library itself only ever uses the current stream.
//
// A cuda::Stream that is destroyed synchronises first, then its free blocks move to the default
// stream's lists; blocks of a destroyed stream freed later are returned after a device-wide
// synchronisation (rare: only tensors that outlive their stream).
//
// When cudaMalloc fails, every cached block is released (after a device synchronisation) and
// the allocation is tried once more; then CudaError "out of memory" names the size.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "diffblocks/core/cuda/runtime.hpp"

namespace diffblocks {
namespace cuda {
namespace memory {

/// One device allocation as a tensor holds it.
struct Block {
  void* ptr = nullptr;
  std::size_t bytes = 0;   // size class actually allocated
  std::uint64_t stream = 0;  // id of the stream it belongs to
};

/// Allocator counters (bytes).
struct Stats {
  std::size_t in_use = 0;        // handed out and not yet freed
  std::size_t peak_in_use = 0;   // maximum of in_use since the last reset_peak()
  std::size_t cached = 0;        // freed, kept for reuse
  std::size_t reserved = 0;      // obtained from cudaMalloc and not yet released
  std::size_t mallocs = 0;       // cudaMalloc calls so far
};

namespace detail {

constexpr std::size_t kMinBlock = 512;

/// 512 B, then 4 classes per power of two (at most 25 % slack): nearby sizes share blocks.
inline std::size_t size_class(std::size_t bytes) {
  if (bytes <= kMinBlock) return kMinBlock;
  std::size_t top = kMinBlock;
  while (top < bytes) top <<= 1;
  const std::size_t step = top / 8;  // 5/8, 6/8, 7/8, 8/8 of top
  return (bytes + step - 1) / step * step;
}

class DeviceCache {
 public:
  Block allocate(std::size_t bytes) {
    Block b;
    if (bytes == 0) return b;
    b.bytes = size_class(bytes);
    b.stream = current_stream().id;
    {
      std::lock_guard<std::mutex> lk(m_);
      auto it = free_.find({b.stream, b.bytes});
      if (it != free_.end() && !it->second.empty()) {
        b.ptr = it->second.back();
        it->second.pop_back();
        stats_.cached -= b.bytes;
        note_in_use(b.bytes);
        return b;
      }
    }
    cudaError_t e = cudaMalloc(&b.ptr, b.bytes);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      const std::size_t released = release();
      e = cudaMalloc(&b.ptr, b.bytes);
      if (e != cudaSuccess) {
        (void)cudaGetLastError();
        const Stats s = stats();
        throw CudaError("CUDA error in cudaMalloc(" + std::to_string(b.bytes) + " bytes): " + cudaGetErrorString(e) +
                        " [" + cudaGetErrorName(e) + "] (" + std::to_string(released >> 20) +
                        " MiB of cached blocks were released first; " + std::to_string(s.in_use >> 20) +
                        " MiB in use by tensors)");
      }
    }
    std::lock_guard<std::mutex> lk(m_);
    stats_.reserved += b.bytes;
    ++stats_.mallocs;
    note_in_use(b.bytes);
    return b;
  }

  void deallocate(const Block& b) noexcept {
    if (!b.ptr) return;
    std::unique_lock<std::mutex> lk(m_);
    std::uint64_t stream = b.stream;
    if (retired_.count(stream)) {
      // Its stream is gone, and it may have been used on any other: wait for all of them.
      lk.unlock();
      (void)cudaDeviceSynchronize();
      (void)cudaGetLastError();
      lk.lock();
      stream = default_id_;
    }
    try {
      free_[{stream, b.bytes}].push_back(b.ptr);
    } catch (...) {  // no memory to remember it: give it back instead
      (void)cudaFree(b.ptr);
      stats_.reserved -= b.bytes;
      stats_.in_use -= b.bytes;
      return;
    }
    stats_.in_use -= b.bytes;
    stats_.cached += b.bytes;
  }

  /// Frees every cached block (after waiting for the device); returns the bytes released.
  std::size_t release() noexcept {
    (void)cudaDeviceSynchronize();
    (void)cudaGetLastError();
    std::lock_guard<std::mutex> lk(m_);
    std::size_t n = 0;
    for (auto& kv : free_)
      for (void* p : kv.second) {
        (void)cudaFree(p);
        n += kv.first.second;
      }
    free_.clear();
    stats_.cached -= n;
    stats_.reserved -= n;
    return n;
  }

  /// A stream being destroyed (already synchronised): its free blocks join the default stream's.
  void retire_stream(std::uint64_t id, std::uint64_t default_id) noexcept {
    std::lock_guard<std::mutex> lk(m_);
    default_id_ = default_id;
    try {
      retired_.insert(id);
      for (auto it = free_.begin(); it != free_.end();) {
        if (it->first.first != id) {
          ++it;
          continue;
        }
        auto& dst = free_[{default_id, it->first.second}];
        dst.insert(dst.end(), it->second.begin(), it->second.end());
        it = free_.erase(it);
      }
    } catch (...) {  // out of host memory: leave them where they are (never reused, freed by release())
    }
  }

  Stats stats() {
    std::lock_guard<std::mutex> lk(m_);
    return stats_;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lk(m_);
    stats_.peak_in_use = stats_.in_use;
  }

 private:
  void note_in_use(std::size_t bytes) {
    stats_.in_use += bytes;
    stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  }

  std::mutex m_;
  std::map<std::pair<std::uint64_t, std::size_t>, std::vector<void*>> free_;  // (stream id, class) -> blocks
  std::set<std::uint64_t> retired_;
  std::uint64_t default_id_ = 0;
  Stats stats_;
};

/// Immortal: tensors in static objects may be destroyed after any static cache would be.
inline DeviceCache& cache() {
  static DeviceCache* c = new DeviceCache;
  return *c;
}

}  // namespace detail

inline Block allocate(std::size_t bytes) { return detail::cache().allocate(bytes); }
inline void deallocate(const Block& b) noexcept { detail::cache().deallocate(b); }

/// Counters of the device allocator (bytes; see Stats).
inline Stats stats() { return detail::cache().stats(); }
/// peak_in_use restarts from the bytes in use now.
inline void reset_peak() { detail::cache().reset_peak(); }
/// Returns every cached (freed) block to the device; returns the bytes released.
inline std::size_t release_cached_memory() { return detail::cache().release(); }

}  // namespace memory

/// An owned stream (non-blocking). Its destructor waits for the stream's work, then retires it
/// from the allocator and destroys it. Set it as a thread's current stream with StreamGuard.
class Stream {
 public:
  Stream() {
    require_device();
    DIFFBLOCKS_CUDA_CHECK(cudaStreamCreateWithFlags(&ref_.handle, cudaStreamNonBlocking));
    ref_.id = detail::next_stream_id();
  }
  ~Stream() {
    (void)cudaStreamSynchronize(ref_.handle);
    try {
      memory::detail::cache().retire_stream(ref_.id, default_stream().id);
    } catch (...) {  // the default stream could not be created: keep the blocks out of use
    }
    (void)cudaStreamDestroy(ref_.handle);
    (void)cudaGetLastError();
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  cudaStream_t handle() const { return ref_.handle; }
  const StreamRef& ref() const { return ref_; }
  void synchronize() const { DIFFBLOCKS_CUDA_CHECK(cudaStreamSynchronize(ref_.handle)); }

 private:
  StreamRef ref_;
};

/// Makes `s` the current stream of this host thread until the guard goes out of scope (guards
/// nest; the previous stream is restored). Tensors created under the guard belong to `s`.
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& s) : ref_(s.ref()), previous_(detail::thread_stream_override()) {
    detail::thread_stream_override() = &ref_;
  }
  ~StreamGuard() { detail::thread_stream_override() = previous_; }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  StreamRef ref_;
  StreamRef* previous_;
};

}  // namespace cuda
}  // namespace diffblocks
