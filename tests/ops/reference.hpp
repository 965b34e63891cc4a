#pragma once
// The plain references of the op registry (op_cases.hpp): each op written from its definition
// as nested loops over host tensors, in double, with none of the library's machinery (no
// tiling, threads, SIMD, packing, Winograd or online softmax). Every device and every variant
// of an op is checked against these. The few ops whose definition is a float32 order of
// operations (torch's sinusoidal embeddings, where rounding the argument of sin/cos to float
// is part of the result) take the CPU op as their reference instead (op_cases.hpp says which).
//
// Results are shapes and flat (row-major) values in double; inputs are float host tensors.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor_gen.hpp"

namespace dbops {
namespace ref {

using V = std::vector<double>;
using Shape = std::vector<std::int64_t>;

/// An op's result: its shape (empty for a scalar) and its values, row-major.
struct Result {
  Shape shape;
  V v;
};

template <std::size_t N>
Shape shape_of(const HT<N>& x) {
  return Shape(x.shape().begin(), x.shape().end());
}

template <std::size_t N>
V values(const HT<N>& x) {
  return V(x.data(), x.data() + x.size());
}

template <std::size_t N>
Result result(const HT<N>& x) {
  return {shape_of(x), values(x)};
}

/// A result as a host tensor of rank N (in double), to compare with require_close / diff.
template <std::size_t N>
db::Tensor<double, N> tensor(const Result& r) {
  if (r.shape.size() != N) throw std::logic_error("ref::tensor: a result of rank " + std::to_string(r.shape.size()));
  std::array<std::size_t, N> shape{};
  for (std::size_t i = 0; i < N; ++i) shape[i] = std::size_t(r.shape[i]);
  auto t = db::Tensor<double, N>::from_shape(shape);
  std::copy(r.v.begin(), r.v.end(), t.data());
  return t;
}

/// f applied to every value.
template <class F>
Result map(Result r, F f) {
  for (double& y : r.v) y = f(y);
  return r;
}
template <std::size_t N, class F>
Result map(const HT<N>& x, F f) {
  return map(result(x), f);
}

// ---- activations (torch's definitions) ------------------------------------------------------

/// x tanh(softplus(x)); torch's softplus returns x itself above its threshold of 20.
inline double mish(double x) { return x * std::tanh(x > 20 ? x : std::log1p(std::exp(x))); }
inline double silu(double x) { return x / (1 + std::exp(-x)); }
/// Exact (erf) GELU.
inline double gelu(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }

// ---- masks and per-channel terms --------------------------------------------------------------

/// x (B, C, H, W) times the frame mask m (B, 1, 1, W).
inline Result mul_mask(const HT<4>& x, const HT<4>& m) {
  Result r = result(x);
  V& y = r.v;
  const std::size_t B = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t r = 0; r < C * H; ++r)
      for (std::size_t w = 0; w < W; ++w) y[(b * C * H + r) * W + w] *= m(b, 0, 0, w);
  return r;
}

/// x (B, F, T) times the mask (B, 1, T).
inline Result mul_mask3(const HT<3>& x, const HT<3>& m) {
  Result r = result(x);
  V& y = r.v;
  for (std::size_t b = 0; b < x.shape(0); ++b)
    for (std::size_t f = 0; f < x.shape(1); ++f)
      for (std::size_t t = 0; t < x.shape(2); ++t) y[(b * x.shape(1) + f) * x.shape(2) + t] *= m(b, 0, t);
  return r;
}

/// x[b, c, :, :] + bias[b, c].
inline Result add_channel_bias(const HT<4>& x, const HT<2>& bias) {
  Result r = result(x);
  V& y = r.v;
  const std::size_t BC = x.shape(0) * x.shape(1), HW = x.shape(2) * x.shape(3);
  for (std::size_t i = 0; i < BC; ++i)
    for (std::size_t j = 0; j < HW; ++j) y[i * HW + j] += bias.data()[i];
  return r;
}

/// x (1 + ss[b, c]) + ss[b, C + c] for x (B, C, H, W).
inline Result scale_shift(Result r, const HT<2>& ss) {
  const std::size_t B = std::size_t(r.shape[0]), C = std::size_t(r.shape[1]), HW = std::size_t(r.shape[2] * r.shape[3]);
  V& y = r.v;
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t i = 0; i < HW; ++i)
        y[(b * C + c) * HW + i] = y[(b * C + c) * HW + i] * (1 + double(ss(b, c))) + double(ss(b, C + c));
  return r;
}

