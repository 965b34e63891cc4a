#pragma once
// Convolutions on the Cuda device: Conv2d, Conv2d accumulated into an output, ConvTranspose2d.
//
// Two paths, chosen by cuda::set_conv_backend:
//   Gemm   the library's own: 1x1 stride-1 convolutions are one batched SGEMM on the input as
//          it is; other shapes im2col (a (Cin k k) x (Ho Wo) column matrix per batch item, items
//          in chunks of at most kIm2colBytes) + a batched SGEMM; ConvTranspose2d a GEMM to
//          (Cout k k) x (H W) columns, then a gather (col2im: each output pixel sums the taps
//          that reach it; no atomics). The reference the cuDNN path is tested against.
//   Cudnn  cuDNN's kernels (core/cuda/cudnn.hpp; opened at run time).
//   Auto   (default) cuDNN when it is available, else Gemm.
//
// Under Auto, 1x1 stride-1 convolutions stay on the Gemm path (one cuBLAS GEMM; faster than
// cuDNN's choice on an H200). Plans: for each (direction, shape, stride, padding, math mode,
// device) the fastest cuDNN algorithm is measured once with cudnnFind*AlgorithmEx (as PyTorch's
// cudnn.benchmark does) and kept for the process, so the first call of a shape takes a few
// milliseconds more. Only deterministic algorithms qualify (a forward gives the same bits
// every time, as the Gemm path does); in MathMode::F32 only CUDNN_FMA_MATH kernels (no TF32:
// the float32 accuracy contract), MathMode::TF32 admits tensor-core kernels. A shape no qualifying algorithm runs, one whose
// tensors pass 2^31 elements (cuDNN's 4-d descriptors take int), and a call inside a CUDA graph
// capture that has no plan yet (measuring cannot be captured) run on the Gemm path.
#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <type_traits>

#include "diffblocks/core/cuda/cudnn.hpp"
#include "diffblocks/ops/cuda/gemm.cuh"

namespace diffblocks {
namespace cuda {

/// Which implementation runs the convolutions (see ops/cuda/conv.cuh).
enum class ConvBackend { Auto, Cudnn, Gemm };

namespace detail {
inline std::atomic<ConvBackend>& conv_backend_setting() {
  static std::atomic<ConvBackend> b{ConvBackend::Auto};
  return b;
}
}  // namespace detail

inline void set_conv_backend(ConvBackend b) { detail::conv_backend_setting().store(b); }
inline ConvBackend conv_backend() { return detail::conv_backend_setting().load(); }
inline const char* conv_backend_name(ConvBackend b) {
  return b == ConvBackend::Cudnn ? "cudnn" : b == ConvBackend::Gemm ? "gemm" : "auto";
}

/// Sets the convolution backend until the guard goes out of scope.
class ConvBackendGuard {
 public:
  explicit ConvBackendGuard(ConvBackend b) : previous_(conv_backend()) { set_conv_backend(b); }
  ~ConvBackendGuard() { set_conv_backend(previous_); }
  ConvBackendGuard(const ConvBackendGuard&) = delete;
  ConvBackendGuard& operator=(const ConvBackendGuard&) = delete;

