#pragma once
// The CPU device's ops. Every op takes the device tag first so that block code calls
// `ops::conv2d(D{}, ...)` and a CUDA device only has to add overloads for its own tag.
// Tensors are NCHW row-major; a time mask is (B, 1, 1, W) with 1 = valid frame.
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
#include "diffblocks/ops/cpu/simd.hpp"

namespace diffblocks {
namespace ops {

template <class T, std::size_t N>
Tensor<T, N, Cpu> empty(Cpu, const std::array<std::size_t, N>& shape) {
  return Tensor<T, N, Cpu>::from_shape(shape);
}

template <class T, std::size_t N>
Tensor<T, N, Cpu> zeros(Cpu, const std::array<std::size_t, N>& shape) {
  auto t = Tensor<T, N, Cpu>::from_shape(shape);
  std::fill_n(t.data(), t.size(), T(0));
  return t;
}

template <class T, std::size_t N>
Tensor<T, N, Cpu> full(Cpu, const std::array<std::size_t, N>& shape, T value) {
  auto t = Tensor<T, N, Cpu>::from_shape(shape);
  std::fill_n(t.data(), t.size(), value);
  return t;
}

// ---- convolutions and linear layers --------------------------------------------------------

template <class T>
Tensor<T, 4, Cpu> conv2d(Cpu, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias,
                         int stride, int padding) {
  return cpu::conv2d(x, w, bias, stride, padding);
}

template <class T>
Tensor<T, 4, Cpu> conv_transpose2d(Cpu, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w,
                                   const Tensor<T, 1, Cpu>& bias, int stride, int padding) {
  return cpu::conv_transpose2d(x, w, bias, stride, padding);
}

/// y (..., out) = x (..., in) W^T + b, W (out, in), over every row of x (a rank-3 x is a batch
/// of token sequences; nothing is reshaped or copied).
///
/// Token-wise projections (a transformer's rows are its ~10k tokens) are split over the threads
/// in blocks of rows, each multiplied in place (packed::gemm_rows_packed_b) against W^T, which
/// is laid out once per call straight into the packed column blocks; a few rows (time
/// embeddings, the style sequence) stay one Eigen call.
template <class T, std::size_t N>
Tensor<T, N, Cpu> linear(Cpu, const Tensor<T, N, Cpu>& x, const Tensor<T, 2, Cpu>& w, const Tensor<T, 1, Cpu>& bias) {
  static_assert(N >= 2, "linear: x is (rows..., in)");
  const int B = static_cast<int>(leading_rows(x.shape())), in = static_cast<int>(x.shape(N - 1));
  const int out = static_cast<int>(w.shape(0));
  auto y = Tensor<T, N, Cpu>::from_shape(with_last(x.shape(), w.shape(0)));
  auto add_bias = [&](T* yr, int rows) {
    if (bias.size())
      for (int r = 0; r < rows; ++r)
        for (int o = 0; o < out; ++o) yr[static_cast<std::ptrdiff_t>(r) * out + o] += bias.data()[o];
  };
  constexpr int kRowBlock = 16 * cpu::packed::kPanelRows;
  if (B >= kRowBlock && in > 0 && out > 0) {
    constexpr int NC = cpu::packed::block_cols<T>();
    memory::Buffer<T> wt(static_cast<std::size_t>(cpu::packed::packed_b_size<T>(in, out)));  // W^T, packed
    for (int n0 = 0; n0 < out; n0 += NC)
      for (int i = 0; i < in; ++i)
        for (int j = 0; j < NC; ++j)
          wt[(static_cast<std::size_t>(n0) * in) + static_cast<std::size_t>(i) * NC + j] =
              n0 + j < out ? w.data()[static_cast<std::size_t>(n0 + j) * in + i] : T(0);
    parallel_for((B + kRowBlock - 1) / kRowBlock, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
      for (std::ptrdiff_t blk = first; blk < last; ++blk) {  // a block's rows stay cached over W^T
        const std::ptrdiff_t r0 = blk * kRowBlock;
        const int nr = static_cast<int>(std::min<std::ptrdiff_t>(kRowBlock, B - r0));
        T* yr = y.data() + r0 * out;
        cpu::packed::gemm_rows_packed_b<T>(nr, out, in, x.data() + r0 * in, in, wt.data(), yr, out);
        add_bias(yr, nr);
      }
    });
    return y;
  }
  cpu::gemm_bt<T>(B, out, in, x.data(), in, w.data(), in, y.data(), out);
  add_bias(y.data(), B);
  return y;
}

// ---- normalisation -------------------------------------------------------------------------

/// Mean and 1/sqrt(var + eps) of n contiguous values (biased variance, as torch), in one pass
/// over memory: chunks of 2048 values (L1-resident) get a two-pass mean and sum of squared
/// deviations in T (vectorised Eigen reductions: many partial sums, so a chunk's rounding error
/// stays ~1e-7 relative in float, at twice the speed of widening to double), and the chunks are
/// merged in double with Chan et al.'s pairwise update, which is as stable as a global two-pass
/// computation.
template <class T>
std::pair<double, double> moments(const T* src, std::ptrdiff_t n, double eps) {
  if (n == 0) return {0.0, 1.0 / std::sqrt(eps)};
  constexpr std::ptrdiff_t kChunk = 2048;
  double mean = 0.0, m2 = 0.0;
  std::ptrdiff_t count = 0;
  for (std::ptrdiff_t i = 0; i < n; i += kChunk) {
    const std::ptrdiff_t len = std::min(kChunk, n - i);
    const Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> v(src + i, len);
    const T cmt = v.sum() / static_cast<T>(len);
    const double cm = static_cast<double>(cmt), cm2 = static_cast<double>((v - cmt).square().sum());
    const double delta = cm - mean, total = static_cast<double>(count + len);
    mean += delta * static_cast<double>(len) / total;
    m2 += cm2 + delta * delta * static_cast<double>(count) * static_cast<double>(len) / total;
    count += len;
  }
  return {mean, 1.0 / std::sqrt(m2 / static_cast<double>(n) + eps)};
}

/// Applies GroupNorm to x in place over (b, group) slices, then `post(ptr, len, b, c)` to every
/// normalised row of W values (rows are cache-resident when post runs: the fusion point for
/// the activation and the mask).
template <class T, class Post>
void group_norm_apply_(Tensor<T, 4, Cpu>& x, int groups, const Tensor<T, 1, Cpu>& gamma, const Tensor<T, 1, Cpu>& beta,
                       double eps, const T* src_all, Post post) {
  const std::ptrdiff_t B = x.shape(0), C = x.shape(1), HW = static_cast<std::ptrdiff_t>(x.shape(2) * x.shape(3));
  const std::ptrdiff_t W = x.shape(3), cpg = C / groups;
  parallel_for(B * groups, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    for (std::ptrdiff_t bg = first; bg < last; ++bg) {
      const std::ptrdiff_t b = bg / groups, g = bg % groups;
      const T* src = src_all + (b * C + g * cpg) * HW;
      T* dst = x.data() + (b * C + g * cpg) * HW;
      const auto [mean, rstd] = moments(src, cpg * HW, eps);
      for (std::ptrdiff_t c = 0; c < cpg; ++c) {
        const std::ptrdiff_t ch = g * cpg + c;
        const T scale = static_cast<T>(rstd * (gamma.size() ? static_cast<double>(gamma(ch)) : 1.0));
        const T shift = static_cast<T>((beta.size() ? static_cast<double>(beta(ch)) : 0.0) - mean * rstd *
                                       (gamma.size() ? static_cast<double>(gamma(ch)) : 1.0));
        for (std::ptrdiff_t r = 0; r < HW; r += W) {
          const T* s = src + c * HW + r;
          T* d = dst + c * HW + r;
          for (std::ptrdiff_t i = 0; i < W; ++i) d[i] = s[i] * scale + shift;
          post(d, W, b, ch);
        }
      }
    }
  });
}