// ---- normalisation -----------------------------------------------------------------------------

/// torch.nn.functional.group_norm: biased variance over each (C/G, H, W) group, then the
/// per-channel affine (gamma/beta empty: none).
inline Result group_norm(const HT<4>& x, int groups, const HT<1>& gamma, const HT<1>& beta, double eps) {
  const std::size_t B = x.shape(0), C = x.shape(1), HW = x.shape(2) * x.shape(3), G = std::size_t(groups), cpg = C / G;
  V y(x.size());
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t g = 0; g < G; ++g) {
      const float* p = x.data() + (b * C + g * cpg) * HW;
      const std::size_t n = cpg * HW;
      double mean = 0, var = 0;
      for (std::size_t i = 0; i < n; ++i) mean += p[i];
      mean /= double(n);
      for (std::size_t i = 0; i < n; ++i) var += (p[i] - mean) * (p[i] - mean);
      const double rstd = 1 / std::sqrt(var / double(n) + eps);
      for (std::size_t c = 0; c < cpg; ++c) {
        const std::size_t ch = g * cpg + c;
        const double ga = gamma.size() ? double(gamma(ch)) : 1.0, be = beta.size() ? double(beta(ch)) : 0.0;
        for (std::size_t i = 0; i < HW; ++i) y[(b * C + ch) * HW + i] = (p[c * HW + i] - mean) * rstd * ga + be;
      }
    }
  return {shape_of(x), y};
}

/// LayerNorm over the last dimension of x (R, D).
inline Result layer_norm(const HT<2>& x, const HT<1>& gamma, const HT<1>& beta, double eps) {
  const std::size_t R = x.shape(0), D = x.shape(1);
  V y(x.size());
  for (std::size_t r = 0; r < R; ++r) {
    double mean = 0, var = 0;
    for (std::size_t i = 0; i < D; ++i) mean += x(r, i);
    mean /= double(D);
    for (std::size_t i = 0; i < D; ++i) var += (x(r, i) - mean) * (x(r, i) - mean);
    const double rstd = 1 / std::sqrt(var / double(D) + eps);
    for (std::size_t i = 0; i < D; ++i)
      y[r * D + i] = (x(r, i) - mean) * rstd * (gamma.size() ? double(gamma(i)) : 1.0) + (beta.size() ? double(beta(i)) : 0.0);
  }
  return {shape_of(x), y};
}

/// GEGLU: first half times GELU(second half), per row of x (R, 2D).
inline Result geglu(const HT<2>& x) {
  const std::size_t R = x.shape(0), D = x.shape(1) / 2;
  V y(R * D);
  for (std::size_t r = 0; r < R; ++r)
    for (std::size_t d = 0; d < D; ++d) y[r * D + d] = double(x(r, d)) * gelu(x(r, D + d));
  return {{std::int64_t(R), std::int64_t(D)}, y};
}

// ---- products ----------------------------------------------------------------------------------

/// x (R, in) W^T + b, W (out, in), b (out) or empty.
inline Result linear(const HT<2>& x, const HT<2>& w, const HT<1>& b) {
  const std::size_t R = x.shape(0), in = x.shape(1), out = w.shape(0);
  V y(R * out);
  for (std::size_t r = 0; r < R; ++r)
    for (std::size_t o = 0; o < out; ++o) {
      double s = b.size() ? double(b(o)) : 0.0;
      for (std::size_t i = 0; i < in; ++i) s += double(x(r, i)) * w(o, i);
      y[r * out + o] = s;
    }
  return {{std::int64_t(R), std::int64_t(out)}, y};
}

