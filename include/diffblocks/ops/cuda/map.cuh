#pragma once
// The Cuda device's primitives for the device-generic ops (ops/map.hpp): grid-stride kernels on
// the current stream (common.cuh), a cudaMemcpy2DAsync for strided copies, a memset for zeros.
#include <array>
#include <cstddef>

#include "diffblocks/ops/cuda/common.cuh"

namespace diffblocks {
namespace ops {

template <class T, std::size_t N>
Tensor<T, N, Cuda> empty(const Cuda&, const std::array<std::size_t, N>& shape) {
  return Tensor<T, N, Cuda>(shape);
}

template <class T, std::size_t N>
Tensor<T, N, Cuda> zeros(const Cuda&, const std::array<std::size_t, N>& shape) {
  Tensor<T, N, Cuda> t(shape);
  if (t.size()) DIFFBLOCKS_CUDA_CHECK(cudaMemsetAsync(t.data(), 0, t.size() * sizeof(T), cuda::stream()));
  return t;
}

namespace cuda_detail {
template <class F>
__global__ void index_kernel(index_t n, F f) {
  for (index_t i = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<index_t>(gridDim.x) * blockDim.x)
    f(static_cast<std::size_t>(i));
}
template <class F>
__global__ void row_kernel(index_t rows, index_t cols, F f) {
  for (index_t r = blockIdx.y; r < rows; r += gridDim.y)
    for (index_t c = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; c < cols;
         c += static_cast<index_t>(gridDim.x) * blockDim.x)
      f(static_cast<std::size_t>(r), static_cast<std::size_t>(c));
}
}  // namespace cuda_detail

/// f(i) for i in [0, n), f a DIFFBLOCKS_HD functor.
template <class F>
void for_each_index(const Cuda&, std::size_t n, const F& f) {
  using cuda_detail::index_t;
  if (n == 0) return;
  const index_t ni = static_cast<index_t>(n);
  cuda_detail::launch("index_kernel", cuda_detail::index_kernel<F>, dim3(cuda_detail::blocks_for(ni)),
                      dim3(cuda_detail::kThreads), 0, ni, f);
}

/// f(r, c) for every row r and column c: the row comes from the grid, not from a division.
template <class F>
void for_each_row(const Cuda&, std::size_t rows, std::size_t cols, const F& f) {
  using cuda_detail::index_t;
  if (rows == 0 || cols == 0) return;
  const index_t R = static_cast<index_t>(rows), C = static_cast<index_t>(cols);
  const unsigned gy = static_cast<unsigned>(std::min<index_t>(R, 65535));
  const unsigned gx = cuda_detail::blocks_for(C, cuda_detail::kThreads, std::max<index_t>(1, cuda_detail::kMaxBlocks / gy));
  cuda_detail::launch("row_kernel", cuda_detail::row_kernel<F>, dim3(gx, gy), dim3(cuda_detail::kThreads), 0, R, C, f);
}

template <class T>
void copy_rows(const Cuda&, T* dst, std::size_t dst_pitch, const T* src, std::size_t src_pitch, std::size_t width,
               std::size_t rows) {
  cuda_detail::copy_rows(dst, dst_pitch, src, src_pitch, width, rows);
}

}  // namespace ops
}  // namespace diffblocks
