#pragma once
// The Cuda device's own layout and host-facing ops: the tiled transposes between NCHW maps and
// token sequences, and the reads back to the host (find_non_finite, first_value). Every other
// element-wise and layout op is the device-generic one (ops/generic/, run by ops/cuda/map.cuh).
#include <cmath>
#include <cstdint>
#include <vector>

#include "diffblocks/ops/cuda/common.cuh"

namespace diffblocks {
namespace ops {

/// Index of the first NaN/Inf, or -1. Synchronises the current stream (the answer is a host value).
/// While the stream is being captured into a CUDA graph nothing can be read back: the answer is
/// -1 and the check is the capturer's to make (the graph sampler checks the inputs in its eager
/// first step and the sample on the device, see sampling/gradtts_cuda_graph.cuh).
template <class T, std::size_t N>
std::ptrdiff_t find_non_finite(Cuda, const Tensor<T, N, Cuda>& x) {
  if (!x.size()) return -1;
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  DIFFBLOCKS_CUDA_CHECK(cudaStreamIsCapturing(cuda::stream(), &capturing));
  if (capturing != cudaStreamCaptureStatusNone) return -1;
  auto found = cuda_detail::scratch<unsigned long long>(1);
  unsigned long long* f = found.data();
  DIFFBLOCKS_CUDA_CHECK(cudaMemsetAsync(f, 0xff, sizeof(unsigned long long), cuda::stream()));
  const T* p = x.data();
  cuda_detail::for_each(static_cast<cuda_detail::index_t>(x.size()), [=] __device__(cuda_detail::index_t i) {
    if (!isfinite(static_cast<compute_t<T>>(p[i]))) atomicMin(f, static_cast<unsigned long long>(i));
  });
  unsigned long long host = 0;
  DIFFBLOCKS_CUDA_CHECK(cudaMemcpyAsync(&host, f, sizeof host, cudaMemcpyDeviceToHost, cuda::stream()));
  cuda::synchronize();
  return host == ~0ull ? std::ptrdiff_t(-1) : static_cast<std::ptrdiff_t>(host);
}

/// The first element, read on the host (synchronises the current stream).
template <class T, std::size_t N>
T first_value(Cuda, const Tensor<T, N, Cuda>& x) {
  T v{};
  DIFFBLOCKS_CUDA_CHECK(cudaMemcpyAsync(&v, x.data(), sizeof(T), cudaMemcpyDeviceToHost, cuda::stream()));
  cuda::synchronize();
  return v;
}

// ---- token sequences ----------------------------------------------------------------------------

namespace cuda_detail {

constexpr int kTile = 32;

/// out[b] = in[b]^T for a batch of (rows x cols) matrices, through a padded shared tile.
template <class T>
__global__ void transpose_kernel(const T* in, T* out, index_t rows, index_t cols) {
  __shared__ T tile[kTile][kTile + 1];
  const index_t b = blockIdx.z;
  in += b * rows * cols;
  out += b * rows * cols;
  const index_t c0 = static_cast<index_t>(blockIdx.x) * kTile, r0 = static_cast<index_t>(blockIdx.y) * kTile;
  for (int k = threadIdx.y; k < kTile; k += blockDim.y) {
    const index_t r = r0 + k, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[k][threadIdx.x] = in[r * cols + c];
  }
  __syncthreads();
  for (int k = threadIdx.y; k < kTile; k += blockDim.y) {
    const index_t c = c0 + k, r = r0 + threadIdx.x;  // out row c, column r
    if (r < rows && c < cols) out[c * rows + r] = tile[threadIdx.x][k];
  }
}

template <class T>
void transpose(const T* in, T* out, std::size_t batch, std::size_t rows, std::size_t cols) {
  if constexpr (is_half_v<T>) {  // moves bits: the tile is of 16-bit integers (no conversions)
    transpose(reinterpret_cast<const std::uint16_t*>(in), reinterpret_cast<std::uint16_t*>(out), batch, rows, cols);
  } else {
    if (batch == 0 || rows == 0 || cols == 0) return;
    const dim3 grid(static_cast<unsigned>((cols + kTile - 1) / kTile), static_cast<unsigned>((rows + kTile - 1) / kTile),
                    static_cast<unsigned>(batch));
    launch("transpose_kernel", transpose_kernel<T>, grid, dim3(kTile, 8), 0, in, out, static_cast<index_t>(rows),
           static_cast<index_t>(cols));
  }
}

}  // namespace cuda_detail

/// (B, C, H, W) -> (B, H*W, C).
template <class T>
Tensor<T, 3, Cuda> nchw_to_tokens(Cuda, const Tensor<T, 4, Cuda>& x) {
  const std::size_t B = x.shape(0), C = x.shape(1), N = x.shape(2) * x.shape(3);
  Tensor<T, 3, Cuda> y({B, N, C});
  cuda_detail::transpose(x.data(), y.data(), B, C, N);
  return y;
}

/// (B, H*W, C) -> (B, C, H, W).
template <class T>
Tensor<T, 4, Cuda> tokens_to_nchw(Cuda, const Tensor<T, 3, Cuda>& x, std::size_t H, std::size_t W) {
  const std::size_t B = x.shape(0), N = x.shape(1), C = x.shape(2);
  Tensor<T, 4, Cuda> y({B, C, H, W});
  cuda_detail::transpose(x.data(), y.data(), B, N, C);
  return y;
}

}  // namespace ops
}  // namespace diffblocks