/// Conv2d by its definition (cross-correlation, zero padding): x (B, Cin, H, W), w (Cout, Cin,
/// k, k), bias (Cout) or empty.
inline Result conv2d(const HT<4>& x, const HT<4>& w, const HT<1>& bias, int stride, int padding) {
  const long B = long(x.shape(0)), Ci = long(x.shape(1)), H = long(x.shape(2)), W = long(x.shape(3));
  const long Co = long(w.shape(0)), K = long(w.shape(2)), s = stride, p = padding;
  const long Ho = (H + 2 * p - K) / s + 1, Wo = (W + 2 * p - K) / s + 1;
  V y(std::size_t(B * Co * Ho * Wo));
  for (long b = 0; b < B; ++b)
    for (long co = 0; co < Co; ++co)
      for (long oy = 0; oy < Ho; ++oy)
        for (long ox = 0; ox < Wo; ++ox) {
          double acc = bias.size() ? double(bias(std::size_t(co))) : 0.0;
          for (long ci = 0; ci < Ci; ++ci)
            for (long ky = 0; ky < K; ++ky)
              for (long kx = 0; kx < K; ++kx) {
                const long iy = oy * s + ky - p, ix = ox * s + kx - p;
                if (iy < 0 || ix < 0 || iy >= H || ix >= W) continue;
                acc += double(w.data()[((co * Ci + ci) * K + ky) * K + kx]) * x.data()[((b * Ci + ci) * H + iy) * W + ix];
              }
          y[std::size_t(((b * Co + co) * Ho + oy) * Wo + ox)] = acc;
        }
  return {{B, Co, Ho, Wo}, y};
}

/// ConvTranspose2d by its definition: every input pixel scatters its kernel into the output.
/// x (B, Cin, H, W), w (Cin, Cout, k, k) as in PyTorch, bias (Cout) or empty.
inline Result conv_transpose2d(const HT<4>& x, const HT<4>& w, const HT<1>& bias, int stride, int padding) {
  const long B = long(x.shape(0)), Ci = long(x.shape(1)), H = long(x.shape(2)), W = long(x.shape(3));
  const long Co = long(w.shape(1)), K = long(w.shape(2)), s = stride, p = padding;
  const long Ho = (H - 1) * s - 2 * p + K, Wo = (W - 1) * s - 2 * p + K;
  V y(std::size_t(B * Co * Ho * Wo));
  for (long b = 0; b < B; ++b)
    for (long co = 0; co < Co; ++co)
      for (long i = 0; i < Ho * Wo; ++i)
        y[std::size_t((b * Co + co) * Ho * Wo + i)] = bias.size() ? double(bias(std::size_t(co))) : 0.0;
  for (long b = 0; b < B; ++b)
    for (long ci = 0; ci < Ci; ++ci)
      for (long co = 0; co < Co; ++co)
        for (long iy = 0; iy < H; ++iy)
          for (long ix = 0; ix < W; ++ix)
            for (long ky = 0; ky < K; ++ky)
              for (long kx = 0; kx < K; ++kx) {
                const long oy = s * iy + ky - p, ox = s * ix + kx - p;
                if (oy >= 0 && ox >= 0 && oy < Ho && ox < Wo)
                  y[std::size_t(((b * Co + co) * Ho + oy) * Wo + ox)] +=
                      double(x.data()[((b * Ci + ci) * H + iy) * W + ix]) * w.data()[((ci * Co + co) * K + ky) * K + kx];
              }
  return {{B, Co, Ho, Wo}, y};
}

