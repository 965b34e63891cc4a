#pragma once
// Row-major GEMM on Eigen, single-threaded per call: callers parallelise over independent
// tiles (output columns, batch items, heads) with parallel_for, which keeps one threading
// mechanism in the library and lets tiles reuse their own workspaces.
#ifndef EIGEN_DONT_PARALLELIZE
#define EIGEN_DONT_PARALLELIZE
#endif
#include <Eigen/Core>
#include <cstddef>

namespace diffblocks {
namespace ops {
namespace cpu {

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstMap = Eigen::Map<const RowMat<T>, 0, Eigen::OuterStride<>>;
template <class T>
using MutMap = Eigen::Map<RowMat<T>, 0, Eigen::OuterStride<>>;

/// C (M x N, ldc) = or += A (M x K, lda) * B (K x N, ldb), all row-major.
template <class T>
void gemm(int M, int N, int K, const T* A, int lda, const T* B, int ldb, T* C, int ldc, bool accumulate = false) {
  if (M == 0 || N == 0) return;
  MutMap<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  if (K == 0) {
    if (!accumulate) c.setZero();
    return;
  }
  ConstMap<T> a(A, M, K, Eigen::OuterStride<>(lda));
  ConstMap<T> b(B, K, N, Eigen::OuterStride<>(ldb));
  if (accumulate)
    c.noalias() += a * b;
  else
    c.noalias() = a * b;
}

/// C (M x N) = A (M x K) * B^T where B is stored N x K row-major (e.g. a Linear weight).
template <class T>
void gemm_bt(int M, int N, int K, const T* A, int lda, const T* B, int ldb, T* C, int ldc) {
  if (M == 0 || N == 0) return;
  MutMap<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  ConstMap<T> a(A, M, K, Eigen::OuterStride<>(lda));
  ConstMap<T> b(B, N, K, Eigen::OuterStride<>(ldb));
  c.noalias() = a * b.transpose();
}

/// C (M x N) = A^T * B where A is stored K x M row-major.
template <class T>
void gemm_at(int M, int N, int K, const T* A, int lda, const T* B, int ldb, T* C, int ldc) {
  if (M == 0 || N == 0) return;
  MutMap<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  ConstMap<T> a(A, K, M, Eigen::OuterStride<>(lda));
  ConstMap<T> b(B, K, N, Eigen::OuterStride<>(ldb));
  c.noalias() = a.transpose() * b;
}

// ---- register-blocked float32 kernel --------------------------------------------------------
//
// GCC/clang vector extension: 16 floats, one AVX-512 register (split by the compiler on
// narrower ISAs), so the kernel reads the same on every x86 build.
typedef float f32x16 __attribute__((vector_size(64)));
inline f32x16 load16(const float* p) {
  f32x16 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void store16(float* p, f32x16 v) { __builtin_memcpy(p, &v, sizeof v); }

/// C (4 x 64, ldc) = A (4 x K, lda) * B (K x 64, ldb), row-major. The 4 x 64 accumulators (16
/// vector registers) live in registers across the whole K loop; each step broadcasts 4 values
/// of A and loads one 64-wide row of B. No packing: B rows are read in place, which is what
/// lets a caller with many small products (attention_streaming's 4 x 64 score blocks) skip a
/// GEMM library's per-call packing. For large products Eigen's packed GEMM is as fast or faster
/// (measured), so gemm() stays the general path.
inline void kernel_4x64(int K, const float* __restrict A, std::ptrdiff_t lda, const float* __restrict B,
                        std::ptrdiff_t ldb, float* __restrict C, std::ptrdiff_t ldc) {
  f32x16 acc[4][4] = {};
  for (int d = 0; d < K; ++d) {
    const float* b = B + d * ldb;
    const f32x16 b0 = load16(b), b1 = load16(b + 16), b2 = load16(b + 32), b3 = load16(b + 48);
    for (int r = 0; r < 4; ++r) {
      const float a = A[r * lda + d];
      acc[r][0] += a * b0;
      acc[r][1] += a * b1;
      acc[r][2] += a * b2;
      acc[r][3] += a * b3;
    }
  }
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) store16(C + r * ldc + 16 * c, acc[r][c]);
}

}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
