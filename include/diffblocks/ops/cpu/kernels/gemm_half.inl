// Kernel source, compiled once per instruction set (see simd.inl's header), included by
// ops/cpu/gemm_half.hpp after kernels.hpp has made the copy's simd and packed namespaces.
//
// The half-precision GEMM's widening path: bf16 or f16 operands are widened to float32 while
// they are packed, into the f32 packed GEMM's own layouts (packed::pack_a's panels,
// packed::pack_b's column blocks), and the f32 micro kernel (packed::micro_kernel) does the
// rest. It runs on every CPU, and for f16 on every one (no x86 has a dot product of f16 pairs
// into f32); the vdpbf16ps path (gemm_bf16.inl) replaces it for bf16 where AVX512-BF16 exists.
// The widening is exact, so both compute the f32 sum of the same exact products.
namespace half_gemm {

/// dst[0, n) = src[0, n) widened to float (exact): bf16 by a 16-bit shift (any width).
inline void widen(const bf16* src, float* dst, int n) {
  typedef std::uint16_t vh __attribute__((vector_size(simd::kBytes / 2)));
  int i = 0;
  for (; i + simd::kFloats <= n; i += simd::kFloats) {
    vh h;
    std::memcpy(&h, src + i, sizeof(vh));
    simd::store(dst + i, (simd::vf)(__builtin_convertvector(h, simd::vu) << 16));
  }
  for (; i < n; ++i) dst[i] = static_cast<float>(src[i]);
}

/// The same for f16: F16C's vcvtph2ps in the avx2 and avx512 copies, half.hpp's scalar
/// conversion (subnormals renormalised in integer code) in the generic one.
inline void widen(const f16* src, float* dst, int n) {
  int i = 0;
#if DIFFBLOCKS_KERNEL_ISA == 2
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i,  // the masked form: GCC 12's plain one trips -Wall (PR 105593, simd.inl)
                     _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
#elif DIFFBLOCKS_KERNEL_ISA == 1
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
#endif
  for (; i < n; ++i) dst[i] = static_cast<float>(src[i]);
}

/// dst (packed::packed_size(M, K) floats) = A (M x K, lda) widened, in packed::pack_a's panels.
template <class T>
void pack_a(int M, int K, const T* A, std::ptrdiff_t lda, void* dst) {
  constexpr int R = packed::kPanelRows;
  float* d = static_cast<float*>(dst);
  memory::Buffer<float> row(static_cast<std::size_t>(K));
  for (int m = 0; m < (M + R - 1) / R * R; ++m) {
    if (m < M) widen(A + m * lda, row.data(), K);
    for (int k = 0; k < K; ++k) d[packed::packed_index(m, k, K)] = m < M ? row[k] : 0.0f;
  }
}

/// dst (packed::packed_b_size<float>(K, N) floats) = B (K x N, ldb) widened, in packed::pack_b's
/// column blocks, zero-padded: one contiguous run of each row per block.
template <class T>
void pack_b(int K, int N, const T* B, std::ptrdiff_t ldb, void* dst) {
  constexpr int NC = packed::block_cols<float>();
  float* d = static_cast<float*>(dst);
  for (int n0 = 0; n0 < N; n0 += NC) {
    const int nc = std::min(NC, N - n0);
    for (int k = 0; k < K; ++k) {
      float* out = d + static_cast<std::ptrdiff_t>(n0) * K + static_cast<std::ptrdiff_t>(k) * NC;
      widen(B + k * ldb + n0, out, nc);
      std::fill(out + nc, out + NC, 0.0f);
    }
  }
}

/// The same with B = Bt^T given as Bt (N x K, ldbt; a Linear's weight W for B = W^T): each row
/// of Bt widened once, then spread over its column of the blocks (once per weight).
template <class T>
void pack_b_transposed(int K, int N, const T* Bt, std::ptrdiff_t ldbt, void* dst) {
  constexpr int NC = packed::block_cols<float>();
  float* d = static_cast<float*>(dst);
  memory::Buffer<float> row(static_cast<std::size_t>(K));
  for (int n = 0; n < (N + NC - 1) / NC * NC; ++n) {
    if (n < N) widen(Bt + n * ldbt, row.data(), K);
    float* out = d + static_cast<std::ptrdiff_t>(n / NC) * NC * K + n % NC;
    for (int k = 0; k < K; ++k) out[static_cast<std::ptrdiff_t>(k) * NC] = n < N ? row[k] : 0.0f;
  }
}

/// C (M x N, ldc, f32) = or += A * B, both packed above: the f32 packed GEMM itself.
inline void gemm_packed(int M, int N, int K, const void* Ap, const void* Bp, float* C, std::ptrdiff_t ldc,
                        bool accumulate) {
  packed::gemm_packed_b(M, N, K, static_cast<const float*>(Ap), static_cast<const float*>(Bp), C, ldc, accumulate);
}

/// A packed, B (K x N, ldb) row-major: each block of B's columns widened into one K x NC panel
/// (in L1 or L2, not a widened copy of all of B) that A's panels then sweep.
template <class T>
void gemm_packed_a(int M, int N, int K, const void* Ap, const T* B, std::ptrdiff_t ldb, float* C,
                   std::ptrdiff_t ldc, bool accumulate) {
  constexpr int NC = packed::block_cols<float>();
  if (M == 0 || N == 0 || packed::detail::zero_k(M, N, K, C, ldc, accumulate)) return;
  memory::Buffer<float> bp(static_cast<std::size_t>(K) * NC);
  for (int n0 = 0; n0 < N; n0 += NC) {
    const int nc = std::min(NC, N - n0);
    pack_b(K, nc, B + n0, ldb, bp.data());
    packed::detail::sweep_block(M, K, static_cast<const float*>(Ap), 0, bp.data(), nc, C + n0, ldc, accumulate);
  }
}

/// A (M x K, lda) row-major, B packed (a Linear's W^T, packed once): A widened into panels per
/// block of 32 panels (the f32 kernel reads floats), each block multiplied by all of B.
template <class T>
void gemm_rows(int M, int N, int K, const T* A, std::ptrdiff_t lda, const void* Bp, float* C, std::ptrdiff_t ldc,
               bool accumulate) {
  constexpr int mc_max = 32 * packed::kPanelRows;
  if (M == 0 || N == 0 || packed::detail::zero_k(M, N, K, C, ldc, accumulate)) return;
  memory::Buffer<float> ap(static_cast<std::size_t>(packed::packed_size(std::min(M, mc_max), K)));
  for (int m0 = 0; m0 < M; m0 += mc_max) {
    const int mc = std::min(mc_max, M - m0);
    pack_a(mc, K, A + m0 * lda, lda, ap.data());
    gemm_packed(mc, N, K, ap.data(), Bp, C + m0 * ldc, ldc, accumulate);
  }
}

}  // namespace half_gemm