/// Softmax attention by its definition, per head: softmax over keys of scale q.k + bias[b, key],
/// times v. q (B, Nq, heads dh), k (B, Nk, heads dh), v (B, Nk, heads dv), bias (B, Nk) or empty.
inline Result attention(const HT<3>& q, const HT<3>& k, const HT<3>& v, int heads, double scale, const HT<2>& bias) {
  const std::size_t B = q.shape(0), Nq = q.shape(1), Nk = k.shape(1), H = std::size_t(heads);
  const std::size_t dh = q.shape(2) / H, dv = v.shape(2) / H, Cv = v.shape(2);
  V out(B * Nq * Cv);
  V s(Nk);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t h = 0; h < H; ++h)
      for (std::size_t i = 0; i < Nq; ++i) {
        double mx = -HUGE_VAL, sum = 0;
        for (std::size_t j = 0; j < Nk; ++j) {
          double d = 0;
          for (std::size_t c = 0; c < dh; ++c) d += double(q(b, i, h * dh + c)) * k(b, j, h * dh + c);
          s[j] = scale * d + (bias.size() ? double(bias(b, j)) : 0.0);
          mx = std::max(mx, s[j]);
        }
        for (std::size_t j = 0; j < Nk; ++j) sum += (s[j] = s[j] == -HUGE_VAL ? 0.0 : std::exp(s[j] - mx));
        for (std::size_t e = 0; e < dv; ++e) {
          double o = 0;
          for (std::size_t j = 0; j < Nk; ++j) o += s[j] * v(b, j, h * dv + e);
          out[(b * Nq + i) * Cv + h * dv + e] = o / sum;
        }
      }
  return {{std::int64_t(B), std::int64_t(Nq), std::int64_t(Cv)}, out};
}

/// Grad-TTS LinearAttention as written in PyTorch: qkv = to_qkv(x) (1x1 conv, no bias), k
/// softmaxed over all positions, context = k v^T per head, out = context^T q, then to_out
/// (1x1 conv with bias). x (B, C, H, W), w_qkv (3 heads dh, C, 1, 1), w_out (Cout, heads dh, 1, 1).
inline Result linear_attention_block(const HT<4>& x, const HT<4>& w_qkv, const HT<4>& w_out, const HT<1>& b_out, int heads,
                                     int dh) {
  const std::size_t B = x.shape(0), C = x.shape(1), N = x.shape(2) * x.shape(3), hidden = std::size_t(heads * dh);
  const std::size_t Co = w_out.shape(0), D = std::size_t(dh);
  V y(B * Co * N);
  V qkv(3 * hidden * N), out(hidden * N);
  for (std::size_t b = 0; b < B; ++b) {
    const float* xb = x.data() + b * C * N;
    for (std::size_t r = 0; r < 3 * hidden; ++r)
      for (std::size_t n = 0; n < N; ++n) {
        double s = 0;
        for (std::size_t c = 0; c < C; ++c) s += double(w_qkv.data()[r * C + c]) * xb[c * N + n];
        qkv[r * N + n] = s;
      }
    double* q = qkv.data();
    double* k = q + hidden * N;
    const double* v = k + hidden * N;
    for (std::size_t r = 0; r < hidden; ++r) {  // softmax of k over the positions
      double mx = -HUGE_VAL, sum = 0;
      for (std::size_t n = 0; n < N; ++n) mx = std::max(mx, k[r * N + n]);
      for (std::size_t n = 0; n < N; ++n) sum += (k[r * N + n] = std::exp(k[r * N + n] - mx));
      for (std::size_t n = 0; n < N; ++n) k[r * N + n] /= sum;
    }
    for (std::size_t h = 0; h < std::size_t(heads); ++h) {
      V ctx(D * D, 0.0);  // context[d][e] = sum_n k[d, n] v[e, n]
      for (std::size_t d = 0; d < D; ++d)
        for (std::size_t e = 0; e < D; ++e)
          for (std::size_t n = 0; n < N; ++n) ctx[d * D + e] += k[(h * D + d) * N + n] * v[(h * D + e) * N + n];
      for (std::size_t e = 0; e < D; ++e)  // out[e, n] = sum_d context[d][e] q[d, n]
        for (std::size_t n = 0; n < N; ++n) {
          double s = 0;
          for (std::size_t d = 0; d < D; ++d) s += ctx[d * D + e] * q[(h * D + d) * N + n];
          out[(h * D + e) * N + n] = s;
        }
    }
    for (std::size_t co = 0; co < Co; ++co)
      for (std::size_t n = 0; n < N; ++n) {
        double s = b_out.size() ? double(b_out(co)) : 0.0;
        for (std::size_t j = 0; j < hidden; ++j) s += double(w_out.data()[co * hidden + j]) * out[j * N + n];
        y[(b * Co + co) * N + n] = s;
      }
  }
  Shape shape = shape_of(x);
  shape[1] = std::int64_t(Co);
  return {shape, y};
}

