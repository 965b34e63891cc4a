#pragma once
// cuDNN for the Cuda device's convolutions, opened at run time (dlopen), never linked.
//
// Why at run time: cuDNN is ~1 GB of libraries that many CUDA machines lack (and PyTorch ships
// its own copy in its wheel); a program built with diffblocks::cuda starts, and runs every
// convolution on its own im2col + cuBLAS path, whether cuDNN is there or not. Where it is,
// convolutions run on cuDNN's kernels, which are 1.3-2.7x faster in float32 on an H200.
//
// Which library: $DIFFBLOCKS_CUDNN_LIBRARY if set (a path), else "libcudnn.so.9" through the
// dynamic linker's search (LD_LIBRARY_PATH, the ld cache; e.g. PyTorch's
// site-packages/nvidia/cudnn/lib). Its major version must be the headers' (9). status() says
// what was found, or why nothing was.
//
// Only cudnn.h's types and enums are used at compile time; without the header (a CUDA toolkit
// without cuDNN) DIFFBLOCKS_HAS_CUDNN is 0 and available() is false.
#if __has_include(<cudnn.h>)
#include <cudnn.h>
#define DIFFBLOCKS_HAS_CUDNN 1
#else
#define DIFFBLOCKS_HAS_CUDNN 0
#endif

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>

#include "diffblocks/core/cuda/runtime.hpp"

namespace diffblocks {
namespace cuda {
namespace cudnn {

#if DIFFBLOCKS_HAS_CUDNN

// The legacy convolution API (still in cuDNN 9, exported by its libcudnn.so.9 shim).
#define DIFFBLOCKS_CUDNN_FUNCTIONS(X)                                                                          \
  X(cudnnGetVersion) X(cudnnGetErrorString) X(cudnnCreate) X(cudnnSetStream) X(cudnnCreateTensorDescriptor)  \
  X(cudnnSetTensor4dDescriptor) X(cudnnCreateFilterDescriptor) X(cudnnSetFilter4dDescriptor)                 \
  X(cudnnCreateConvolutionDescriptor) X(cudnnSetConvolution2dDescriptor) X(cudnnSetConvolutionMathType)      \
  X(cudnnFindConvolutionForwardAlgorithmEx) X(cudnnConvolutionForward)                                        \
  X(cudnnFindConvolutionBackwardDataAlgorithmEx) X(cudnnConvolutionBackwardData)

/// The opened library: its functions, or why it could not be used.
struct Api {
#define DIFFBLOCKS_CUDNN_MEMBER(f) decltype(&::f) f = nullptr;
  DIFFBLOCKS_CUDNN_FUNCTIONS(DIFFBLOCKS_CUDNN_MEMBER)
#undef DIFFBLOCKS_CUDNN_MEMBER
  bool ok = false;
  std::string status;  // "cuDNN 9.19.0 (libcudnn.so.9)" or why not
};

namespace detail {

inline Api open_library() {
  Api a;
  const char* env = std::getenv("DIFFBLOCKS_CUDNN_LIBRARY");
  const std::string name = env && *env ? env : "libcudnn.so.9";
  void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* why = dlerror();
    a.status = "not loaded: " + std::string(why ? why : name + ": dlopen failed");
    return a;
  }
  // The library stays open for the life of the process (handles made from it are never destroyed).
#define DIFFBLOCKS_CUDNN_RESOLVE(f)                                               \
  a.f = reinterpret_cast<decltype(&::f)>(dlsym(lib, #f));                         \
  if (!a.f) {                                                                     \
    a.status = "not usable: " + name + " has no symbol " #f;                      \
    return a;                                                                     \
  }
  DIFFBLOCKS_CUDNN_FUNCTIONS(DIFFBLOCKS_CUDNN_RESOLVE)
#undef DIFFBLOCKS_CUDNN_RESOLVE
  const std::size_t v = a.cudnnGetVersion();  // major * 10000 + minor * 100 + patch since cuDNN 9
  const std::string version = std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
  if (v / 10000 != CUDNN_MAJOR) {
    a.status = "not usable: " + name + " is cuDNN " + version + ", the headers are cuDNN " + std::to_string(CUDNN_MAJOR);
    return a;
  }
  a.ok = true;
  a.status = "cuDNN " + version + " (" + name + ")";
  return a;
}

inline std::string& handle_failure() {
  static std::string why;
  return why;
}

}  // namespace detail

/// The process's cuDNN (opened on first use).
inline const Api& api() {
  static const Api a = detail::open_library();
  return a;
}

/// Throws CudaError naming a failed cuDNN call.
inline void check(cudnnStatus_t s, const char* call, const char* file, int line) {
  if (s == CUDNN_STATUS_SUCCESS) return;
  throw CudaError(std::string("cuDNN error in ") + call + " (" + ::diffblocks::cuda::detail::base_name(file) + ":" +
                  std::to_string(line) + "): " + api().cudnnGetErrorString(s) + " [" + std::to_string(int(s)) + "]");
}
#define DIFFBLOCKS_CUDNN_CHECK(call) ::diffblocks::cuda::cudnn::check((call), #call, __FILE__, __LINE__)

namespace detail {
/// This thread's handle (nullptr if cudnnCreate failed), created on first use, never destroyed.
inline cudnnHandle_t thread_handle() {
  thread_local cudnnHandle_t h = [] {
    cudnnHandle_t handle = nullptr;
    const cudnnStatus_t s = api().cudnnCreate(&handle);
    if (s != CUDNN_STATUS_SUCCESS) {
      static std::once_flag once;
      std::call_once(once, [s] { handle_failure() = std::string("cudnnCreate failed: ") + api().cudnnGetErrorString(s); });
      return cudnnHandle_t(nullptr);
    }
    return handle;
  }();
  return h;
}
}  // namespace detail

/// True when cuDNN was opened and a handle can be made on this thread (needs a device).
inline bool available() { return api().ok && ::diffblocks::cuda::available() && detail::thread_handle() != nullptr; }

/// "cuDNN 9.19.0 (libcudnn.so.9)", or why it is not used.
inline std::string status() {
  if (!api().ok) return api().status;
  if (!::diffblocks::cuda::available()) return api().status + ", no CUDA device";
  if (!detail::thread_handle()) return api().status + ", " + detail::handle_failure();
  return api().status;
}

/// This thread's handle, bound to the current stream. Call only when available().
inline cudnnHandle_t handle() {
  cudnnHandle_t h = detail::thread_handle();
  DIFFBLOCKS_CUDNN_CHECK(api().cudnnSetStream(h, stream()));
  return h;
}

#else  // no cudnn.h at build time

inline bool available() { return false; }
inline std::string status() { return "not built (no cudnn.h in the CUDA toolkit at build time)"; }

#endif

}  // namespace cudnn
}  // namespace cuda
}  // namespace diffblocks
