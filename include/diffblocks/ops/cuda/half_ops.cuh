#pragma once
// The Cuda device's ops on half-precision tensors (db::bf16, db::f16), the counterpart of the
// CPU's ops/cpu/half_ops.hpp and under the same contract (core/half.hpp): storage in half,
// arithmetic, accumulation and statistics in float32, one rounding per stored result.
//
//   Linear, 1x1 stride-1 Conv2d (and conv2d_add_), and every convolution on the Gemm path
//                   (ConvBackend::Gemm, or Auto without cuDNN): cublasGemmEx /
//                   cublasGemmStridedBatchedEx on the half operands as they are (CUDA_R_16BF /
//                   CUDA_R_16F inputs, CUBLAS_COMPUTE_32F: tensor cores, float32 accumulation;
//                   im2col moves the 16-bit values) into a float32 result, then bias (and an
//                   added output) and one rounding in one element-wise pass.
//   everything else widens its half operands to float32 on the device, runs the float32 kernel
//                   (cuDNN's convolutions, the fused GroupNorm epilogues, LayerNorm, the
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

/// Row-major C (M x N, float32) = op(A) op(B) + beta C with A and B in half type H, products and
/// sums in float32 (cublasGemmStridedBatchedEx, CUBLAS_COMPUTE_32F), `batch` times with element
/// strides sA, sB, sC (0 = shared). Operands as in gemm() (gemm.cuh).
template <class H>
void gemm_half(bool transA, bool transB, int M, int N, int K, const H* A, int lda, long long sA, const H* B, int ldb,
               long long sB, float beta, float* C, int ldc, long long sC, int batch = 1) {
  if (M <= 0 || N <= 0 || batch <= 0) return;
  if (K <= 0) return scale_empty_product(batch, M, N, beta, C, ldc, sC);
  // The column-major call of gemm(): cuBLAS's A is our B and its B our A (row_major_call).
  const BlasCall c = row_major_call(transA, transB, M, N, K, nullptr, lda, sA, nullptr, ldb, sB, C, ldc, sC);
  const float alpha = 1.0f;
  const cudaDataType_t t = blas_half_type<H>();
  if (batch == 1)
    DIFFBLOCKS_CUDA_CHECK(cublasGemmEx(cuda::blas(), c.opA, c.opB, c.m, c.n, c.k, &alpha, B, t, c.lda, A, t, c.ldb, &beta,
                                       C, CUDA_R_32F, c.ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  else
    DIFFBLOCKS_CUDA_CHECK(cublasGemmStridedBatchedEx(cuda::blas(), c.opA, c.opB, c.m, c.n, c.k, &alpha, B, t, c.lda,
                                                     c.strideA, A, t, c.ldb, c.strideB, &beta, C, CUDA_R_32F, c.ldc,
                                                     c.strideC, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/// out (B, C, n) = round(acc + bias[c]) (bias may be null): a float32 result's one rounding.
template <class H>
void add_bias_round(const float* acc, const H* bias, H* out, std::size_t B, std::size_t C, std::size_t n) {
  const index_t Ci = static_cast<index_t>(C), ni = static_cast<index_t>(n);
  for_each_plane(static_cast<index_t>(B * C), ni, [=] __device__(index_t bc, index_t j) {
    float v = acc[bc * ni + j];
    if (bias) v += static_cast<float>(bias[bc % Ci]);
    out[bc * ni + j] = H(v);
  });
}

/// Whether a convolution is a 1x1 stride-1 unpadded one (one GEMM on the input as it is).
inline bool pointwise(const std::array<std::size_t, 4>& w, int stride, int padding) {
  return w[2] == 1 && w[3] == 1 && stride == 1 && padding == 0;
}

/// acc (B, Cout, HW) (=, or += with beta 1) w (Cout x Cin) x_b (Cin x HW) on the half operands.
template <class H>
void pointwise_conv_half(const H* x, std::size_t B, std::size_t Cin, std::size_t HW, const H* w, std::size_t Cout,
                         float* acc, float beta) {
  gemm_half(false, false, static_cast<int>(Cout), static_cast<int>(HW), static_cast<int>(Cin), w, static_cast<int>(Cin),
            0, x, static_cast<int>(HW), static_cast<long long>(Cin * HW), beta, acc, static_cast<int>(HW),
            static_cast<long long>(Cout * HW), static_cast<int>(B));
}

/// Whether a half convolution (not 1x1) runs on the half GEMM path below rather than widened on
/// cuDNN: under ConvBackend::Gemm, and under Auto where cuDNN is missing or cannot describe the
/// shape (ConvBackend::Cudnn widens: cuDNN's float32 kernels, or its error when it is missing).
inline bool half_conv_on_gemm(const ConvGeometry& g) {
  const cuda::ConvBackend b = cuda::conv_backend();
  if (b == cuda::ConvBackend::Gemm) return true;
  if (b == cuda::ConvBackend::Cudnn) return false;
#if DIFFBLOCKS_HAS_CUDNN
  return !cuda::cudnn::available() || !cudnn_describable(g);
#else
  (void)g;
  return true;
#endif
}

/// y (float32) = conv(x, w) without bias on the half operands (beta 1 adds to y): conv2d_gemm's
/// im2col + batched GEMM, the column matrix in half (the im2col moves the 16-bit values) and the
/// products on cublasGemmStridedBatchedEx with float32 accumulation.
template <class H>
void conv2d_gemm_half(const H* x, const H* w, float* y, const ConvGeometry& g, float beta) {
  const std::size_t HoWo = static_cast<std::size_t>(g.P()) * g.Q(), HW = static_cast<std::size_t>(g.H) * g.W;
  const std::size_t K = static_cast<std::size_t>(g.C) * g.R * g.S, per_item = K * HoWo;
  const std::size_t chunk = std::max<std::size_t>(
      1, std::min<std::size_t>(g.N, kIm2colBytes / sizeof(H) / std::max<std::size_t>(1, per_item)));
  auto col = scratch<H>(chunk * per_item);
  for (std::size_t b0 = 0; b0 < static_cast<std::size_t>(g.N); b0 += chunk) {
    const std::size_t nb = std::min<std::size_t>(chunk, g.N - b0);
    launch("im2col_kernel", im2col_kernel<std::uint16_t>,
           dim3(blocks_for(static_cast<index_t>(HoWo), kThreads, 64), static_cast<unsigned>(K), static_cast<unsigned>(nb)),
           dim3(kThreads), 0, reinterpret_cast<const std::uint16_t*>(x + b0 * g.C * HW),
           reinterpret_cast<std::uint16_t*>(col.data()), g.C, g.H, g.W, g.R, g.S, g.stride, g.padding, g.P(), g.Q());
    gemm_half(false, false, g.K, static_cast<int>(HoWo), static_cast<int>(K), w, static_cast<int>(K), 0,
              static_cast<const H*>(col.data()), static_cast<int>(HoWo), static_cast<long long>(per_item), beta,
              y + b0 * g.K * HoWo, static_cast<int>(HoWo), static_cast<long long>(g.K * HoWo), static_cast<int>(nb));
  }
}

/// out (float32, N, C, H, W) = conv_transpose(dy (N, K, P, Q), w (K, C, R, S)) without bias, on
/// the half operands: conv_transpose2d_gemm's GEMM to float32 columns (half inputs, float32
/// accumulation), then its col2im gather.
template <class H>
void conv_transpose2d_gemm_half(const H* dy, const H* w, float* out, const ConvGeometry& g) {
  const int Hin = g.P(), Win = g.Q();
  const std::size_t HW = static_cast<std::size_t>(Hin) * Win, CKK = static_cast<std::size_t>(g.C) * g.R * g.S;
  const std::size_t per_item = CKK * HW, HoWo = static_cast<std::size_t>(g.H) * g.W;
  const std::size_t chunk = std::max<std::size_t>(
      1, std::min<std::size_t>(g.N, kIm2colBytes / sizeof(float) / std::max<std::size_t>(1, per_item)));
  auto col = scratch<float>(chunk * per_item);
  for (std::size_t b0 = 0; b0 < static_cast<std::size_t>(g.N); b0 += chunk) {
    const std::size_t nb = std::min<std::size_t>(chunk, g.N - b0);
    // col (CKK x HW) = w^T (CKK x K) dy_b (K x HW); w is stored K x CKK.
    gemm_half(true, false, static_cast<int>(CKK), static_cast<int>(HW), g.K, w, static_cast<int>(CKK), 0,
              dy + b0 * g.K * HW, static_cast<int>(HW), static_cast<long long>(g.K * HW), 0.0f, col.data(),
              static_cast<int>(HW), static_cast<long long>(per_item), static_cast<int>(nb));
    launch("col2im_transpose_kernel", col2im_transpose_kernel<>,
           dim3(blocks_for(static_cast<index_t>(HoWo), kThreads, 64), static_cast<unsigned>(g.C), static_cast<unsigned>(nb)),
           dim3(kThreads), 0, static_cast<const float*>(col.data()), static_cast<const float*>(nullptr),
           out + b0 * g.C * HoWo, g.C, Hin, Win, g.R, g.S, g.stride, g.padding, g.H, g.W);
  }
}

}  // namespace cuda_detail

// ---- convolutions and linear layers ----------------------------------------------------------

/// Conv2d: on the half operands where a GEMM runs it (1x1 stride-1 convolutions always: one
/// half GEMM, as Linear; the others on the Gemm path, see half_conv_on_gemm), else widened onto
/// cuDNN's float32 kernels; float32 accumulation and one rounding (with the bias) either way.
template <class H, IfHalf<H> Enable = 0>
Tensor<H, 4, Cuda> conv2d(Cuda dev, const Tensor<H, 4, Cuda>& x, const Tensor<H, 4, Cuda>& w,
                          const Tensor<H, 1, Cuda>& bias, int stride, int padding) {
  using namespace half_detail;
  const cuda_detail::ConvGeometry g = cuda_detail::conv_geometry(x.shape(), w.shape(), stride, padding);
  const bool pointwise = cuda_detail::pointwise(w.shape(), stride, padding);
  if (!pointwise && !cuda_detail::half_conv_on_gemm(g))
    return narrow<H>(ops::conv2d(dev, widen(x), widen(w), widen(bias), stride, padding));
  const int Ho = g.P(), Wo = g.Q();
  Tensor<H, 4, Cuda> out({x.shape(0), w.shape(0), static_cast<std::size_t>(std::max(Ho, 0)),
                          static_cast<std::size_t>(std::max(Wo, 0))});
  if (out.size() == 0) return out;
  const std::size_t B = x.shape(0), Cout = w.shape(0), HoWo = static_cast<std::size_t>(Ho) * Wo;
  auto acc = cuda_detail::scratch<float>(out.size());
  if (pointwise)
    cuda_detail::pointwise_conv_half(x.data(), B, x.shape(1), HoWo, w.data(), Cout, acc.data(), 0.0f);
  else
    cuda_detail::conv2d_gemm_half(x.data(), w.data(), acc.data(), g, 0.0f);
  cuda_detail::add_bias_round(acc.data(), bias.size() ? bias.data() : nullptr, out.data(), B, Cout, HoWo);
  return out;
}
/// out += conv2d(x): the sum formed in float32 (the half GEMMs add into the widened out) and
/// rounded once.
template <class H, IfHalf<H> Enable = 0>
void conv2d_add_(Cuda dev, const Tensor<H, 4, Cuda>& x, const Tensor<H, 4, Cuda>& w, const Tensor<H, 1, Cuda>& bias,
                 int stride, int padding, Tensor<H, 4, Cuda>& out) {
  using namespace half_detail;
  if (out.size() == 0) return;
  auto acc = widen(out);
  const cuda_detail::ConvGeometry g = cuda_detail::conv_geometry(x.shape(), w.shape(), stride, padding);
  const bool pointwise = cuda_detail::pointwise(w.shape(), stride, padding);
  if (!pointwise && !cuda_detail::half_conv_on_gemm(g)) {
    ops::conv2d_add_(dev, widen(x), widen(w), widen(bias), stride, padding, acc);
    narrow_into(acc, out);
    return;
  }
  const std::size_t B = x.shape(0), Cout = w.shape(0), HoWo = static_cast<std::size_t>(g.P()) * g.Q();
  if (pointwise)
    cuda_detail::pointwise_conv_half(x.data(), B, x.shape(1), HoWo, w.data(), Cout, acc.data(), 1.0f);
  else
    cuda_detail::conv2d_gemm_half(x.data(), w.data(), acc.data(), g, 1.0f);
  cuda_detail::add_bias_round(acc.data(), bias.size() ? bias.data() : nullptr, out.data(), B, Cout, HoWo);
}
/// ConvTranspose2d: on the Gemm path (see half_conv_on_gemm) a half GEMM to float32 columns and
/// the gather, else widened onto cuDNN; one rounding with the bias.
template <class H, IfHalf<H> Enable = 0>
Tensor<H, 4, Cuda> conv_transpose2d(Cuda dev, const Tensor<H, 4, Cuda>& x, const Tensor<H, 4, Cuda>& w,
                                    const Tensor<H, 1, Cuda>& bias, int stride, int padding) {
  using namespace half_detail;
  const int H_ = static_cast<int>(x.shape(2)), W_ = static_cast<int>(x.shape(3)), KH = static_cast<int>(w.shape(2)),
            KW = static_cast<int>(w.shape(3));
  const int Ho = (H_ - 1) * stride - 2 * padding + KH, Wo = (W_ - 1) * stride - 2 * padding + KW;
  // The data gradient of the forward convolution out (B, Cout, Ho, Wo) -> x (B, Cin, H, W).
  const cuda_detail::ConvGeometry g{int(x.shape(0)), int(w.shape(1)), Ho, Wo, int(w.shape(0)), KH, KW, stride, padding};
  if (!cuda_detail::half_conv_on_gemm(g))
    return narrow<H>(ops::conv_transpose2d(dev, widen(x), widen(w), widen(bias), stride, padding));
  Tensor<H, 4, Cuda> out({x.shape(0), w.shape(1), static_cast<std::size_t>(std::max(Ho, 0)),
                          static_cast<std::size_t>(std::max(Wo, 0))});
  if (out.size() == 0) return out;
  auto acc = cuda_detail::scratch<float>(out.size());
  cuda_detail::conv_transpose2d_gemm_half(x.data(), w.data(), acc.data(), g);
  cuda_detail::add_bias_round(acc.data(), bias.size() ? bias.data() : nullptr, out.data(), out.shape(0), out.shape(1),
                              static_cast<std::size_t>(Ho) * Wo);
  return out;
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
                         static_cast<int>(in), 0, w.data(), static_cast<int>(in), 0, 0.0f, acc.data(),
                         static_cast<int>(out), 0);
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
