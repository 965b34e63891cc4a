#pragma once
// The CPU device's own ops: the convolutions, linear layers, normalisations and attention every
// device supplies itself, and the fast paths that override device-generic ops (ops/generic/)
// where the SIMD kernels beat the generic loop (DIFFBLOCKS_CPU_FAST_PATH, ops/cpu/map.hpp).
// Tensors are NCHW row-major; a time mask is (B, 1, 1, W) with 1 = valid frame.
//
// Each op is an entry point into the kernels (kernels/*.inl), which run the copy for the
// instruction set in use (DIFFBLOCKS_CPU_RETURN_KERNEL, target.hpp).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "diffblocks/core/device.hpp"
#include "diffblocks/core/parallel.hpp"
#include "diffblocks/core/random.hpp"
#include "diffblocks/ops/cpu/conv.hpp"
#include "diffblocks/ops/cpu/gemm.hpp"
#include "diffblocks/ops/cpu/half_convert.hpp"
#include "diffblocks/ops/cpu/kernels.hpp"
#include "diffblocks/ops/cpu/map.hpp"
#include "diffblocks/ops/generic/elementwise.hpp"
#include "diffblocks/ops/generic/layout.hpp"
#include "diffblocks/ops/prepared.hpp"

namespace diffblocks {
namespace ops {

// ---- convolutions and linear layers --------------------------------------------------------

template <class T, IfKernelScalar<T> = 0>
Tensor<T, 4, Cpu> conv2d(Cpu dev, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias,
                         int stride, int padding) {
  const DeviceScope<Cpu> on(dev);
  return cpu::conv2d(x, w, bias, stride, padding);
}

template <class T, IfKernelScalar<T> = 0>
Tensor<T, 4, Cpu> conv_transpose2d(Cpu dev, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w,
                                   const Tensor<T, 1, Cpu>& bias, int stride, int padding) {
  const DeviceScope<Cpu> on(dev);
  return cpu::conv_transpose2d(x, w, bias, stride, padding);
}

/// Conv2d / ConvTranspose2d on the weight's prepared form kept in `prepared` (what the blocks
/// hold; ops/cpu/prepared.hpp): made at the first call, used as it is by every later one.
template <class T, IfKernelScalar<T> = 0>
Tensor<T, 4, Cpu> conv2d(const Cpu& dev, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w,
                         const Tensor<T, 1, Cpu>& bias, int stride, int padding, PreparedWeights<T, Cpu>& prepared) {
  return cpu::conv2d(dev, x, w, bias, stride, padding, prepared);
}
template <class T, IfKernelScalar<T> = 0>
Tensor<T, 4, Cpu> conv_transpose2d(const Cpu& dev, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w,
                                   const Tensor<T, 1, Cpu>& bias, int stride, int padding,
                                   PreparedWeights<T, Cpu>& prepared) {
  return cpu::conv_transpose2d(dev, x, w, bias, stride, padding, prepared);
}

/// y (..., out) = x (..., in) W^T + b, W (out, in), over every row of x (kernels/linear.inl).
template <class T, std::size_t N, IfKernelScalar<T> = 0>
Tensor<T, N, Cpu> linear(Cpu dev, const Tensor<T, N, Cpu>& x, const Tensor<T, 2, Cpu>& w, const Tensor<T, 1, Cpu>& bias) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(linear<T, N>(x, w, bias));
}

// ---- normalisation (kernels/norm.inl) ------------------------------------------------------

/// torch.nn.functional.group_norm: G contiguous channel groups, biased variance over
/// (C/G, H, W), optional per-channel affine.
template <class T, IfKernelScalar<T> = 0>
Tensor<T, 4, Cpu> group_norm(Cpu dev, const Tensor<T, 4, Cpu>& x, int groups, const Tensor<T, 1, Cpu>& gamma,
                             const Tensor<T, 1, Cpu>& beta, double eps) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(group_norm<T>(x, groups, gamma, beta, eps));
}

// ---- element-wise --------------------------------------------------------------------------

/// Mish over a contiguous range (kernels/activation.inl; float32 within ~3e-7 relative).
template <class T>
void mish_range(T* p, std::ptrdiff_t n) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(mish_range<T>(p, n));
}