/// torch.nn.functional.group_norm: G contiguous channel groups, biased variance over
/// (C/G, H, W), optional per-channel affine.
template <class T>
Tensor<T, 4, Cpu> group_norm(Cpu, const Tensor<T, 4, Cpu>& x, int groups, const Tensor<T, 1, Cpu>& gamma,
                             const Tensor<T, 1, Cpu>& beta, double eps) {
  auto y = Tensor<T, 4, Cpu>::from_shape(x.shape());
  group_norm_apply_(y, groups, gamma, beta, eps, x.data(), [](T*, std::ptrdiff_t, std::ptrdiff_t, std::ptrdiff_t) {});
  return y;
}

// ---- element-wise --------------------------------------------------------------------------

/// Mish over a contiguous range. With n = e^x (e^x + 2), tanh(log(1 + e^x)) = n / (n + 2), so
/// one exp and one reciprocal replace exp + log1p + tanh; above 20 torch's softplus returns x
/// and tanh(x) is 1 in float32, so mish(x) = x there (and n would overflow). float32 runs on
/// simd::exp and simd::reciprocal (relative error ~3e-7), other types on Eigen.
template <class T>
void mish_range(T* p, std::ptrdiff_t n) {
  if constexpr (std::is_same_v<T, float>) {
    namespace simd = cpu::simd;
    simd::transform(p, n, [](simd::vf x) {
      const simd::vf lim = simd::splat(20.0f);
      const simd::vf e = simd::exp(x > lim ? lim : x);
      const simd::vf m = e * (e + simd::splat(2.0f));
      const simd::vf y = x * m * simd::reciprocal(m + simd::splat(2.0f));
      return x > lim ? x : y;
    });
  } else {
    constexpr std::ptrdiff_t kChunk = 1024;  // exp evaluated once per element into a cached buffer
    Eigen::Array<T, kChunk, 1> m;
    for (std::ptrdiff_t i = 0; i < n; i += kChunk) {
      const std::ptrdiff_t len = std::min(kChunk, n - i);
      Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> x(p + i, len);
      auto mm = m.head(len);
      mm = x.min(T(20)).exp();
      mm = mm * (mm + T(2));
      x = (x > T(20)).select(x, x * mm / (mm + T(2)));
    }
  }
}