// ---- layout --------------------------------------------------------------------------------------

/// cat([a, b], dim=1) of (B, Ca, H, W) and (B, Cb, H, W).
inline Result concat_channels(const HT<4>& a, const HT<4>& b) {
  const std::size_t B = a.shape(0), na = a.size() / B, nb = b.size() / B;
  Result r{shape_of(a), {}};
  r.shape[1] += std::int64_t(b.shape(1));
  for (std::size_t i = 0; i < B; ++i) {
    r.v.insert(r.v.end(), a.data() + i * na, a.data() + (i + 1) * na);
    r.v.insert(r.v.end(), b.data() + i * nb, b.data() + (i + 1) * nb);
  }
  return r;
}

/// x[:, c0:c1].
inline Result slice_channels(const HT<4>& x, std::size_t c0, std::size_t c1) {
  Result r{shape_of(x), {}};
  r.shape[1] = std::int64_t(c1 - c0);
  for (std::size_t b = 0; b < x.shape(0); ++b)
    for (std::size_t c = c0; c < c1; ++c)
      for (std::size_t h = 0; h < x.shape(2); ++h)
        for (std::size_t w = 0; w < x.shape(3); ++w) r.v.push_back(x(b, c, h, w));
  return r;
}

/// (B, C, H, W) -> (B, H W, C), token y W + x.
inline Result nchw_to_tokens(const HT<4>& x) {
  Result r{{std::int64_t(x.shape(0)), std::int64_t(x.shape(2) * x.shape(3)), std::int64_t(x.shape(1))}, {}};
  for (std::size_t b = 0; b < x.shape(0); ++b)
    for (std::size_t h = 0; h < x.shape(2); ++h)
      for (std::size_t w = 0; w < x.shape(3); ++w)
        for (std::size_t c = 0; c < x.shape(1); ++c) r.v.push_back(x(b, c, h, w));
  return r;
}

/// (B, H W, C) -> (B, C, H, W).
inline Result tokens_to_nchw(const HT<3>& x, std::size_t H, std::size_t W) {
  Result r{{std::int64_t(x.shape(0)), std::int64_t(x.shape(2)), std::int64_t(H), std::int64_t(W)}, {}};
  for (std::size_t b = 0; b < x.shape(0); ++b)
    for (std::size_t c = 0; c < x.shape(2); ++c)
      for (std::size_t n = 0; n < H * W; ++n) r.v.push_back(x(b, n, c));
  return r;
}

/// torch's nearest resize: src = min(floor(dst * (in / out)), in - 1), the scale in float32.
inline Result upsample_nearest(const HT<4>& x, std::size_t Ho, std::size_t Wo) {
  auto src = [](std::size_t d, std::size_t in, std::size_t out) {
    const float scale = float(in) / float(out);
    return std::min(std::size_t(std::floor(float(d) * scale)), in - 1);
  };
  Result r{{std::int64_t(x.shape(0)), std::int64_t(x.shape(1)), std::int64_t(Ho), std::int64_t(Wo)}, {}};
  for (std::size_t b = 0; b < x.shape(0); ++b)
    for (std::size_t c = 0; c < x.shape(1); ++c)
      for (std::size_t h = 0; h < Ho; ++h)
        for (std::size_t w = 0; w < Wo; ++w) r.v.push_back(x(b, c, src(h, x.shape(2), Ho), src(w, x.shape(3), Wo)));
  return r;
}

