#pragma once
// Linear layers and Grad-TTS LinearAttention on the Cuda device, on cuBLAS SGEMM (float32; TF32
// tensor cores only in cuda::MathMode::TF32, see core/cuda/runtime.hpp).
//
// gemm(): row-major C = op(A) op(B) over a strided batch, mapped onto column-major cuBLAS by the
// usual identity C^T = op(B)^T op(A)^T (a row-major matrix is its transpose in column-major), so
// every caller below states its products in the row-major terms of the CPU code.
//
// Convolutions are in conv.cuh.
#include <algorithm>
#include <type_traits>

#include "diffblocks/ops/cuda/elementwise.cuh"

namespace diffblocks {
namespace ops {
namespace cuda_detail {

/// The arguments of one column-major cublasSgemmStridedBatched call (cuBLAS's names).
struct BlasCall {
  cublasOperation_t opA, opB;
  int m, n, k;
  const float* A;
  int lda;
  long long strideA;
  const float* B;
  int ldb;
  long long strideB;
  float* C;
  int ldc;
  long long strideC;
};

/// The column-major call computing a row-major product (see gemm): a row-major matrix is its
/// transpose in column-major, so row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T,
/// i.e. cuBLAS's A is our B and its B our A, m = N, n = M. A pure function, tested on the host
/// against a reference BLAS (tests/cuda/test_cuda.cu).
inline BlasCall row_major_call(bool transA, bool transB, int M, int N, int K, const float* A, int lda, long long sA,
                               const float* B, int ldb, long long sB, float* C, int ldc, long long sC) {
  return BlasCall{transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, B, ldb, sB, A, lda, sA,
                  C, ldc, sC};
}

/// Row-major C (M x N) = alpha op(A) (M x K) op(B) (K x N) + beta C, `batch` times with element
/// strides sA, sB, sC (0 = shared). A is M x K (lda >= K), or K x M (lda >= M) when transA; B is
/// K x N (ldb >= N), or N x K (ldb >= K) when transB.
/// C = beta C over `batch` row-major M x N matrices (ldc, element stride sC): a product with an
/// empty sum (K = 0), which cuBLAS does not take.
inline void scale_empty_product(int batch, int M, int N, float beta, float* C, int ldc, long long sC) {
  for_each(static_cast<index_t>(batch) * M * N, [=] __device__(index_t i) {
    const index_t b = i / (static_cast<index_t>(M) * N), r = (i / N) % M, c = i % N;
    float* p = C + b * sC + r * ldc + c;
    *p = beta == 0.0f ? 0.0f : beta * *p;
  });
}

inline void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, long long sA,
                 const float* B, int ldb, long long sB, float beta, float* C, int ldc, long long sC, int batch = 1) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  if (K <= 0) return scale_empty_product(batch, M, N, beta, C, ldc, sC);
  const BlasCall c = row_major_call(transA, transB, M, N, K, A, lda, sA, B, ldb, sB, C, ldc, sC);
  cublasHandle_t h = cuda::blas();
  if (batch == 1)
    DIFFBLOCKS_CUDA_CHECK(cublasSgemm(h, c.opA, c.opB, c.m, c.n, c.k, &alpha, c.A, c.lda, c.B, c.ldb, &beta, c.C, c.ldc));
  else
    DIFFBLOCKS_CUDA_CHECK(cublasSgemmStridedBatched(h, c.opA, c.opB, c.m, c.n, c.k, &alpha, c.A, c.lda, c.strideA, c.B,
                                                    c.ldb, c.strideB, &beta, c.C, c.ldc, c.strideC, batch));
}

/// x[b, c, :] += bias[c] over B planes of C x n values.
inline void add_bias_per_channel(float* x, const float* bias, std::size_t B, std::size_t C, std::size_t n) {
  const index_t Ci = C, ni = n;
  for_each_plane(static_cast<index_t>(B * C), ni, [=] __device__(index_t bc, index_t j) { x[bc * ni + j] += bias[bc % Ci]; });
}

/// One block per row of n values: row = softmax(row * scale + bias_row) in place, where
/// bias_row = bias + (row / rows_per_bias) * n (bias may be null). Max-subtracted, float32.
/// One block per row of n values: row = softmax(row * scale + bias_row) in place, where
/// bias_row = bias + (row / rows_per_bias) * n (bias may be null). Max-subtracted, float32.
/// With inv_sum (Normalize false) the last pass is left out: the row holds exp(v - max) and
/// inv_sum[row] = 1 / their sum, for a caller that divides something smaller than the row
/// (LinearAttention divides the product of the row with x).
template <bool Normalize>
__global__ void softmax_rows_kernel(float* x, index_t n, float scale, const float* bias, index_t rows_per_bias,
                                    float* inv_sum) {
  const index_t r = blockIdx.x;
  float* row = x + r * n;
  const float* br = bias ? bias + (r / rows_per_bias) * n : nullptr;
  const bool rewrite = scale != 1.0f || br;
  float mx = -INFINITY;
  for (index_t j = threadIdx.x; j < n; j += blockDim.x) {
    float v = row[j] * scale;
    if (br) v += br[j];
    if (rewrite) row[j] = v;
    mx = fmaxf(mx, v);
  }
  mx = block_reduce(mx, Max{}, -INFINITY);
  float sum = 0.0f;
  for (index_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float e = expf(row[j] - mx);
    row[j] = e;
    sum += e;
  }
  sum = block_reduce(sum, Sum{}, 0.0f);
  const float inv = 1.0f / sum;
  if constexpr (Normalize) {
    for (index_t j = threadIdx.x; j < n; j += blockDim.x) row[j] *= inv;
  } else {
    if (threadIdx.x == 0) inv_sum[r] = inv;
  }
}

/// softmax_rows_kernel over `rows` rows (see there); inv_sum non-null: unnormalised.
inline void softmax_rows(float* x, std::size_t rows, std::size_t n, float scale = 1.0f, const float* bias = nullptr,
                         std::size_t rows_per_bias = 1, float* inv_sum = nullptr) {
  if (rows == 0 || n == 0) return;
  for (std::size_t r0 = 0; r0 < rows; r0 += std::size_t(1) << 30) {
    const dim3 grid(static_cast<unsigned>(std::min<std::size_t>(rows - r0, std::size_t(1) << 30)));
    const float* b = bias ? bias + (r0 / rows_per_bias) * n : nullptr;
    if (inv_sum)
      launch("softmax_rows_kernel", softmax_rows_kernel<false>, grid, dim3(kThreads), 0, x + r0 * n,
             static_cast<index_t>(n), scale, b, static_cast<index_t>(rows_per_bias), inv_sum + r0);
    else
      launch("softmax_rows_kernel", softmax_rows_kernel<true>, grid, dim3(kThreads), 0, x + r0 * n,
             static_cast<index_t>(n), scale, b, static_cast<index_t>(rows_per_bias), static_cast<float*>(nullptr));
  }
}

/// C[b] (M x N) = A[b] (M x K) B[b]^T (N x K rows) for long K, split into S runs of K whose
/// products are summed in a fixed order (deterministic): the M x N output is too small to keep
/// the GPU busy as one product (LinearAttention's k~ x^T: 128 x 64 over 40 960 positions).
/// Row strides lda = ldb = K; sA, sB, sC between batch items.
inline void gemm_nt_split_k(int M, int N, int K, const float* A, long long sA, const float* B, long long sB, float* C,
                            long long sC, int batch) {
  constexpr int kRun = 2048;  // positions per partial product
  const int S = std::max(1, std::min(32, K / kRun));
  if (S == 1) {
    gemm(false, true, M, N, K, 1.0f, A, K, sA, B, K, sB, 0.0f, C, N, sC, batch);
    return;
  }
  const int L = K / S, rem = K - S * L;
  const long long MN = static_cast<long long>(M) * N;
  auto part = scratch<float>(static_cast<std::size_t>(batch) * S * MN);
  for (int b = 0; b < batch; ++b) {
    float* pb = part.data() + static_cast<std::size_t>(b) * S * MN;
    gemm(false, true, M, N, L, 1.0f, A + b * sA, K, L, B + b * sB, K, L, 0.0f, pb, N, MN, S);
    if (rem)  // the tail of K joins the last run
      gemm(false, true, M, N, rem, 1.0f, A + b * sA + static_cast<long long>(S) * L, K, 0,
           B + b * sB + static_cast<long long>(S) * L, K, 0, 1.0f, pb + (S - 1) * MN, N, 0, 1);
  }
  const float* pp = part.data();
  for_each(static_cast<index_t>(batch) * MN, [=] __device__(index_t i) {
    const index_t b = i / MN, e = i % MN;
    const float* src = pp + b * S * MN + e;
    float acc = 0.0f;
    for (int s = 0; s < S; ++s) acc += src[s * MN];
    C[b * sC + e] = acc;
  });
}

/// out (B, Cout, H, W) (=, or += with beta 1) w (Cout x Cin) x (B, Cin, H, W): a 1x1 stride-1 conv.
inline void pointwise_conv(const float* x, std::size_t B, std::size_t Cin, std::size_t HW, const float* w,
                           std::size_t Cout, float* out, float beta) {
  gemm(false, false, static_cast<int>(Cout), static_cast<int>(HW), static_cast<int>(Cin), 1.0f, w,
       static_cast<int>(Cin), 0, x, static_cast<int>(HW), static_cast<long long>(Cin * HW), beta, out,
       static_cast<int>(HW), static_cast<long long>(Cout * HW), static_cast<int>(B));
}

}  // namespace cuda_detail

