#pragma once
// The Cuda device's ops on half-precision tensors (db::bf16, db::f16), the counterpart of the
// CPU's ops/cpu/half_ops.hpp and under the same contract (core/half.hpp): storage in half,
// arithmetic, accumulation and statistics in float32, one rounding per stored result.
//
//   Linear          cublasGemmEx on the half operands as they are (CUDA_R_16BF / CUDA_R_16F
//                   inputs, CUBLAS_COMPUTE_32F: tensor cores, float32 accumulation) into a
//                   float32 result, then bias and one rounding in one element-wise pass.
//   everything else widens its half operands to float32 on the device, runs the float32 kernel
//                   (cuDNN / the GEMM path, the fused GroupNorm epilogues, LayerNorm, the
//                   attention kernels, LinearAttention's GEMM chain) and rounds its result once.
//                   A fusion (GroupNorm + Mish + mask, AdaGroupNorm + SiLU, the whole
//                   LinearAttention block) rounds once for the whole fusion.
//
// Conversions: ops::cast on the Cuda device is the device-generic one (ops/generic/), a
// grid-stride kernel whose per-element conversion is core/half.hpp's, compiled for the device
// with CUDA's cvt.rn intrinsics (same bits as the host). Element-wise and layout ops are the
// generic ones too, computing each element in compute_t<T> = float; the transposes move bits.
//
// The constraints' template parameters are named (`Enable`): nvcc rejects an extended __device__
// lambda in a function template with an unnamed template parameter.
//
// Status: compiled, not yet run on a GPU (see docs/cuda.md).
#include <cstddef>
#include <type_traits>

#include "diffblocks/ops/cuda/attention.cuh"
#include "diffblocks/ops/cuda/conv.cuh"
#include "diffblocks/ops/cuda/gemm.cuh"
#include "diffblocks/ops/cuda/norm.cuh"
#include "diffblocks/ops/generic/elementwise.hpp"

