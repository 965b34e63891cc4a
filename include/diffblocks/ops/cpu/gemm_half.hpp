#pragma once
// Half-precision GEMM on the CPU: C (M x N, f32, ldc) = or += A (M x K) * B (K x N) with A and B
// in bf16 or f16 (core/half.hpp) and float32 accumulation and output. Single-threaded per call,
// like gemm.hpp (callers parallelise over tiles of C).
//
// Paths (HalfGemmPath), chosen at run time:
//   Avx512Bf16   bf16 only: vdpbf16ps on K-pairs (kernels/gemm_bf16.inl), in its own target
//                region (target.hpp: the avx512 features plus avx512bf16); used when the avx512
//                copy is the one in use (isa(), so DIFFBLOCKS_CPU_ISA and set_isa() apply) and
//                the CPU has AVX512-BF16 (isa.hpp, avx512_bf16_supported).
//   Avx512, Avx2, Generic
//                the widening path of that copy of the kernels (kernels/gemm_half.inl): bf16 or
//                f16 widened to f32 while packing (F16C for f16 in the AVX copies), then the f32
//                packed micro kernel. Every other CPU, and f16 everywhere.
// All compute the f32 sum of the same exact products (a product of two bf16 or two f16 values is
// exact in f32), so they agree up to the order of the additions.
//
// Operands are packed in the layout of the path (HalfGemmLayout, from half_gemm_layout<T>()):
// A in panels of panel_rows rows, B in column blocks of block_cols columns, both with k_group
// consecutive k side by side (pairs on the bf16 path), elements bf16 on the bf16 path and f32 on
// the widening ones. A packed operand belongs to its path: a weight prepared under one path is
// prepared again for another (as PreparedKey keys the f32 forms by copy). half_gemm_layout<T>()
// follows isa(); a path named explicitly runs whatever isa() says, if this CPU can run it (every
// call checks): that is for tests and benchmarks, as calling ops::cpu::avx2::packed directly is.
//
// The two weight-times-activation products, with nothing transposed per call:
//  - Convolution by im2col, C (Cout x H*W) = W (Cout x Cin*9) * columns (Cin*9 x H*W): the
//    weight is A, packed once (pack_half_a); the im2col writes its columns straight into B's
//    layout (HalfGemmLayout::b_index / store, in a zeroed buffer, or pack_half_b) and calls
//    gemm_half_packed; or it writes plain rows and calls gemm_half_packed_a, which packs B a
//    column block at a time. Column blocks are independent: the packed B of columns [n0, n0 + n),
//    n0 a multiple of block_cols, starts at element b_index(0, n0, K), so an im2col can be done
//    and multiplied in tiles of columns.
//  - Linear, y (tokens x out) = x (tokens x in) * W^T with W (out x in) as stored: B = W^T,
//    packed once from W as it is (pack_half_b_transposed: a row of W is a column of B, its pairs
//    already side by side); the tokens are A, read in place by gemm_half_rows.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "diffblocks/core/error.hpp"
#include "diffblocks/core/half.hpp"
#include "diffblocks/ops/cpu/kernels.hpp"

