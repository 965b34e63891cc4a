// Kernel source, compiled once per instruction set (see simd.inl's header).
//
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
//   Dao et al. 2022). Keys are visited in blocks of 64; each query keeps its running maximum m,
//   normaliser l and unnormalised output o, rescaled by exp(m_old - m_new) when the maximum
//   grows. Scores never exist beyond one 64-key tile (12-16 KiB, L1-resident), whatever Nk is.
//   It works transposed (keys x queries), so the softmax statistics are vectors across queries
//   and the probabilities feed the second product without a transposition; both products run
//   on register-blocked kernels against K and V^T packed once per call. Agrees with the naive
//   variant to rounding (its exp2 has a relative error below 1e-7).
//
// `attention` picks one by `set_attention_algorithm` (Auto: streaming from 512 keys on, where
// it is measured faster; below that the naive variant wastes less on padding short style
// sequences to 64 keys). Both are validated against each other in the tests
// and against a scalar double-precision reference in benchmarks/bench_attention.cpp.

namespace detail {

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

/// row[j] = row[j] * scale + bias[j] over n > 0 scores; returns their maximum.
template <class T>
T scale_bias_max(T* row, std::ptrdiff_t n, T scale, const T* bias) {
  if constexpr (std::is_same_v<T, float>) {
    const simd::vf s = simd::splat(scale);
    std::ptrdiff_t j = 0;
    for (; j + simd::kFloats <= n; j += simd::kFloats) {
      const simd::vf r = simd::load(row + j) * s;
      simd::store(row + j, bias ? r + simd::load(bias + j) : r);
    }
    for (; j < n; ++j) row[j] = bias ? row[j] * scale + bias[j] : row[j] * scale;
    return simd::max(row, n);
  } else {
    T mx = -std::numeric_limits<T>::infinity();
    for (std::ptrdiff_t j = 0; j < n; ++j) {
      row[j] = bias ? row[j] * scale + bias[j] : row[j] * scale;
      mx = std::max(mx, row[j]);
    }
    return mx;
  }
}

/// row[j] = exp(row[j] - mx), then row *= 1 / sum: the softmax of a row of scores whose
/// maximum is mx (float32: simd::exp).
template <class T>
void exp_normalize(T* row, std::ptrdiff_t n, T mx) {
  if constexpr (std::is_same_v<T, float>) {
    const simd::vf m = simd::splat(mx);
    simd::vf acc{};
    std::ptrdiff_t j = 0;
    for (; j + simd::kFloats <= n; j += simd::kFloats) {
      const simd::vf e = simd::exp(simd::load(row + j) - m);
      simd::store(row + j, e);
      acc += e;
    }
    float sum = simd::reduce_add(acc);
    for (; j < n; ++j) sum += row[j] = std::exp(row[j] - mx);
    const simd::vf inv = simd::splat(1.0f / sum);
    simd::transform(row, n, [&](simd::vf x) { return x * inv; });
  } else {
    T sum = 0;
    for (std::ptrdiff_t j = 0; j < n; ++j) sum += row[j] = std::exp(row[j] - mx);
    const T inv = T(1) / sum;
    for (std::ptrdiff_t j = 0; j < n; ++j) row[j] *= inv;
  }
}
}  // namespace detail

/// The reference variant: full score rows per tile of 64 queries.
template <class T>
Tensor<T, 3, Cpu> attention_naive(const Tensor<T, 3, Cpu>& q, const Tensor<T, 3, Cpu>& k,
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
      gemm_bt<T>(static_cast<int>(ni), static_cast<int>(s.Nk), s.dh, qp, s.Cq, kp, s.Cq, scores.data(), s.Nk);
      if (s.Nk > 0)
        for (std::ptrdiff_t i = 0; i < ni; ++i) {
          T* row = scores.data() + i * s.Nk;
          detail::exp_normalize(row, s.Nk, detail::scale_bias_max(row, s.Nk, scale, bp));
        }
      gemm<T>(static_cast<int>(ni), s.dv, static_cast<int>(s.Nk), scores.data(), s.Nk, vp, s.Cv,
              out.data() + (b * s.Nq + i0) * s.Cv + h * s.dv, s.Cv);
    }
  });
  return out;
}

