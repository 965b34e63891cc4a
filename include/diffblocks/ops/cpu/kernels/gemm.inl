// Kernel source, compiled once per instruction set (see simd.inl's header).
//
// Row-major GEMM, single-threaded per call: callers parallelise over independent tiles (output
// columns, batch items, heads) with parallel_for, which keeps one threading mechanism in the
// library and lets tiles reuse their own workspaces.
//
// Everything runs on one register-blocked kernel (packed::micro_kernel) with a pre-packed or
// in-place left operand. For products whose left operand is a weight (Winograd's 36
// transformed kernels, above all) the caller lays A out once in panels of kPanelRows rows, so
// the call itself packs nothing, and the right operand is read in place (its rows are
// contiguous). Measured on Zen 4, one thread, at the Origin's Winograd shapes (64x896x64 ...
// 256x160x256): ~105 GFLOP/s against Eigen's ~60-80 GFLOP/s, whose per-call packing of both
// operands dominates at these sizes.
namespace packed {

// Register block: kPanelRows rows x 2 vectors of columns; 16 accumulators on AVX-512 and AVX2,
// 8 on the baseline, leaving registers for the two B vectors and the broadcast.
#if DIFFBLOCKS_KERNEL_ISA == 2
constexpr int kPanelRows = 8;
#elif DIFFBLOCKS_KERNEL_ISA == 1
constexpr int kPanelRows = 6;
#else
constexpr int kPanelRows = 4;
#endif
constexpr int kColVecs = 2;

/// Columns of one register block.
template <class T>
constexpr int block_cols() {
  return kColVecs * simd::lanes<T>();
}

/// Elements of A (M x K) packed: ceil(M / kPanelRows) panels of K x kPanelRows.
inline std::ptrdiff_t packed_size(int M, int K) {
  return static_cast<std::ptrdiff_t>((M + kPanelRows - 1) / kPanelRows) * kPanelRows * K;
}

/// Where A[m][k] lives in the packed layout (rows past M in the last panel are zero).
inline std::ptrdiff_t packed_index(int m, int k, int K) {
  return (static_cast<std::ptrdiff_t>(m / kPanelRows) * K + k) * kPanelRows + m % kPanelRows;
}

/// dst (packed_size(M, K)) = A (M x K, lda, row-major) in panels.
template <class T>
void pack_a(int M, int K, const T* A, std::ptrdiff_t lda, T* dst) {
  const int panels = (M + kPanelRows - 1) / kPanelRows;
  for (int p = 0; p < panels; ++p)
    for (int k = 0; k < K; ++k)
      for (int r = 0; r < kPanelRows; ++r) {
        const int m = p * kPanelRows + r;
        dst[(static_cast<std::ptrdiff_t>(p) * K + k) * kPanelRows + r] = m < M ? A[m * lda + k] : T(0);
      }
}

/// dst (packed_size(M, K)) = At^T in panels, where At (K x M, ldat, row-major) is A transposed:
/// each panel row is a contiguous run of At's row.
template <class T>
void pack_a_transposed(int M, int K, const T* At, std::ptrdiff_t ldat, T* dst) {
  const int panels = (M + kPanelRows - 1) / kPanelRows;
  for (int p = 0; p < panels; ++p)
    for (int k = 0; k < K; ++k)
      for (int r = 0; r < kPanelRows; ++r) {
        const int m = p * kPanelRows + r;
        dst[(static_cast<std::ptrdiff_t>(p) * K + k) * kPanelRows + r] = m < M ? At[k * ldat + m] : T(0);
      }
}

/// C (kPanelRows x NV vectors, ldc) = or += A (kPanelRows x K) * B (K x NV vectors, ldb), A
/// either one packed panel (K x kPanelRows, `lda` unused) or, with RowMajorA, kPanelRows rows
/// of a row-major matrix (row stride lda) read in place: the R row streams are sequential, so
/// for an A used once (a Linear's tokens) packing would only cost a transposition.
/// The accumulators stay in registers over the whole K loop. NV = kColVecs is the main block;
/// NV = 1 serves a narrow right edge at half the wasted work.
/// Rows < kPanelRows computes only the first Rows rows of the panel (a partial last panel
/// written straight to C, with nothing computed for the missing rows).
template <class T, int NV = kColVecs, bool RowMajorA = false, int Rows = kPanelRows>
inline void micro_kernel(int K, const T* __restrict A, std::ptrdiff_t lda, const T* __restrict B, std::ptrdiff_t ldb,
                         T* __restrict C, std::ptrdiff_t ldc, bool accumulate) {
  using V = simd::vec<T>;
  constexpr int L = simd::lanes<T>(), R = Rows;
  V acc[R][NV] = {};
  for (int k = 0; k < K; ++k) {
    V b[NV];
    for (int j = 0; j < NV; ++j) b[j] = simd::load_reg<V>(B + k * ldb + j * L);
    for (int r = 0; r < R; ++r) {
      const V a = simd::splat(RowMajorA ? A[r * lda + k] : A[k * kPanelRows + r]);
      for (int j = 0; j < NV; ++j) acc[r][j] = simd::fmadd(a, b[j], acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NV; ++j) {
      V c = acc[r][j];
      if (accumulate) c += simd::load<V>(C + r * ldc + j * L);
      simd::store(C + r * ldc + j * L, c);
    }
}

/// micro_kernel on one packed panel of A.
template <class T, int NV = kColVecs>
inline void micro_kernel(int K, const T* __restrict panel, const T* __restrict B, std::ptrdiff_t ldb,
                         T* __restrict C, std::ptrdiff_t ldc, bool accumulate) {
  micro_kernel<T, NV, false>(K, panel, 0, B, ldb, C, ldc, accumulate);
}

namespace detail {

/// The first `rows` (< kPanelRows) rows of a panel, whole block of columns, straight into C.
template <class T, bool RowMajorA, int Rows = kPanelRows - 1>
void partial_panel(int rows, int K, const T* a, std::ptrdiff_t lda, const T* bp, T* c, std::ptrdiff_t ldc,
                   bool accumulate) {
  if constexpr (Rows >= 1) {
    if (rows == Rows) return micro_kernel<T, kColVecs, RowMajorA, Rows>(K, a, lda, bp, block_cols<T>(), c, ldc, accumulate);
    partial_panel<T, RowMajorA, Rows - 1>(rows, K, a, lda, bp, c, ldc, accumulate);
  }
}

/// Rows of B per pass of sweep_block: a K x NC block of B is swept by every panel of A, so it
/// should stay in L1 (48 KiB on Sapphire Rapids, 32 KiB on Zen 4); 256 x 32 floats is 32 KiB.
/// Measured on one SPR core, 36 Winograd planes of 128 x 40 x 512: 86-88 GFLOP/s in one pass,
/// ~105 in passes of 256 (16 and 48 KiB blocks did no better).
template <class T>
constexpr int block_k() {
  return static_cast<int>(32768 / (block_cols<T>() * sizeof(T)));
}

/// One pass of sweep_block over rows [k0, k0 + kc) of B: A's panels are `pstride` elements
/// apart (packed) or its rows lda apart (RowMajorA), both already offset to k0.
template <class T, bool RowMajorA>
void sweep_pass(int M, int kc, const T* A, std::ptrdiff_t pstride, std::ptrdiff_t lda, const T* bp, int nc, T* C,
                std::ptrdiff_t ldc, bool accumulate) {
  constexpr int R = kPanelRows, NC = block_cols<T>();
  alignas(64) T edge[R * NC];
  for (int m0 = 0; m0 < M; m0 += R) {
    const int mc = std::min(R, M - m0);
    const T* a = RowMajorA ? A + m0 * lda : A + (m0 / R) * pstride;
    T* c = C + m0 * ldc;
    if (nc == NC) {
      if (mc == R)
        micro_kernel<T, kColVecs, RowMajorA>(kc, a, lda, bp, NC, c, ldc, accumulate);
      else
        partial_panel<T, RowMajorA>(mc, kc, a, lda, bp, c, ldc, accumulate);
      continue;
    }
    if (mc == R && nc <= NC / kColVecs)
      micro_kernel<T, 1, RowMajorA>(kc, a, lda, bp, NC, edge, NC, false);
    else if (mc == R)
      micro_kernel<T, kColVecs, RowMajorA>(kc, a, lda, bp, NC, edge, NC, false);
    else
      partial_panel<T, RowMajorA>(mc, kc, a, lda, bp, edge, NC, false);
    for (int r = 0; r < mc; ++r)
      for (int j = 0; j < nc; ++j) c[r * ldc + j] = accumulate ? c[r * ldc + j] + edge[r * NC + j] : edge[r * NC + j];
  }
}

/// Columns [n0, n0 + nc) of C (M rows) = or += A * one K x NC block of B given contiguous (row
/// stride NC, zero-padded past nc). A is packed (lda unused), or row-major with row stride lda
/// when RowMajorA. A partial last panel of rows runs a kernel of that many rows; a partial block
/// of columns goes through a small local block, so any M, nc work. A long K is split into
/// even passes of at most block_k rows, each accumulating onto the previous ones.
template <class T, bool RowMajorA = false>
void sweep_block(int M, int K, const T* A, std::ptrdiff_t lda, const T* bp, int nc, T* C, std::ptrdiff_t ldc,
                 bool accumulate) {
  constexpr int R = kPanelRows, NC = block_cols<T>();
  const int passes = (K + block_k<T>() - 1) / block_k<T>(), kc = (K + passes - 1) / passes;
  const std::ptrdiff_t pstride = static_cast<std::ptrdiff_t>(K) * R;
  for (int k0 = 0; k0 < K; k0 += kc)
    sweep_pass<T, RowMajorA>(M, std::min(kc, K - k0), RowMajorA ? A + k0 : A + static_cast<std::ptrdiff_t>(k0) * R,
                             pstride, lda, bp + static_cast<std::ptrdiff_t>(k0) * NC, nc, C, ldc, accumulate || k0 > 0);
}

/// dst (K x NC) = columns [n0, n0 + nc) of B (K x N, ldb), zero-padded to NC.
template <class T>
void copy_block(int K, const T* B, std::ptrdiff_t ldb, int n0, int nc, T* dst) {
  constexpr int NC = block_cols<T>();
  if (nc == NC) {
    for (int k = 0; k < K; ++k)  // fixed-size rows: a few vector moves each, no memcpy call
      for (int j = 0; j < NC; ++j) dst[k * NC + j] = B[k * ldb + n0 + j];
  } else {
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < NC; ++j) dst[k * NC + j] = j < nc ? B[k * ldb + n0 + j] : T(0);
  }
}

template <class T>
bool zero_k(int M, int N, int K, T* C, std::ptrdiff_t ldc, bool accumulate) {
  if (K != 0) return false;
  if (!accumulate)
    for (int m = 0; m < M; ++m) std::fill(C + m * ldc, C + m * ldc + N, T(0));
  return true;
}

}  // namespace detail

/// Elements of B (K x N) packed: ceil(N / block_cols) blocks of K x block_cols.
template <class T>
std::ptrdiff_t packed_b_size(int K, int N) {
  constexpr int NC = block_cols<T>();
  return static_cast<std::ptrdiff_t>((N + NC - 1) / NC) * NC * K;
}

/// dst (packed_b_size(K, N)) = B (K x N, ldb, row-major) in column blocks, zero-padded, the
/// layout gemm_packed_b reads.
template <class T>
void pack_b(int K, int N, const T* B, std::ptrdiff_t ldb, T* dst) {
  constexpr int NC = block_cols<T>();
  for (int n0 = 0; n0 < N; n0 += NC)
    detail::copy_block(K, B, ldb, n0, std::min(NC, N - n0), dst + static_cast<std::ptrdiff_t>(n0) * K);
}

/// Rows [k0, k1) of the packed B (pack_b's layout for K x N) where B = Bt^T is given as its
/// transpose Bt (N x K, row stride ldbt): a product with an operand stored the other way round
/// (Grad-TTS LinearAttention's k~ x^T over the positions, a Linear's W^T) packed without a
/// separate transpose. Callers may split [0, K) over threads.
template <class T>
void pack_b_transposed(int K, int N, const T* Bt, std::ptrdiff_t ldbt, int k0, int k1, T* dst) {
  constexpr int NC = block_cols<T>(), kStep = 16;
  for (int n0 = 0; n0 < N; n0 += NC) {
    const int nc = std::min(NC, N - n0);
    T* d = dst + static_cast<std::ptrdiff_t>(n0) * K;
    for (int k = k0; k < k1; k += kStep) {  // a 16-value run of every row, then the next
      const int kn = std::min(kStep, k1 - k);
      for (int j = 0; j < NC; ++j) {
        const T* src = Bt + (n0 + j) * ldbt + k;
        for (int kk = 0; kk < kn; ++kk) d[(k + kk) * NC + j] = j < nc ? src[kk] : T(0);
      }
    }
  }
}

/// C (M x N, ldc) = or += A * B (K x N, ldb, row-major), A given packed (pack_a / packed_index).
/// Single-threaded, like gemm(). Each block of B's columns is copied into one contiguous K x NC
/// panel before the A panels sweep it, unless it already is one (one A panel, or ldb = NC). Read
/// in place at a large stride (a Linear's W^T with 1024 columns, Winograd's tile rows) the K rows
/// fall into a few L1 sets and evict each other for every panel of A: measured 55-60 instead of
/// 88 GFLOP/s on one Zen 3 core at a 4 KiB stride; the copy costs about 1 / (2 M) of the work.
template <class T>
void gemm(int M, int N, int K, const T* Ap, const T* B, std::ptrdiff_t ldb, T* C, std::ptrdiff_t ldc,
          bool accumulate = false) {
  constexpr int R = kPanelRows, NC = block_cols<T>();
  if (M == 0 || N == 0 || detail::zero_k(M, N, K, C, ldc, accumulate)) return;
  memory::Buffer<T> panel_b;
  for (int n0 = 0; n0 < N; n0 += NC) {
    const int nc = std::min(NC, N - n0);
    const T* bp = B + n0;
    if (nc < NC || ldb != NC) {
      if (M <= R && nc == NC) {  // a single panel of A: the stride costs nothing, read in place
        alignas(64) T edge[R * NC];
        micro_kernel(K, Ap, bp, ldb, M == R ? C + n0 : edge, M == R ? ldc : NC, M == R && accumulate);
        if (M < R)
          for (int r = 0; r < M; ++r)
            for (int j = 0; j < NC; ++j)
              C[r * ldc + n0 + j] = accumulate ? C[r * ldc + n0 + j] + edge[r * NC + j] : edge[r * NC + j];
        continue;
      }
      panel_b.resize(static_cast<std::size_t>(K) * NC);
      detail::copy_block(K, B, ldb, n0, nc, panel_b.data());
      bp = panel_b.data();
    }
    detail::sweep_block(M, K, Ap, 0, bp, nc, C + n0, ldc, accumulate);
  }
}

/// C (M x N, ldc) = or += A * B with both operands packed (pack_a, pack_b): for a B that is
/// reused by several calls (a Linear's W^T across the row blocks of the tokens).
template <class T>
void gemm_packed_b(int M, int N, int K, const T* Ap, const T* Bp, T* C, std::ptrdiff_t ldc, bool accumulate = false) {
  constexpr int NC = block_cols<T>();
  if (M == 0 || N == 0 || detail::zero_k(M, N, K, C, ldc, accumulate)) return;
  for (int n0 = 0; n0 < N; n0 += NC)
    detail::sweep_block(M, K, Ap, 0, Bp + static_cast<std::ptrdiff_t>(n0) * K, std::min(NC, N - n0), C + n0, ldc,
                        accumulate);
}

/// C (M x N, ldc) = or += A * B with A row-major (M x K, lda) read in place and B packed
/// (pack_b): a Linear's tokens against its W^T, with nothing of the tokens copied.
template <class T>
void gemm_rows_packed_b(int M, int N, int K, const T* A, std::ptrdiff_t lda, const T* Bp, T* C, std::ptrdiff_t ldc,
                        bool accumulate = false) {
  constexpr int NC = block_cols<T>();
  if (M == 0 || N == 0 || detail::zero_k(M, N, K, C, ldc, accumulate)) return;
  for (int n0 = 0; n0 < N; n0 += NC)
    detail::sweep_block<T, true>(M, K, A, lda, Bp + static_cast<std::ptrdiff_t>(n0) * K, std::min(NC, N - n0), C + n0,
                                 ldc, accumulate);
}

}  // namespace packed

// ---- GEMM on unpacked operands ---------------------------------------------------------------
//
// The products whose operands are both activations or are used once (attention's Q K^T and P V,
// LinearAttention's k v^T and context products, a Linear of a few rows): the operand the kernel
// wants packed is packed here, per call (the caching allocator makes the buffer cheap); that is
// one pass over the operand against M (or N) passes of multiply-adds.

/// C (M x N, ldc) = or += A (M x K, lda) * B (K x N, ldb), all row-major. A is packed, B read
/// as packed::gemm reads it. A large A (past 32 panels x block_k: 256 KiB, an L2's share) is
/// cut into blocks of that size, GotoBLAS-style: for each slab of block_k rows of B, packed once
/// into column blocks, each block of A is packed and swept against every column block while it
/// is in L2. Unblocked, the panels of a 2048 x 2048 A came from memory for every 32 columns of
/// C (90 against Eigen's 148 GFLOP/s at N = 2048, 2 threads, Zen 4).
template <class T>
void gemm(int M, int N, int K, const T* A, std::ptrdiff_t lda, const T* B, std::ptrdiff_t ldb, T* C,
          std::ptrdiff_t ldc, bool accumulate = false) {
  if (M == 0 || N == 0) return;
  constexpr int kc_max = packed::detail::block_k<T>(), mc_max = 32 * packed::kPanelRows;
  if (static_cast<std::ptrdiff_t>(M) * K <= static_cast<std::ptrdiff_t>(mc_max) * kc_max) {
    memory::Buffer<T> ap(static_cast<std::size_t>(packed::packed_size(M, K)));
    packed::pack_a(M, K, A, lda, ap.data());
    packed::gemm(M, N, K, ap.data(), B, ldb, C, ldc, accumulate);
    return;
  }
  memory::Buffer<T> bp(static_cast<std::size_t>(packed::packed_b_size<T>(std::min(K, kc_max), N)));
  memory::Buffer<T> ap(static_cast<std::size_t>(packed::packed_size(std::min(M, mc_max), std::min(K, kc_max))));
  for (int k0 = 0; k0 < K; k0 += kc_max) {
    const int kc = std::min(kc_max, K - k0);
    packed::pack_b(kc, N, B + k0 * ldb, ldb, bp.data());
    for (int m0 = 0; m0 < M; m0 += mc_max) {
      const int mc = std::min(mc_max, M - m0);
      packed::pack_a(mc, kc, A + m0 * lda + k0, lda, ap.data());
      packed::gemm_packed_b(mc, N, kc, ap.data(), bp.data(), C + m0 * ldc, ldc, accumulate || k0 > 0);
    }
  }
}

/// C (M x N) = A (M x K) * B^T where B is stored N x K row-major (e.g. a Linear weight, the
/// keys). A few rows (M <= 4: a Linear of a time embedding) are dot products along K, reading
/// each row of B once; otherwise B^T is packed in column blocks and A read in place.
template <class T>
void gemm_bt(int M, int N, int K, const T* A, std::ptrdiff_t lda, const T* B, std::ptrdiff_t ldb, T* C,
             std::ptrdiff_t ldc) {
  if (M == 0 || N == 0) return;
  if (M <= 4) {
    using V = simd::vec<T>;
    constexpr int L = simd::lanes<T>();
    for (int n = 0; n < N; ++n) {
      const T* b = B + n * ldb;
      for (int m = 0; m < M; ++m) {
        const T* a = A + m * lda;
        V acc0{}, acc1{};
        int k = 0;
        for (; k + 2 * L <= K; k += 2 * L) {
          acc0 = simd::fmadd(simd::load<V>(a + k), simd::load<V>(b + k), acc0);
          acc1 = simd::fmadd(simd::load<V>(a + k + L), simd::load<V>(b + k + L), acc1);
        }
        for (; k + L <= K; k += L) acc0 = simd::fmadd(simd::load<V>(a + k), simd::load<V>(b + k), acc0);
        const V acc = acc0 + acc1;
        T s = 0;
        for (int l = 0; l < L; ++l) s += acc[l];
        for (; k < K; ++k) s += a[k] * b[k];
        C[m * ldc + n] = s;
      }
    }
    return;
  }
  memory::Buffer<T> bp(static_cast<std::size_t>(packed::packed_b_size<T>(K, N)));
  packed::pack_b_transposed(K, N, B, ldb, 0, K, bp.data());
  packed::gemm_rows_packed_b(M, N, K, A, lda, bp.data(), C, ldc);
}

/// C (M x N) = A^T * B where A is stored K x M row-major.
template <class T>
void gemm_at(int M, int N, int K, const T* A, std::ptrdiff_t lda, const T* B, std::ptrdiff_t ldb, T* C,
             std::ptrdiff_t ldc) {
  if (M == 0 || N == 0) return;
  memory::Buffer<T> ap(static_cast<std::size_t>(packed::packed_size(M, K)));
  packed::pack_a_transposed(M, K, A, lda, ap.data());
  packed::gemm(M, N, K, ap.data(), B, ldb, C, ldc);
}