/// Half tensors too: the kernel runs the float32 range function on widened runs, rounding once.
template <class T, std::size_t N>
void mish_(const Cpu& dev, Tensor<T, N, Cpu>& x) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::mish_(dev, x));
  DIFFBLOCKS_CPU_RETURN_KERNEL(mish_<T, N>(x));
}

namespace detail {
/// dst[b, c, h, w] = src[b, c, h, w] * mask[b, 0, 0, w] (src may be dst; kernels/elementwise.inl).
template <class T, class Shape>
void apply_frame_mask(const T* src, T* dst, const Shape& shape, const compute_t<T>* mask) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(apply_frame_mask(src, dst, shape, mask));
}
/// A small operand (a mask, a per-channel bias) in the compute type: itself, or a half one widened.
template <class T, std::size_t N>
decltype(auto) compute_values(const Tensor<T, N, Cpu>& x) {
  if constexpr (is_half_v<T>)
    return cpu::half_convert::widened(x);
  else
    return (x);
}
}  // namespace detail

// The element-wise ops below take half tensors too: their kernels widen runs of values into
// scratch and round the results once (kernels/elementwise.inl), the small operands widened whole.

/// x[b, c, h, w] *= mask[b, 0, 0, w].
template <class T>
void mul_mask_(const Cpu& dev, Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& mask) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::mul_mask_(dev, x, mask));
  detail::apply_frame_mask(x.data(), x.data(), x.shape(), detail::compute_values(mask).data());
}

/// y = x * mask[b, 0, 0, w] as a new tensor (one pass, instead of a copy and an in-place mask).
template <class T>
Tensor<T, 4, Cpu> masked_copy(const Cpu& dev, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& mask) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::masked_copy(dev, x, mask));
  auto y = Tensor<T, 4, Cpu>::from_shape(x.shape());
  detail::apply_frame_mask(x.data(), y.data(), x.shape(), detail::compute_values(mask).data());
  return y;
}

/// x[b, c, :, :] += bias[b, c].
template <class T>
void add_channel_bias_(const Cpu& dev, Tensor<T, 4, Cpu>& x, const Tensor<T, 2, Cpu>& bias) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::add_channel_bias_(dev, x, bias));
  DIFFBLOCKS_CPU_RETURN_KERNEL(add_channel_bias_(x.data(), static_cast<std::ptrdiff_t>(x.shape(0) * x.shape(1)),
                                                 static_cast<std::ptrdiff_t>(x.shape(2) * x.shape(3)),
                                                 detail::compute_values(bias).data()));
}

/// a += b (same shape).
template <class T, std::size_t N>
void add_(const Cpu& dev, Tensor<T, N, Cpu>& a, const Tensor<T, N, Cpu>& b) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::add_(dev, a, b));
  DIFFBLOCKS_CPU_RETURN_KERNEL(add_(a.data(), b.data(), static_cast<std::ptrdiff_t>(a.size())));
}

/// out += conv2d(x, w, bias, stride, padding), out already shaped like the convolution's result.
/// 1x1 stride-1 convolutions accumulate inside the GEMM (conv1x1_add_); others add a temporary.
template <class T, IfKernelScalar<T> = 0>
void conv2d_add_(Cpu dev, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias, int stride,
                 int padding, Tensor<T, 4, Cpu>& out) {
  const DeviceScope<Cpu> on(dev);
  if (w.shape(2) == 1 && w.shape(3) == 1 && stride == 1 && padding == 0) return cpu::conv1x1_add_(x, w, bias, out);
  const auto y = cpu::conv2d(x, w, bias, stride, padding);
  add_(Cpu{}, out, y);
}

/// Makes the prepared form of a Conv2d / ConvTranspose2d weight in `prepared` now, as the first
/// call on `dev` would (nothing under WeightPreparation::PerCall).
template <class T, IfKernelScalar<T> = 0>
void prepare_conv2d(const Cpu& dev, const Tensor<T, 4, Cpu>& w, int stride, int padding,
                    PreparedWeights<T, Cpu>& prepared) {
  cpu::prepare_conv2d(dev, w, stride, padding, prepared);
}
template <class T, IfKernelScalar<T> = 0>
void prepare_conv_transpose2d(const Cpu& dev, const Tensor<T, 4, Cpu>& w, int stride, int padding,
                              PreparedWeights<T, Cpu>& prepared) {
  cpu::prepare_conv_transpose2d(dev, w, stride, padding, prepared);
}

