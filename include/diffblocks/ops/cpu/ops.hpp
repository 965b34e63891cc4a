#pragma once
// The CPU device's ops. Every op takes the device tag first so that block code calls
// `ops::conv2d(D{}, ...)` and a CUDA device only has to add overloads for its own tag.
// Tensors are NCHW row-major; a time mask is (B, 1, 1, W) with 1 = valid frame.
//
// The arithmetic ops are entry points into the kernels (kernels/*.inl), which run the copy for
// the instruction set in use (DIFFBLOCKS_CPU_RETURN_KERNEL, target.hpp); copies, concatenations
// and reshapes, which the C library's memcpy already does at full width, are plain loops here.
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
#include "diffblocks/ops/cpu/kernels.hpp"
#include "diffblocks/ops/prepared.hpp"

namespace diffblocks {
namespace ops {

template <class T, std::size_t N>
Tensor<T, N, Cpu> empty(Cpu dev, const std::array<std::size_t, N>& shape) {
  const DeviceScope<Cpu> on(dev);
  return Tensor<T, N, Cpu>::from_shape(shape);
}

template <class T, std::size_t N>
Tensor<T, N, Cpu> zeros(Cpu dev, const std::array<std::size_t, N>& shape) {
  const DeviceScope<Cpu> on(dev);
  auto t = Tensor<T, N, Cpu>::from_shape(shape);
  std::fill_n(t.data(), t.size(), T(0));
  return t;
}

template <class T, std::size_t N>
Tensor<T, N, Cpu> full(Cpu dev, const std::array<std::size_t, N>& shape, T value) {
  const DeviceScope<Cpu> on(dev);
  auto t = Tensor<T, N, Cpu>::from_shape(shape);
  std::fill_n(t.data(), t.size(), value);
  return t;
}

// ---- convolutions and linear layers --------------------------------------------------------

template <class T>
Tensor<T, 4, Cpu> conv2d(Cpu dev, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias,
                         int stride, int padding) {
  const DeviceScope<Cpu> on(dev);
  return cpu::conv2d(x, w, bias, stride, padding);
}

template <class T>
Tensor<T, 4, Cpu> conv_transpose2d(Cpu dev, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w,
                                   const Tensor<T, 1, Cpu>& bias, int stride, int padding) {
  const DeviceScope<Cpu> on(dev);
  return cpu::conv_transpose2d(x, w, bias, stride, padding);
}

/// Conv2d / ConvTranspose2d on the weight's prepared form kept in `prepared` (what the blocks
/// hold; ops/cpu/prepared.hpp): made at the first call, used as it is by every later one.
template <class T>
Tensor<T, 4, Cpu> conv2d(const Cpu& dev, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w,
                         const Tensor<T, 1, Cpu>& bias, int stride, int padding, PreparedWeights<T, Cpu>& prepared) {
  return cpu::conv2d(dev, x, w, bias, stride, padding, prepared);
}
template <class T>
Tensor<T, 4, Cpu> conv_transpose2d(const Cpu& dev, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w,
                                   const Tensor<T, 1, Cpu>& bias, int stride, int padding,
                                   PreparedWeights<T, Cpu>& prepared) {
  return cpu::conv_transpose2d(dev, x, w, bias, stride, padding, prepared);
}

/// y (..., out) = x (..., in) W^T + b, W (out, in), over every row of x (kernels/linear.inl).
template <class T, std::size_t N>
Tensor<T, N, Cpu> linear(Cpu dev, const Tensor<T, N, Cpu>& x, const Tensor<T, 2, Cpu>& w, const Tensor<T, 1, Cpu>& bias) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(linear<T, N>(x, w, bias));
}

// ---- normalisation (kernels/norm.inl) ------------------------------------------------------

/// torch.nn.functional.group_norm: G contiguous channel groups, biased variance over
/// (C/G, H, W), optional per-channel affine.
template <class T>
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

template <class T, std::size_t N>
void mish_(Cpu dev, Tensor<T, N, Cpu>& x) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(mish_<T, N>(x));
}

