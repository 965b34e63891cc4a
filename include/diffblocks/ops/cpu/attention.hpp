#pragma once
// Multi-head softmax attention on the CPU, in two variants that compute the same function:
//
//   q (B, Nq, heads*dh), k (B, Nk, heads*dh), v (B, Nk, heads*dv); head h = channels [h*dh, (h+1)*dh)
//   out[b, i, h*dv + e] = sum_j softmax_j(scale * q_i . k_j + bias[b, j]) v[b, j, h*dv + e]
//   `bias` (B, Nk) is added to every query's scores (diffusers' encoder_attention_mask); empty = none.
//
// * attention_naive: the reference. For a tile of 64 queries the full score rows (64 x Nk) are
//   materialised, softmaxed (max-subtracted, float32) and multiplied by V. Memory O(64 * Nk)
//   per thread; the score rows leave the cache once Nk passes ~2k keys.
// * attention_streaming: the flash-attention recurrence (Milakov & Gimelshein's online softmax;
//   Dao et al. 2022). Keys are visited in blocks of kKeyBlock; each query row keeps its running
//   maximum m, normaliser l and unnormalised output o, rescaled by exp(m_old - m_new) when the
//   maximum grows. Scores never exist beyond one 64 x kKeyBlock tile (64 KiB, L1/L2-resident),
//   whatever Nk is. Its two products run on packed::gemm (gemm.hpp) with K^T and V read in
//   place, so only the small query and probability tiles are packed (a GEMM library would
//   re-pack both operands for every 64 x 256 block). Same float32 statistics; agrees with the
//   naive variant to rounding.
//
// `attention` picks one by `set_attention_algorithm` (Auto: streaming from 512 keys on, where
// it is measured faster; below that the naive variant wastes less on padding short style
// sequences to 64 keys). Both are validated against each other in the tests
// and against a scalar double-precision reference in benchmarks/bench_attention.cpp.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>

#include "diffblocks/core/allocator.hpp"
#include "diffblocks/core/device.hpp"
#include "diffblocks/core/parallel.hpp"
#include "diffblocks/ops/cpu/gemm.hpp"

