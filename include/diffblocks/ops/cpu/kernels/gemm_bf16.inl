// Kernel source of the avx512bf16 region (target.hpp), included once by ops/cpu/gemm_half.hpp
// inside namespace ops::cpu::avx512_bf16. No include guard and no #include of its own.
//
// The bf16 GEMM on vdpbf16ps (_mm512_dpbf16_ps): each 32-bit lane of a vector holds a pair of
// bf16 values, k even in the low half and k + 1 in the high one, and the instruction adds both
// products of a lane's pairs to its f32 accumulator (the products are exact: 8-bit significands).
// So B is packed in K-pairs: per column block of kBlockCols columns, rows k and k + 1 interleaved
// column by column (HalfGemmLayout::b_index), and A's pair of a row is broadcast as 32 bits,
// from panels of kPanelRows rows packed the same way (a_index) or straight from a row-major
// matrix, whose rows already hold their pairs side by side. An odd K is padded with a zero k in
// the packed operands; a row-major A's last k is read alone (its neighbour is past the row).
// The register block is packed::micro_kernel's on AVX-512: 8 rows x 2 vectors, 16 accumulators
// kept over the whole K loop; per pair of k it loads 2 vectors of B and broadcasts 8 pairs of A
// for 16 vdpbf16ps (32 products each against an FMA's 16). Measured on one core of the AMD EPYC
// (bench_gemm_half), B packed beforehand: 520-535 GFLOP/s at the Grad-TTS conv shapes of 128 and
// 256 channels, against 205-260 for the f32 packed GEMM: the 2x the instruction gives.
namespace half_gemm {

using u16 = std::uint16_t;
constexpr int R = half_pairs::kPanelRows, NC = half_pairs::kBlockCols, kColVecs = NC / 16;
static_assert(NC % 16 == 0, "column blocks are whole vectors");

/// Rows of B (k values, even) per pass: a pass's part of a column block, kBlockK x NC bf16 =
/// 32 KiB, stays in L1 while every panel of A sweeps it (as packed::detail::block_k for f32).
constexpr int kBlockK = 32768 / (NC * 2);

inline int padded_k(int K) { return (K + 1) & ~1; }

/// The pair at p (two bf16, 32 bits) in every lane.
inline __m512bh splat_pair(const u16* p) {
  std::uint32_t x;
  std::memcpy(&x, p, 4);
  return (__m512bh)_mm512_set1_epi32(static_cast<int>(x));
}

/// 16 pairs of B, kept in a register (simd::load_reg's reason: GCC would otherwise fold the load
/// into each of the 8 vdpbf16ps that use it).
inline __m512bh load_pairs(const u16* p) {
  __m512i v = _mm512_loadu_si512(p);
  __asm__("" : "+v"(v));
  return (__m512bh)v;
}

/// Lanes [0, n) of a vector of 16 (n may be <= 0 or >= 16).
inline __mmask16 lanes_mask(int n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
}

/// C (rows x cols of one R x NC block, ldc) = or += A * B over k values (a pass; k is even
/// except in the last pass). B: one packed column block (pairs at b, NC columns each). A: one
/// packed panel (pairs at a, R rows each) or, with RowMajorA, rows of a row-major matrix (row
/// stride lda; rows past `rows` read the last one again and are not stored). NV = 1 serves a
/// right edge of at most 16 columns at half the work.
template <int NV, bool RowMajorA>
inline void micro_kernel(int k, const u16* __restrict a, std::ptrdiff_t lda, const u16* __restrict b,
                         float* __restrict c, std::ptrdiff_t ldc, int rows, int cols, bool accumulate) {
  __m512 acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_setzero_ps();
  const u16* ar[R];
  for (int r = 0; r < R; ++r) ar[r] = a + (RowMajorA ? std::min(r, rows - 1) * lda : 2 * r);
  const int pairs = RowMajorA ? k / 2 : (k + 1) / 2;
  for (int p = 0; p < pairs; ++p) {
    __m512bh bv[NV];
    for (int j = 0; j < NV; ++j) bv[j] = load_pairs(b + (p * NC + 16 * j) * 2);
    for (int r = 0; r < R; ++r) {
      const __m512bh av = splat_pair(ar[r] + (RowMajorA ? 2 * p : p * R * 2));
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], av, bv[j]);
    }
  }
  if (RowMajorA && (k & 1)) {  // the last k alone, as a pair with a zero; B's pad is zero too
    __m512bh bv[NV];
    for (int j = 0; j < NV; ++j) bv[j] = load_pairs(b + (pairs * NC + 16 * j) * 2);
    for (int r = 0; r < R; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(ar[r][k - 1]);
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], av, bv[j]);
    }
  }
  for (int r = 0; r < R; ++r) {
    if (r >= rows) break;
    for (int j = 0; j < NV; ++j) {
      const __mmask16 m = lanes_mask(cols - 16 * j);
      float* out = c + r * ldc + 16 * j;
      __m512 v = acc[r][j];
      if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, out));
      _mm512_mask_storeu_ps(out, m, v);
    }
  }
}