namespace detail {
/// dst[b, c, h, w] = src[b, c, h, w] * mask[b, 0, 0, w] (src may be dst; kernels/elementwise.inl).
template <class T, class Shape>
void apply_frame_mask(const T* src, T* dst, const Shape& shape, const T* mask) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(apply_frame_mask(src, dst, shape, mask));
}
}  // namespace detail

/// x[b, c, h, w] *= mask[b, 0, 0, w].
template <class T>
void mul_mask_(Cpu dev, Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& mask) {
  const DeviceScope<Cpu> on(dev);
  detail::apply_frame_mask(x.data(), x.data(), x.shape(), mask.data());
}

/// Grad-TTS Block's tail in one pass over each row: x = Mish(GroupNorm(x)) * mask (mask
/// (B, 1, 1, W)), in place. Same result as group_norm, mish_ and mul_mask_ in sequence.
template <class T>
void group_norm_mish_mask_(Cpu dev, Tensor<T, 4, Cpu>& x, int groups, const Tensor<T, 1, Cpu>& gamma,
                           const Tensor<T, 1, Cpu>& beta, double eps, const Tensor<T, 4, Cpu>& mask) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(group_norm_mish_mask_<T>(x, groups, gamma, beta, eps, mask));
}

/// Grad-TTS ResnetBlock's middle in one pass: x = (Mish(GroupNorm(x)) * mask + bias[b, c]) * mask,
/// i.e. block1's output plus the time bias, already masked as block2's convolution reads it.
/// Rounds exactly like the separate ops (multiply, add, multiply in that order).
template <class T>
void group_norm_mish_mask_bias_mask_(Cpu dev, Tensor<T, 4, Cpu>& x, int groups, const Tensor<T, 1, Cpu>& gamma,
                                     const Tensor<T, 1, Cpu>& beta, double eps, const Tensor<T, 4, Cpu>& mask,
                                     const Tensor<T, 2, Cpu>& bias) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(group_norm_mish_mask_bias_mask_<T>(x, groups, gamma, beta, eps, mask, bias));
}

/// y = x * mask[b, 0, 0, w] as a new tensor (one pass, instead of a copy and an in-place mask).
template <class T>
Tensor<T, 4, Cpu> masked_copy(Cpu dev, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& mask) {
  const DeviceScope<Cpu> on(dev);
  auto y = Tensor<T, 4, Cpu>::from_shape(x.shape());
  detail::apply_frame_mask(x.data(), y.data(), x.shape(), mask.data());
  return y;
}

/// x[b, c, :, :] += bias[b, c].
template <class T>
void add_channel_bias_(Cpu dev, Tensor<T, 4, Cpu>& x, const Tensor<T, 2, Cpu>& bias) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(add_channel_bias_(x.data(), static_cast<std::ptrdiff_t>(x.shape(0) * x.shape(1)),
                                                 static_cast<std::ptrdiff_t>(x.shape(2) * x.shape(3)), bias.data()));
}

/// a += b (same shape).
template <class T, std::size_t N>
void add_(Cpu dev, Tensor<T, N, Cpu>& a, const Tensor<T, N, Cpu>& b) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(add_(a.data(), b.data(), static_cast<std::ptrdiff_t>(a.size())));
}

/// out += conv2d(x, w, bias, stride, padding), out already shaped like the convolution's result.
/// 1x1 stride-1 convolutions accumulate inside the GEMM (conv1x1_add_); others add a temporary.
template <class T>
void conv2d_add_(Cpu dev, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias, int stride,
                 int padding, Tensor<T, 4, Cpu>& out) {
  const DeviceScope<Cpu> on(dev);
  if (w.shape(2) == 1 && w.shape(3) == 1 && stride == 1 && padding == 0) return cpu::conv1x1_add_(x, w, bias, out);
  const auto y = cpu::conv2d(x, w, bias, stride, padding);
  add_(Cpu{}, out, y);
}