/// y (..., out) = x (..., in) W^T + b, W (out, in), over every row of x.
template <class T, std::size_t N, IfKernelScalar<T> Enable = 0>
Tensor<T, N, Cuda> linear(Cuda, const Tensor<T, N, Cuda>& x, const Tensor<T, 2, Cuda>& w, const Tensor<T, 1, Cuda>& bias) {
  static_assert(std::is_same<T, float>::value, "the Cuda device computes in float32");
  static_assert(N >= 2, "linear: x is (rows..., in)");
  const std::size_t B = leading_rows(x.shape()), in = x.shape(N - 1), out = w.shape(0);
  Tensor<T, N, Cuda> y(with_last(x.shape(), out));
  cuda_detail::gemm(false, true, static_cast<int>(B), static_cast<int>(out), static_cast<int>(in), 1.0f, x.data(),
                    static_cast<int>(in), 0, w.data(), static_cast<int>(in), 0, 0.0f, y.data(), static_cast<int>(out), 0);
  if (bias.size()) {
    T* p = y.data();
    const T* bv = bias.data();
    const cuda_detail::index_t O = out;
    cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(B), O,
                                [=] __device__(cuda_detail::index_t r, cuda_detail::index_t o) { p[r * O + o] += bv[o]; });
  }
  return y;
}

