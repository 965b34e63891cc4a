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
//   whatever Nk is. Same float32 statistics; agrees with the naive variant to rounding.
//
// `attention` picks one by `set_attention_algorithm` (Auto: streaming once Nk > 1024, where
// the naive score rows stop fitting in L2). Both are validated against each other in the tests
// and against a scalar double-precision reference in benchmarks/bench_attention.cpp.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <limits>

#include "diffblocks/core/allocator.hpp"
#include "diffblocks/core/device.hpp"
#include "diffblocks/core/parallel.hpp"
#include "diffblocks/ops/cpu/gemm.hpp"

namespace diffblocks {
namespace ops {

enum class AttentionAlgorithm {
  Auto,       ///< streaming when Nk > 1024 keys, else naive
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

/// The streaming (flash) variant: online softmax over blocks of 256 keys.
template <class T>
Tensor<T, 3, Cpu> attention_streaming(Cpu, const Tensor<T, 3, Cpu>& q, const Tensor<T, 3, Cpu>& k,
                                      const Tensor<T, 3, Cpu>& v, int heads, T scale, const Tensor<T, 2, Cpu>& bias) {
  const detail::AttentionShape s(q, k, v, heads);
  auto out = Tensor<T, 3, Cpu>::from_shape({q.shape(0), q.shape(1), v.shape(2)});
  constexpr std::ptrdiff_t TQ = detail::kQueryTile, BK = detail::kKeyBlock;
  parallel_for(s.B * heads * s.qtiles, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    memory::Buffer<T> scores(static_cast<std::size_t>(TQ * BK)), acc(static_cast<std::size_t>(TQ) * s.dv);
    T m[TQ], l[TQ];
    for (std::ptrdiff_t task = first; task < last; ++task) {
      const std::ptrdiff_t b = task / (heads * s.qtiles), h = (task / s.qtiles) % heads;
      const std::ptrdiff_t i0 = (task % s.qtiles) * TQ, ni = std::min(TQ, s.Nq - i0);
      const T* qp = q.data() + (b * s.Nq + i0) * s.Cq + h * s.dh;
      const T* bp = bias.size() ? bias.data() + b * s.Nk : nullptr;
      std::fill(acc.begin(), acc.begin() + ni * s.dv, T(0));
      std::fill(m, m + ni, -std::numeric_limits<T>::infinity());
      std::fill(l, l + ni, T(0));
      for (std::ptrdiff_t j0 = 0; j0 < s.Nk; j0 += BK) {
        const std::ptrdiff_t nj = std::min(BK, s.Nk - j0);
        const T* kp = k.data() + (b * s.Nk + j0) * s.Cq + h * s.dh;
        const T* vp = v.data() + (b * s.Nk + j0) * s.Cv + h * s.dv;
        cpu::gemm_bt<T>(static_cast<int>(ni), static_cast<int>(nj), s.dh, qp, s.Cq, kp, s.Cq, scores.data(),
                        static_cast<int>(nj));
        for (std::ptrdiff_t i = 0; i < ni; ++i) {
          T* row = scores.data() + i * nj;
          const T mx = std::max(m[i], detail::scale_bias_max(row, nj, scale, bp ? bp + j0 : nullptr));
          const T alpha = std::exp(m[i] - mx);  // 0 on the first block (m = -inf)
          l[i] = l[i] * alpha + detail::exp_shift_sum(row, nj, mx);
          m[i] = mx;
          if (alpha != T(1)) Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(acc.data() + i * s.dv, s.dv) *= alpha;
        }
        cpu::gemm<T>(static_cast<int>(ni), s.dv, static_cast<int>(nj), scores.data(), static_cast<int>(nj), vp, s.Cv,
                     acc.data(), s.dv, /*accumulate=*/true);
      }
      for (std::ptrdiff_t i = 0; i < ni; ++i) {
        const T inv = T(1) / l[i];
        const T* a = acc.data() + i * s.dv;
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
  const bool streaming = a == AttentionAlgorithm::Streaming || (a == AttentionAlgorithm::Auto && k.shape(1) > 1024);
  return streaming ? attention_streaming(Cpu{}, q, k, v, heads, scale, bias)
                   : attention_naive(Cpu{}, q, k, v, heads, scale, bias);
}

}  // namespace ops
}  // namespace diffblocks