/// Columns [0, nc) of C (M rows) = or += A * one packed column block of B (`bb`): K in passes
/// of kBlockK, each swept by every panel (or block of R rows) of A and accumulated onto C.
template <bool RowMajorA>
void sweep_block(int M, int K, const u16* A, std::ptrdiff_t lda, const u16* bb, int nc, float* C,
                 std::ptrdiff_t ldc, bool accumulate) {
  const int passes = (K + kBlockK - 1) / kBlockK, kc = padded_k((K + passes - 1) / passes);
  const std::ptrdiff_t panel = static_cast<std::ptrdiff_t>(padded_k(K)) * R;
  for (int k0 = 0; k0 < K; k0 += kc) {
    const int kk = std::min(kc, K - k0);
    const u16* b = bb + static_cast<std::ptrdiff_t>(k0) * NC;  // k0 is even: pair k0 / 2
    for (int m0 = 0; m0 < M; m0 += R) {
      const u16* a = RowMajorA ? A + m0 * lda + k0 : A + (m0 / R) * panel + static_cast<std::ptrdiff_t>(k0) * R;
      const int rows = std::min(R, M - m0);
      if (nc <= 16)
        micro_kernel<1, RowMajorA>(kk, a, lda, b, C + m0 * ldc, ldc, rows, nc, accumulate || k0 > 0);
      else
        micro_kernel<kColVecs, RowMajorA>(kk, a, lda, b, C + m0 * ldc, ldc, rows, nc, accumulate || k0 > 0);
    }
  }
}

/// K = 0: C = 0, or left as it is when accumulating.
inline bool zero_k(int M, int N, int K, float* C, std::ptrdiff_t ldc, bool accumulate) {
  if (K != 0) return false;
  if (!accumulate)
    for (int m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + N, 0.0f);
  return true;
}

/// A bf16 array as its bit patterns (half.hpp: bf16 is its 16 bits, two bytes).
inline const u16* bits(const bf16* p) { return reinterpret_cast<const u16*>(p); }

/// dst = A (M x K, lda) in panels of pairs (HalfGemmLayout::a_index), zero-padded to whole
/// panels and an even K. Once per weight: plain loops.
inline void pack_a(int M, int K, const bf16* A, std::ptrdiff_t lda, void* dst) {
  u16* d = static_cast<u16*>(dst);
  const int kp = padded_k(K);
  for (int m = 0; m < (M + R - 1) / R * R; ++m)
    for (int k = 0; k < kp; ++k)
      d[(static_cast<std::ptrdiff_t>(m / R) * kp + (k & ~1)) * R + (m % R) * 2 + (k & 1)] =
          m < M && k < K ? A[m * lda + k].bits : u16(0);
}

