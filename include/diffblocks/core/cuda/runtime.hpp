#pragma once
// CUDA runtime glue for the Cuda device: errors, device queries, the current stream and the
// cuBLAS handle. Pulled in only by <diffblocks/cuda.hpp> (nvcc).
//
// Errors. Every CUDA runtime and cuBLAS call is checked; a failure throws diffblocks::CudaError
// (derived from diffblocks::Error) naming the call, the source position and CUDA's error string,
// e.g. "CUDA error in cudaMalloc(&p, bytes) (allocator.hpp:98): out of memory [cudaErrorMemoryAllocation]".
// Kernels run asynchronously: an error inside a kernel surfaces at the next synchronising call
// (a download, find_non_finite, Stream::synchronize), named after that call.
//
// Streams. Every op of the Cuda device is enqueued on the calling host thread's *current
// stream*: the process-wide default stream (created on first use, non-blocking, never
// destroyed) unless a cuda::StreamGuard has set another one on this thread. So a model runs on
// one stream per host thread: give each model (or each thread) its own cuda::Stream and set it
// with a StreamGuard around the calls. Work on one stream runs in order; tensors are freed
// back to the caching allocator without a synchronisation (see allocator.hpp for the rule).
//
// cuBLAS. One handle per host thread (created on first use, never destroyed: a handle outliving
// the CUDA runtime at exit would crash in its destructor), bound to the current stream and the
// math mode at each call.
//
// Math mode (set_math_mode; process-wide, read at each op): MathMode::F32 (the default) computes
// float32 GEMMs and convolutions with float32 FMAs (CUBLAS_DEFAULT_MATH, CUDNN_FMA_MATH), which
// is what the accuracy contract (1e-4 of PyTorch's float32) is stated for. MathMode::TF32 lets
// them use the tensor cores' TF32 inputs (10-bit mantissa, float32 accumulation), like PyTorch's
// allow_tf32: several times faster at batch, ~1e-3 relative error. DIFFBLOCKS_CUDA_TF32=1 in the
// environment makes TF32 the starting mode.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "diffblocks/core/error.hpp"

namespace diffblocks {

namespace cuda {
namespace detail {

inline const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/// Throws CudaError for a failed runtime call; clears the runtime's last-error slot first so a
/// later cudaGetLastError() does not report this failure again.
inline void check(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();
  throw CudaError(std::string("CUDA error in ") + call + " (" + base_name(file) + ":" + std::to_string(line) +
                  "): " + cudaGetErrorString(e) + " [" + cudaGetErrorName(e) + "]");
}

inline void check(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw CudaError(std::string("cuBLAS error in ") + call + " (" + base_name(file) + ":" + std::to_string(line) +
                  "): " + cublasGetStatusString(s) + " [" + cublasGetStatusName(s) + "]");
}

}  // namespace detail

/// Checks a cudaError_t or cublasStatus_t result; throws CudaError naming the call on failure.
#define DIFFBLOCKS_CUDA_CHECK(call) ::diffblocks::cuda::detail::check((call), #call, __FILE__, __LINE__)

// ---- devices -----------------------------------------------------------------------------------

/// Why no CUDA device can be used ("" when one can): the driver's answer to cudaGetDeviceCount.
inline std::string device_unavailable_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e) + " [" + cudaGetErrorName(e) + "]";
  }
  if (n == 0) return "cudaGetDeviceCount found no CUDA-capable device";
  return "";
}

/// Number of usable CUDA devices (0 without a driver or a GPU). Evaluated once per process.
inline int device_count() {
  static const int n = [] {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return count;
  }();
  return n;
}

inline bool available() { return device_count() > 0; }

/// Throws CudaError("no CUDA device: <why>") unless a device can be used.
inline void require_device() {
  if (!available()) throw CudaError("no CUDA device: " + device_unavailable_reason());
}

/// "NVIDIA H200, 132 SMs, 139.8 GiB, compute capability 9.0" for the current device.
inline std::string device_description() {
  require_device();
  int dev = 0;
  DIFFBLOCKS_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp p{};
  DIFFBLOCKS_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s, %d SMs, %.1f GiB, compute capability %d.%d", p.name, p.multiProcessorCount,
                static_cast<double>(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0), p.major, p.minor);
  return buf;
}