namespace diffblocks {
namespace ops {

namespace half_detail {
/// x as float32 on the device (exact).
template <class H, std::size_t N, IfHalf<H> Enable = 0>
Tensor<float, N, Cuda> widen(const Tensor<H, N, Cuda>& x) {
  return ops::cast<float>(Cuda{}, x);
}
/// x rounded to H (nearest even).
template <class H, std::size_t N, IfHalf<H> Enable = 0>
Tensor<H, N, Cuda> narrow(const Tensor<float, N, Cuda>& x) {
  return ops::cast<H>(Cuda{}, x);
}
/// y (half) = x (float32), in place of y's values (same shape).
template <class H, std::size_t N, IfHalf<H> Enable = 0>
void narrow_into(const Tensor<float, N, Cuda>& x, Tensor<H, N, Cuda>& y) {
  for_each_index(Cuda{}, y.size(), generic::Cast<float, H>{x.data(), y.data()});
}
}  // namespace half_detail

namespace cuda_detail {

template <class H>
constexpr cudaDataType_t blas_half_type() {
  return std::is_same<H, bf16>::value ? CUDA_R_16BF : CUDA_R_16F;
}

/// Row-major C (M x N, float32) = op(A) op(B) with A and B in half type H, products and sums in
/// float32 (cublasGemmEx, CUBLAS_COMPUTE_32F). Operands as in gemm() (gemm.cuh), no batch.
template <class H>
void gemm_half(bool transA, bool transB, int M, int N, int K, const H* A, int lda, const H* B, int ldb, float* C,
               int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // an empty sum
    for_each(static_cast<index_t>(M) * N, [=] __device__(index_t i) { C[(i / N) * ldc + i % N] = 0.0f; });
    return;
  }
  // The column-major call of gemm(): cuBLAS's A is our B and its B our A (row_major_call).
  const BlasCall c = row_major_call(transA, transB, M, N, K, nullptr, lda, 0, nullptr, ldb, 0, C, ldc, 0);
  const float alpha = 1.0f, beta = 0.0f;
  DIFFBLOCKS_CUDA_CHECK(cublasGemmEx(cuda::blas(), c.opA, c.opB, c.m, c.n, c.k, &alpha, B, blas_half_type<H>(), c.lda, A,
                                     blas_half_type<H>(), c.ldb, &beta, C, CUDA_R_32F, c.ldc, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT));
}

}  // namespace cuda_detail

// ---- convolutions and linear layers ----------------------------------------------------------

template <class H, IfHalf<H> Enable = 0>
Tensor<H, 4, Cuda> conv2d(Cuda dev, const Tensor<H, 4, Cuda>& x, const Tensor<H, 4, Cuda>& w,
                          const Tensor<H, 1, Cuda>& bias, int stride, int padding) {
  using namespace half_detail;
  return narrow<H>(ops::conv2d(dev, widen(x), widen(w), widen(bias), stride, padding));
}
/// out += conv2d(x): the sum formed in float32 and rounded once.
template <class H, IfHalf<H> Enable = 0>
void conv2d_add_(Cuda dev, const Tensor<H, 4, Cuda>& x, const Tensor<H, 4, Cuda>& w, const Tensor<H, 1, Cuda>& bias,
                 int stride, int padding, Tensor<H, 4, Cuda>& out) {
  using namespace half_detail;
  auto acc = widen(out);
  ops::conv2d_add_(dev, widen(x), widen(w), widen(bias), stride, padding, acc);
  narrow_into(acc, out);
}
template <class H, IfHalf<H> Enable = 0>
Tensor<H, 4, Cuda> conv_transpose2d(Cuda dev, const Tensor<H, 4, Cuda>& x, const Tensor<H, 4, Cuda>& w,
                                    const Tensor<H, 1, Cuda>& bias, int stride, int padding) {
  using namespace half_detail;
  return narrow<H>(ops::conv_transpose2d(dev, widen(x), widen(w), widen(bias), stride, padding));
}

/// y (..., out) = x (..., in) W^T + b: the product on the half operands (cublasGemmEx, float32
/// accumulation), the bias added in float32, one rounding.
template <class H, std::size_t N, IfHalf<H> Enable = 0>
Tensor<H, N, Cuda> linear(Cuda, const Tensor<H, N, Cuda>& x, const Tensor<H, 2, Cuda>& w, const Tensor<H, 1, Cuda>& bias) {
  static_assert(N >= 2, "linear: x is (rows..., in)");
  const std::size_t B = leading_rows(x.shape()), in = x.shape(N - 1), out = w.shape(0);
  Tensor<H, N, Cuda> y(with_last(x.shape(), out));
  if (y.size() == 0) return y;
  auto acc = cuda_detail::scratch<float>(B * out);
  cuda_detail::gemm_half(false, true, static_cast<int>(B), static_cast<int>(out), static_cast<int>(in), x.data(),
                         static_cast<int>(in), w.data(), static_cast<int>(in), acc.data(), static_cast<int>(out));
  const float* a = acc.data();
  const H* bv = bias.size() ? bias.data() : nullptr;
  H* p = y.data();
  const cuda_detail::index_t O = static_cast<cuda_detail::index_t>(out);
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(B), O,
                              [=] __device__(cuda_detail::index_t r, cuda_detail::index_t o) {
                                float v = a[r * O + o];
                                if (bv) v += static_cast<float>(bv[o]);
                                p[r * O + o] = H(v);
                              });
  return y;
}

/// Grad-TTS LinearAttention block, wholly in float32 from the half input and weights (its inner
/// products, softmax and context never round to half; only the block's output does).
template <class H, IfHalf<H> Enable = 0>
Tensor<H, 4, Cuda> linear_attention_block(Cuda dev, const Tensor<H, 4, Cuda>& x, const Tensor<H, 4, Cuda>& w_qkv,
                                          const Tensor<H, 4, Cuda>& w_out, const Tensor<H, 1, Cuda>& b_out, int heads,
                                          int dim_head) {
  using namespace half_detail;
  return narrow<H>(ops::linear_attention_block(dev, widen(x), widen(w_qkv), widen(w_out), widen(b_out), heads, dim_head));
}

// ---- normalisations and their fusions ----------------------------------------------------------

