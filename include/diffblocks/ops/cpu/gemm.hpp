#pragma once
// Row-major GEMM on Eigen, single-threaded per call: callers parallelise over independent
// tiles (output columns, batch items, heads) with parallel_for, which keeps one threading
// mechanism in the library and lets tiles reuse their own workspaces.
#ifndef EIGEN_DONT_PARALLELIZE
#define EIGEN_DONT_PARALLELIZE
#endif
#include <Eigen/Core>

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

}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