template <class T, std::size_t N>
void mish_(Cpu, Tensor<T, N, Cpu>& x) {
  T* p = x.data();
  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(x.size());
  if (n < (1 << 14)) return mish_range(p, n);  // not worth waking the pool
  parallel_for(n, [&](std::ptrdiff_t b, std::ptrdiff_t e) { mish_range(p + b, e - b); });
}

namespace detail {
/// dst[b, c, h, w] = src[b, c, h, w] * mask[b, 0, 0, w] over rows of W values (src may be dst);
/// `shape` is the (B, C, H, W) of both.
template <class T, class Shape>
void apply_frame_mask(const T* src, T* dst, const Shape& shape, const T* mask) {
  const std::ptrdiff_t CH = static_cast<std::ptrdiff_t>(shape[1] * shape[2]), W = shape[3];
  const std::ptrdiff_t rows = static_cast<std::ptrdiff_t>(shape[0]) * CH;
  auto body = [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      const T* m = mask + (r / CH) * W;
      const T* in = src + r * W;
      T* out = dst + r * W;
      for (std::ptrdiff_t w = 0; w < W; ++w) out[w] = in[w] * m[w];
    }
  };
  if (rows * W < (1 << 15)) return body(0, rows);
  parallel_for(rows, body);
}
}  // namespace detail

/// x[b, c, h, w] *= mask[b, 0, 0, w].
template <class T>
void mul_mask_(Cpu, Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& mask) {
  detail::apply_frame_mask(x.data(), x.data(), x.shape(), mask.data());
}

/// Grad-TTS Block's tail in one pass over each row: x = Mish(GroupNorm(x)) * mask (mask
/// (B, 1, 1, W)), in place. Same result as group_norm, mish_ and mul_mask_ in sequence.
template <class T>
void group_norm_mish_mask_(Cpu, Tensor<T, 4, Cpu>& x, int groups, const Tensor<T, 1, Cpu>& gamma,
                           const Tensor<T, 1, Cpu>& beta, double eps, const Tensor<T, 4, Cpu>& mask) {
  const std::ptrdiff_t W = x.shape(3);
  group_norm_apply_(x, groups, gamma, beta, eps, x.data(), [&](T* row, std::ptrdiff_t n, std::ptrdiff_t b, std::ptrdiff_t) {
    mish_range(row, n);
    const T* m = mask.data() + b * W;
    for (std::ptrdiff_t i = 0; i < n; ++i) row[i] *= m[i];
  });
}