/// Makes the prepared form of a Conv2d / ConvTranspose2d weight in `prepared` now, as the first
/// call on `dev` would (nothing under WeightPreparation::PerCall).
template <class T>
void prepare_conv2d(const Cpu& dev, const Tensor<T, 4, Cpu>& w, int stride, int padding,
                    PreparedWeights<T, Cpu>& prepared) {
  cpu::prepare_conv2d(dev, w, stride, padding, prepared);
}
template <class T>
void prepare_conv_transpose2d(const Cpu& dev, const Tensor<T, 4, Cpu>& w, int stride, int padding,
                              PreparedWeights<T, Cpu>& prepared) {
  cpu::prepare_conv_transpose2d(dev, w, stride, padding, prepared);
}

/// conv2d_add_ on the weight's prepared form kept in `prepared` (see conv2d above).
template <class T>
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
void scale_(Cpu dev, Tensor<T, N, Cpu>& x, const Tensor<T, 1, Cpu>& g) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(affine_(x.data(), static_cast<std::ptrdiff_t>(x.size()), g(0), T(0)));
}

/// x *= s.
template <class T, std::size_t N>
void mul_scalar_(Cpu dev, Tensor<T, N, Cpu>& x, T s) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(affine_(x.data(), static_cast<std::ptrdiff_t>(x.size()), s, T(0)));
}

/// cat([a, b], dim=1).
template <class T>
Tensor<T, 4, Cpu> concat_channels(Cpu dev, const Tensor<T, 4, Cpu>& a, const Tensor<T, 4, Cpu>& b) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t B = a.shape(0), Ca = a.shape(1), Cb = b.shape(1), HW = a.shape(2) * a.shape(3);
  auto y = Tensor<T, 4, Cpu>::from_shape({B, Ca + Cb, a.shape(2), a.shape(3)});
  for (std::size_t i = 0; i < B; ++i) {
    std::copy_n(a.data() + i * Ca * HW, Ca * HW, y.data() + i * (Ca + Cb) * HW);
    std::copy_n(b.data() + i * Cb * HW, Cb * HW, y.data() + i * (Ca + Cb) * HW + Ca * HW);
  }
  return y;
}

/// x[:, c0:c1].
template <class T>
Tensor<T, 4, Cpu> slice_channels(Cpu dev, const Tensor<T, 4, Cpu>& x, std::size_t c0, std::size_t c1) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t B = x.shape(0), C = x.shape(1), HW = x.shape(2) * x.shape(3);
  auto y = Tensor<T, 4, Cpu>::from_shape({B, c1 - c0, x.shape(2), x.shape(3)});
  for (std::size_t b = 0; b < B; ++b) std::copy_n(x.data() + (b * C + c0) * HW, (c1 - c0) * HW, y.data() + b * (c1 - c0) * HW);
  return y;
}

/// mask[..., ::2]: the time mask of the next (half-resolution) U-Net level.
template <class T>
Tensor<T, 4, Cpu> subsample_time(Cpu dev, const Tensor<T, 4, Cpu>& mask) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t B = mask.shape(0), W = mask.shape(3), Wo = (W + 1) / 2;
  auto y = Tensor<T, 4, Cpu>::from_shape({B, 1, 1, Wo});
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t w = 0; w < Wo; ++w) y(b, 0, 0, w) = mask(b, 0, 0, 2 * w);
  return y;
}

/// Same data, new shape (sizes must agree; the caller checks).
template <class T, std::size_t M, std::size_t N>
Tensor<T, M, Cpu> reshape(Cpu dev, const Tensor<T, N, Cpu>& x, const std::array<std::size_t, M>& shape) {
  const DeviceScope<Cpu> on(dev);
  auto y = Tensor<T, M, Cpu>::from_shape(shape);
  std::copy_n(x.data(), x.size(), y.data());
  return y;
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

/// x (B, C, T) zero-padded or cropped along time to `frames`.
template <class T>
Tensor<T, 3, Cpu> resize_time(Cpu dev, const Tensor<T, 3, Cpu>& x, std::size_t frames) {
  const DeviceScope<Cpu> on(dev);
  auto y = Tensor<T, 3, Cpu>::from_shape({x.shape(0), x.shape(1), frames});
  const std::size_t W = x.shape(2), n = std::min(W, frames);
  for (std::size_t r = 0; r < x.shape(0) * x.shape(1); ++r) {
    std::copy_n(x.data() + r * W, n, y.data() + r * frames);
    std::fill(y.data() + r * frames + n, y.data() + (r + 1) * frames, T(0));
  }
  return y;
}

/// dst[:, c] = src (B, H, W).
template <class T>
void set_channel_(Cpu dev, Tensor<T, 4, Cpu>& dst, std::size_t c, const Tensor<T, 3, Cpu>& src) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t C = dst.shape(1), HW = dst.shape(2) * dst.shape(3);
  for (std::size_t b = 0; b < dst.shape(0); ++b)
    std::copy_n(src.data() + b * HW, HW, dst.data() + (b * C + c) * HW);
}

