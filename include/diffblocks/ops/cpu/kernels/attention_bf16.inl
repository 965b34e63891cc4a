// Kernel source of the avx512bf16 region (target.hpp), included once by ops/cpu/gemm_half.hpp
// inside namespace ops::cpu::avx512_bf16, after gemm_bf16.inl. No include guard and no #include
// of its own.
//
// Softmax attention on bf16 q, k, v with both products on vdpbf16ps: the float32 streaming
// kernel's recurrence (kernels/attention.inl: online softmax over blocks of keys, computed
// transposed, keys x queries, so the softmax statistics are vectors across queries), with
//
//   scores  S^T = K Q^T from the bf16 values as stored: pairs of d in each 32-bit lane, the
//           products exact, summed in float32; then scaled (scale * log2 e) and biased in float32
//           (the float32 kernel scales q first; scaling the sum keeps q's bits);
//   softmax in float32: running maximum, exp2 (to 7.5e-5: the weights are rounded to 2^-8 next),
//           normaliser l summed from the float32 weights;
//   P V     the weights rounded to bf16 (nearest even) for the second product, pairs of keys in
//           each lane, summed in float32; the output divided by l and rounded once.
//
// That is what PyTorch's CPU flash attention does under bf16 autocast (scores and softmax in
// float32, the weights converted to bf16 for the value product), and the only extra rounding
// against the float32 kernel on the widened inputs: at most 2^-8 relative per weight, averaging
// out over the keys (tests/test_gemm_half.cpp bounds the result by the weighted mean of |v|).
//
// Layouts, all in 32-bit units holding a pair of bf16 (the even index in the low half, as the
// bf16 GEMM's pairs, kernels/gemm_bf16.inl):
//   query tile  [d pair][query]            (dh padded to even with a zero)
//   K panels    [key / R][d pair][key % R] (R keys a panel, zero keys past Nk)
//   V^T panels  [e / R][key pair][e % R]   (R output features a panel, zero past dv and Nk)
//   weights     [key pair][query]          (two rows of float32 weights converted by
//                                           vcvtne2ps2bf16 and interleaved by one vpermw)
// Register blocks are the bf16 GEMM's: R = 8 rows x 2 vectors of 16 queries, 16 accumulators.
namespace attention_bf16 {

using u16 = std::uint16_t;
using u32 = std::uint32_t;
namespace simd = ::diffblocks::ops::cpu::avx512::simd;  // exp2, max (the avx512 copy: a subset of this region)
using vf = simd::vf;

constexpr int R = 8;               // keys (scores) or output features (P V) per register block
constexpr int NV = 2;              // vectors of 16 queries per register block
constexpr int kCols = NV * 16;     // queries per register block
constexpr int kTile = 2 * kCols;   // queries per task
constexpr int kKeys = 128;         // keys per streaming step (a multiple of 2 R; 64 was 6 % slower)
constexpr int kTileVecs = kTile / 16;
constexpr float kLog2e = 1.4426950408889634f;
static_assert(kKeys % (2 * R) == 0, "whole key pairs and panels per step");

inline std::ptrdiff_t round_up(std::ptrdiff_t n, std::ptrdiff_t m) { return (n + m - 1) / m * m; }

inline u32 pair_bits(u16 lo, u16 hi) { return static_cast<u32>(lo) | (static_cast<u32>(hi) << 16); }

/// 16 pairs, kept in a register (the bf16 GEMM's load).
inline __m512bh load_pairs(const u32* p) { return half_gemm::load_pairs(reinterpret_cast<const u16*>(p)); }
inline __m512bh splat_pair(u32 x) { return (__m512bh)_mm512_set1_epi32(static_cast<int>(x)); }

/// s (R keys x kCols queries, lds) = (kp^T q) * qscale + bias[r]: kp one K panel ([dp][r]), q
/// the query tile's columns (ldq). bmax (NV vectors) takes the column maxima over the first
/// `valid` rows.
inline void scores_kernel(int pairs, const u32* __restrict kp, const u32* __restrict q, std::ptrdiff_t ldq,
                          float qscale, const float* bias, int valid, float* __restrict s, std::ptrdiff_t lds, vf* bmax) {
  __m512 acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_setzero_ps();
  for (int p = 0; p < pairs; ++p) {
    __m512bh b[NV];
    for (int j = 0; j < NV; ++j) b[j] = load_pairs(q + p * ldq + 16 * j);
    for (int r = 0; r < R; ++r) {
      const __m512bh a = splat_pair(kp[p * R + r]);
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], a, b[j]);
    }
  }
  const vf sc = simd::splat(qscale);
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NV; ++j) {
      vf v = (vf)acc[r][j] * sc;
      if (bias) v += simd::splat(bias[r]);
      simd::store(s + r * lds + 16 * j, v);
      if (r < valid) bmax[j] = simd::max(bmax[j], v);
    }
}