/// Grad-TTS ResnetBlock's middle in one pass: x = (Mish(GroupNorm(x)) * mask + bias[b, c]) * mask,
/// i.e. block1's output plus the time bias, already masked as block2's convolution reads it.
/// Rounds exactly like the separate ops (multiply, add, multiply in that order).
template <class T>
void group_norm_mish_mask_bias_mask_(Cpu, Tensor<T, 4, Cpu>& x, int groups, const Tensor<T, 1, Cpu>& gamma,
                                     const Tensor<T, 1, Cpu>& beta, double eps, const Tensor<T, 4, Cpu>& mask,
                                     const Tensor<T, 2, Cpu>& bias) {
  const std::ptrdiff_t W = x.shape(3), C = x.shape(1);
  group_norm_apply_(x, groups, gamma, beta, eps, x.data(), [&](T* row, std::ptrdiff_t n, std::ptrdiff_t b, std::ptrdiff_t c) {
    mish_range(row, n);
    const T* m = mask.data() + b * W;
    const T bv = bias.data()[b * C + c];
    for (std::ptrdiff_t i = 0; i < n; ++i) row[i] = (row[i] * m[i] + bv) * m[i];
  });
}

/// y = x * mask[b, 0, 0, w] as a new tensor (one pass, instead of a copy and an in-place mask).
template <class T>
Tensor<T, 4, Cpu> masked_copy(Cpu, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& mask) {
  auto y = Tensor<T, 4, Cpu>::from_shape(x.shape());
  detail::apply_frame_mask(x.data(), y.data(), x.shape(), mask.data());
  return y;
}

/// x[b, c, :, :] += bias[b, c].
template <class T>
void add_channel_bias_(Cpu, Tensor<T, 4, Cpu>& x, const Tensor<T, 2, Cpu>& bias) {
  const std::ptrdiff_t BC = static_cast<std::ptrdiff_t>(x.shape(0) * x.shape(1)),
                       HW = static_cast<std::ptrdiff_t>(x.shape(2) * x.shape(3));
  auto body = [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    for (std::ptrdiff_t i = i0; i < i1; ++i) {
      const T v = bias.data()[i];
      T* p = x.data() + i * HW;
      for (std::ptrdiff_t j = 0; j < HW; ++j) p[j] += v;
    }
  };
  if (BC * HW < (1 << 15)) return body(0, BC);
  parallel_for(BC, body);
}

/// a += b (same shape).
template <class T, std::size_t N>
void add_(Cpu, Tensor<T, N, Cpu>& a, const Tensor<T, N, Cpu>& b) {
  T* pa = a.data();
  const T* pb = b.data();
  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(a.size());
  auto body = [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    for (std::ptrdiff_t i = i0; i < i1; ++i) pa[i] += pb[i];
  };
  if (n < (1 << 15)) return body(0, n);
  parallel_for(n, body);
}

/// out += conv2d(x, w, bias, stride, padding), out already shaped like the convolution's result.
/// 1x1 stride-1 convolutions accumulate inside the GEMM; others add a temporary.
template <class T>
void conv2d_add_(Cpu, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias, int stride,
                 int padding, Tensor<T, 4, Cpu>& out) {
  if (w.shape(2) == 1 && w.shape(3) == 1 && stride == 1 && padding == 0) return cpu::conv1x1_add_(x, w, bias, out);
  const auto y = cpu::conv2d(x, w, bias, stride, padding);
  add_(Cpu{}, out, y);
}

/// x *= g[0] (a learned scalar such as Rezero's g).
template <class T, std::size_t N>
void scale_(Cpu, Tensor<T, N, Cpu>& x, const Tensor<T, 1, Cpu>& g) {
  const T s = g(0);
  T* p = x.data();  // raw pointers: xtensor's element iterators step through the shape, unvectorised
  for (std::size_t i = 0, n = x.size(); i < n; ++i) p[i] *= s;
}

/// x *= s.
template <class T, std::size_t N>
void mul_scalar_(Cpu, Tensor<T, N, Cpu>& x, T s) {
  T* p = x.data();
  for (std::size_t i = 0, n = x.size(); i < n; ++i) p[i] *= s;
}