namespace diffblocks {
namespace ops {

enum class AttentionAlgorithm {
  Auto,       ///< streaming from 512 keys on, else naive
  Naive,      ///< full score rows per query tile (the reference)
  Streaming,  ///< online softmax over key blocks
};

namespace detail {
inline std::atomic<AttentionAlgorithm>& attention_algorithm_setting() {
  static std::atomic<AttentionAlgorithm> a{AttentionAlgorithm::Auto};
  return a;
}

constexpr std::ptrdiff_t kQueryTile = 64;  // queries per task
constexpr std::ptrdiff_t kKeyBlock = 256;  // keys per streaming step

/// Shape bookkeeping shared by both variants.
struct AttentionShape {
  std::ptrdiff_t B, Nq, Nk, qtiles;
  int Cq, Cv, dh, dv, heads;
  template <class Q, class K, class V>
  AttentionShape(const Q& q, const K& k, const V& v, int h)
      : B(q.shape(0)), Nq(q.shape(1)), Nk(k.shape(1)), qtiles((Nq + kQueryTile - 1) / kQueryTile),
        Cq(static_cast<int>(q.shape(2))), Cv(static_cast<int>(v.shape(2))), dh(Cq / h), dv(Cv / h), heads(h) {}
};

/// row[j] = row[j] * scale + bias[j] over n scores; returns their maximum.
template <class T>
T scale_bias_max(T* row, std::ptrdiff_t n, T scale, const T* bias) {
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> r(row, n);
  if (bias)
    r = r * scale + Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(bias, n);
  else
    r *= scale;
  return r.maxCoeff();
}

/// row[j] = exp(row[j] - mx) (SIMD exp); returns the sum.
template <class T>
T exp_shift_sum(T* row, std::ptrdiff_t n, T mx) {
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> r(row, n);
  r = (r - mx).exp();
  return r.sum();
}
}  // namespace detail

/// Process-wide choice of attention variant (thread-safe; read at each call).
inline void set_attention_algorithm(AttentionAlgorithm a) { detail::attention_algorithm_setting().store(a); }
inline AttentionAlgorithm attention_algorithm() { return detail::attention_algorithm_setting().load(); }

/// The reference variant: full score rows per tile of 64 queries.
template <class T>
Tensor<T, 3, Cpu> attention_naive(Cpu, const Tensor<T, 3, Cpu>& q, const Tensor<T, 3, Cpu>& k,
                                  const Tensor<T, 3, Cpu>& v, int heads, T scale, const Tensor<T, 2, Cpu>& bias) {
  const detail::AttentionShape s(q, k, v, heads);
  auto out = Tensor<T, 3, Cpu>::from_shape({q.shape(0), q.shape(1), v.shape(2)});
  parallel_for(s.B * heads * s.qtiles, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    memory::Buffer<T> scores;
    for (std::ptrdiff_t task = first; task < last; ++task) {
      const std::ptrdiff_t b = task / (heads * s.qtiles), h = (task / s.qtiles) % heads;
      const std::ptrdiff_t i0 = (task % s.qtiles) * detail::kQueryTile, ni = std::min(detail::kQueryTile, s.Nq - i0);
      scores.resize(static_cast<std::size_t>(ni * s.Nk));
      const T* qp = q.data() + (b * s.Nq + i0) * s.Cq + h * s.dh;
      const T* kp = k.data() + b * s.Nk * s.Cq + h * s.dh;
      const T* vp = v.data() + b * s.Nk * s.Cv + h * s.dv;
      const T* bp = bias.size() ? bias.data() + b * s.Nk : nullptr;
      cpu::gemm_bt<T>(static_cast<int>(ni), static_cast<int>(s.Nk), s.dh, qp, s.Cq, kp, s.Cq, scores.data(),
                      static_cast<int>(s.Nk));
      for (std::ptrdiff_t i = 0; i < ni; ++i) {
        T* row = scores.data() + i * s.Nk;
        const T mx = detail::scale_bias_max(row, s.Nk, scale, bp);
        const T inv = T(1) / detail::exp_shift_sum(row, s.Nk, mx);
        Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(row, s.Nk) *= inv;
      }
      cpu::gemm<T>(static_cast<int>(ni), s.dv, static_cast<int>(s.Nk), scores.data(), static_cast<int>(s.Nk), vp, s.Cv,
                   out.data() + (b * s.Nq + i0) * s.Cv + h * s.dv, s.Cv);
    }
  });
  return out;
}

namespace detail {

constexpr int kCols = 64;  // keys are padded to a multiple of this (whole score blocks)
constexpr int kVec = 16;   // output features are padded to a multiple of this

}  // namespace detail

/// The streaming (flash) variant: online softmax over blocks of 256 keys. Both products run on
/// packed::gemm: the query tile is packed once per task, each block's probabilities once per
/// block (a transposition, 1/(2 dv) of the product's work); K^T and V are read in place.
///
/// Per call, K of every (batch, head) is transposed once into K^T (dh x Nk, keys padded to a
/// multiple of 64 with zeros) and V copied into a per-head (Nk x dv) panel padded likewise; a
/// task is (batch, head, 64 queries), whose scaled queries sit in a zero-padded 64 x dh tile.
/// Padded keys get score -inf, so they add nothing to the normaliser or the output.
template <class T>
Tensor<T, 3, Cpu> attention_streaming(Cpu, const Tensor<T, 3, Cpu>& q, const Tensor<T, 3, Cpu>& k,
                                      const Tensor<T, 3, Cpu>& v, int heads, T scale, const Tensor<T, 2, Cpu>& bias) {
  static_assert(std::is_same_v<T, float>, "attention_streaming's kernels are float32");
  const detail::AttentionShape s(q, k, v, heads);
  auto out = Tensor<T, 3, Cpu>::from_shape({q.shape(0), q.shape(1), v.shape(2)});
  if (s.Nq == 0 || s.dv == 0) return out;
  constexpr std::ptrdiff_t TQ = detail::kQueryTile, BK = detail::kKeyBlock;
  const std::ptrdiff_t nk_pad = (s.Nk + detail::kCols - 1) / detail::kCols * detail::kCols;
  const std::ptrdiff_t dv_pad = (s.dv + detail::kVec - 1) / detail::kVec * detail::kVec;
  const std::ptrdiff_t BH = s.B * heads;
  // K^T and V panels per (b, h), zero-padded.
  memory::Buffer<T> kt(static_cast<std::size_t>(BH * s.dh * nk_pad)), vp(static_cast<std::size_t>(BH * nk_pad * dv_pad));
  parallel_for(BH, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    for (std::ptrdiff_t bh = first; bh < last; ++bh) {
      const std::ptrdiff_t b = bh / heads, h = bh % heads;
      T* kd = kt.data() + bh * s.dh * nk_pad;
      T* vd = vp.data() + bh * nk_pad * dv_pad;
      std::fill(kd, kd + s.dh * nk_pad, T(0));
      std::fill(vd, vd + nk_pad * dv_pad, T(0));
      for (std::ptrdiff_t j = 0; j < s.Nk; ++j) {
        const T* kr = k.data() + (b * s.Nk + j) * s.Cq + h * s.dh;
        for (int d = 0; d < s.dh; ++d) kd[d * nk_pad + j] = kr[d];
        std::copy_n(v.data() + (b * s.Nk + j) * s.Cv + h * s.dv, s.dv, vd + j * dv_pad);
      }
    }
  });
  parallel_for(BH * s.qtiles, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    memory::Buffer<T> qs(static_cast<std::size_t>(TQ * s.dh)), scores(static_cast<std::size_t>(TQ * BK)),
        acc(static_cast<std::size_t>(TQ * dv_pad)), qpk(static_cast<std::size_t>(cpu::packed::packed_size(TQ, s.dh))),
        ppk(static_cast<std::size_t>(cpu::packed::packed_size(TQ, BK)));
    T m[TQ], l[TQ];
    for (std::ptrdiff_t task = first; task < last; ++task) {
      const std::ptrdiff_t bh = task / s.qtiles, b = bh / heads, h = bh % heads;
      const std::ptrdiff_t i0 = (task % s.qtiles) * TQ, ni = std::min(TQ, s.Nq - i0);
      const T* bp = bias.size() ? bias.data() + b * s.Nk : nullptr;
      const T* kd = kt.data() + bh * s.dh * nk_pad;
      const T* vd = vp.data() + bh * nk_pad * dv_pad;
      std::fill(qs.begin(), qs.end(), T(0));
      for (std::ptrdiff_t i = 0; i < ni; ++i) {
        const T* qr = q.data() + (b * s.Nq + i0 + i) * s.Cq + h * s.dh;
        for (int d = 0; d < s.dh; ++d) qs[i * s.dh + d] = qr[d] * scale;
      }
      cpu::packed::pack_a(static_cast<int>(ni), s.dh, qs.data(), s.dh, qpk.data());
      std::fill(acc.begin(), acc.begin() + ni * dv_pad, T(0));
      std::fill(m, m + TQ, -std::numeric_limits<T>::infinity());
      std::fill(l, l + TQ, T(0));
      for (std::ptrdiff_t j0 = 0; j0 < s.Nk; j0 += BK) {
        const std::ptrdiff_t nj = std::min(BK, s.Nk - j0);
        const std::ptrdiff_t nj_pad = (nj + detail::kCols - 1) / detail::kCols * detail::kCols;
        cpu::packed::gemm<T>(static_cast<int>(ni), static_cast<int>(nj_pad), s.dh, qpk.data(), kd + j0, nk_pad,
                             scores.data(), BK);
        for (std::ptrdiff_t i = 0; i < ni; ++i) {
          T* row = scores.data() + i * BK;
          Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> r(row, nj);
          if (bp) r += Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(bp + j0, nj);
          const T mx = std::max(m[i], r.maxCoeff());
          const T alpha = std::exp(m[i] - mx);  // 0 on the first block (m = -inf)
          l[i] = l[i] * alpha + detail::exp_shift_sum(row, nj, mx);
          m[i] = mx;
          std::fill(row + nj, row + nj_pad, T(0));  // padded keys: no weight
          if (alpha != T(1)) Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(acc.data() + i * dv_pad, dv_pad) *= alpha;
        }
        // O += P V with P packed (a transposition of the score tile, 1/64 of the product's work).
        cpu::packed::pack_a(static_cast<int>(ni), static_cast<int>(nj_pad), scores.data(), BK, ppk.data());
        cpu::packed::gemm<T>(static_cast<int>(ni), static_cast<int>(dv_pad), static_cast<int>(nj_pad), ppk.data(),
                             vd + j0 * dv_pad, dv_pad, acc.data(), dv_pad, /*accumulate=*/true);
      }
      for (std::ptrdiff_t i = 0; i < ni; ++i) {
        const T inv = T(1) / l[i];
        const T* a = acc.data() + i * dv_pad;
        T* o = out.data() + (b * s.Nq + i0 + i) * s.Cv + h * s.dv;
        for (int e = 0; e < s.dv; ++e) o[e] = a[e] * inv;
      }
    }
  });
  return out;
}

/// Softmax attention by the process-wide algorithm setting (see the file comment).
template <class T>
Tensor<T, 3, Cpu> attention(Cpu, const Tensor<T, 3, Cpu>& q, const Tensor<T, 3, Cpu>& k, const Tensor<T, 3, Cpu>& v,
                            int heads, T scale, const Tensor<T, 2, Cpu>& bias) {
  const AttentionAlgorithm a = attention_algorithm();
  const bool streaming = a == AttentionAlgorithm::Streaming || (a == AttentionAlgorithm::Auto && k.shape(1) >= 512);
  return streaming ? attention_streaming(Cpu{}, q, k, v, heads, scale, bias)
                   : attention_naive(Cpu{}, q, k, v, heads, scale, bias);
}

}  // namespace ops
}  // namespace diffblocks