/// o (R output features x kCols queries, ldo) = o * alpha (per column) + vp^T p over `pairs`
/// key pairs: vp one V^T panel ([key pair][r]), p the bf16 weights ([key pair][query], ldp).
inline void pv_kernel(int pairs, const u32* __restrict vp, const u32* __restrict p, std::ptrdiff_t ldp,
                      const vf* alpha, float* __restrict o, std::ptrdiff_t ldo) {
  __m512 acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NV; ++j) acc[r][j] = (__m512)(simd::load(o + r * ldo + 16 * j) * alpha[j]);
  for (int k = 0; k < pairs; ++k) {
    __m512bh b[NV];
    for (int j = 0; j < NV; ++j) b[j] = load_pairs(p + k * ldp + 16 * j);
    for (int r = 0; r < R; ++r) {
      const __m512bh a = splat_pair(vp[k * R + r]);
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], a, b[j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NV; ++j) simd::store(o + r * ldo + 16 * j, (vf)acc[r][j]);
}

/// 2^x for x <= 0 (a score minus its running maximum) with a relative error below 7.5e-5
/// (a degree-3 fit of 2^f on [-1/2, 1/2], ours): plenty for a weight about to be rounded to bf16
/// (2^-8). x = n + f with n = round(x) by vroundscaleps, and 2^n applied by vscalefps: seven
/// vector operations against simd::exp2's eleven (float32 accuracy, clamps both ways, the
/// exponent built with integer shifts). Below -125 it gives 2^-125, as simd::exp2, so a -inf
/// score weighs ~0 and makes no NaN.
/// (The all-lanes maskz forms: GCC 12 warns on the plain intrinsics' undefined merge operand;
/// they compile to the same instructions.)
inline vf exp2_weight(vf x) {
  const __mmask16 all = 0xFFFF;
  const __m512 xc = _mm512_maskz_max_ps(all, (__m512)x, _mm512_set1_ps(-125.0f));
  const __m512 n = _mm512_maskz_roundscale_ps(all, xc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(xc, n);  // in [-1/2, 1/2]
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(0.0551716685295105f), f, _mm512_set1_ps(0.24261115491390228f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.6932609677314758f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.9999280571937561f));
  return (vf)_mm512_maskz_scalef_ps(all, p, n);
}

/// 16 pairs (even[i], odd[i]) of two rows of 16 float32 weights, each rounded to bf16 (nearest
/// even): vcvtne2ps2bf16 puts `even` in words 0-15 and `odd` in 16-31, vpermw interleaves them.
inline __m512i pairs_of(vf even, vf odd, __m512i interleave) {
  const __m512i both = (__m512i)_mm512_cvtne2ps_pbh((__m512)odd, (__m512)even);
  return _mm512_permutexvar_epi16(interleave, both);
}