namespace diffblocks {
namespace ops {
namespace cpu {

/// The bf16 path's register block, which its packed layouts follow: panels of 8 rows of A,
/// column blocks of 32 columns (2 vectors of 16 f32 lanes) of B.
namespace half_pairs {
constexpr int kPanelRows = 8;
constexpr int kBlockCols = 32;
}  // namespace half_pairs

}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks

// The widening path in every copy of the kernels (as kernels.hpp includes all.inl).
#if DIFFBLOCKS_CPU_HAS_GENERIC
#define DIFFBLOCKS_KERNEL_ISA 0
namespace diffblocks {
namespace ops {
namespace cpu {
namespace generic {
#include "diffblocks/ops/cpu/kernels/gemm_half.inl"
}  // namespace generic
}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
#undef DIFFBLOCKS_KERNEL_ISA
#endif

#if DIFFBLOCKS_CPU_HAS_AVX2
#define DIFFBLOCKS_KERNEL_ISA 1
DIFFBLOCKS_CPU_TARGET_BEGIN(DIFFBLOCKS_CPU_AVX2_FEATURES)
namespace diffblocks {
namespace ops {
namespace cpu {
namespace avx2 {
#include "diffblocks/ops/cpu/kernels/gemm_half.inl"
}  // namespace avx2
}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
DIFFBLOCKS_CPU_TARGET_END
#undef DIFFBLOCKS_KERNEL_ISA
#endif

#if DIFFBLOCKS_CPU_HAS_AVX512
#define DIFFBLOCKS_KERNEL_ISA 2
DIFFBLOCKS_CPU_TARGET_BEGIN(DIFFBLOCKS_CPU_AVX512_FEATURES)
namespace diffblocks {
namespace ops {
namespace cpu {
namespace avx512 {
#include "diffblocks/ops/cpu/kernels/gemm_half.inl"
}  // namespace avx512
}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
DIFFBLOCKS_CPU_TARGET_END
#undef DIFFBLOCKS_KERNEL_ISA
#endif

// The avx512bf16 region: the vdpbf16ps path, and bf16 softmax attention on the same instruction
// (attention_bf16.inl; ops/cpu/attention_bf16.hpp dispatches to it).
#if DIFFBLOCKS_CPU_HAS_AVX512_BF16
DIFFBLOCKS_CPU_TARGET_BEGIN(DIFFBLOCKS_CPU_AVX512_BF16_FEATURES)
namespace diffblocks {
namespace ops {
namespace cpu {
namespace avx512_bf16 {
#include "diffblocks/ops/cpu/kernels/gemm_bf16.inl"
#include "diffblocks/ops/cpu/kernels/attention_bf16.inl"
}  // namespace avx512_bf16
}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
DIFFBLOCKS_CPU_TARGET_END
#endif

namespace diffblocks {
namespace ops {
namespace cpu {

/// The kernels a half-precision GEMM runs: the widening path of a copy (the values are Isa's),
/// or the bf16 pairs on vdpbf16ps.
enum class HalfGemmPath : int { Generic = 0, Avx2 = 1, Avx512 = 2, Avx512Bf16 = 3 };
constexpr HalfGemmPath kAllHalfGemmPaths[] = {HalfGemmPath::Generic, HalfGemmPath::Avx2, HalfGemmPath::Avx512,
                                              HalfGemmPath::Avx512Bf16};

inline const char* half_gemm_path_name(HalfGemmPath p) {
  switch (p) {
    case HalfGemmPath::Avx512Bf16:
      return "avx512_bf16 (vdpbf16ps)";
    case HalfGemmPath::Avx512:
      return "avx512 (widen to f32)";
    case HalfGemmPath::Avx2:
      return "avx2 (widen to f32)";
    case HalfGemmPath::Generic:
      return "generic (widen to f32)";
  }
  return "unknown";
}

/// Whether path `p` can multiply T (bf16 or f16) here: its copy runs on this CPU (isa_supported),
/// and for the bf16 path, T is bf16 and avx512_bf16_supported().
template <class T>
bool half_gemm_path_supported(HalfGemmPath p) {
  static_assert(std::is_same<T, bf16>::value || std::is_same<T, f16>::value, "T is db::bf16 or db::f16");
  if (p == HalfGemmPath::Avx512Bf16) return std::is_same<T, bf16>::value && avx512_bf16_supported();
  const int i = static_cast<int>(p);
  return i >= 0 && i <= 2 && isa_supported(static_cast<Isa>(i));
}

/// The path that multiplies T now: the bf16 one for bf16 when isa() is Isa::Avx512 and the CPU
/// has AVX512-BF16, else the widening path of isa()'s copy.
template <class T>
HalfGemmPath half_gemm_path() {
  const Isa i = isa();
  if (std::is_same<T, bf16>::value && i == Isa::Avx512 && avx512_bf16_supported()) return HalfGemmPath::Avx512Bf16;
  return static_cast<HalfGemmPath>(static_cast<int>(i));
}

/// Where a path keeps a packed operand's elements. A (M x K): panels of panel_rows rows, one
/// after another; B (K x N): blocks of block_cols columns. Inside a panel (block), k runs in
/// groups of k_group: the k_group values of a row (column) side by side, k even first, then the
/// next row (column). K is padded with zeros to a multiple of k_group, M and N to whole panels
/// and blocks. Elements are elem_bytes wide: bf16 bits (2) or float (4). With k_group = 1 these
/// are packed::packed_index and packed::pack_b's layouts of the path's copy.
struct HalfGemmLayout {
  HalfGemmPath path = HalfGemmPath::Generic;
  int panel_rows = 1, block_cols = 1, k_group = 1, elem_bytes = 4;

