#pragma once
// Row-major GEMM on the CPU, single-threaded per call (callers parallelise over tiles), on the
// copy of the packed kernels (kernels/gemm.inl) for the instruction set in use.
#include "diffblocks/ops/cpu/kernels.hpp"

namespace diffblocks {
namespace ops {
namespace cpu {

/// C (M x N, ldc) = or += A (M x K, lda) * B (K x N, ldb), all row-major.
template <class T>
void gemm(int M, int N, int K, const T* A, int lda, const T* B, int ldb, T* C, int ldc, bool accumulate = false) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(gemm<T>(M, N, K, A, lda, B, ldb, C, ldc, accumulate));
}

/// C (M x N) = A (M x K) * B^T where B is stored N x K row-major (e.g. a Linear weight).
template <class T>
void gemm_bt(int M, int N, int K, const T* A, int lda, const T* B, int ldb, T* C, int ldc) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(gemm_bt<T>(M, N, K, A, lda, B, ldb, C, ldc));
}

/// C (M x N) = A^T * B where A is stored K x M row-major.
template <class T>
void gemm_at(int M, int N, int K, const T* A, int lda, const T* B, int ldb, T* C, int ldc) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(gemm_at<T>(M, N, K, A, lda, B, ldb, C, ldc));
}

}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