/// dst = B (K x N, ldb) in column blocks of pairs (HalfGemmLayout::b_index): for each pair of
/// rows, 32 columns of each loaded (masked at a right edge; a zero row past an odd K) and
/// interleaved by two vpermt2w into 32 pairs.
inline void pack_b(int K, int N, const bf16* B, std::ptrdiff_t ldb, void* dst) {
  static_assert(NC % 32 == 0, "whole 32-column loads");
  alignas(64) u16 lo_idx[32], hi_idx[32];  // lane 2i: even row's column i, lane 2i + 1: odd row's
  for (int i = 0; i < 32; ++i) {
    lo_idx[i] = static_cast<u16>((i & 1) * 32 + i / 2);
    hi_idx[i] = static_cast<u16>(lo_idx[i] + 16);
  }
  const __m512i lo = _mm512_load_si512(lo_idx), hi = _mm512_load_si512(hi_idx);
  u16* d = static_cast<u16*>(dst);
  const int kp = padded_k(K);
  for (int n0 = 0; n0 < N; n0 += NC) {
    u16* out = d + static_cast<std::ptrdiff_t>(n0) * kp;
    for (int k = 0; k < K; k += 2) {
      const u16* even = bits(B + k * ldb + n0);
      for (int j = 0; j < NC; j += 32) {
        const int n = N - n0 - j;
        const __mmask32 m = n >= 32 ? ~__mmask32(0) : n <= 0 ? __mmask32(0) : __mmask32((1u << n) - 1u);
        const __m512i e = _mm512_maskz_loadu_epi16(m, even + j);
        const __m512i o = k + 1 < K ? _mm512_maskz_loadu_epi16(m, even + ldb + j) : _mm512_setzero_si512();
        u16* pairs = out + static_cast<std::ptrdiff_t>(k) * NC + 2 * j;
        _mm512_storeu_si512(pairs, _mm512_permutex2var_epi16(e, lo, o));
        _mm512_storeu_si512(pairs + 32, _mm512_permutex2var_epi16(e, hi, o));
      }
    }
  }
}

/// The same with B = Bt^T given as Bt (N x K, ldbt; a Linear's weight W): a row of Bt holds a
/// column's pairs side by side, copied 32 bits at a time. Once per weight.
inline void pack_b_transposed(int K, int N, const bf16* Bt, std::ptrdiff_t ldbt, void* dst) {
  u16* d = static_cast<u16*>(dst);
  const int kp = padded_k(K);
  for (int n = 0; n < (N + NC - 1) / NC * NC; ++n) {
    u16* out = d + static_cast<std::ptrdiff_t>(n / NC) * NC * kp + (n % NC) * 2;
    for (int k = 0; k < kp; ++k)
      out[static_cast<std::ptrdiff_t>(k & ~1) * NC + (k & 1)] = n < N && k < K ? Bt[n * ldbt + k].bits : u16(0);
  }
}

/// C (M x N, ldc, f32) = or += A * B, both packed (a conv weight against an im2col written in
/// B's layout).
inline void gemm_packed(int M, int N, int K, const void* Ap, const void* Bp, float* C, std::ptrdiff_t ldc,
                        bool accumulate) {
  if (M == 0 || N == 0 || zero_k(M, N, K, C, ldc, accumulate)) return;
  const u16 *a = static_cast<const u16*>(Ap), *b = static_cast<const u16*>(Bp);
  for (int n0 = 0; n0 < N; n0 += NC)
    sweep_block<false>(M, K, a, 0, b + static_cast<std::ptrdiff_t>(n0) * padded_k(K), std::min(NC, N - n0), C + n0,
                       ldc, accumulate);
}

/// A packed, B (K x N, ldb) row-major: each column block of B packed into a small panel (L1 /
/// L2) that A's panels then sweep.
inline void gemm_packed_a(int M, int N, int K, const void* Ap, const bf16* B, std::ptrdiff_t ldb, float* C,
                          std::ptrdiff_t ldc, bool accumulate) {
  if (M == 0 || N == 0 || zero_k(M, N, K, C, ldc, accumulate)) return;
  memory::Buffer<u16> bp(static_cast<std::size_t>(padded_k(K)) * NC);
  for (int n0 = 0; n0 < N; n0 += NC) {
    const int nc = std::min(NC, N - n0);
    pack_b(K, nc, B + n0, ldb, bp.data());
    sweep_block<false>(M, K, static_cast<const u16*>(Ap), 0, bp.data(), nc, C + n0, ldc, accumulate);
  }
}

/// A (M x K, lda) row-major read in place (a Linear's tokens), B packed (its W^T, packed once).
inline void gemm_rows(int M, int N, int K, const bf16* A, std::ptrdiff_t lda, const void* Bp, float* C,
                      std::ptrdiff_t ldc, bool accumulate) {
  if (M == 0 || N == 0 || zero_k(M, N, K, C, ldc, accumulate)) return;
  const u16* b = static_cast<const u16*>(Bp);
  for (int n0 = 0; n0 < N; n0 += NC)
    sweep_block<true>(M, K, bits(A), lda, b + static_cast<std::ptrdiff_t>(n0) * padded_k(K), std::min(NC, N - n0),
                      C + n0, ldc, accumulate);
}

}  // namespace half_gemm