// ---- streams -------------------------------------------------------------------------------------

/// A stream as the library sees it: the CUDA handle and a process-unique id (the caching
/// allocator keys its free lists by id, never by handle, since handles can be reused).
struct StreamRef {
  cudaStream_t handle = nullptr;
  std::uint64_t id = 0;
};

namespace detail {
inline std::uint64_t next_stream_id() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1);
}
inline StreamRef*& thread_stream_override() {
  thread_local StreamRef* s = nullptr;
  return s;
}
}  // namespace detail

/// The process-wide default stream (non-blocking; created on first use, never destroyed).
inline StreamRef default_stream() {
  static const StreamRef s = [] {
    StreamRef r;
    DIFFBLOCKS_CUDA_CHECK(cudaStreamCreateWithFlags(&r.handle, cudaStreamNonBlocking));
    r.id = detail::next_stream_id();
    return r;
  }();
  return s;
}

/// The stream this host thread's ops are enqueued on (see the file comment).
inline StreamRef current_stream() {
  if (StreamRef* s = detail::thread_stream_override()) return *s;
  return default_stream();
}

/// Shorthand for kernel launches.
inline cudaStream_t stream() { return current_stream().handle; }

/// Waits for all work enqueued on the current stream.
inline void synchronize() { DIFFBLOCKS_CUDA_CHECK(cudaStreamSynchronize(stream())); }

/// An owned CUDA event (timing enabled).
class Event {
 public:
  Event() { DIFFBLOCKS_CUDA_CHECK(cudaEventCreate(&e_)); }
  ~Event() { (void)cudaEventDestroy(e_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(cudaStream_t s) { DIFFBLOCKS_CUDA_CHECK(cudaEventRecord(e_, s)); }
  void synchronize() const { DIFFBLOCKS_CUDA_CHECK(cudaEventSynchronize(e_)); }
  cudaEvent_t get() const { return e_; }
  /// Seconds from `start` to this event (both recorded and complete).
  double seconds_since(const Event& start) const {
    float ms = 0;
    DIFFBLOCKS_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, e_));
    return ms * 1e-3;
  }

 private:
  cudaEvent_t e_ = nullptr;
};

// ---- math mode -------------------------------------------------------------------------------------

/// How float32 GEMMs and convolutions may compute (see the file comment).
enum class MathMode { F32, TF32 };

namespace detail {
inline std::atomic<MathMode>& math_mode_setting() {
  static std::atomic<MathMode> m{[] {
    const char* e = std::getenv("DIFFBLOCKS_CUDA_TF32");
    return e && std::strcmp(e, "1") == 0 ? MathMode::TF32 : MathMode::F32;
  }()};
  return m;
}
}  // namespace detail

inline void set_math_mode(MathMode m) { detail::math_mode_setting().store(m); }
inline MathMode math_mode() { return detail::math_mode_setting().load(); }
inline const char* math_mode_name(MathMode m) { return m == MathMode::TF32 ? "tf32" : "f32"; }

/// Sets the math mode until the guard goes out of scope (then restores the previous one).
class MathModeGuard {
 public:
  explicit MathModeGuard(MathMode m) : previous_(math_mode()) { set_math_mode(m); }
  ~MathModeGuard() { set_math_mode(previous_); }
  MathModeGuard(const MathModeGuard&) = delete;
  MathModeGuard& operator=(const MathModeGuard&) = delete;

 private:
  MathMode previous_;
};

// ---- cuBLAS ---------------------------------------------------------------------------------------

/// This thread's cuBLAS handle, bound to the current stream and math mode.
inline cublasHandle_t blas() {
  thread_local cublasHandle_t h = [] {
    cublasHandle_t handle = nullptr;
    DIFFBLOCKS_CUDA_CHECK(cublasCreate(&handle));
    return handle;
  }();
  DIFFBLOCKS_CUDA_CHECK(cublasSetStream(h, stream()));
  DIFFBLOCKS_CUDA_CHECK(
      cublasSetMathMode(h, math_mode() == MathMode::TF32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  return h;
}

}  // namespace cuda
}  // namespace diffblocks