/// dst[b, c, h, :] = v[b, h]: a per-row vector repeated over time (speaker / emotion planes).
template <class T>
void set_channel_repeat_time_(Cpu dev, Tensor<T, 4, Cpu>& dst, std::size_t c, const Tensor<T, 2, Cpu>& v) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t C = dst.shape(1), H = dst.shape(2), W = dst.shape(3);
  for (std::size_t b = 0; b < dst.shape(0); ++b)
    for (std::size_t h = 0; h < H; ++h) std::fill_n(dst.data() + ((b * C + c) * H + h) * W, W, v(b, h));
}

/// dst[b, c, :, w] = src[b, i, w]: a frame-level feature repeated over the frequency axis.
template <class T>
void set_channel_repeat_freq_(Cpu dev, Tensor<T, 4, Cpu>& dst, std::size_t c, const Tensor<T, 3, Cpu>& src, std::size_t i) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t C = dst.shape(1), H = dst.shape(2), W = dst.shape(3);
  for (std::size_t b = 0; b < dst.shape(0); ++b)
    for (std::size_t h = 0; h < H; ++h)
      std::copy_n(src.data() + (b * src.shape(1) + i) * W, W, dst.data() + ((b * C + c) * H + h) * W);
}

/// out[b] = table[ids[b]] (ids already range-checked).
template <class T>
Tensor<T, 2, Cpu> gather_rows(Cpu dev, const Tensor<T, 2, Cpu>& table, const std::vector<std::int64_t>& ids) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t D = table.shape(1);
  auto y = Tensor<T, 2, Cpu>::from_shape({ids.size(), D});
  for (std::size_t b = 0; b < ids.size(); ++b) std::copy_n(table.data() + ids[b] * D, D, y.data() + b * D);
  return y;
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
template <class T>
Tensor<T, 4, Cpu> linear_attention(Cpu dev, const Tensor<T, 4, Cpu>& qkv, int heads, int dim_head) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(linear_attention<T>(qkv, heads, dim_head));
}

/// The whole Grad-TTS LinearAttention block, to_out(linear_attention(to_qkv(x))), computed with
/// the same mathematics in fewer operations (see kernels/linear_attention.inl). x (B, C, H, W);
/// w_qkv (3*heads*dh, C, 1, 1); w_out (C_out, heads*dh, 1, 1); b_out (C_out) or empty.
template <class T>
Tensor<T, 4, Cpu> linear_attention_block(Cpu dev, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w_qkv,
                                         const Tensor<T, 4, Cpu>& w_out, const Tensor<T, 1, Cpu>& b_out, int heads,
                                         int dim_head) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(linear_attention_block<T>(x, w_qkv, w_out, b_out, heads, dim_head));
}

// ---- Grad-TTS diffusion ---------------------------------------------------------------------

/// x[b, f, t] *= mask[b, 0, t] for (B, F, T) tensors.
template <class T>
void mul_mask3_(Cpu dev, Tensor<T, 3, Cpu>& x, const Tensor<T, 3, Cpu>& mask) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t B = x.shape(0), F = x.shape(1), W = x.shape(2);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t f = 0; f < F; ++f)
      for (std::size_t w = 0; w < W; ++w) x(b, f, w) *= mask(b, 0, w);
}

/// Fills x with standard normal noise from rng (host generator, same stream on every device).
template <class T, std::size_t N>
void randn_(Cpu dev, Tensor<T, N, Cpu>& x, Rng& rng) {
  const DeviceScope<Cpu> on(dev);
  for (auto& v : x) v = static_cast<T>(rng.normal());
}