/// cat([a, b], dim=1).
template <class T>
Tensor<T, 4, Cpu> concat_channels(Cpu, const Tensor<T, 4, Cpu>& a, const Tensor<T, 4, Cpu>& b) {
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
Tensor<T, 4, Cpu> slice_channels(Cpu, const Tensor<T, 4, Cpu>& x, std::size_t c0, std::size_t c1) {
  const std::size_t B = x.shape(0), C = x.shape(1), HW = x.shape(2) * x.shape(3);
  auto y = Tensor<T, 4, Cpu>::from_shape({B, c1 - c0, x.shape(2), x.shape(3)});
  for (std::size_t b = 0; b < B; ++b) std::copy_n(x.data() + (b * C + c0) * HW, (c1 - c0) * HW, y.data() + b * (c1 - c0) * HW);
  return y;
}

/// mask[..., ::2]: the time mask of the next (half-resolution) U-Net level.
template <class T>
Tensor<T, 4, Cpu> subsample_time(Cpu, const Tensor<T, 4, Cpu>& mask) {
  const std::size_t B = mask.shape(0), W = mask.shape(3), Wo = (W + 1) / 2;
  auto y = Tensor<T, 4, Cpu>::from_shape({B, 1, 1, Wo});
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t w = 0; w < Wo; ++w) y(b, 0, 0, w) = mask(b, 0, 0, 2 * w);
  return y;
}

/// Same data, new shape (sizes must agree; the caller checks).
template <class T, std::size_t M, std::size_t N>
Tensor<T, M, Cpu> reshape(Cpu, const Tensor<T, N, Cpu>& x, const std::array<std::size_t, M>& shape) {
  auto y = Tensor<T, M, Cpu>::from_shape(shape);
  std::copy_n(x.data(), x.size(), y.data());
  return y;
}
/// Same, taking over the storage of a temporary (no copy).
template <class T, std::size_t M, std::size_t N>
Tensor<T, M, Cpu> reshape(Cpu, Tensor<T, N, Cpu>&& x, const std::array<std::size_t, M>& shape) {
  std::array<std::size_t, M> sh = shape;
  std::array<std::ptrdiff_t, M> strides;
  xt::compute_strides(sh, xt::layout_type::row_major, strides);
  return Tensor<T, M, Cpu>(std::move(x.storage()), std::move(sh), std::move(strides));
}

/// x (B, C, T) zero-padded or cropped along time to `frames`.
template <class T>
Tensor<T, 3, Cpu> resize_time(Cpu, const Tensor<T, 3, Cpu>& x, std::size_t frames) {
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
void set_channel_(Cpu, Tensor<T, 4, Cpu>& dst, std::size_t c, const Tensor<T, 3, Cpu>& src) {
  const std::size_t C = dst.shape(1), HW = dst.shape(2) * dst.shape(3);
  for (std::size_t b = 0; b < dst.shape(0); ++b)
    std::copy_n(src.data() + b * HW, HW, dst.data() + (b * C + c) * HW);
}

/// dst[b, c, h, :] = v[b, h]: a per-row vector repeated over time (speaker / emotion planes).
template <class T>
void set_channel_repeat_time_(Cpu, Tensor<T, 4, Cpu>& dst, std::size_t c, const Tensor<T, 2, Cpu>& v) {
  const std::size_t C = dst.shape(1), H = dst.shape(2), W = dst.shape(3);
  for (std::size_t b = 0; b < dst.shape(0); ++b)
    for (std::size_t h = 0; h < H; ++h) std::fill_n(dst.data() + ((b * C + c) * H + h) * W, W, v(b, h));
}

/// dst[b, c, :, w] = src[b, i, w]: a frame-level feature repeated over the frequency axis.
template <class T>
void set_channel_repeat_freq_(Cpu, Tensor<T, 4, Cpu>& dst, std::size_t c, const Tensor<T, 3, Cpu>& src, std::size_t i) {
  const std::size_t C = dst.shape(1), H = dst.shape(2), W = dst.shape(3);
  for (std::size_t b = 0; b < dst.shape(0); ++b)
    for (std::size_t h = 0; h < H; ++h)
      std::copy_n(src.data() + (b * src.shape(1) + i) * W, W, dst.data() + ((b * C + c) * H + h) * W);
}

/// out[b] = table[ids[b]] (ids already range-checked).
template <class T>
Tensor<T, 2, Cpu> gather_rows(Cpu, const Tensor<T, 2, Cpu>& table, const std::vector<std::int64_t>& ids) {
  const std::size_t D = table.shape(1);
  auto y = Tensor<T, 2, Cpu>::from_shape({ids.size(), D});
  for (std::size_t b = 0; b < ids.size(); ++b) std::copy_n(table.data() + ids[b] * D, D, y.data() + b * D);
  return y;
}

/// Index of the first NaN/Inf, or -1.
template <class T, std::size_t N>
std::ptrdiff_t find_non_finite(Cpu, const Tensor<T, N, Cpu>& x) {
  const T* p = x.data();
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(p[i])) return static_cast<std::ptrdiff_t>(i);
  return -1;
}