template <class H, IfHalf<H> Enable = 0>
Tensor<H, 4, Cuda> group_norm(Cuda dev, const Tensor<H, 4, Cuda>& x, int groups, const Tensor<H, 1, Cuda>& gamma,
                              const Tensor<H, 1, Cuda>& beta, double eps) {
  using namespace half_detail;
  return narrow<H>(ops::group_norm(dev, widen(x), groups, widen(gamma), widen(beta), eps));
}
template <class H, IfHalf<H> Enable = 0>
void group_norm_mish_mask_(Cuda dev, Tensor<H, 4, Cuda>& x, int groups, const Tensor<H, 1, Cuda>& gamma,
                           const Tensor<H, 1, Cuda>& beta, double eps, const Tensor<H, 4, Cuda>& mask) {
  using namespace half_detail;
  auto xf = widen(x);
  ops::group_norm_mish_mask_(dev, xf, groups, widen(gamma), widen(beta), eps, widen(mask));
  narrow_into(xf, x);
}
template <class H, IfHalf<H> Enable = 0>
void group_norm_mish_mask_bias_mask_(Cuda dev, Tensor<H, 4, Cuda>& x, int groups, const Tensor<H, 1, Cuda>& gamma,
                                     const Tensor<H, 1, Cuda>& beta, double eps, const Tensor<H, 4, Cuda>& mask,
                                     const Tensor<H, 2, Cuda>& bias) {
  using namespace half_detail;
  auto xf = widen(x);
  ops::group_norm_mish_mask_bias_mask_(dev, xf, groups, widen(gamma), widen(beta), eps, widen(mask), widen(bias));
  narrow_into(xf, x);
}
template <class H, IfHalf<H> Enable = 0>
Tensor<H, 4, Cuda> group_norm_silu(Cuda dev, const Tensor<H, 4, Cuda>& x, int groups, const Tensor<H, 1, Cuda>& gamma,
                                   const Tensor<H, 1, Cuda>& beta, double eps) {
  using namespace half_detail;
  return narrow<H>(ops::group_norm_silu(dev, widen(x), groups, widen(gamma), widen(beta), eps));
}
template <class H, IfHalf<H> Enable = 0>
Tensor<H, 4, Cuda> ada_group_norm_silu(Cuda dev, const Tensor<H, 4, Cuda>& x, int groups, const Tensor<H, 2, Cuda>& ss,
                                       double eps) {
  using namespace half_detail;
  return narrow<H>(ops::ada_group_norm_silu(dev, widen(x), groups, widen(ss), eps));
}
template <class H, std::size_t N, IfHalf<H> Enable = 0>
Tensor<H, N, Cuda> layer_norm(Cuda dev, const Tensor<H, N, Cuda>& x, const Tensor<H, 1, Cuda>& gamma,
                              const Tensor<H, 1, Cuda>& beta, double eps) {
  using namespace half_detail;
  return narrow<H>(ops::layer_norm(dev, widen(x), widen(gamma), widen(beta), eps));
}

// ---- attention: scores, softmax and the weighted sum in float32, the output rounded once ---------

template <class H, IfHalf<H> Enable = 0>
Tensor<H, 3, Cuda> attention_naive(Cuda dev, const Tensor<H, 3, Cuda>& q, const Tensor<H, 3, Cuda>& k,
                                   const Tensor<H, 3, Cuda>& v, int heads, float scale, const Tensor<H, 2, Cuda>& bias) {
  using namespace half_detail;
  return narrow<H>(ops::attention_naive(dev, widen(q), widen(k), widen(v), heads, scale, widen(bias)));
}
template <class H, IfHalf<H> Enable = 0>
Tensor<H, 3, Cuda> attention_streaming(Cuda dev, const Tensor<H, 3, Cuda>& q, const Tensor<H, 3, Cuda>& k,
                                       const Tensor<H, 3, Cuda>& v, int heads, float scale, const Tensor<H, 2, Cuda>& bias) {
  using namespace half_detail;
  return narrow<H>(ops::attention_streaming(dev, widen(q), widen(k), widen(v), heads, scale, widen(bias)));
}
template <class H, IfHalf<H> Enable = 0>
Tensor<H, 3, Cuda> attention_tiled(Cuda dev, const Tensor<H, 3, Cuda>& q, const Tensor<H, 3, Cuda>& k,
                                   const Tensor<H, 3, Cuda>& v, int heads, float scale, const Tensor<H, 2, Cuda>& bias) {
  using namespace half_detail;
  return narrow<H>(ops::attention_tiled(dev, widen(q), widen(k), widen(v), heads, scale, widen(bias)));
}
/// By the device's algorithm setting, as for float32.
template <class H, IfHalf<H> Enable = 0>
Tensor<H, 3, Cuda> attention(Cuda dev, const Tensor<H, 3, Cuda>& q, const Tensor<H, 3, Cuda>& k,
                             const Tensor<H, 3, Cuda>& v, int heads, float scale, const Tensor<H, 2, Cuda>& bias) {
  using namespace half_detail;
  return narrow<H>(ops::attention(dev, widen(q), widen(k), widen(v), heads, scale, widen(bias)));
}

}  // namespace ops
}  // namespace diffblocks