/// One Euler step of Grad-TTS reverse diffusion, in torch's float32 order of operations:
///   ODE: dx = (0.5 * ((mu - xt) - est)) * beta * h
///   SDE: dx = ((0.5 * (mu - xt)) - est) * beta * h + noise * sqrt(beta * h)
///   xt = (xt - dx) * mask
/// `noise` is empty for the ODE.
template <class T>
void gradtts_step_(Cpu dev, Tensor<T, 3, Cpu>& xt, const Tensor<T, 3, Cpu>& mu, const Tensor<T, 3, Cpu>& est,
                   const Tensor<T, 3, Cpu>& mask, const Tensor<T, 3, Cpu>& noise, T beta, T h) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t B = xt.shape(0), F = xt.shape(1), W = xt.shape(2);
  const bool sde = noise.size() != 0;
  const T sq = std::sqrt(beta * h);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t f = 0; f < F; ++f)
      for (std::size_t w = 0; w < W; ++w) {
        const std::size_t i = (b * F + f) * W + w;
        const T x = xt.data()[i], m = mu.data()[i], e = est.data()[i];
        T dx = sde ? (T(0.5) * (m - x) - e) * beta * h + noise.data()[i] * sq : (T(0.5) * ((m - x) - e)) * beta * h;
        xt.data()[i] = (x - dx) * mask(b, 0, w);
      }
}

/// Grad-TTS forward diffusion with explicit noise z:
///   c = b0 t + 0.5 (b1 - b0) t^2; xt = (x0 e^{-c/2} + mu (1 - e^{-c/2}) + z sqrt(1 - e^{-c})) * mask.
template <class T>
Tensor<T, 3, Cpu> gradtts_forward_diffusion(Cpu dev, const Tensor<T, 3, Cpu>& x0, const Tensor<T, 3, Cpu>& mask,
                                            const Tensor<T, 3, Cpu>& mu, const Tensor<T, 1, Cpu>& t,
                                            const Tensor<T, 3, Cpu>& z, T beta_min, T beta_max) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t B = x0.shape(0), F = x0.shape(1), W = x0.shape(2);
  auto xt = Tensor<T, 3, Cpu>::from_shape(x0.shape());
  for (std::size_t b = 0; b < B; ++b) {
    const T tb = t(b);
    const T c = beta_min * tb + T(0.5) * (beta_max - beta_min) * (tb * tb);
    const T decay = std::exp(T(-0.5) * c), sd = std::sqrt(T(1) - std::exp(-c));
    for (std::size_t f = 0; f < F; ++f)
      for (std::size_t w = 0; w < W; ++w)
        xt(b, f, w) = ((x0(b, f, w) * decay + mu(b, f, w) * (T(1) - decay)) + z(b, f, w) * sd) * mask(b, 0, w);
  }
  return xt;
}

// ---- embeddings ----------------------------------------------------------------------------

/// Grad-TTS SinusoidalPosEmb, evaluated in T with torch's float32 order of operations:
/// f_i = exp(i * -(ln 1e4 / (half-1))), a = (scale * t) * f_i, [sin a | cos a].
template <class T>
Tensor<T, 2, Cpu> sinusoidal_pos_emb(Cpu dev, const Tensor<T, 1, Cpu>& t, int dim, double scale) {
  const DeviceScope<Cpu> on(dev);
  const int half = dim / 2;
  const T step = static_cast<T>(-(std::log(10000.0) / (half - 1)));
  auto y = Tensor<T, 2, Cpu>::from_shape({t.shape(0), static_cast<std::size_t>(dim)});
  for (std::size_t b = 0; b < t.shape(0); ++b) {
    const T st = static_cast<T>(scale) * t(b);
    for (int i = 0; i < half; ++i) {
      const T a = st * std::exp(static_cast<T>(i) * step);
      y(b, i) = std::sin(a);
      y(b, half + i) = std::cos(a);
    }
  }
  return y;
}

}  // namespace ops
}  // namespace diffblocks
