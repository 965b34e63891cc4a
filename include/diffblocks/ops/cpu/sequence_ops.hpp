#pragma once
// CPU ops used by the diffusers blocks: the activations' and AdaGroupNorm's SIMD fast paths,
// LayerNorm, and the tiled transposes between NCHW feature maps and token sequences (B, N, C).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <vector>

#include "diffblocks/core/device.hpp"
#include "diffblocks/core/parallel.hpp"
#include "diffblocks/ops/cpu/attention.hpp"
#include "diffblocks/ops/cpu/kernels.hpp"
#include "diffblocks/ops/cpu/ops.hpp"

namespace diffblocks {
namespace ops {

/// SiLU x * sigmoid(x) over a contiguous range (kernels/activation.inl).
template <class T>
void silu_range(T* p, std::ptrdiff_t n) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(silu_range<T>(p, n));
}

/// Half tensors too: the kernel runs the float32 range function on widened runs, rounding once.
template <class T, std::size_t N>
void silu_(const Cpu& dev, Tensor<T, N, Cpu>& x) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::silu_(dev, x));
  DIFFBLOCKS_CPU_RETURN_KERNEL(silu_<T, N>(x));
}

/// Exact GELU 0.5 x (1 + erf(x / sqrt 2)) over a contiguous range (float32: absolute error < 3e-7).
template <class T>
void gelu_range(T* p, std::ptrdiff_t n) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(gelu_range<T>(p, n));
}

/// Half tensors too: the kernel runs the float32 range function on widened runs, rounding once.
template <class T, std::size_t N>
void gelu_(const Cpu& dev, Tensor<T, N, Cpu>& x) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::gelu_(dev, x));
  DIFFBLOCKS_CPU_RETURN_KERNEL(gelu_<T, N>(x));
}

/// GEGLU: x (..., 2D) -> (..., D) = a * GELU(gate) with a = first half, gate = second half.
template <class T, std::size_t N, IfKernelScalar<T> = 0>
Tensor<T, N, Cpu> geglu(const Cpu& dev, const Tensor<T, N, Cpu>& x) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::geglu(dev, x));
  DIFFBLOCKS_CPU_RETURN_KERNEL(geglu<T, N>(x));
}

/// LayerNorm over the last dimension (biased variance; kernels/norm.inl).
template <class T, std::size_t N, IfKernelScalar<T> = 0>
Tensor<T, N, Cpu> layer_norm(Cpu dev, const Tensor<T, N, Cpu>& x, const Tensor<T, 1, Cpu>& gamma,
                             const Tensor<T, 1, Cpu>& beta, double eps) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(layer_norm<T, N>(x, gamma, beta, eps));
}

namespace detail {
/// dst (cols x rows) = src (rows x cols)^T, in tiles, over the pool (kernels/elementwise.inl).
template <class T>
void transpose(const T* src, T* dst, std::ptrdiff_t rows, std::ptrdiff_t cols) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(transpose(src, dst, rows, cols));
}
}  // namespace detail

/// (B, C, H, W) -> (B, H*W, C): token n = y*W + x (mel-bin major), as diffusers permutes.
template <class T>
Tensor<T, 3, Cpu> nchw_to_tokens(Cpu dev, const Tensor<T, 4, Cpu>& x) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t B = x.shape(0), C = x.shape(1), N = x.shape(2) * x.shape(3);
  auto y = Tensor<T, 3, Cpu>::from_shape({B, N, C});
  for (std::size_t b = 0; b < B; ++b)
    detail::transpose(x.data() + b * C * N, y.data() + b * N * C, static_cast<std::ptrdiff_t>(C),
                      static_cast<std::ptrdiff_t>(N));
  return y;
}

/// (B, H*W, C) -> (B, C, H, W).
template <class T>
Tensor<T, 4, Cpu> tokens_to_nchw(Cpu dev, const Tensor<T, 3, Cpu>& x, std::size_t H, std::size_t W) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t B = x.shape(0), N = x.shape(1), C = x.shape(2);
  auto y = Tensor<T, 4, Cpu>::from_shape({B, C, H, W});
  for (std::size_t b = 0; b < B; ++b)
    detail::transpose(x.data() + b * N * C, y.data() + b * C * N, static_cast<std::ptrdiff_t>(N),
                      static_cast<std::ptrdiff_t>(C));
  return y;
}

/// x = x * a + b.
template <class T, std::size_t N, IfKernelScalar<T> = 0>
void affine_(const Cpu& dev, Tensor<T, N, Cpu>& x, T a, T b) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::affine_(dev, x, a, b));
  DIFFBLOCKS_CPU_RETURN_KERNEL(affine_(x.data(), static_cast<std::ptrdiff_t>(x.size()), a, b));
}

/// The first element, read on the host.
template <class T, std::size_t N>
T first_value(Cpu dev, const Tensor<T, N, Cpu>& x) {
  const DeviceScope<Cpu> on(dev);
  return x.data()[0];
}

/// y = x * (1 + scale[b, c]) + shift[b, c], ss = (B, 2C) with scale first (AdaGroupNorm).
/// Half tensors too (kernels/elementwise.inl: runs widened, rounded once; ss widened whole).
template <class T>
void scale_shift_(const Cpu& dev, Tensor<T, 4, Cpu>& x, const Tensor<T, 2, Cpu>& ss) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::scale_shift_(dev, x, ss));
  DIFFBLOCKS_CPU_RETURN_KERNEL(scale_shift_(x.data(), static_cast<std::ptrdiff_t>(x.shape(0)),
                                            static_cast<std::ptrdiff_t>(x.shape(1)),
                                            static_cast<std::ptrdiff_t>(x.shape(2) * x.shape(3)),
                                            detail::compute_values(ss).data()));
}

}  // namespace ops
}  // namespace diffblocks