/// mask[..., ::2] of a (B, 1, 1, W) mask.
inline Result subsample_time(const HT<4>& m) {
  Result r{shape_of(m), {}};
  r.shape[3] = std::int64_t((m.shape(3) + 1) / 2);
  for (std::size_t b = 0; b < m.shape(0); ++b)
    for (std::size_t w = 0; w < m.shape(3); w += 2) r.v.push_back(m(b, 0, 0, w));
  return r;
}

/// Frame mask (B, 1, 1, W) -> keep-mask (B, H W): token y W + x keeps mask[b, x].
inline Result frame_mask_to_tokens(const HT<4>& m, std::size_t H) {
  Result r{{std::int64_t(m.shape(0)), std::int64_t(H * m.shape(3))}, {}};
  for (std::size_t b = 0; b < m.shape(0); ++b)
    for (std::size_t h = 0; h < H; ++h)
      for (std::size_t w = 0; w < m.shape(3); ++w) r.v.push_back(m(b, 0, 0, w));
  return r;
}

/// x (B, C, T) zero-padded or cropped to `frames`.
inline Result resize_time(const HT<3>& x, std::size_t frames) {
  Result r{{std::int64_t(x.shape(0)), std::int64_t(x.shape(1)), std::int64_t(frames)}, {}};
  for (std::size_t b = 0; b < x.shape(0); ++b)
    for (std::size_t c = 0; c < x.shape(1); ++c)
      for (std::size_t t = 0; t < frames; ++t) r.v.push_back(t < x.shape(2) ? double(x(b, c, t)) : 0.0);
  return r;
}

/// dst (B, C, H, W) with channel c replaced by value(b, h, w).
template <class F>
Result set_channel(const HT<4>& dst, std::size_t c, F value) {
  Result r = result(dst);
  for (std::size_t b = 0; b < dst.shape(0); ++b)
    for (std::size_t h = 0; h < dst.shape(2); ++h)
      for (std::size_t w = 0; w < dst.shape(3); ++w)
        r.v[((b * dst.shape(1) + c) * dst.shape(2) + h) * dst.shape(3) + w] = value(b, h, w);
  return r;
}

/// [mean over L of x + pos, x] along the sequence: (B, L, C) -> (B, L + 1, C).
inline Result prepend_mean_token(const HT<3>& x, const HT<2>& pos) {
  const std::size_t B = x.shape(0), L = x.shape(1), C = x.shape(2);
  Result r{{std::int64_t(B), std::int64_t(L + 1), std::int64_t(C)}, {}};
  for (std::size_t b = 0; b < B; ++b) {
    for (std::size_t c = 0; c < C; ++c) {
      double s = 0;
      for (std::size_t l = 0; l < L; ++l) s += x(b, l, c);
      r.v.push_back(s / double(L) + pos(0, c));
    }
    r.v.insert(r.v.end(), x.data() + b * L * C, x.data() + (b + 1) * L * C);
  }
  return r;
}

/// x[:, 0, :].
inline Result first_token(const HT<3>& x) {
  Result r{{std::int64_t(x.shape(0)), std::int64_t(x.shape(2))}, {}};
  for (std::size_t b = 0; b < x.shape(0); ++b)
    for (std::size_t c = 0; c < x.shape(2); ++c) r.v.push_back(x(b, 0, c));
  return r;
}

/// cat([a, b], dim=-1) of (B, Da) and (B, Db).
inline Result concat_cols(const HT<2>& a, const HT<2>& b) {
  Result r{{std::int64_t(a.shape(0)), std::int64_t(a.shape(1) + b.shape(1))}, {}};
  for (std::size_t i = 0; i < a.shape(0); ++i) {
    for (std::size_t j = 0; j < a.shape(1); ++j) r.v.push_back(a(i, j));
    for (std::size_t j = 0; j < b.shape(1); ++j) r.v.push_back(b(i, j));
  }
  return r;
}