  int padded_k(int K) const { return (K + k_group - 1) / k_group * k_group; }
  std::size_t a_bytes(int M, int K) const {
    return static_cast<std::size_t>((M + panel_rows - 1) / panel_rows) * panel_rows * padded_k(K) * elem_bytes;
  }
  std::size_t b_bytes(int K, int N) const {
    return static_cast<std::size_t>((N + block_cols - 1) / block_cols) * block_cols * padded_k(K) * elem_bytes;
  }
  /// Element index of A[m][k] in packed A (of K columns).
  std::ptrdiff_t a_index(int m, int k, int K) const {
    return (static_cast<std::ptrdiff_t>(m / panel_rows) * padded_k(K) + k - k % k_group) * panel_rows +
           (m % panel_rows) * k_group + k % k_group;
  }
  /// Element index of B[k][n] in packed B (of K rows).
  std::ptrdiff_t b_index(int k, int n, int K) const {
    return (static_cast<std::ptrdiff_t>(n / block_cols) * padded_k(K) + k - k % k_group) * block_cols +
           (n % block_cols) * k_group + k % k_group;
  }
  /// Writes x at element `index` of a packed operand (rounded to bf16 on the bf16 path: exact
  /// for a value that came from one). The padding must be zero: fill the buffer with zeros first.
  void store(void* packed, std::ptrdiff_t index, float x) const {
    if (elem_bytes == 2)
      static_cast<std::uint16_t*>(packed)[index] = bf16(x).bits;
    else
      static_cast<float*>(packed)[index] = x;
  }
};

namespace detail {

/// Throws a ConfigError unless path `p` can multiply T here.
template <class T>
void check_half_gemm_path(HalfGemmPath p) {
  if (!half_gemm_path_supported<T>(p))
    throw ConfigError(std::string("half-precision GEMM: path ") + half_gemm_path_name(p) + " cannot run " +
                      (std::is_same<T, bf16>::value ? "bf16" : "f16") + " here (supported: " +
                      supported_isa_names() + (avx512_bf16_supported() ? ", avx512_bf16 for bf16" : "") + ")");
}

}  // namespace detail

/// The packed layout of path `p` (checked: a ConfigError if it cannot run T here).
template <class T>
HalfGemmLayout half_gemm_layout(HalfGemmPath p = half_gemm_path<T>()) {
  detail::check_half_gemm_path<T>(p);
  switch (p) {
#if DIFFBLOCKS_CPU_HAS_AVX512_BF16
    case HalfGemmPath::Avx512Bf16:
      return {p, half_pairs::kPanelRows, half_pairs::kBlockCols, 2, 2};
#endif
#if DIFFBLOCKS_CPU_HAS_AVX512
    case HalfGemmPath::Avx512:
      return {p, avx512::packed::kPanelRows, avx512::packed::block_cols<float>(), 1, 4};
#endif
#if DIFFBLOCKS_CPU_HAS_AVX2
    case HalfGemmPath::Avx2:
      return {p, avx2::packed::kPanelRows, avx2::packed::block_cols<float>(), 1, 4};
#endif
#if DIFFBLOCKS_CPU_HAS_GENERIC
    case HalfGemmPath::Generic:
      return {p, generic::packed::kPanelRows, generic::packed::block_cols<float>(), 1, 4};
#endif
    default:
      break;
  }
  throw ConfigError("half-precision GEMM: no kernels compiled for this path");  // checked above
}

// `case <path>: return <its namespace>::half_gemm::call;` for each path compiled here; the bf16
// path only when T is bf16 (its kernels take bf16 alone), so the f16 instantiations compile.
#if DIFFBLOCKS_CPU_HAS_AVX512_BF16
#define DIFFBLOCKS_HALF_GEMM_CASE_BF16(T, ...)                 \
  case HalfGemmPath::Avx512Bf16:                               \
    if constexpr (std::is_same<T, bf16>::value) {              \
      return avx512_bf16::half_gemm::__VA_ARGS__;              \
    }                                                          \
    break;
#else
#define DIFFBLOCKS_HALF_GEMM_CASE_BF16(T, ...)
#endif
#if DIFFBLOCKS_CPU_HAS_AVX512
#define DIFFBLOCKS_HALF_GEMM_CASE_AVX512(...) \
  case HalfGemmPath::Avx512:                  \
    return avx512::half_gemm::__VA_ARGS__;
#else
#define DIFFBLOCKS_HALF_GEMM_CASE_AVX512(...)
#endif
#if DIFFBLOCKS_CPU_HAS_AVX2
#define DIFFBLOCKS_HALF_GEMM_CASE_AVX2(...) \
  case HalfGemmPath::Avx2:                  \
    return avx2::half_gemm::__VA_ARGS__;
#else
#define DIFFBLOCKS_HALF_GEMM_CASE_AVX2(...)
#endif
#if DIFFBLOCKS_CPU_HAS_GENERIC
#define DIFFBLOCKS_HALF_GEMM_CASE_GENERIC(...) \
  case HalfGemmPath::Generic:                  \
    return generic::half_gemm::__VA_ARGS__;
#else
#define DIFFBLOCKS_HALF_GEMM_CASE_GENERIC(...)
#endif
#define DIFFBLOCKS_HALF_GEMM_RUN(T, layout, ...)                  \
  detail::check_half_gemm_path<T>((layout).path);                 \
  switch ((layout).path) {                                        \
    DIFFBLOCKS_HALF_GEMM_CASE_BF16(T, __VA_ARGS__)                \
    DIFFBLOCKS_HALF_GEMM_CASE_AVX512(__VA_ARGS__)                 \
    DIFFBLOCKS_HALF_GEMM_CASE_AVX2(__VA_ARGS__)                   \
    DIFFBLOCKS_HALF_GEMM_CASE_GENERIC(__VA_ARGS__)                \
    default:                                                      \
      break;                                                      \
  }                                                               \
  throw ConfigError("half-precision GEMM: no kernels compiled for this path")

/// dst (layout.a_bytes(M, K)) = A (M x K, lda, row-major) packed: a weight used as the left
/// operand many times (a convolution's Cout x Cin*k*k), packed once.
template <class T>
void pack_half_a(const HalfGemmLayout& layout, int M, int K, const T* A, std::ptrdiff_t lda, void* dst) {
  DIFFBLOCKS_HALF_GEMM_RUN(T, layout, pack_a(M, K, A, lda, dst));
}

/// dst (layout.b_bytes(K, N)) = B (K x N, ldb, row-major) packed (im2col columns, an activation).
template <class T>
void pack_half_b(const HalfGemmLayout& layout, int K, int N, const T* B, std::ptrdiff_t ldb, void* dst) {
  DIFFBLOCKS_HALF_GEMM_RUN(T, layout, pack_b(K, N, B, ldb, dst));
}

/// dst (layout.b_bytes(K, N)) = B packed where B = Bt^T is given as Bt (N x K, ldbt): a Linear's
/// weight W (out x in) as stored, for y = x W^T (K = in, N = out). Once per weight.
template <class T>
void pack_half_b_transposed(const HalfGemmLayout& layout, int K, int N, const T* Bt, std::ptrdiff_t ldbt,
                            void* dst) {
  DIFFBLOCKS_HALF_GEMM_RUN(T, layout, pack_b_transposed(K, N, Bt, ldbt, dst));
}

/// C (M x N, ldc) = or += A * B, both packed in `layout` from T (conv: the packed weight times
/// an im2col written in B's layout).
template <class T>
void gemm_half_packed(const HalfGemmLayout& layout, int M, int N, int K, const void* Ap, const void* Bp, float* C,
                      std::ptrdiff_t ldc, bool accumulate = false) {
  DIFFBLOCKS_HALF_GEMM_RUN(T, layout, gemm_packed(M, N, K, Ap, Bp, C, ldc, accumulate));
}

/// C (M x N, ldc) = or += A * B, A packed (pack_half_a), B (K x N, ldb) row-major (conv: the
/// packed weight times a plain im2col), packed a column block at a time inside.
template <class T>
void gemm_half_packed_a(const HalfGemmLayout& layout, int M, int N, int K, const void* Ap, const T* B,
                        std::ptrdiff_t ldb, float* C, std::ptrdiff_t ldc, bool accumulate = false) {
  DIFFBLOCKS_HALF_GEMM_RUN(T, layout, gemm_packed_a(M, N, K, Ap, B, ldb, C, ldc, accumulate));
}

/// C (M x N, ldc) = or += A (M x K, lda, row-major) * B, B packed (Linear: the tokens times the
/// W^T packed once by pack_half_b_transposed). The bf16 path reads A in place; the widening
/// paths widen it into panels, 32 panels at a time.
template <class T>
void gemm_half_rows(const HalfGemmLayout& layout, int M, int N, int K, const T* A, std::ptrdiff_t lda,
                    const void* Bp, float* C, std::ptrdiff_t ldc, bool accumulate = false) {
  DIFFBLOCKS_HALF_GEMM_RUN(T, layout, gemm_rows(M, N, K, A, lda, Bp, C, ldc, accumulate));
}

#undef DIFFBLOCKS_HALF_GEMM_RUN
#undef DIFFBLOCKS_HALF_GEMM_CASE_BF16
#undef DIFFBLOCKS_HALF_GEMM_CASE_AVX512
#undef DIFFBLOCKS_HALF_GEMM_CASE_AVX2
#undef DIFFBLOCKS_HALF_GEMM_CASE_GENERIC

/// C (M x N, ldc) = or += A (M x K, lda) * B (K x N, ldb), both row-major, on `path` (default:
/// the one for the ISA in use): A packed for the call, B a column block at a time.
template <class T>
void gemm_half(int M, int N, int K, const T* A, std::ptrdiff_t lda, const T* B, std::ptrdiff_t ldb, float* C,
               std::ptrdiff_t ldc, bool accumulate = false, HalfGemmPath path = half_gemm_path<T>()) {
  const HalfGemmLayout layout = half_gemm_layout<T>(path);
  memory::Buffer<float> ap((layout.a_bytes(M, K) + sizeof(float) - 1) / sizeof(float));
  pack_half_a(layout, M, K, A, lda, ap.data());
  gemm_half_packed_a(layout, M, N, K, ap.data(), B, ldb, C, ldc, accumulate);
}

}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