// ---- attention -----------------------------------------------------------------------------

namespace detail {
/// dst[0..n) = softmax(src[0..n)) (max-subtracted, normaliser summed in double); src may be dst.
/// Grad-TTS LinearAttention's softmax of k over all positions.
template <class T>
void softmax_positions(const T* src, T* dst, std::ptrdiff_t n) {
  Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> in(src, n);
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> out(dst, n);
  out = (in - in.maxCoeff()).exp();
  out *= static_cast<T>(1.0 / out.template cast<double>().sum());
}

/// The float version on simd::exp: the sum is kept per vector lane in float over runs of 256
/// values and the runs are added in double (Eigen's exp and a double cast of every value took
/// a quarter of a 64-channel LinearAttention).
inline void softmax_positions(const float* src, float* dst, std::ptrdiff_t n) {
  namespace v = cpu::simd;
  constexpr std::ptrdiff_t L = v::kFloats, kRun = 256;
  if (n <= 0) return;
  const std::ptrdiff_t nv = n / L * L;
  float mx = -std::numeric_limits<float>::infinity();
  if (nv) {
    v::vf m = v::load(src);
    for (std::ptrdiff_t i = L; i < nv; i += L) m = v::max(m, v::load(src + i));
    for (int l = 0; l < L; ++l) mx = std::max(mx, m[l]);
  }
  for (std::ptrdiff_t i = nv; i < n; ++i) mx = std::max(mx, src[i]);
  const v::vf vmx = v::splat(mx);
  double total = 0;
  for (std::ptrdiff_t i = 0; i < nv;) {
    v::vf acc{};
    for (const std::ptrdiff_t end = std::min(nv, i + kRun); i < end; i += L) {
      const v::vf e = v::exp(v::load(src + i) - vmx);
      v::store(dst + i, e);
      acc += e;
    }
    float run = 0;
    for (int l = 0; l < L; ++l) run += acc[l];
    total += run;
  }
  for (std::ptrdiff_t i = nv; i < n; ++i) total += dst[i] = std::exp(src[i] - mx);
  const float scale = static_cast<float>(1.0 / total);
  v::transform(dst, n, [&](v::vf x) { return x * v::splat(scale); });
}
}  // namespace detail

/// Grad-TTS linear attention core. qkv (B, 3*heads*dh, H, W), channel = which*heads*dh + head*dh + c.
/// k is softmaxed over all H*W positions; context = k v^T (dh x dh); out = context^T q.
/// Returns (B, heads*dh, H, W). No mask and no 1/sqrt(d) scale, as in the original.
template <class T>
Tensor<T, 4, Cpu> linear_attention(Cpu, const Tensor<T, 4, Cpu>& qkv, int heads, int dim_head) {
  const std::ptrdiff_t B = qkv.shape(0), N = static_cast<std::ptrdiff_t>(qkv.shape(2) * qkv.shape(3));
  const std::ptrdiff_t hidden = static_cast<std::ptrdiff_t>(heads) * dim_head;
  auto out = Tensor<T, 4, Cpu>::from_shape({qkv.shape(0), static_cast<std::size_t>(hidden), qkv.shape(2), qkv.shape(3)});
  parallel_for(B * heads, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    memory::Buffer<T> ksm(static_cast<std::size_t>(dim_head) * N), ctx(static_cast<std::size_t>(dim_head) * dim_head);
    for (std::ptrdiff_t bh = first; bh < last; ++bh) {
      const std::ptrdiff_t b = bh / heads, h = bh % heads;
      const T* base = qkv.data() + b * 3 * hidden * N;
      const T* q = base + (h * dim_head) * N;
      const T* k = base + (hidden + h * dim_head) * N;
      const T* v = base + (2 * hidden + h * dim_head) * N;
      for (int d = 0; d < dim_head; ++d) detail::softmax_positions(k + d * N, ksm.data() + d * N, N);
      // context[d, e] = sum_n k[d, n] v[e, n]
      cpu::gemm_bt<T>(dim_head, dim_head, static_cast<int>(N), ksm.data(), static_cast<int>(N), v,
                      static_cast<int>(N), ctx.data(), dim_head);
      // out[e, n] = sum_d context[d, e] q[d, n]
      T* o = out.data() + (b * hidden + h * dim_head) * N;
      cpu::gemm_at<T>(dim_head, static_cast<int>(N), dim_head, ctx.data(), dim_head, q, static_cast<int>(N), o,
                      static_cast<int>(N));
    }
  });
  return out;
}

