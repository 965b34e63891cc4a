#pragma once
// The Cuda device policy and its tensor: a row-major (NCHW) array of float32, bf16 or f16 in device memory
// with a static rank, owned by value like the CPU's xtensor containers (a copy is a
// device-to-device copy on the current stream; moves are free). Storage comes from the caching
// allocator (allocator.hpp). Host <-> device transfers are explicit: assign_from_host /
// copy_to_host (what checkpoint loading uses) and to_device(Cuda{} / Cpu{}, tensor).
#include <array>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "diffblocks/core/cuda/allocator.hpp"
#include "diffblocks/core/device.hpp"

namespace diffblocks {
namespace cuda {

template <class T, std::size_t N>
class DeviceTensor {
 public:
  using value_type = T;
  using size_type = std::size_t;
  using shape_type = std::array<std::size_t, N>;

  /// Empty: every dimension 0, no storage.
  DeviceTensor() { shape_.fill(0); }

  /// Uninitialised storage of the given shape on the current stream.
  explicit DeviceTensor(const shape_type& shape) : shape_(shape), size_(product(shape)) {
    block_ = memory::allocate(size_ * sizeof(T));
#ifdef DIFFBLOCKS_POISON_ALLOCATIONS
    if (size_) DIFFBLOCKS_CUDA_CHECK(cudaMemsetAsync(block_.ptr, 0xff, size_ * sizeof(T), stream()));
#endif
  }
  static DeviceTensor from_shape(const shape_type& shape) { return DeviceTensor(shape); }

  DeviceTensor(const DeviceTensor& o) : DeviceTensor(o.shape_) {
    if (size_)
      DIFFBLOCKS_CUDA_CHECK(cudaMemcpyAsync(block_.ptr, o.block_.ptr, size_ * sizeof(T), cudaMemcpyDeviceToDevice, stream()));
  }
  DeviceTensor(DeviceTensor&& o) noexcept : shape_(o.shape_), size_(o.size_), block_(o.block_) {
    o.shape_.fill(0);
    o.size_ = 0;
    o.block_ = memory::Block{};
  }
  DeviceTensor& operator=(const DeviceTensor& o) {
    if (this != &o) *this = DeviceTensor(o);
    return *this;
  }
  DeviceTensor& operator=(DeviceTensor&& o) noexcept {
    if (this != &o) {
      memory::deallocate(block_);
      shape_ = o.shape_;
      size_ = o.size_;
      block_ = o.block_;
      o.shape_.fill(0);
      o.size_ = 0;
      o.block_ = memory::Block{};
    }
    return *this;
  }
  ~DeviceTensor() { memory::deallocate(block_); }

  const shape_type& shape() const { return shape_; }
  std::size_t shape(std::size_t axis) const { return shape_[axis]; }
  static constexpr std::size_t dimension() { return N; }
  std::size_t size() const { return size_; }
  T* data() { return static_cast<T*>(block_.ptr); }
  const T* data() const { return static_cast<const T*>(block_.ptr); }

 private:
  static std::size_t product(const shape_type& s) {
    std::size_t n = 1;
    for (std::size_t d : s) n *= d;
    return n;
  }

  shape_type shape_;
  std::size_t size_ = 0;
  memory::Block block_;
};

}  // namespace cuda

namespace detail {
/// The attention setting of the Cuda device in effect on this thread (a model's forward
/// installs its device's; DeviceScope<Cuda>).
inline thread_local ops::AttentionAlgorithm cuda_attention_in_effect = ops::AttentionAlgorithm::Auto;
}  // namespace detail

/// The CUDA device: tensors in device memory, kernels in ops/cuda/, GEMMs on cuBLAS. A value
/// carries its own attention choice (independent of the CPU's) and, optionally, a stream of its
/// own: every op of a model holding such a device is enqueued there (joined to the caller's
/// stream on entry and exit, DeviceScope<Cuda>), so two models on two devices run concurrently
/// from two host threads. Without one, ops go to the calling thread's current stream
/// (core/cuda/runtime.hpp: the process default, or a cuda::StreamGuard's).
///
///   auto gpu = db::Cuda::with_own_stream();   // a stream of its own, shared by copies
///   model.to(gpu);                            // the model's forwards run on it
struct Cuda {
  template <class T, std::size_t N>
  using tensor = cuda::DeviceTensor<T, N>;
  static constexpr const char* name = "cuda";

  /// Which attention kernel ops::attention runs (Auto: the measured rule of ops/cuda/attention.cuh).
  ops::AttentionAlgorithm attention;
  /// The stream of this device's ops; null: the calling thread's current stream.
  std::shared_ptr<const cuda::Stream> stream;