 private:
  ConvBackend previous_;
};

}  // namespace cuda

namespace ops {
namespace cuda_detail {

constexpr std::size_t kIm2colBytes = std::size_t(256) << 20;

/// A convolution in its forward form: x (N, C, H, W) * w (K, C, R, S) -> y (N, K, P, Q).
/// ConvTranspose2d is the data gradient of one: its input is y, its output x.
struct ConvGeometry {
  int N, C, H, W, K, R, S, stride, padding;
  int P() const { return (H + 2 * padding - R) / stride + 1; }
  int Q() const { return (W + 2 * padding - S) / stride + 1; }
};

enum class ConvDirection { Forward, TransposeData };

// ---- the Gemm path ---------------------------------------------------------------------------------

/// col[b][(ci, ky, kx)][(oy, ox)] = x[b][ci][oy s - p + ky][ox s - p + kx] (0 outside the image)
/// for `nb` batch items: grid.z = item, grid.y = row of the column matrix, x over output pixels.
/// T: float, or std::uint16_t moving the bits of a half type (ops/cuda/half_ops.cuh).
template <class T = float>
__global__ void im2col_kernel(const T* x, T* col, int Cin, int H, int W, int KH, int KW, int stride,
                              int padding, int Ho, int Wo) {
  const index_t b = blockIdx.z, k = blockIdx.y, HoWo = static_cast<index_t>(Ho) * Wo;
  const int ci = static_cast<int>(k / (KH * KW)), ky = static_cast<int>((k / KW) % KH), kx = static_cast<int>(k % KW);
  const T* src = x + (b * Cin + ci) * static_cast<index_t>(H) * W;
  T* dst = col + (b * gridDim.y + k) * HoWo;
  for (index_t j = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x; j < HoWo;
       j += static_cast<index_t>(gridDim.x) * blockDim.x) {
    const int oy = static_cast<int>(j / Wo), ox = static_cast<int>(j % Wo);
    const int iy = oy * stride - padding + ky, ix = ox * stride - padding + kx;
    dst[j] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? src[static_cast<index_t>(iy) * W + ix] : T(0);
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

/// y = conv(x, w) without bias (the Gemm path); beta 1 adds to y instead of writing it.
inline void conv2d_gemm(const float* x, const float* w, float* y, const ConvGeometry& g, float beta) {
  const std::size_t HoWo = static_cast<std::size_t>(g.P()) * g.Q(), HW = static_cast<std::size_t>(g.H) * g.W;
  if (g.R == 1 && g.S == 1 && g.stride == 1 && g.padding == 0) {
    pointwise_conv(x, g.N, g.C, HW, w, g.K, y, beta);
    return;
  }
  const std::size_t K = static_cast<std::size_t>(g.C) * g.R * g.S, per_item = K * HoWo;
  const std::size_t chunk = std::max<std::size_t>(
      1, std::min<std::size_t>(g.N, kIm2colBytes / sizeof(float) / std::max<std::size_t>(1, per_item)));
  auto col = scratch<float>(chunk * per_item);
  for (std::size_t b0 = 0; b0 < static_cast<std::size_t>(g.N); b0 += chunk) {
    const std::size_t nb = std::min<std::size_t>(chunk, g.N - b0);
    launch("im2col_kernel", im2col_kernel<>,
           dim3(blocks_for(static_cast<index_t>(HoWo), kThreads, 64), static_cast<unsigned>(K), static_cast<unsigned>(nb)),
           dim3(kThreads), 0, x + b0 * g.C * HW, col.data(), g.C, g.H, g.W, g.R, g.S, g.stride, g.padding, g.P(), g.Q());
    gemm(false, false, g.K, static_cast<int>(HoWo), static_cast<int>(K), 1.0f, w, static_cast<int>(K), 0, col.data(),
         static_cast<int>(HoWo), static_cast<long long>(per_item), beta, y + b0 * g.K * HoWo, static_cast<int>(HoWo),
         static_cast<long long>(g.K * HoWo), static_cast<int>(nb));
  }
}

/// out (N, C, H, W) = conv_transpose(dy (N, K, P, Q), w (K, C, R, S)) + bias (the Gemm path).
inline void conv_transpose2d_gemm(const float* dy, const float* w, const float* bias, float* out, const ConvGeometry& g) {
  const int Hin = g.P(), Win = g.Q();
  const std::size_t HW = static_cast<std::size_t>(Hin) * Win, CKK = static_cast<std::size_t>(g.C) * g.R * g.S;
  const std::size_t per_item = CKK * HW, HoWo = static_cast<std::size_t>(g.H) * g.W;
  const std::size_t chunk = std::max<std::size_t>(
      1, std::min<std::size_t>(g.N, kIm2colBytes / sizeof(float) / std::max<std::size_t>(1, per_item)));
  auto col = scratch<float>(chunk * per_item);
  for (std::size_t b0 = 0; b0 < static_cast<std::size_t>(g.N); b0 += chunk) {
    const std::size_t nb = std::min<std::size_t>(chunk, g.N - b0);
    // col (CKK x HW) = w^T (CKK x K) dy_b (K x HW); w is stored K x CKK.
    gemm(true, false, static_cast<int>(CKK), static_cast<int>(HW), g.K, 1.0f, w, static_cast<int>(CKK), 0,
         dy + b0 * g.K * HW, static_cast<int>(HW), static_cast<long long>(g.K * HW), 0.0f, col.data(),
         static_cast<int>(HW), static_cast<long long>(per_item), static_cast<int>(nb));
    launch("col2im_transpose_kernel", col2im_transpose_kernel<>,
           dim3(blocks_for(static_cast<index_t>(HoWo), kThreads, 64), static_cast<unsigned>(g.C), static_cast<unsigned>(nb)),
           dim3(kThreads), 0, col.data(), bias, out + b0 * g.C * HoWo, g.C, Hin, Win, g.R, g.S, g.stride, g.padding, g.H,
           g.W);
  }
}

// ---- the cuDNN path ----------------------------------------------------------------------------------

#if DIFFBLOCKS_HAS_CUDNN

constexpr std::size_t kFindWorkspaceBytes = std::size_t(256) << 20;  // largest workspace an algorithm may use

struct CudnnConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  int algo = -1;  // -1: no qualifying algorithm; the Gemm path runs this shape
  std::size_t workspace = 0;
};

/// Whether cuDNN's 4-d descriptors (int sizes and strides) can describe the shape.
inline bool cudnn_describable(const ConvGeometry& g) {
  const long long lim = (1LL << 31) - 1;
  const long long x = 1LL * g.N * g.C * g.H * g.W, y = 1LL * g.N * g.K * g.P() * g.Q(), w = 1LL * g.K * g.C * g.R * g.S;
  return g.P() > 0 && g.Q() > 0 && x <= lim && y <= lim && w <= lim;
}

/// The remembered plan for this convolution, measuring it first (on the caller's x and w; the
/// outputs are written to scratch) unless the stream is being captured into a graph. Returns
/// nullptr when the Gemm path must run.
inline const CudnnConvPlan* cudnn_plan(ConvDirection dir, const ConvGeometry& g, const float* x_or_dy, const float* w) {
  using namespace cuda::cudnn;
  static std::mutex m;
  static auto* plans = new std::map<std::array<int, 12>, CudnnConvPlan>;  // immortal
  int dev = 0;
  DIFFBLOCKS_CUDA_CHECK(cudaGetDevice(&dev));
  const cuda::MathMode mode = cuda::math_mode();
  const std::array<int, 12> key{int(dir), g.N, g.C, g.H, g.W, g.K, g.R, g.S, g.stride, g.padding, int(mode), dev};
  std::lock_guard<std::mutex> lk(m);
  auto it = plans->find(key);
  if (it != plans->end()) return it->second.algo >= 0 ? &it->second : nullptr;
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  DIFFBLOCKS_CUDA_CHECK(cudaStreamIsCapturing(cuda::stream(), &capturing));
  if (capturing != cudaStreamCaptureStatusNone) return nullptr;

  const Api& a = api();
  CudnnConvPlan p;
  DIFFBLOCKS_CUDNN_CHECK(a.cudnnCreateTensorDescriptor(&p.x));
  DIFFBLOCKS_CUDNN_CHECK(a.cudnnCreateTensorDescriptor(&p.y));
  DIFFBLOCKS_CUDNN_CHECK(a.cudnnCreateFilterDescriptor(&p.w));
  DIFFBLOCKS_CUDNN_CHECK(a.cudnnCreateConvolutionDescriptor(&p.conv));
  DIFFBLOCKS_CUDNN_CHECK(a.cudnnSetTensor4dDescriptor(p.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, g.N, g.C, g.H, g.W));
  DIFFBLOCKS_CUDNN_CHECK(a.cudnnSetTensor4dDescriptor(p.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, g.N, g.K, g.P(), g.Q()));
  DIFFBLOCKS_CUDNN_CHECK(a.cudnnSetFilter4dDescriptor(p.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, g.K, g.C, g.R, g.S));
  // PyTorch's Conv2d is a cross-correlation, as is cuDNN's CUDNN_CROSS_CORRELATION mode.
  DIFFBLOCKS_CUDNN_CHECK(a.cudnnSetConvolution2dDescriptor(p.conv, g.padding, g.padding, g.stride, g.stride, 1, 1,
                                                           CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  const bool tf32 = mode == cuda::MathMode::TF32;
  DIFFBLOCKS_CUDNN_CHECK(a.cudnnSetConvolutionMathType(p.conv, tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));

  const std::size_t out_elems = dir == ConvDirection::Forward ? std::size_t(g.N) * g.K * g.P() * g.Q()
                                                              : std::size_t(g.N) * g.C * g.H * g.W;
  auto out = scratch<float>(out_elems);
  auto ws = scratch<unsigned char>(kFindWorkspaceBytes);
  cudnnHandle_t h = handle();
  // The fastest result (they come sorted) that is deterministic and, in F32, FMA-only.
  auto choose = [&](const auto* r, int n) {
    for (int i = 0; i < n; ++i)
      if (r[i].status == CUDNN_STATUS_SUCCESS && r[i].determinism == CUDNN_DETERMINISTIC &&
          (tf32 || r[i].mathType == CUDNN_FMA_MATH)) {
        p.algo = int(r[i].algo);
        p.workspace = r[i].memory;
        DIFFBLOCKS_CUDNN_CHECK(a.cudnnSetConvolutionMathType(p.conv, r[i].mathType));
        return;
      }
  };
  int n = 0;
  if (dir == ConvDirection::Forward) {
    cudnnConvolutionFwdAlgoPerf_t r[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    DIFFBLOCKS_CUDNN_CHECK(a.cudnnFindConvolutionForwardAlgorithmEx(h, p.x, x_or_dy, p.w, w, p.conv, p.y, out.data(),
                                                                    CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, r, ws.data(),
                                                                    kFindWorkspaceBytes));
    choose(r, n);
  } else {
    cudnnConvolutionBwdDataAlgoPerf_t r[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    DIFFBLOCKS_CUDNN_CHECK(a.cudnnFindConvolutionBackwardDataAlgorithmEx(h, p.w, w, p.y, x_or_dy, p.conv, p.x, out.data(),
                                                                         CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, r,
                                                                         ws.data(), kFindWorkspaceBytes));
    choose(r, n);
  }
  const CudnnConvPlan& stored = (*plans)[key] = p;
  return stored.algo >= 0 ? &stored : nullptr;
}

/// Runs the convolution on cuDNN: Forward y = conv(x) (+ beta y); TransposeData x = convT(y).
/// Returns false (nothing enqueued) when the Gemm path must run instead.
inline bool cudnn_conv(ConvDirection dir, const ConvGeometry& g, const float* in, const float* w, float* out, float beta) {
  const cuda::ConvBackend backend = cuda::conv_backend();
  if (backend == cuda::ConvBackend::Gemm) return false;
  if (!cuda::cudnn::available()) {
    if (backend == cuda::ConvBackend::Cudnn)
      throw CudaError("ConvBackend::Cudnn was asked for, but cuDNN is " + cuda::cudnn::status());
    return false;
  }
  if (!cudnn_describable(g)) return false;
  // 1x1 convolutions are one plain GEMM, and cuBLAS's is faster than what cuDNN finds for them
  // (H200, 16x64x80x512 -> 128: f32 0.55 vs 0.82 ms, tf32 0.38 vs 0.45 ms).
  if (backend == cuda::ConvBackend::Auto && dir == ConvDirection::Forward && g.R == 1 && g.S == 1 && g.stride == 1 &&
      g.padding == 0)
    return false;
  const CudnnConvPlan* p = cudnn_plan(dir, g, in, w);
  if (!p) return false;
  const auto& a = cuda::cudnn::api();
  auto ws = scratch<unsigned char>(p->workspace);
  const float alpha = 1.0f;
  cudnnHandle_t h = cuda::cudnn::handle();
  if (dir == ConvDirection::Forward)
    DIFFBLOCKS_CUDNN_CHECK(a.cudnnConvolutionForward(h, &alpha, p->x, in, p->w, w, p->conv,
                                                     static_cast<cudnnConvolutionFwdAlgo_t>(p->algo), ws.data(),
                                                     p->workspace, &beta, p->y, out));
  else
    DIFFBLOCKS_CUDNN_CHECK(a.cudnnConvolutionBackwardData(h, &alpha, p->w, w, p->y, in, p->conv,
                                                          static_cast<cudnnConvolutionBwdDataAlgo_t>(p->algo), ws.data(),
                                                          p->workspace, &beta, p->x, out));
  return true;
}

#else

inline bool cudnn_conv(ConvDirection, const ConvGeometry&, const float*, const float*, float*, float) {
  if (cuda::conv_backend() == cuda::ConvBackend::Cudnn)
    throw CudaError("ConvBackend::Cudnn was asked for, but cuDNN is " + cuda::cudnn::status());
  return false;
}

#endif

inline ConvGeometry conv_geometry(const std::array<std::size_t, 4>& x, const std::array<std::size_t, 4>& w, int stride,
                                  int padding) {
  return ConvGeometry{int(x[0]), int(x[1]), int(x[2]), int(x[3]), int(w[0]), int(w[2]), int(w[3]), stride, padding};
}

}  // namespace cuda_detail

/// Conv2d (cross-correlation, zero padding). x (B, Cin, H, W), w (Cout, Cin, k, k), bias (Cout) or empty.
template <class T, IfKernelScalar<T> Enable = 0>
Tensor<T, 4, Cuda> conv2d(Cuda, const Tensor<T, 4, Cuda>& x, const Tensor<T, 4, Cuda>& w, const Tensor<T, 1, Cuda>& bias,
                          int stride, int padding) {
  static_assert(std::is_same<T, float>::value, "the Cuda device computes in float32");
  const cuda_detail::ConvGeometry g = cuda_detail::conv_geometry(x.shape(), w.shape(), stride, padding);
  const int Ho = g.P(), Wo = g.Q();
  Tensor<T, 4, Cuda> out({x.shape(0), w.shape(0), static_cast<std::size_t>(std::max(Ho, 0)), static_cast<std::size_t>(std::max(Wo, 0))});
  if (out.size() == 0) return out;
  if (!cuda_detail::cudnn_conv(cuda_detail::ConvDirection::Forward, g, x.data(), w.data(), out.data(), 0.0f))
    cuda_detail::conv2d_gemm(x.data(), w.data(), out.data(), g, 0.0f);
  if (bias.size())
    cuda_detail::add_bias_per_channel(out.data(), bias.data(), x.shape(0), w.shape(0), static_cast<std::size_t>(Ho) * Wo);
  return out;
}

/// out += conv2d(x, w, bias, stride, padding), accumulated by the convolution itself.
template <class T, IfKernelScalar<T> Enable = 0>
void conv2d_add_(Cuda, const Tensor<T, 4, Cuda>& x, const Tensor<T, 4, Cuda>& w, const Tensor<T, 1, Cuda>& bias,
                 int stride, int padding, Tensor<T, 4, Cuda>& out) {
  static_assert(std::is_same<T, float>::value, "the Cuda device computes in float32");
  const cuda_detail::ConvGeometry g = cuda_detail::conv_geometry(x.shape(), w.shape(), stride, padding);
  if (out.size() == 0) return;
  if (!cuda_detail::cudnn_conv(cuda_detail::ConvDirection::Forward, g, x.data(), w.data(), out.data(), 1.0f))
    cuda_detail::conv2d_gemm(x.data(), w.data(), out.data(), g, 1.0f);
  if (bias.size())
    cuda_detail::add_bias_per_channel(out.data(), bias.data(), x.shape(0), w.shape(0),
                                      static_cast<std::size_t>(g.P()) * g.Q());
}

/// ConvTranspose2d (no output_padding, dilation 1). x (B, Cin, H, W), w (Cin, Cout, k, k).
template <class T, IfKernelScalar<T> Enable = 0>
Tensor<T, 4, Cuda> conv_transpose2d(Cuda, const Tensor<T, 4, Cuda>& x, const Tensor<T, 4, Cuda>& w,
                                    const Tensor<T, 1, Cuda>& bias, int stride, int padding) {
  static_assert(std::is_same<T, float>::value, "the Cuda device computes in float32");
  const int H = static_cast<int>(x.shape(2)), W = static_cast<int>(x.shape(3)), KH = static_cast<int>(w.shape(2)),
            KW = static_cast<int>(w.shape(3));
  const int Ho = (H - 1) * stride - 2 * padding + KH, Wo = (W - 1) * stride - 2 * padding + KW;
  Tensor<T, 4, Cuda> out({x.shape(0), w.shape(1), static_cast<std::size_t>(std::max(Ho, 0)), static_cast<std::size_t>(std::max(Wo, 0))});
  if (out.size() == 0) return out;
  // The data gradient of the forward convolution out (B, Cout, Ho, Wo) -> x (B, Cin, H, W).
  const cuda_detail::ConvGeometry g{int(x.shape(0)), int(w.shape(1)), Ho, Wo, int(w.shape(0)), KH, KW, stride, padding};
  if (cuda_detail::cudnn_conv(cuda_detail::ConvDirection::TransposeData, g, x.data(), w.data(), out.data(), 0.0f)) {
    if (bias.size())
      cuda_detail::add_bias_per_channel(out.data(), bias.data(), out.shape(0), out.shape(1), static_cast<std::size_t>(Ho) * Wo);
  } else {
    cuda_detail::conv_transpose2d_gemm(x.data(), w.data(), bias.size() ? bias.data() : nullptr, out.data(), g);
  }
  return out;
}

}  // namespace ops
}  // namespace diffblocks