/// conv2d_add_ on the weight's prepared form kept in `prepared` (see conv2d above).
template <class T, IfKernelScalar<T> = 0>
void conv2d_add_(const Cpu& dev, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias,
                 int stride, int padding, Tensor<T, 4, Cpu>& out, PreparedWeights<T, Cpu>& prepared) {
  const DeviceScope<Cpu> on(dev);
  if (w.shape(2) == 1 && w.shape(3) == 1 && stride == 1 && padding == 0)
    return cpu::conv1x1_add_(dev, x, w, bias, out, prepared);
  const auto y = cpu::conv2d(dev, x, w, bias, stride, padding, prepared);
  add_(dev, out, y);
}

/// x *= g[0] (a learned scalar such as Rezero's g).
template <class T, std::size_t N>
void scale_(const Cpu& dev, Tensor<T, N, Cpu>& x, const Tensor<T, 1, Cpu>& g) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::scale_(dev, x, g));
  using C = compute_t<T>;
  DIFFBLOCKS_CPU_RETURN_KERNEL(affine_(x.data(), static_cast<std::ptrdiff_t>(x.size()), static_cast<C>(g(0)), C(0)));
}

/// x *= s.
template <class T, std::size_t N, IfKernelScalar<T> = 0>
void mul_scalar_(const Cpu& dev, Tensor<T, N, Cpu>& x, T s) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::mul_scalar_(dev, x, s));
  DIFFBLOCKS_CPU_RETURN_KERNEL(affine_(x.data(), static_cast<std::ptrdiff_t>(x.size()), s, T(0)));
}

/// Same, taking over the storage of a temporary (no copy).
template <class T, std::size_t M, std::size_t N>
Tensor<T, M, Cpu> reshape(Cpu dev, Tensor<T, N, Cpu>&& x, const std::array<std::size_t, M>& shape) {
  const DeviceScope<Cpu> on(dev);
  std::array<std::size_t, M> sh = shape;
  std::array<std::ptrdiff_t, M> strides;
  xt::compute_strides(sh, xt::layout_type::row_major, strides);
  return Tensor<T, M, Cpu>(std::move(x.storage()), std::move(sh), std::move(strides));
}

/// Index of the first NaN/Inf, or -1.
template <class T, std::size_t N>
std::ptrdiff_t find_non_finite(Cpu dev, const Tensor<T, N, Cpu>& x) {
  const DeviceScope<Cpu> on(dev);
  const T* p = x.data();
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(p[i])) return static_cast<std::ptrdiff_t>(i);
  return -1;
}

// ---- attention -----------------------------------------------------------------------------

/// Grad-TTS linear attention core (kernels/linear_attention.inl). qkv (B, 3*heads*dh, H, W),
/// channel = which*heads*dh + head*dh + c. k is softmaxed over all H*W positions; context = k v^T
/// (dh x dh); out = context^T q. Returns (B, heads*dh, H, W). No mask and no 1/sqrt(d) scale, as
/// in the original.
template <class T, IfKernelScalar<T> = 0>
Tensor<T, 4, Cpu> linear_attention(Cpu dev, const Tensor<T, 4, Cpu>& qkv, int heads, int dim_head) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(linear_attention<T>(qkv, heads, dim_head));
}

/// The whole Grad-TTS LinearAttention block, to_out(linear_attention(to_qkv(x))), computed with
/// the same mathematics in fewer operations (see kernels/linear_attention.inl). x (B, C, H, W);
/// w_qkv (3*heads*dh, C, 1, 1); w_out (C_out, heads*dh, 1, 1); b_out (C_out) or empty.
template <class T, IfKernelScalar<T> = 0>
Tensor<T, 4, Cpu> linear_attention_block(Cpu dev, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w_qkv,
                                         const Tensor<T, 4, Cpu>& w_out, const Tensor<T, 1, Cpu>& b_out, int heads,
                                         int dim_head) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(linear_attention_block<T>(x, w_qkv, w_out, b_out, heads, dim_head));
}

// ---- noise -----------------------------------------------------------------------------------

/// Fills x with standard normal noise from rng (host generator, same stream on every device).
template <class T, std::size_t N>
void randn_(Cpu dev, Tensor<T, N, Cpu>& x, Rng& rng) {
  const DeviceScope<Cpu> on(dev);
  for (auto& v : x) v = static_cast<T>(rng.normal());
}

}  // namespace ops
}  // namespace diffblocks