  /// The device in effect on this thread (outside any model: Auto attention, current stream).
  Cuda() : attention(detail::cuda_attention_in_effect) {}
  explicit Cuda(ops::AttentionAlgorithm a, std::shared_ptr<const cuda::Stream> s = nullptr)
      : attention(a), stream(std::move(s)) {}
  /// A device with a new stream of its own (it lives as long as any copy of the device).
  static Cuda with_own_stream(ops::AttentionAlgorithm a = ops::AttentionAlgorithm::Auto) {
    return Cuda(a, std::make_shared<const cuda::Stream>());
  }
  /// Two devices are the same when they enqueue on the same stream with the same setting.
  bool operator==(const Cuda& o) const { return attention == o.attention && stream == o.stream; }
  bool operator!=(const Cuda& o) const { return !(*this == o); }
};

/// Makes a Cuda device value the one in effect on this thread (see DeviceScope<Cpu>): its
/// attention setting, and its stream (if it has one) as the thread's current stream. Entering
/// and leaving a device with a stream of its own joins it to the caller's stream (an event
/// each way), so what the caller enqueued before (uploads) is done before the device's ops
/// start, and what the caller enqueues after (downloads, frees) waits for them: a model on its
/// own stream is as safe to call as one on the caller's.
template <>
class DeviceScope<Cuda> {
 public:
  explicit DeviceScope(const Cuda& d)
      : saved_attention_(detail::cuda_attention_in_effect), saved_stream_(cuda::detail::thread_stream_override()) {
    detail::cuda_attention_in_effect = d.attention;
    if (d.stream && d.stream->handle() != cuda::stream()) {
      caller_ = cuda::stream();
      ref_ = d.stream->ref();
      join(caller_, ref_.handle);
      cuda::detail::thread_stream_override() = &ref_;
    }
  }
  ~DeviceScope() {
    detail::cuda_attention_in_effect = saved_attention_;
    cuda::detail::thread_stream_override() = saved_stream_;
    if (caller_) {
      try {
        join(ref_.handle, caller_);
      } catch (...) {  // a destructor must not throw: the error shows at the next synchronising call
      }
    }
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  /// Work enqueued on `to` from now on waits for what `from` holds now.
  static void join(cudaStream_t from, cudaStream_t to) {
    cudaEvent_t e = nullptr;
    DIFFBLOCKS_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    const cudaError_t r = cudaEventRecord(e, from), w = r == cudaSuccess ? cudaStreamWaitEvent(to, e, 0) : r;
    (void)cudaEventDestroy(e);  // released once the wait is satisfied
    DIFFBLOCKS_CUDA_CHECK(w);
  }
  ops::AttentionAlgorithm saved_attention_;
  cuda::StreamRef* saved_stream_;
  cuda::StreamRef ref_;
  cudaStream_t caller_ = nullptr;
};

/// Copies host data of the tensor's own type (float32, or the bits of a half type) into a device
/// tensor whose shape is already the expected one (checkpoint loading); returns when the copy is
/// done.
template <class T, std::size_t N>
void assign_from_host(Cuda, Tensor<T, N, Cuda>& dst, const T* src) {
  if (!dst.size()) return;
  DIFFBLOCKS_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src, dst.size() * sizeof(T), cudaMemcpyHostToDevice, cuda::stream()));
  cuda::synchronize();
}

/// Host float32 values into a half device tensor: rounded to nearest even on the host (the bits
/// core/half.hpp gives), then copied (as the CPU's assign_from_host rounds element by element).
template <class H, std::size_t N, IfHalf<H> = 0>
void assign_from_host(Cuda, Tensor<H, N, Cuda>& dst, const float* src) {
  std::vector<H> h(src, src + dst.size());
  assign_from_host(Cuda{}, dst, static_cast<const H*>(h.data()));
}

/// Copies a device tensor back to float32 on the host (synchronises the current stream; a half
/// tensor is widened on the host, exactly).
template <class T, std::size_t N>
std::vector<float> copy_to_host(Cuda, const Tensor<T, N, Cuda>& src) {
  static_assert(std::is_same<T, float>::value || is_half_v<T>, "the Cuda device stores float32, bf16 or f16");
  std::vector<T> out(src.size());
  if (!out.empty())
    DIFFBLOCKS_CUDA_CHECK(
        cudaMemcpyAsync(out.data(), src.data(), out.size() * sizeof(T), cudaMemcpyDeviceToHost, cuda::stream()));
  cuda::synchronize();
  if constexpr (std::is_same<T, float>::value) return out;
  else return std::vector<float>(out.begin(), out.end());
}

/// Host -> device: the same tensor on the Cuda device (same scalar type: float32 or the bits of
/// a half type).
template <class T, std::size_t N>
Tensor<T, N, Cuda> to_device(Cuda, const Tensor<T, N, Cpu>& x) {
  Tensor<T, N, Cuda> y(x.shape());
  assign_from_host(Cuda{}, y, static_cast<const T*>(x.data()));
  return y;
}

/// Device -> host (same scalar type).
template <class T, std::size_t N>
Tensor<T, N, Cpu> to_device(Cpu, const Tensor<T, N, Cuda>& x) {
  static_assert(std::is_same<T, float>::value || is_half_v<T>, "the Cuda device stores float32, bf16 or f16");
  const std::array<std::size_t, N> shape = x.shape();
  auto y = Tensor<T, N, Cpu>::from_shape(shape);
  if (x.size())
    DIFFBLOCKS_CUDA_CHECK(
        cudaMemcpyAsync(y.data(), x.data(), x.size() * sizeof(T), cudaMemcpyDeviceToHost, cuda::stream()));
  cuda::synchronize();
  return y;
}

/// Device -> device: a copy.
template <class T, std::size_t N>
Tensor<T, N, Cuda> to_device(Cuda, const Tensor<T, N, Cuda>& x) {
  return x;
}

namespace cuda {
/// Shorthands: cuda::upload(host tensor), cuda::download(device tensor).
template <class T, std::size_t N>
Tensor<T, N, Cuda> upload(const Tensor<T, N, Cpu>& x) {
  return to_device(Cuda{}, x);
}
template <class T, std::size_t N>
Tensor<T, N, Cpu> download(const Tensor<T, N, Cuda>& x) {
  return to_device(Cpu{}, x);
}
}  // namespace cuda

}  // namespace diffblocks