/// table[ids[b]] for every b.
inline Result gather_rows(const HT<2>& table, const std::vector<std::int64_t>& ids) {
  Result r{{std::int64_t(ids.size()), std::int64_t(table.shape(1))}, {}};
  for (std::int64_t id : ids)
    for (std::size_t j = 0; j < table.shape(1); ++j) r.v.push_back(table(std::size_t(id), j));
  return r;
}

/// Flat index of the first NaN/Inf, or -1 (a scalar).
inline Result find_non_finite(const HT<1>& x) {
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(x(i))) return {{}, {double(i)}};
  return {{}, {-1.0}};
}

// ---- diffusion -----------------------------------------------------------------------------------

/// One Grad-TTS Euler step (noise empty: the ODE): dx = 0.5 (mu - x - est) beta h, or
/// (0.5 (mu - x) - est) beta h + noise sqrt(beta h); x - dx, masked.
inline Result gradtts_step(const HT<3>& x, const HT<3>& mu, const HT<3>& est, const HT<3>& mask, const HT<3>& noise, double beta,
                           double h) {
  const std::size_t F = x.shape(1), T = x.shape(2);
  Result r = result(x);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double xv = x.data()[i], m = mu.data()[i], e = est.data()[i];
    const double dx =
        noise.size() ? (0.5 * (m - xv) - e) * beta * h + noise.data()[i] * std::sqrt(beta * h) : 0.5 * (m - xv - e) * beta * h;
    r.v[i] = (xv - dx) * mask(i / (F * T), 0, i % T);
  }
  return r;
}

/// Grad-TTS forward diffusion: c = b0 t + (b1 - b0) t^2 / 2; (x0 e^{-c/2} + mu (1 - e^{-c/2}) +
/// z sqrt(1 - e^{-c})) masked.
inline Result gradtts_forward_diffusion(const HT<3>& x0, const HT<3>& mask, const HT<3>& mu, const HT<1>& t, const HT<3>& z,
                                        double b0, double b1) {
  const std::size_t F = x0.shape(1), T = x0.shape(2);
  Result r = result(x0);
  for (std::size_t i = 0; i < x0.size(); ++i) {
    const std::size_t b = i / (F * T);
    const double tb = t(b), c = b0 * tb + 0.5 * (b1 - b0) * tb * tb, decay = std::exp(-0.5 * c);
    r.v[i] = (x0.data()[i] * decay + mu.data()[i] * (1 - decay) + z.data()[i] * std::sqrt(1 - std::exp(-c))) * mask(b, 0, i % T);
  }
  return r;
}

/// The diffusers epsilon-prediction update: x0 = (sample - sqrt_beta eps) / sqrt_alpha (clamped
/// to [-clip, clip] when clip > 0), prev = c_x0 x0 + c_sample sample + c_eps eps + c_noise noise.
inline Result epsilon_step(const HT<4>& eps, const HT<4>& sample, const HT<4>& noise, double sqrt_alpha, double sqrt_beta,
                           double clip, double c_x0, double c_sample, double c_eps, double c_noise) {
  Result r = result(sample);
  for (std::size_t i = 0; i < r.v.size(); ++i) {
    const double s = sample.data()[i], e = eps.data()[i];
    double x0 = (s - sqrt_beta * e) / sqrt_alpha;
    if (clip > 0) x0 = std::min(std::max(x0, -clip), clip);
    r.v[i] = c_x0 * x0 + c_sample * s + c_eps * e + (noise.size() ? c_noise * noise.data()[i] : 0.0);
  }
  return r;
}

/// Euler (epsilon prediction): x0 = sample - sigma eps, prev = sample + (sample - x0) / sigma dt.
inline Result euler_step(const HT<4>& eps, const HT<4>& sample, double sigma, double dt) {
  Result r = result(sample);
  for (std::size_t i = 0; i < r.v.size(); ++i) {
    const double s = sample.data()[i], x0 = s - sigma * eps.data()[i];
    r.v[i] = s + (s - x0) / sigma * dt;
  }
  return r;
}

}  // namespace ref
}  // namespace dbops