/// out (B, Nq, heads * dv) = softmax(scale q k^T + bias) v per head (attention.inl's definition),
/// q, k, v and the result in bf16.
inline Tensor<bf16, 3, Cpu> streaming(const Tensor<bf16, 3, Cpu>& q, const Tensor<bf16, 3, Cpu>& k,
                                      const Tensor<bf16, 3, Cpu>& v, int heads, float scale,
                                      const Tensor<bf16, 2, Cpu>& bias) {
  const std::ptrdiff_t B = q.shape(0), Nq = q.shape(1), Nk = k.shape(1);
  const int Cq = static_cast<int>(q.shape(2)), Cv = static_cast<int>(v.shape(2));
  const int dh = Cq / heads, dv = Cv / heads, DP = (dh + 1) / 2;
  auto out = Tensor<bf16, 3, Cpu>::from_shape({q.shape(0), q.shape(1), v.shape(2)});
  if (Nq == 0 || dv == 0 || B == 0) return out;
  if (Nk == 0) {  // softmax over no keys: NaN, as torch and the float32 kernel
    std::fill(out.begin(), out.end(), bf16(std::numeric_limits<float>::quiet_NaN()));
    return out;
  }
  const u16 *qb = half_gemm::bits(q.data()), *kb = half_gemm::bits(k.data()), *vb = half_gemm::bits(v.data());
  const std::ptrdiff_t nk_pad = round_up(Nk, 2 * R), dv_pad = round_up(dv, R);
  const std::ptrdiff_t BH = B * heads, qtiles = (Nq + kTile - 1) / kTile;
  const std::ptrdiff_t kpanel = nk_pad * DP, vpanel = dv_pad * (nk_pad / 2);  // u32 per (b, h)
  memory::Buffer<u32> kpk(static_cast<std::size_t>(BH * kpanel)), vpk(static_cast<std::size_t>(BH * vpanel));
  memory::Buffer<float> bias2(static_cast<std::size_t>(bias.size() ? B * nk_pad : 0));
  for (std::ptrdiff_t b = 0; b < (bias.size() ? B : 0); ++b)
    for (std::ptrdiff_t j = 0; j < nk_pad; ++j)
      bias2[b * nk_pad + j] = j < Nk ? static_cast<float>(bias.data()[b * Nk + j]) * kLog2e : 0.0f;
  parallel_for(BH, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    for (std::ptrdiff_t bh = first; bh < last; ++bh) {
      const std::ptrdiff_t b = bh / heads, h = bh % heads;
      u32* kd = kpk.data() + bh * kpanel;
      u32* vd = vpk.data() + bh * vpanel;
      std::fill(kd, kd + kpanel, u32(0));
      std::fill(vd, vd + vpanel, u32(0));
      for (std::ptrdiff_t j = 0; j < Nk; ++j) {
        const u16* kr = kb + (b * Nk + j) * Cq + h * dh;
        u32* kdst = kd + (j / R) * DP * R + j % R;
        for (int p = 0; p < DP; ++p) kdst[p * R] = pair_bits(kr[2 * p], 2 * p + 1 < dh ? kr[2 * p + 1] : u16(0));
      }
      for (std::ptrdiff_t j = 0; j < Nk; j += 2) {
        const u16* v0 = vb + (b * Nk + j) * Cv + h * dv;
        const u16* v1 = j + 1 < Nk ? v0 + Cv : nullptr;
        for (int e = 0; e < dv; ++e) vd[(e / R) * (nk_pad / 2) * R + (j / 2) * R + e % R] = pair_bits(v0[e], v1 ? v1[e] : u16(0));
      }
    }
  });
  const float qscale = scale * kLog2e;
  alignas(64) u16 interleave_idx[32];
  for (int i = 0; i < 16; ++i) interleave_idx[2 * i] = static_cast<u16>(i), interleave_idx[2 * i + 1] = static_cast<u16>(16 + i);
  parallel_for(BH * qtiles, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    const __m512i interleave = _mm512_load_si512(interleave_idx);
    memory::Buffer<u32> qt(static_cast<std::size_t>(DP * kTile)), pp(static_cast<std::size_t>(kKeys / 2 * kTile));
    memory::Buffer<float> sc(static_cast<std::size_t>(kKeys * kTile)), ot(static_cast<std::size_t>(dv_pad * kTile));
    alignas(64) float m[kTile], l[kTile];
    vf alpha[kTileVecs], bmax[kTileVecs];
    const vf ninf = simd::splat(-std::numeric_limits<float>::infinity());
    for (std::ptrdiff_t task = first; task < last; ++task) {
      const std::ptrdiff_t bh = task / qtiles, b = bh / heads, h = bh % heads;
      const std::ptrdiff_t i0 = (task % qtiles) * kTile, ni = std::min<std::ptrdiff_t>(kTile, Nq - i0);
      const u32* kd = kpk.data() + bh * kpanel;
      const u32* vd = vpk.data() + bh * vpanel;
      const float* bp = bias.size() ? bias2.data() + b * nk_pad : nullptr;
      std::fill(qt.begin(), qt.end(), u32(0));
      for (std::ptrdiff_t i = 0; i < ni; ++i) {
        const u16* qr = qb + (b * Nq + i0 + i) * Cq + h * dh;
        for (int p = 0; p < DP; ++p) qt[p * kTile + i] = pair_bits(qr[2 * p], 2 * p + 1 < dh ? qr[2 * p + 1] : u16(0));
      }
      std::fill(ot.begin(), ot.end(), 0.0f);
      std::fill(m, m + kTile, -std::numeric_limits<float>::infinity());
      std::fill(l, l + kTile, 0.0f);
      for (std::ptrdiff_t j0 = 0; j0 < Nk; j0 += kKeys) {
        const int nj = static_cast<int>(std::min<std::ptrdiff_t>(kKeys, Nk - j0));
        const int njr = static_cast<int>(round_up(nj, 2 * R));  // whole panels and key pairs
        for (int c = 0; c < kTileVecs; ++c) bmax[c] = ninf;
        for (int p = 0; p < njr; p += R)
          for (int cb = 0; cb < kTile / kCols; ++cb)
            scores_kernel(DP, kd + (j0 + p) * DP, qt.data() + cb * kCols, kTile, qscale, bp ? bp + j0 + p : nullptr,
                          nj - p, sc.data() + p * kTile + cb * kCols, kTile, bmax + cb * NV);
        // As the float32 kernel: alpha = exp2(m_old - m_new) rescales what was accumulated; a
        // column whose keys so far all scored -inf shifts by 0, so no NaN.
        vf shift[kTileVecs], lsum[kTileVecs];
        for (int c = 0; c < kTileVecs; ++c) {
          const vf mo = simd::load(m + c * 16);
          const vf mn = simd::max(mo, bmax[c]);
          shift[c] = mn == ninf ? vf{} : mn;
          alpha[c] = simd::exp2(mo - shift[c]);
          lsum[c] = vf{};
          simd::store(m + c * 16, mn);
        }
        // Weights of key pairs (r, r + 1), a key past nj weighing 0, as bf16 pairs.
        for (int r = 0; r < njr; r += 2) {
          const float* row0 = sc.data() + r * kTile;
          const float* row1 = row0 + kTile;
          u32* dst = pp.data() + (r / 2) * kTile;
          for (int c = 0; c < kTileVecs; ++c) {
            const vf p0 = r < nj ? exp2_weight(simd::load(row0 + c * 16) - shift[c]) : vf{};
            const vf p1 = r + 1 < nj ? exp2_weight(simd::load(row1 + c * 16) - shift[c]) : vf{};
            lsum[c] += p0 + p1;
            _mm512_storeu_si512(dst + c * 16, pairs_of(p0, p1, interleave));
          }
        }
        for (int c = 0; c < kTileVecs; ++c) simd::store(l + c * 16, simd::load(l + c * 16) * alpha[c] + lsum[c]);
        for (std::ptrdiff_t e = 0; e < dv_pad; e += R)
          for (int cb = 0; cb < kTile / kCols; ++cb)
            pv_kernel(njr / 2, vd + e * (nk_pad / 2) + (j0 / 2) * R, pp.data() + cb * kCols, kTile, alpha + cb * NV,
                      ot.data() + e * kTile + cb * kCols, kTile);
      }
      for (std::ptrdiff_t i = 0; i < ni; ++i) {
        const float inv = 1.0f / l[i];
        bf16* o = out.data() + (b * Nq + i0 + i) * Cv + h * dv;
        for (int e = 0; e < dv; ++e) o[e] = bf16(ot[e * kTile + i] * inv);
      }
    }
  });
  return out;
}

}  // namespace attention_bf16