namespace detail {
namespace flash {

// Register blocks of the streaming kernel: kRows rows (keys for the scores, output features for
// P V) x kVecs vectors of query columns, held in kRows * kVecs accumulators (12 of the 16
// registers on AVX2/SSE, 16 of 32 on AVX-512). A task's query tile is two column blocks (48
// queries on AVX2, 64 on AVX-512); keys are visited in blocks of kKeys. On AVX-512 an 8 x 3
// block (24 accumulators, 1.5 KiB) looks better on paper, but GCC 12 then keeps the array in
// memory and stores all 24 accumulators at every step of the loop: measured 115 against
// 208 GFLOP/s for the 8 x 2 block (Sapphire Rapids, 2 threads, 16k tokens, head size 32).
using simd::vf;
constexpr int L = simd::kFloats;
#if DIFFBLOCKS_KERNEL_ISA == 2
constexpr int kRows = 8, kVecs = 2;
#else
constexpr int kRows = 4, kVecs = 3;
#endif
constexpr int kCols = kVecs * L;
constexpr int kTile = 2 * kCols;
constexpr int kKeys = 64;
static_assert(kTile % kCols == 0 && kKeys % kRows == 0, "tile sizes");
constexpr float kLog2e = 1.4426950408889634f;

/// s (kRows x kCols, lds) = kp^T q, where kp is one packed key panel (dh x kRows: [d][r]) and
/// q the scaled, transposed query tile (dh x kCols, ldq); plus bias[r] per key when given.
/// bmax (kVecs vectors) takes the column maxima over the first `valid` rows.
inline void scores_kernel(int dh, const float* __restrict kp, const float* __restrict q, std::ptrdiff_t ldq,
                          const float* bias, int valid, float* __restrict s, std::ptrdiff_t lds, vf* bmax) {
  vf acc[kRows][kVecs] = {};
  for (int d = 0; d < dh; ++d) {
    vf b[kVecs];
    for (int j = 0; j < kVecs; ++j) b[j] = simd::load_reg(q + d * ldq + j * L);
    for (int r = 0; r < kRows; ++r) {
      const vf a = simd::splat(kp[d * kRows + r]);
      for (int j = 0; j < kVecs; ++j) acc[r][j] = simd::fmadd(a, b[j], acc[r][j]);
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int j = 0; j < kVecs; ++j) {
      if (bias) acc[r][j] += bias[r];
      simd::store(s + r * lds + j * L, acc[r][j]);
      if (r < valid) bmax[j] = simd::max(bmax[j], acc[r][j]);
    }
}

/// o (kRows x kCols, ldo) = o * alpha (per column) + vp^T p, where vp is one packed value panel
/// (nk x kRows: [key][r]) and p the probabilities (nk x kCols, ldp).
inline void pv_kernel(int nk, const float* __restrict vp, const float* __restrict p, std::ptrdiff_t ldp,
                      const vf* alpha, float* __restrict o, std::ptrdiff_t ldo) {
  vf acc[kRows][kVecs];
  for (int r = 0; r < kRows; ++r)
    for (int j = 0; j < kVecs; ++j) acc[r][j] = simd::load(o + r * ldo + j * L) * alpha[j];
  for (int k = 0; k < nk; ++k) {
    vf b[kVecs];
    for (int j = 0; j < kVecs; ++j) b[j] = simd::load_reg(p + k * ldp + j * L);
    for (int r = 0; r < kRows; ++r) {
      const vf a = simd::splat(vp[k * kRows + r]);
      for (int j = 0; j < kVecs; ++j) acc[r][j] = simd::fmadd(a, b[j], acc[r][j]);
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int j = 0; j < kVecs; ++j) simd::store(o + r * ldo + j * L, acc[r][j]);
}

inline std::ptrdiff_t round_up(std::ptrdiff_t n, std::ptrdiff_t m) { return (n + m - 1) / m * m; }

}  // namespace flash
}  // namespace detail

/// The streaming (flash) variant: online softmax over blocks of 64 keys, computed transposed.
///
/// A task is (batch, head, a tile of 2 kCols queries: 48 on AVX2, 64 on AVX-512, 24 on SSE).
/// Scores are formed as S^T = K Q^T (keys x queries), so
/// every softmax statistic is per column: the running maximum m, the normaliser l and the
/// rescale factor are vectors across queries, and the probabilities P^T are already the right
/// operand of the output product O^T += V^T P^T; nothing is transposed or packed inside the key
/// loop. K and V^T are packed once per call into panels of kRows keys / output features (the
/// left operands; zero rows pad the edges), the query tile is transposed once per task.
/// Scores are kept in base 2 (q pre-scaled by scale * log2(e), the bias by log2(e)) so the
/// weights are exp2(s - m) on a short polynomial (simd::exp2, rel. error < 1e-7).
/// The score block (64 x 48 floats on AVX2, 12 KiB; 16 KiB on AVX-512) stays in L1.
/// q, k, v, bias and the result may be stored in a half type S: q, k and v are widened (exactly)
/// as they are packed, the bias as it is scaled, and each output is rounded once as it is stored,
/// so the result is the float32 kernel's on the widened inputs, rounded, with no float32 copy of
/// any operand (f16 attention, and bf16 where the vdpbf16ps kernel does not run).
template <class S, class T = compute_t<S>>
Tensor<S, 3, Cpu> attention_streaming(const Tensor<S, 3, Cpu>& q, const Tensor<S, 3, Cpu>& k,
                                      const Tensor<S, 3, Cpu>& v, int heads, T scale, const Tensor<S, 2, Cpu>& bias) {
  static_assert(std::is_same_v<T, float>, "attention_streaming's kernels are float32");
  namespace fl = detail::flash;
  using fl::vf;
  constexpr int R = fl::kRows, TQ = fl::kTile, BK = fl::kKeys, NCB = TQ / fl::kCols, NV = TQ / fl::L;
  const detail::AttentionShape s(q, k, v, heads);
  auto out = Tensor<S, 3, Cpu>::from_shape({q.shape(0), q.shape(1), v.shape(2)});
  if (s.Nq == 0 || s.dv == 0) return out;
  if (s.Nk == 0) {  // softmax over no keys: torch gives NaN; keep that rather than invent a value
    std::fill(out.begin(), out.end(), half_io::store_value<S>(std::numeric_limits<T>::quiet_NaN()));
    return out;
  }
  const std::ptrdiff_t nk_pad = fl::round_up(s.Nk, R), dv_pad = fl::round_up(s.dv, R);
  const std::ptrdiff_t BH = s.B * heads, qtiles = (s.Nq + TQ - 1) / TQ;
  const std::ptrdiff_t kpanel = nk_pad * s.dh, vpanel = dv_pad * nk_pad;  // per (b, h)
  memory::Buffer<T> kpk(static_cast<std::size_t>(BH * kpanel)), vpk(static_cast<std::size_t>(BH * vpanel));
  memory::Buffer<T> bias2(static_cast<std::size_t>(bias.size() ? s.B * nk_pad : 0));
  for (std::ptrdiff_t b = 0; b < (bias.size() ? s.B : 0); ++b)
    for (std::ptrdiff_t j = 0; j < nk_pad; ++j)
      bias2[b * nk_pad + j] = j < s.Nk ? static_cast<T>(bias.data()[b * s.Nk + j]) * fl::kLog2e : T(0);
  // K in panels of R keys ([d][r]); V^T in panels of R output features ([key][r]); zero-padded.
  parallel_for(BH, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    for (std::ptrdiff_t bh = first; bh < last; ++bh) {
      const std::ptrdiff_t b = bh / heads, h = bh % heads;
      T* kd = kpk.data() + bh * kpanel;
      T* vd = vpk.data() + bh * vpanel;
      std::fill(kd, kd + kpanel, T(0));
      std::fill(vd, vd + vpanel, T(0));
      for (std::ptrdiff_t j = 0; j < s.Nk; ++j) {
        const S* kr = k.data() + (b * s.Nk + j) * s.Cq + h * s.dh;
        T* kdst = kd + (j / R) * s.dh * R + j % R;
        for (int d = 0; d < s.dh; ++d) kdst[d * R] = static_cast<T>(kr[d]);
        const S* vr = v.data() + (b * s.Nk + j) * s.Cv + h * s.dv;
        for (int e = 0; e < s.dv; ++e) vd[(e / R) * nk_pad * R + j * R + e % R] = static_cast<T>(vr[e]);
      }
    }
  });
  const T qscale = scale * fl::kLog2e;
  parallel_for(BH * qtiles, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    memory::Buffer<T> qt(static_cast<std::size_t>(s.dh * TQ)), sc(static_cast<std::size_t>(BK * TQ)),
        ot(static_cast<std::size_t>(dv_pad * TQ));
    alignas(64) T m[TQ], l[TQ];
    vf alpha[NV], bmax[NV];
    for (std::ptrdiff_t task = first; task < last; ++task) {
      const std::ptrdiff_t bh = task / qtiles, b = bh / heads, h = bh % heads;
      const std::ptrdiff_t i0 = (task % qtiles) * TQ, ni = std::min<std::ptrdiff_t>(TQ, s.Nq - i0);
      const T* kd = kpk.data() + bh * kpanel;
      const T* vd = vpk.data() + bh * vpanel;
      const T* bp = bias.size() ? bias2.data() + b * nk_pad : nullptr;
      std::fill(qt.begin(), qt.end(), T(0));
      for (std::ptrdiff_t i = 0; i < ni; ++i) {
        const S* qr = q.data() + (b * s.Nq + i0 + i) * s.Cq + h * s.dh;
        for (int d = 0; d < s.dh; ++d) qt[d * TQ + i] = static_cast<T>(qr[d]) * qscale;
      }
      std::fill(ot.begin(), ot.end(), T(0));
      std::fill(m, m + TQ, -std::numeric_limits<T>::infinity());
      std::fill(l, l + TQ, T(0));
      for (std::ptrdiff_t j0 = 0; j0 < s.Nk; j0 += BK) {
        const int nj = static_cast<int>(std::min<std::ptrdiff_t>(BK, s.Nk - j0));
        const int njr = static_cast<int>(fl::round_up(nj, R));
        for (int c = 0; c < NV; ++c) bmax[c] = simd::splat(-std::numeric_limits<T>::infinity());
        for (int p = 0; p < njr; p += R)
          for (int cb = 0; cb < NCB; ++cb)
            fl::scores_kernel(s.dh, kd + (j0 + p) * s.dh, qt.data() + cb * fl::kCols, TQ, bp ? bp + j0 + p : nullptr,
                              nj - p, sc.data() + p * TQ + cb * fl::kCols, TQ, bmax + cb * fl::kVecs);
        // New running maxima; alpha = exp2(m_old - m_new) rescales what was accumulated (~0 on
        // the first block, where m_old = -inf and the accumulators are still 0). A column whose
        // keys so far all scored -inf (a -inf bias) shifts by 0 instead of -inf, so no NaN.
        vf mnew[NV], shift[NV], lsum[NV];
        const vf ninf = simd::splat(-std::numeric_limits<T>::infinity());
        for (int c = 0; c < NV; ++c) {
          const vf mo = simd::load(m + c * fl::L);
          mnew[c] = simd::max(mo, bmax[c]);
          shift[c] = mnew[c] == ninf ? vf{} : mnew[c];
          alpha[c] = simd::exp2(mo - shift[c]);
          lsum[c] = vf{};
        }
        for (int r = 0; r < nj; ++r) {
          T* row = sc.data() + r * TQ;
          for (int c = 0; c < NV; ++c) {
            const vf p = simd::exp2(simd::load(row + c * fl::L) - shift[c]);
            simd::store(row + c * fl::L, p);
            lsum[c] += p;
          }
        }
        std::fill(sc.data() + nj * TQ, sc.data() + njr * TQ, T(0));  // padded keys: no weight
        for (int c = 0; c < NV; ++c) {
          simd::store(m + c * fl::L, mnew[c]);
          simd::store(l + c * fl::L, simd::load(l + c * fl::L) * alpha[c] + lsum[c]);
        }
        for (std::ptrdiff_t e = 0; e < dv_pad; e += R)
          for (int cb = 0; cb < NCB; ++cb)
            fl::pv_kernel(njr, vd + e * nk_pad + j0 * R, sc.data() + cb * fl::kCols, TQ, alpha + cb * fl::kVecs,
                          ot.data() + e * TQ + cb * fl::kCols, TQ);
      }
      for (std::ptrdiff_t i = 0; i < ni; ++i) {
        const T inv = T(1) / l[i];
        S* o = out.data() + (b * s.Nq + i0 + i) * s.Cv + h * s.dv;
        for (int e = 0; e < s.dv; ++e) o[e] = half_io::store_value<S>(ot[e * TQ + i] * inv);
      }
    }
  });
  return out;
}

