#pragma once
// Linear layers, convolutions and Grad-TTS LinearAttention on the Cuda device, on cuBLAS SGEMM
// (float32, CUBLAS_DEFAULT_MATH: no TF32).
//
// gemm(): row-major C = op(A) op(B) over a strided batch, mapped onto column-major cuBLAS by the
// usual identity C^T = op(B)^T op(A)^T (a row-major matrix is its transpose in column-major), so
// every caller below states its products in the row-major terms of the CPU code.
//
// Conv2d: 1x1 stride-1 convolutions are one batched GEMM on the input as it is; other shapes are
// im2col (a (Cin k k) x (Ho Wo) column matrix per batch item, items in chunks of at most
// kIm2colBytes) + a batched GEMM. ConvTranspose2d: a GEMM to (Cout k k) x (H W) columns, then a
// gather (col2im: each output pixel sums the taps that reach it; no atomics). cuDNN is not used
// yet (see README, CUDA: what remains).
#include <algorithm>
#include <type_traits>

#include "diffblocks/ops/cuda/elementwise.cuh"

namespace diffblocks {
namespace ops {
namespace cuda_detail {

constexpr std::size_t kIm2colBytes = std::size_t(256) << 20;

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
inline void gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda, long long sA,
                 const float* B, int ldb, long long sB, float beta, float* C, int ldc, long long sC, int batch = 1) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  if (K <= 0) {  // an empty sum: C = beta C
    for_each(static_cast<index_t>(batch) * M * N, [=] __device__(index_t i) {
      const index_t b = i / (static_cast<index_t>(M) * N), r = (i / N) % M, c = i % N;
      float* p = C + b * sC + r * ldc + c;
      *p = beta == 0.0f ? 0.0f : beta * *p;
    });
    return;
  }
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

/// col[b][(ci, ky, kx)][(oy, ox)] = x[b][ci][oy s - p + ky][ox s - p + kx] (0 outside the image)
/// for `nb` batch items: grid.z = item, grid.y = row of the column matrix, x over output pixels.
template <int = 0>
__global__ void im2col_kernel(const float* x, float* col, int Cin, int H, int W, int KH, int KW, int stride,
                              int padding, int Ho, int Wo) {
  const index_t b = blockIdx.z, k = blockIdx.y, HoWo = static_cast<index_t>(Ho) * Wo;
  const int ci = static_cast<int>(k / (KH * KW)), ky = static_cast<int>((k / KW) % KH), kx = static_cast<int>(k % KW);
  const float* src = x + (b * Cin + ci) * static_cast<index_t>(H) * W;
  float* dst = col + (b * gridDim.y + k) * HoWo;
  for (index_t j = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; j < HoWo;
       j += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const int oy = static_cast<int>(j / Wo), ox = static_cast<int>(j % Wo);
    const int iy = oy * stride - padding + ky, ix = ox * stride - padding + kx;
    dst[j] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? src[static_cast<index_t>(iy) * W + ix] : 0.0f;
  }
}

/// out[b][co][oy][ox] = bias[co] + sum over taps (ky, kx) with oy + p - ky = iy s, ox + p - kx =
/// ix s (0 <= iy < H, 0 <= ix < W) of col[b][(co, ky, kx)][(iy, ix)].
template <int = 0>
__global__ void col2im_transpose_kernel(const float* col, const float* bias, float* out, int Cout, int H, int W,
                                        int KH, int KW, int stride, int padding, int Ho, int Wo) {
  const index_t b = blockIdx.z, co = blockIdx.y, HoWo = static_cast<index_t>(Ho) * Wo, HW = static_cast<index_t>(H) * W;
  const float* cb = col + (b * Cout + co) * static_cast<index_t>(KH) * KW * HW;
  float* ob = out + (b * Cout + co) * HoWo;
  for (index_t j = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; j < HoWo;
       j += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const int oy = static_cast<int>(j / Wo), ox = static_cast<int>(j % Wo);
    float acc = bias ? bias[co] : 0.0f;
    for (int ky = 0; ky < KH; ++ky) {
      const int ty = oy + padding - ky;
      if (ty < 0 || ty % stride != 0 || ty / stride >= H) continue;
      const int iy = ty / stride;
      for (int kx = 0; kx < KW; ++kx) {
        const int tx = ox + padding - kx;
        if (tx < 0 || tx % stride != 0 || tx / stride >= W) continue;
        acc += cb[(static_cast<index_t>(ky) * KW + kx) * HW + static_cast<index_t>(iy) * W + tx / stride];
      }
    }
    ob[j] = acc;
  }
}

/// One block per row of n values: row = softmax(row * scale + bias_row) in place, where
/// bias_row = bias + (row / rows_per_bias) * n (bias may be null). Max-subtracted, float32.
template <int = 0>
__global__ void softmax_rows_kernel(float* x, index_t n, float scale, const float* bias, index_t rows_per_bias) {
  const index_t r = blockIdx.x;
  float* row = x + r * n;
  const float* br = bias ? bias + (r / rows_per_bias) * n : nullptr;
  float mx = -INFINITY;
  for (index_t j = threadIdx.x; j < n; j += blockDim.x) {
    float v = row[j] * scale;
    if (br) v += br[j];
    row[j] = v;
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
  for (index_t j = threadIdx.x; j < n; j += blockDim.x) row[j] *= inv;
}

inline void softmax_rows(float* x, std::size_t rows, std::size_t n, float scale = 1.0f, const float* bias = nullptr,
                         std::size_t rows_per_bias = 1) {
  if (rows == 0 || n == 0) return;
  for (std::size_t r0 = 0; r0 < rows; r0 += std::size_t(1) << 30)
    launch("softmax_rows_kernel", softmax_rows_kernel<>,
           dim3(static_cast<unsigned>(std::min<std::size_t>(rows - r0, std::size_t(1) << 30))), dim3(kThreads), 0,
           x + r0 * n, static_cast<index_t>(n), scale, bias ? bias + (r0 / rows_per_bias) * n : nullptr,
           static_cast<index_t>(rows_per_bias));
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
template <class T, std::size_t N>
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

/// Conv2d (cross-correlation, zero padding). x (B, Cin, H, W), w (Cout, Cin, k, k), bias (Cout) or empty.
template <class T>
Tensor<T, 4, Cuda> conv2d(Cuda, const Tensor<T, 4, Cuda>& x, const Tensor<T, 4, Cuda>& w, const Tensor<T, 1, Cuda>& bias,
                          int stride, int padding) {
  static_assert(std::is_same<T, float>::value, "the Cuda device computes in float32");
  const int B = static_cast<int>(x.shape(0)), Cin = static_cast<int>(x.shape(1));
  const int H = static_cast<int>(x.shape(2)), W = static_cast<int>(x.shape(3));
  const int Cout = static_cast<int>(w.shape(0)), KH = static_cast<int>(w.shape(2)), KW = static_cast<int>(w.shape(3));
  const int Ho = (H + 2 * padding - KH) / stride + 1, Wo = (W + 2 * padding - KW) / stride + 1;
  Tensor<T, 4, Cuda> out({static_cast<std::size_t>(B), static_cast<std::size_t>(Cout), static_cast<std::size_t>(std::max(Ho, 0)),
                          static_cast<std::size_t>(std::max(Wo, 0))});
  if (Ho <= 0 || Wo <= 0 || B == 0 || Cout == 0) return out;
  const std::size_t HoWo = static_cast<std::size_t>(Ho) * Wo;
  if (KH == 1 && KW == 1 && stride == 1 && padding == 0) {
    cuda_detail::pointwise_conv(x.data(), B, Cin, HoWo, w.data(), Cout, out.data(), 0.0f);
  } else {
    const std::size_t K = static_cast<std::size_t>(Cin) * KH * KW, per_item = K * HoWo;
    const std::size_t chunk = std::max<std::size_t>(1, std::min<std::size_t>(B, cuda_detail::kIm2colBytes / sizeof(float) / std::max<std::size_t>(1, per_item)));
    auto col = cuda_detail::scratch<float>(chunk * per_item);
    for (std::size_t b0 = 0; b0 < static_cast<std::size_t>(B); b0 += chunk) {
      const std::size_t nb = std::min<std::size_t>(chunk, B - b0);
      cuda_detail::launch("im2col_kernel", cuda_detail::im2col_kernel<>,
                          dim3(cuda_detail::blocks_for(static_cast<cuda_detail::index_t>(HoWo), cuda_detail::kThreads, 64),
                               static_cast<unsigned>(K), static_cast<unsigned>(nb)),
                          dim3(cuda_detail::kThreads), 0, x.data() + b0 * Cin * H * W, col.data(), Cin, H, W, KH, KW,
                          stride, padding, Ho, Wo);
      cuda_detail::gemm(false, false, Cout, static_cast<int>(HoWo), static_cast<int>(K), 1.0f, w.data(),
                        static_cast<int>(K), 0, col.data(), static_cast<int>(HoWo), static_cast<long long>(per_item), 0.0f,
                        out.data() + b0 * Cout * HoWo, static_cast<int>(HoWo), static_cast<long long>(Cout * HoWo),
                        static_cast<int>(nb));
    }
  }
  if (bias.size()) cuda_detail::add_bias_per_channel(out.data(), bias.data(), B, Cout, HoWo);
  return out;
}

/// out += conv2d(x, w, bias, stride, padding); 1x1 stride-1 convolutions accumulate in the GEMM.
template <class T>
void conv2d_add_(Cuda, const Tensor<T, 4, Cuda>& x, const Tensor<T, 4, Cuda>& w, const Tensor<T, 1, Cuda>& bias,
                 int stride, int padding, Tensor<T, 4, Cuda>& out) {
  if (w.shape(2) == 1 && w.shape(3) == 1 && stride == 1 && padding == 0) {
    const std::size_t HW = x.shape(2) * x.shape(3);
    cuda_detail::pointwise_conv(x.data(), x.shape(0), x.shape(1), HW, w.data(), w.shape(0), out.data(), 1.0f);
    if (bias.size()) cuda_detail::add_bias_per_channel(out.data(), bias.data(), x.shape(0), w.shape(0), HW);
    return;
  }
  const auto y = conv2d(Cuda{}, x, w, bias, stride, padding);
  add_(Cuda{}, out, y);
}

/// ConvTranspose2d (no output_padding, dilation 1). x (B, Cin, H, W), w (Cin, Cout, k, k).
template <class T>
Tensor<T, 4, Cuda> conv_transpose2d(Cuda, const Tensor<T, 4, Cuda>& x, const Tensor<T, 4, Cuda>& w,
                                    const Tensor<T, 1, Cuda>& bias, int stride, int padding) {
  static_assert(std::is_same<T, float>::value, "the Cuda device computes in float32");
  const int B = static_cast<int>(x.shape(0)), Cin = static_cast<int>(x.shape(1));
  const int H = static_cast<int>(x.shape(2)), W = static_cast<int>(x.shape(3));
  const int Cout = static_cast<int>(w.shape(1)), KH = static_cast<int>(w.shape(2)), KW = static_cast<int>(w.shape(3));
  const int Ho = (H - 1) * stride - 2 * padding + KH, Wo = (W - 1) * stride - 2 * padding + KW;
  Tensor<T, 4, Cuda> out({static_cast<std::size_t>(B), static_cast<std::size_t>(Cout), static_cast<std::size_t>(std::max(Ho, 0)),
                          static_cast<std::size_t>(std::max(Wo, 0))});
  if (Ho <= 0 || Wo <= 0 || B == 0 || Cout == 0) return out;
  const std::size_t HW = static_cast<std::size_t>(H) * W, CKK = static_cast<std::size_t>(Cout) * KH * KW;
  const std::size_t per_item = CKK * HW;
  const std::size_t chunk = std::max<std::size_t>(1, std::min<std::size_t>(B, cuda_detail::kIm2colBytes / sizeof(float) / std::max<std::size_t>(1, per_item)));
  auto col = cuda_detail::scratch<float>(chunk * per_item);
  const std::size_t HoWo = static_cast<std::size_t>(Ho) * Wo;
  for (std::size_t b0 = 0; b0 < static_cast<std::size_t>(B); b0 += chunk) {
    const std::size_t nb = std::min<std::size_t>(chunk, B - b0);
    // col (CKK x HW) = w^T (CKK x Cin) x_b (Cin x HW); w is stored Cin x CKK.
    cuda_detail::gemm(true, false, static_cast<int>(CKK), static_cast<int>(HW), Cin, 1.0f, w.data(),
                      static_cast<int>(CKK), 0, x.data() + b0 * Cin * HW, static_cast<int>(HW),
                      static_cast<long long>(Cin * HW), 0.0f, col.data(), static_cast<int>(HW),
                      static_cast<long long>(per_item), static_cast<int>(nb));
    cuda_detail::launch("col2im_transpose_kernel", cuda_detail::col2im_transpose_kernel<>,
                        dim3(cuda_detail::blocks_for(static_cast<cuda_detail::index_t>(HoWo), cuda_detail::kThreads, 64),
                             static_cast<unsigned>(Cout), static_cast<unsigned>(nb)),
                        dim3(cuda_detail::kThreads), 0, col.data(), bias.size() ? bias.data() : nullptr,
                        out.data() + b0 * Cout * HoWo, Cout, H, W, KH, KW, stride, padding, Ho, Wo);
  }
  return out;
}

/// Grad-TTS LinearAttention block, to_out(linear_attention(to_qkv(x))), with the CPU op's algebra
/// (ops/cpu/ops.hpp, linear_attention_block): per batch item, k~ = softmax_n(W_k x),
/// P = k~ x^T, context_h = P_h W_v,h^T, G_h = context_h^T W_q,h, Mix = W_out G, y = Mix x + b.
/// Every product is one strided-batched GEMM over the batch (the per-head ones loop over heads).
template <class T>
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
  cuda_detail::softmax_rows(k.data(), static_cast<std::size_t>(B) * hidden, N);
  // P (hidden x C) = k~ (hidden x N) x_b^T (N x C).
  cuda_detail::gemm(false, true, hidden, C, n, 1.0f, k.data(), n, static_cast<long long>(hidden) * n, x.data(), n, sx,
                    0.0f, P.data(), C, static_cast<long long>(hidden) * C, B);
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
