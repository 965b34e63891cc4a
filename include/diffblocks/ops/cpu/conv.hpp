#pragma once
// Convolutions on the CPU: the algorithm setting and the entry points, which run the copy of
// the kernels (kernels/conv.inl, kernels/winograd.inl) for the instruction set in use.
#include <atomic>

#include "diffblocks/core/device.hpp"
#include "diffblocks/ops/cpu/kernels.hpp"

namespace diffblocks {
namespace ops {
namespace cpu {

/// How Conv2d computes 3x3 stride-1 padding-1 convolutions (every other shape uses im2col).
enum class ConvAlgorithm {
  Auto,    ///< Winograd F(4x4, 3x3) where it pays (>= 8 channels in and out), else im2col
  Im2col,  ///< always tiled im2col + GEMM: the exact reference, 4x the multiplications
};

namespace detail {
inline std::atomic<ConvAlgorithm>& conv_algorithm_setting() {
  static std::atomic<ConvAlgorithm> a{ConvAlgorithm::Auto};
  return a;
}
}  // namespace detail

/// Process-wide choice of convolution algorithm (thread-safe; read at each call).
inline void set_conv_algorithm(ConvAlgorithm a) { detail::conv_algorithm_setting().store(a); }
inline ConvAlgorithm conv_algorithm() { return detail::conv_algorithm_setting().load(); }

inline bool use_winograd(int Cin, int Cout, int KH, int KW, int stride, int padding) {
  return conv_algorithm() == ConvAlgorithm::Auto && KH == 3 && KW == 3 && stride == 1 && padding == 1 && Cin >= 8 &&
         Cout >= 8;
}

/// Conv2d (cross-correlation, zero padding). x (B,Cin,H,W), w (Cout,Cin,k,k), bias (Cout) or empty.
template <class T>
Tensor<T, 4, Cpu> conv2d(const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias,
                         int stride, int padding) {
  const bool winograd = use_winograd(static_cast<int>(x.shape(1)), static_cast<int>(w.shape(0)),
                                     static_cast<int>(w.shape(2)), static_cast<int>(w.shape(3)), stride, padding);
  DIFFBLOCKS_CPU_RETURN_KERNEL(conv2d<T>(x, w, bias, stride, padding, winograd));
}

/// out += Conv2d(x) for a 1x1 stride-1 convolution, accumulated by the GEMM itself (no temporary,
/// no separate add pass); out (B, Cout, H, W). ResnetBlock's res_conv residual.
template <class T>
void conv1x1_add_(const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias,
                  Tensor<T, 4, Cpu>& out) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(conv1x1_add_<T>(x, w, bias, out));
}

/// ConvTranspose2d (no output_padding, dilation 1). x (B,Cin,H,W), w (Cin,Cout,k,k) as in PyTorch.
/// Output (H-1)*s - 2p + k.
template <class T>
Tensor<T, 4, Cpu> conv_transpose2d(const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w,
                                   const Tensor<T, 1, Cpu>& bias, int stride, int padding) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(conv_transpose2d<T>(x, w, bias, stride, padding));
}

}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
