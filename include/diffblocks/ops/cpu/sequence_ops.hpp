#pragma once
// CPU ops used by the diffusers blocks: activations, LayerNorm, softmax attention over token
// sequences (B, N, C), layout changes between NCHW feature maps and tokens, nearest upsampling.
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

template <class T, std::size_t N>
void silu_(Cpu dev, Tensor<T, N, Cpu>& x) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(silu_<T, N>(x));
}

/// Exact GELU 0.5 x (1 + erf(x / sqrt 2)) over a contiguous range (float32: absolute error < 3e-7).
template <class T>
void gelu_range(T* p, std::ptrdiff_t n) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(gelu_range<T>(p, n));
}

template <class T, std::size_t N>
void gelu_(Cpu dev, Tensor<T, N, Cpu>& x) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(gelu_<T, N>(x));
}

/// GEGLU: x (..., 2D) -> (..., D) = a * GELU(gate) with a = first half, gate = second half.
template <class T, std::size_t N>
Tensor<T, N, Cpu> geglu(Cpu dev, const Tensor<T, N, Cpu>& x) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(geglu<T, N>(x));
}

/// LayerNorm over the last dimension (biased variance; kernels/norm.inl).
template <class T, std::size_t N>
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

/// Frame mask (B, 1, 1, W) -> keep-mask (B, H*W) over nchw_to_tokens' tokens: token y*W + x
/// keeps mask[b, x] (every mel bin of a padded frame is padding).
template <class T>
Tensor<T, 2, Cpu> frame_mask_to_tokens(Cpu dev, const Tensor<T, 4, Cpu>& mask, std::size_t H) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t B = mask.shape(0), W = mask.shape(3);
  auto y = Tensor<T, 2, Cpu>::from_shape({B, H * W});
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t r = 0; r < H; ++r) std::copy_n(mask.data() + b * W, W, y.data() + (b * H + r) * W);
  return y;
}

/// [mean_L(x) + pos, x] along the sequence: (B, L, C) -> (B, L+1, C) (AttentionPooling).
template <class T>
Tensor<T, 3, Cpu> prepend_mean_token(Cpu dev, const Tensor<T, 3, Cpu>& x, const Tensor<T, 2, Cpu>& pos) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t B = x.shape(0), L = x.shape(1), C = x.shape(2);
  auto y = Tensor<T, 3, Cpu>::from_shape({B, L + 1, C});
  for (std::size_t b = 0; b < B; ++b) {
    for (std::size_t c = 0; c < C; ++c) {
      T s = 0;  // float32 sum, like torch's mean on float tensors
      for (std::size_t l = 0; l < L; ++l) s += x(b, l, c);
      y(b, 0, c) = s / static_cast<T>(L) + pos(0, c);
    }
    std::copy_n(x.data() + b * L * C, L * C, y.data() + (b * (L + 1) + 1) * C);
  }
  return y;
}

/// x[:, 0, :] -> (B, C).
template <class T>
Tensor<T, 2, Cpu> first_token(Cpu dev, const Tensor<T, 3, Cpu>& x) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t B = x.shape(0), N = x.shape(1), C = x.shape(2);
  auto y = Tensor<T, 2, Cpu>::from_shape({B, C});
  for (std::size_t b = 0; b < B; ++b) std::copy_n(x.data() + b * N * C, C, y.data() + b * C);
  return y;
}

/// cat([a, b], dim=-1) for (B, Da) and (B, Db).
template <class T>
Tensor<T, 2, Cpu> concat_cols(Cpu dev, const Tensor<T, 2, Cpu>& a, const Tensor<T, 2, Cpu>& b) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t B = a.shape(0), Da = a.shape(1), Db = b.shape(1);
  auto y = Tensor<T, 2, Cpu>::from_shape({B, Da + Db});
  for (std::size_t i = 0; i < B; ++i) {
    std::copy_n(a.data() + i * Da, Da, y.data() + i * (Da + Db));
    std::copy_n(b.data() + i * Db, Db, y.data() + i * (Da + Db) + Da);
  }
  return y;
}

