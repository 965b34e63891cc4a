#pragma once
// Launch helpers shared by the Cuda device's kernels: grid-stride element loops over a flat
// range or over planes, block-wide reductions, and the checked launch.
//
// Every kernel is enqueued on the current stream (cuda::stream()) and its launch is checked with
// cudaGetLastError(); indices are 64-bit wherever a tensor's element count can pass 2^31.
// Kernels defined in these headers are templates (`template <int = 0>` where nothing else is a
// parameter): a plain __global__ function would be defined again by every .cu file.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "diffblocks/core/cuda/tensor.hpp"

#if !defined(__CUDACC_EXTENDED_LAMBDA__)
#error "diffblocks' CUDA ops need nvcc --extended-lambda (the CMake target diffblocks::cuda adds it)"
#endif

namespace diffblocks {
namespace ops {
namespace cuda_detail {

using index_t = std::int64_t;

constexpr int kThreads = 256;     // threads per block of the element-wise kernels
constexpr index_t kMaxBlocks = 8192;  // grid-stride loops cover the rest

/// Launches kernel<<<grid, block, smem, current stream>>>(args...) and checks the launch.
template <class... KArgs, class... Args>
void launch(const char* name, void (*kernel)(KArgs...), dim3 grid, dim3 block, std::size_t smem, Args... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
  kernel<<<grid, block, smem, cuda::stream()>>>(args...);
  cuda::detail::check(cudaGetLastError(), name, __FILE__, __LINE__);
}

inline unsigned blocks_for(index_t n, index_t per_block = kThreads, index_t cap = kMaxBlocks) {
  return static_cast<unsigned>(std::max<index_t>(1, std::min((n + per_block - 1) / per_block, cap)));
}

template <class F>
__global__ void for_each_kernel(index_t n, F f) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x)
    f(i);
}

/// f(i) for i in [0, n) on the device (f: a __device__ lambda capturing pointers and scalars).
template <class F>
void for_each(index_t n, F f) {
  if (n <= 0) return;
  launch("for_each_kernel", for_each_kernel<F>, dim3(blocks_for(n)), dim3(kThreads), 0, n, f);
}

template <class F>
__global__ void for_each_plane_kernel(index_t planes, index_t plane_size, F f) {
  for (index_t p = blockIdx.y; p < planes; p += gridDim.y)
    for (index_t j = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; j < plane_size;
         j += static_cast<index_t>(gridDim.x) * blockDim.x)
      f(p, j);
}

/// f(p, j) for every plane p in [0, planes) and element j in [0, plane_size): the per-plane
/// index (b, c of an NCHW tensor) comes from the grid instead of a division per element.
template <class F>
void for_each_plane(index_t planes, index_t plane_size, F f) {
  if (planes <= 0 || plane_size <= 0) return;
  const unsigned gy = static_cast<unsigned>(std::min<index_t>(planes, 65535));
  const unsigned gx = blocks_for(plane_size, kThreads, std::max<index_t>(1, kMaxBlocks / gy));
  launch("for_each_plane_kernel", for_each_plane_kernel<F>, dim3(gx, gy), dim3(kThreads), 0, planes, plane_size, f);
}

struct Sum {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

/// Reduces one value per thread over the whole block (blockDim.x a multiple of 32, at most
/// 1024); every thread gets the result. May be called repeatedly in one kernel.
template <class Op>
__device__ float block_reduce(float v, Op op, float identity) {
  __shared__ float warp_vals[32];
  __shared__ float result;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();  // every thread has read `result` of a previous call
  if (lane == 0) warp_vals[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? warp_vals[lane] : identity;
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (lane == 0) result = v;
  }
  __syncthreads();
  return result;
}

/// A device tensor of `n` scratch values (freed back to the cache at scope end; stream-ordered).
template <class T>
cuda::DeviceTensor<T, 1> scratch(std::size_t n) {
  return cuda::DeviceTensor<T, 1>(std::array<std::size_t, 1>{n});
}

/// Strided 2-D copy (rows of `width` elements) on the current stream: the concatenations,
/// slices and channel writes are all of this form.
template <class T>
void copy_rows(T* dst, std::size_t dst_pitch, const T* src, std::size_t src_pitch, std::size_t width,
               std::size_t rows) {
  if (width == 0 || rows == 0) return;
  DIFFBLOCKS_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch * sizeof(T), src, src_pitch * sizeof(T), width * sizeof(T),
                                          rows, cudaMemcpyDeviceToDevice, cuda::stream()));
}

}  // namespace cuda_detail
}  // namespace ops
}  // namespace diffblocks