/// The whole Grad-TTS LinearAttention block, to_out(linear_attention(to_qkv(x))), computed with
/// the same mathematics in fewer operations. The attention is linear in q and v, so with
/// k~ = softmax_n(W_k x) (per row, over all positions) and per head h
///   context_h = k~_h v_h^T = (k~_h x^T) W_v,h^T                        (dh x dh)
///   y = sum_h W_out,h context_h^T W_q,h x + b = Mix x + b,  Mix = sum_h W_out,h context_h^T W_q,h
/// neither q nor v is ever formed over the positions: per position it costs the k projection,
/// the k~ x^T product and one C x C mix, instead of the q, k, v projections, the two attention
/// products and to_out (2x fewer multiply-adds at C = 64, 1.5x at 128; the 1x1 convolutions
/// around the attention were ~25 % of an Origin forward's work after Winograd). It also never
/// holds the 3 x hidden-channel qkv tensor. x (B, C, H, W); w_qkv (3*heads*dh, C, 1, 1) with
/// channel = which*heads*dh + head*dh + c; w_out (C_out, heads*dh, 1, 1); b_out (C_out) or empty.
template <class T>
Tensor<T, 4, Cpu> linear_attention_block(Cpu, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w_qkv,
                                         const Tensor<T, 4, Cpu>& w_out, const Tensor<T, 1, Cpu>& b_out, int heads,
                                         int dim_head) {
  const int B = static_cast<int>(x.shape(0)), C = static_cast<int>(x.shape(1));
  const int H = static_cast<int>(x.shape(2)), W = static_cast<int>(x.shape(3));
  const int hidden = heads * dim_head, Cout = static_cast<int>(w_out.shape(0));
  const std::ptrdiff_t N = static_cast<std::ptrdiff_t>(H) * W;
  auto y = Tensor<T, 4, Cpu>::from_shape({x.shape(0), static_cast<std::size_t>(Cout), x.shape(2), x.shape(3)});
  if (B == 0 || N == 0) return y;
  const T* wq = w_qkv.data();
  const T* wk = wq + static_cast<std::ptrdiff_t>(hidden) * C;
  const T* wv = wk + static_cast<std::ptrdiff_t>(hidden) * C;
  memory::Buffer<T> ksm(static_cast<std::size_t>(hidden) * N), P(static_cast<std::size_t>(hidden) * C),
      mix(static_cast<std::size_t>(Cout) * C), ctx(static_cast<std::size_t>(dim_head) * dim_head),
      g(static_cast<std::size_t>(dim_head) * C),
      xt(static_cast<std::size_t>(cpu::packed::packed_b_size<T>(static_cast<int>(N), C)));
  for (int b = 0; b < B; ++b) {
    const T* xb = x.data() + static_cast<std::ptrdiff_t>(b) * C * N;
    // k = W_k x, then softmax over the positions of every row, in place (as linear_attention).
    cpu::pointwise_conv<T>(xb, 1, C, H, W, wk, hidden, nullptr, ksm.data(), false);
    parallel_for(hidden, [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
      for (std::ptrdiff_t r = r0; r < r1; ++r) detail::softmax_positions(ksm.data() + r * N, ksm.data() + r * N, N);
    });
    // P = k~ x^T (hidden x C), the positions the long reduction, on the packed kernel: x^T is
    // packed once (threads take runs of positions), then each thread multiplies its own panels
    // of k~'s rows, read in place, into it. (Eigen packed both operands in every call.)
    parallel_for((N + 255) / 256, [&](std::ptrdiff_t c0, std::ptrdiff_t c1) {
      cpu::packed::pack_b_transposed<T>(static_cast<int>(N), C, xb, N, static_cast<int>(c0 * 256),
                                         static_cast<int>(std::min(N, c1 * 256)), xt.data());
    });
    constexpr int R = cpu::packed::kPanelRows;
    parallel_for((hidden + R - 1) / R, [&](std::ptrdiff_t p0, std::ptrdiff_t p1) {
      const int m0 = static_cast<int>(p0) * R, m1 = std::min(hidden, static_cast<int>(p1) * R);
      cpu::packed::gemm_rows_packed_b<T>(m1 - m0, C, static_cast<int>(N), ksm.data() + m0 * N, N, xt.data(),
                                         P.data() + static_cast<std::ptrdiff_t>(m0) * C, C);
    });
    // Mix = sum_h W_out,h context_h^T W_q,h (C_out x C: small products, serial).
    std::fill(mix.begin(), mix.end(), T(0));
    for (int h = 0; h < heads; ++h) {
      // context_h[d][e] = sum_c P[h*dh + d][c] W_v[h*dh + e][c]
      cpu::gemm_bt<T>(dim_head, dim_head, C, P.data() + h * dim_head * C, C, wv + h * dim_head * C, C, ctx.data(),
                      dim_head);
      // g = context_h^T W_q,h (dh x C)
      cpu::gemm_at<T>(dim_head, C, dim_head, ctx.data(), dim_head, wq + h * dim_head * C, C, g.data(), C);
      // Mix += W_out[:, h*dh : (h+1)*dh] g
      cpu::gemm<T>(Cout, C, dim_head, w_out.data() + h * dim_head, hidden, g.data(), C, mix.data(), C,
                   /*accumulate=*/true);
    }
    cpu::pointwise_conv<T>(xb, 1, C, H, W, mix.data(), Cout, b_out.size() ? b_out.data() : nullptr,
                           y.data() + static_cast<std::ptrdiff_t>(b) * Cout * N, false);
  }
  return y;
}