/// Grad-TTS LinearAttention block, to_out(linear_attention(to_qkv(x))), with the CPU op's algebra
/// (ops/cpu/ops.hpp, linear_attention_block): per batch item, k~ = softmax_n(W_k x),
/// P = k~ x^T, context_h = P_h W_v,h^T, G_h = context_h^T W_q,h, Mix = W_out G, y = Mix x + b.
/// Every product is one strided-batched GEMM over the batch (the per-head ones loop over heads).
template <class T, IfKernelScalar<T> Enable = 0>
Tensor<T, 4, Cuda> linear_attention_block(Cuda, const Tensor<T, 4, Cuda>& x, const Tensor<T, 4, Cuda>& w_qkv,
                                          const Tensor<T, 4, Cuda>& w_out, const Tensor<T, 1, Cuda>& b_out, int heads,
                                          int dim_head) {
  static_assert(std::is_same<T, float>::value, "the Cuda device computes in float32");
  const int B = static_cast<int>(x.shape(0)), C = static_cast<int>(x.shape(1));
  const int hidden = heads * dim_head, Cout = static_cast<int>(w_out.shape(0)), dh = dim_head;
  const std::size_t N = x.shape(2) * x.shape(3);
  Tensor<T, 4, Cuda> y({x.shape(0), static_cast<std::size_t>(Cout), x.shape(2), x.shape(3)});
  if (B == 0 || N == 0) return y;
  const int n = static_cast<int>(N);
  const float* wq = w_qkv.data();
  const float* wk = wq + static_cast<std::size_t>(hidden) * C;
  const float* wv = wk + static_cast<std::size_t>(hidden) * C;
  auto k = cuda_detail::scratch<float>(static_cast<std::size_t>(B) * hidden * N);
  auto P = cuda_detail::scratch<float>(static_cast<std::size_t>(B) * hidden * C);
  auto ctx = cuda_detail::scratch<float>(static_cast<std::size_t>(B) * heads * dh * dh);
  auto G = cuda_detail::scratch<float>(static_cast<std::size_t>(B) * hidden * C);
  auto mix = cuda_detail::scratch<float>(static_cast<std::size_t>(B) * Cout * C);
  const long long sx = static_cast<long long>(C) * n;
  // k (hidden x N) = W_k (hidden x C) x_b (C x N), then softmax over the N positions of every row.
  cuda_detail::gemm(false, false, hidden, n, C, 1.0f, wk, C, 0, x.data(), n, sx, 0.0f, k.data(), n,
                    static_cast<long long>(hidden) * n, B);
  // k~ = softmax over positions, as exp(k - max) with the division applied to P's rows.
  auto inv_sum = cuda_detail::scratch<float>(static_cast<std::size_t>(B) * hidden);
  cuda_detail::softmax_rows(k.data(), static_cast<std::size_t>(B) * hidden, N, 1.0f, nullptr, 1, inv_sum.data());
  // P (hidden x C) = k~ (hidden x N) x_b^T (N x C).
  cuda_detail::gemm_nt_split_k(hidden, C, n, k.data(), static_cast<long long>(hidden) * n, x.data(), sx, P.data(),
                               static_cast<long long>(hidden) * C, B);
  {
    float* pp = P.data();
    const float* is = inv_sum.data();
    const cuda_detail::index_t Ci = C;
    cuda_detail::for_each(static_cast<cuda_detail::index_t>(B) * hidden * C,
                          [=] __device__(cuda_detail::index_t i) { pp[i] *= is[i / Ci]; });
  }
  for (int h = 0; h < heads; ++h) {
    // context_h (dh x dh) = P_h (dh x C) W_v,h^T (C x dh).
    cuda_detail::gemm(false, true, dh, dh, C, 1.0f, P.data() + static_cast<std::size_t>(h) * dh * C, C,
                      static_cast<long long>(hidden) * C, wv + static_cast<std::size_t>(h) * dh * C, C, 0, 0.0f,
                      ctx.data() + static_cast<std::size_t>(h) * dh * dh, dh, static_cast<long long>(heads) * dh * dh, B);
    // G_h (dh x C) = context_h^T (dh x dh) W_q,h (dh x C).
    cuda_detail::gemm(true, false, dh, C, dh, 1.0f, ctx.data() + static_cast<std::size_t>(h) * dh * dh, dh,
                      static_cast<long long>(heads) * dh * dh, wq + static_cast<std::size_t>(h) * dh * C, C, 0, 0.0f,
                      G.data() + static_cast<std::size_t>(h) * dh * C, C, static_cast<long long>(hidden) * C, B);
  }
  // Mix (Cout x C) = W_out (Cout x hidden) G (hidden x C); y = Mix x_b + b.
  cuda_detail::gemm(false, false, Cout, C, hidden, 1.0f, w_out.data(), hidden, 0, G.data(), C,
                    static_cast<long long>(hidden) * C, 0.0f, mix.data(), C, static_cast<long long>(Cout) * C, B);
  cuda_detail::gemm(false, false, Cout, n, C, 1.0f, mix.data(), C, static_cast<long long>(Cout) * C, x.data(), n, sx,
                    0.0f, y.data(), n, static_cast<long long>(Cout) * n, B);
  if (b_out.size()) cuda_detail::add_bias_per_channel(y.data(), b_out.data(), B, Cout, N);
  return y;
}

}  // namespace ops
}  // namespace diffblocks