/// x = x * a + b.
template <class T, std::size_t N>
void affine_(Cpu dev, Tensor<T, N, Cpu>& x, T a, T b) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(affine_(x.data(), static_cast<std::ptrdiff_t>(x.size()), a, b));
}

/// The first element, read on the host.
template <class T, std::size_t N>
T first_value(Cpu dev, const Tensor<T, N, Cpu>& x) {
  const DeviceScope<Cpu> on(dev);
  return x.data()[0];
}

/// diffusers' attention-mask convention: keep-mask m (1 = attend) -> additive bias (1 - m) * -10000.
template <class T>
Tensor<T, 2, Cpu> keep_mask_to_bias(Cpu dev, const Tensor<T, 2, Cpu>& keep) {
  const DeviceScope<Cpu> on(dev);
  auto y = Tensor<T, 2, Cpu>::from_shape(keep.shape());
  for (std::size_t i = 0; i < keep.size(); ++i) y.data()[i] = (T(1) - keep.data()[i]) * T(-10000.0);
  return y;
}

/// Nearest-neighbour resize of (B, C, H, W) to (Ho, Wo) with torch's rule
/// src = min(floor(dst * (in / out)), in - 1), the scale computed in float32 as torch does.
template <class T>
Tensor<T, 4, Cpu> upsample_nearest(Cpu dev, const Tensor<T, 4, Cpu>& x, std::size_t Ho, std::size_t Wo) {
  const DeviceScope<Cpu> on(dev);
  const std::size_t B = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
  auto src_index = [](std::size_t out, std::size_t in) {
    std::vector<std::size_t> idx(out);
    const float scale = static_cast<float>(in) / static_cast<float>(out);
    for (std::size_t d = 0; d < out; ++d)
      idx[d] = std::min(static_cast<std::size_t>(std::floor(static_cast<float>(d) * scale)), in - 1);
    return idx;
  };
  const auto iy = src_index(Ho, H), ix = src_index(Wo, W);
  auto y = Tensor<T, 4, Cpu>::from_shape({B, C, Ho, Wo});
  for (std::size_t p = 0; p < B * C; ++p) {
    const T* s = x.data() + p * H * W;
    T* d = y.data() + p * Ho * Wo;
    for (std::size_t r = 0; r < Ho; ++r)
      for (std::size_t c = 0; c < Wo; ++c) d[r * Wo + c] = s[iy[r] * W + ix[c]];
  }
  return y;
}

/// diffusers get_timestep_embedding in float32 (see blocks/timesteps.hpp).
template <class T>
Tensor<T, 2, Cpu> timestep_embedding(Cpu dev, const Tensor<T, 1, Cpu>& t, int channels, bool flip, T shift, T max_period) {
  const DeviceScope<Cpu> on(dev);
  const int half = channels / 2;
  const T neg_log = -std::log(max_period);
  memory::Buffer<T> freq(static_cast<std::size_t>(half));
  for (int i = 0; i < half; ++i) freq[i] = std::exp((neg_log * static_cast<T>(i)) / (static_cast<T>(half) - shift));
  auto y = Tensor<T, 2, Cpu>::from_shape({t.shape(0), static_cast<std::size_t>(channels)});
  for (std::size_t b = 0; b < t.shape(0); ++b) {
    for (int i = 0; i < half; ++i) {
      const T a = t(b) * freq[i];
      y(b, flip ? half + i : i) = std::sin(a);
      y(b, flip ? i : half + i) = std::cos(a);
    }
    if (channels % 2) y(b, channels - 1) = T(0);
  }
  return y;
}

/// y = x * (1 + scale[b, c]) + shift[b, c], ss = (B, 2C) with scale first (AdaGroupNorm).
template <class T>
void scale_shift_(Cpu dev, Tensor<T, 4, Cpu>& x, const Tensor<T, 2, Cpu>& ss) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(scale_shift_(x.data(), static_cast<std::ptrdiff_t>(x.shape(0)),
                                            static_cast<std::ptrdiff_t>(x.shape(1)),
                                            static_cast<std::ptrdiff_t>(x.shape(2) * x.shape(3)), ss.data()));
}

}  // namespace ops
}  // namespace diffblocks