// ---- Grad-TTS diffusion ---------------------------------------------------------------------

/// x[b, f, t] *= mask[b, 0, t] for (B, F, T) tensors.
template <class T>
void mul_mask3_(Cpu, Tensor<T, 3, Cpu>& x, const Tensor<T, 3, Cpu>& mask) {
  const std::size_t B = x.shape(0), F = x.shape(1), W = x.shape(2);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t f = 0; f < F; ++f)
      for (std::size_t w = 0; w < W; ++w) x(b, f, w) *= mask(b, 0, w);
}

/// Fills x with standard normal noise from rng (host generator, same stream on every device).
template <class T, std::size_t N>
void randn_(Cpu, Tensor<T, N, Cpu>& x, Rng& rng) {
  for (auto& v : x) v = static_cast<T>(rng.normal());
}

/// One Euler step of Grad-TTS reverse diffusion, in torch's float32 order of operations:
///   ODE: dx = (0.5 * ((mu - xt) - est)) * beta * h
///   SDE: dx = ((0.5 * (mu - xt)) - est) * beta * h + noise * sqrt(beta * h)
///   xt = (xt - dx) * mask
/// `noise` is empty for the ODE.
template <class T>
void gradtts_step_(Cpu, Tensor<T, 3, Cpu>& xt, const Tensor<T, 3, Cpu>& mu, const Tensor<T, 3, Cpu>& est,
                   const Tensor<T, 3, Cpu>& mask, const Tensor<T, 3, Cpu>& noise, T beta, T h) {
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
Tensor<T, 3, Cpu> gradtts_forward_diffusion(Cpu, const Tensor<T, 3, Cpu>& x0, const Tensor<T, 3, Cpu>& mask,
                                            const Tensor<T, 3, Cpu>& mu, const Tensor<T, 1, Cpu>& t,
                                            const Tensor<T, 3, Cpu>& z, T beta_min, T beta_max) {
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
Tensor<T, 2, Cpu> sinusoidal_pos_emb(Cpu, const Tensor<T, 1, Cpu>& t, int dim, double scale) {
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
