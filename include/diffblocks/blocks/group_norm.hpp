#pragma once
// torch.nn.GroupNorm: contiguous channel groups, biased variance over (C/G, H, W), eps inside
// the square root, optional per-channel affine. Statistics include every pixel, padded frames
// too (Grad-TTS depends on that).
//
// The fused ops of its forward_* methods live here too, beside the block that uses them: each is
// written once for every device as the ops in sequence (the reference), and devices with a
// one-pass kernel override it (the CPU's below, on kernels/norm.inl; ops/cuda/norm.cuh).
#include "diffblocks/blocks/common.hpp"

namespace diffblocks {
namespace ops {
namespace generic {

/// x = Mish(GroupNorm(x)) * mask (mask (B, 1, 1, W)), in place: Grad-TTS Block's tail.
template <class D, class X, class G, OnDevice<D, X> = 0>
void group_norm_mish_mask_(const D& d, X& x, int groups, const G& gamma, const G& beta, double eps, const X& mask) {
  x = ops::group_norm(d, x, groups, gamma, beta, eps);
  ops::mish_(d, x);
  ops::mul_mask_(d, x, mask);
}

/// x = (Mish(GroupNorm(x)) * mask + bias[b, c]) * mask, in place: Grad-TTS ResnetBlock's block1
/// output plus the time bias, already masked as block2's convolution reads it.
template <class D, class X, class G, class Bias, OnDevice<D, X> = 0>
void group_norm_mish_mask_bias_mask_(const D& d, X& x, int groups, const G& gamma, const G& beta, double eps,
                                     const X& mask, const Bias& bias) {
  group_norm_mish_mask_(d, x, groups, gamma, beta, eps, mask);
  ops::add_channel_bias_(d, x, bias);
  ops::mul_mask_(d, x, mask);
}

/// SiLU(GroupNorm(x)): diffusers ResnetBlock2D's norm and nonlinearity.
template <class D, class X, class G, OnDevice<D, X> = 0>
X group_norm_silu(const D& d, const X& x, int groups, const G& gamma, const G& beta, double eps) {
  X y = ops::group_norm(d, x, groups, gamma, beta, eps);
  ops::silu_(d, y);
  return y;
}

}  // namespace generic

using generic::group_norm_mish_mask_;
using generic::group_norm_mish_mask_bias_mask_;
using generic::group_norm_silu;

/// The CPU's one-pass forms (kernels/norm.inl): same results as the ops in sequence.
template <class T, IfKernelScalar<T> = 0>
void group_norm_mish_mask_(const Cpu& dev, Tensor<T, 4, Cpu>& x, int groups, const Tensor<T, 1, Cpu>& gamma,
                           const Tensor<T, 1, Cpu>& beta, double eps, const Tensor<T, 4, Cpu>& mask) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::group_norm_mish_mask_(dev, x, groups, gamma, beta, eps, mask));
  DIFFBLOCKS_CPU_RETURN_KERNEL(group_norm_mish_mask_<T>(x, groups, gamma, beta, eps, mask));
}
template <class T, IfKernelScalar<T> = 0>
void group_norm_mish_mask_bias_mask_(const Cpu& dev, Tensor<T, 4, Cpu>& x, int groups, const Tensor<T, 1, Cpu>& gamma,
                                     const Tensor<T, 1, Cpu>& beta, double eps, const Tensor<T, 4, Cpu>& mask,
                                     const Tensor<T, 2, Cpu>& bias) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::group_norm_mish_mask_bias_mask_(dev, x, groups, gamma, beta, eps, mask, bias));
  DIFFBLOCKS_CPU_RETURN_KERNEL(group_norm_mish_mask_bias_mask_<T>(x, groups, gamma, beta, eps, mask, bias));
}

/// The half types: the same one-pass kernel reading and writing x in its half type (each row
/// normalised and post-processed in float32, rounded once as it is stored: no float32 copy of x);
/// gamma, beta, the mask and the bias (a channel's or a frame's values) widened for the call.
template <class H, IfHalf<H> = 0>
void group_norm_mish_mask_(const Cpu& dev, Tensor<H, 4, Cpu>& x, int groups, const Tensor<H, 1, Cpu>& gamma,
                           const Tensor<H, 1, Cpu>& beta, double eps, const Tensor<H, 4, Cpu>& mask) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::group_norm_mish_mask_(dev, x, groups, gamma, beta, eps, mask));
  using cpu::half_convert::widened;
  DIFFBLOCKS_CPU_RETURN_KERNEL(group_norm_mish_mask_<H>(x, groups, widened(gamma), widened(beta), eps, widened(mask)));
}
template <class H, IfHalf<H> = 0>
void group_norm_mish_mask_bias_mask_(const Cpu& dev, Tensor<H, 4, Cpu>& x, int groups, const Tensor<H, 1, Cpu>& gamma,
                                     const Tensor<H, 1, Cpu>& beta, double eps, const Tensor<H, 4, Cpu>& mask,
                                     const Tensor<H, 2, Cpu>& bias) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::group_norm_mish_mask_bias_mask_(dev, x, groups, gamma, beta, eps, mask, bias));
  using cpu::half_convert::widened;
  DIFFBLOCKS_CPU_RETURN_KERNEL(
      group_norm_mish_mask_bias_mask_<H>(x, groups, widened(gamma), widened(beta), eps, widened(mask), widened(bias)));
}

}  // namespace ops

template <class T = float, class D = Cpu>
class GroupNorm {
 public:
  using scalar_type = T;
  using device_type = D;
  Tensor<T, 1, D> weight;  // gamma; empty when affine=false
  Tensor<T, 1, D> bias;    // beta

  GroupNorm(int num_groups, int num_channels, double eps = 1e-5, bool affine = true)
      : groups_(num_groups), channels_(num_channels), eps_(eps) {
    detail::check_positive("GroupNorm", "num_groups", num_groups);
    detail::check_positive("GroupNorm", "num_channels", num_channels);
    if (num_channels % num_groups != 0)
      throw ConfigError("GroupNorm: num_channels " + std::to_string(num_channels) + " is not divisible by num_groups " +
                        std::to_string(num_groups));
    const std::size_t n = affine ? std::size_t(num_channels) : 0;
    weight = ops::full<T, 1>(D{}, {n}, T(1));
    bias = ops::zeros<T, 1>(D{}, {n});
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 4, D>)
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const {
    detail::check_dim("GroupNorm", "input", x, 1, std::size_t(channels_));
    return ops::group_norm(D{}, x, groups_, weight, bias, eps_);
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward_silu, Tensor<T, 4, D>)
  /// SiLU(GroupNorm(x)): diffusers ResnetBlock2D's norm and nonlinearity (one pass on devices
  /// with a fused kernel; on the CPU forward() then SiLU).
  Tensor<T, 4, D> forward_silu(const Tensor<T, 4, D>& x) const {
    detail::check_dim("GroupNorm", "input", x, 1, std::size_t(channels_));
    return ops::group_norm_silu(D{}, x, groups_, weight, bias, eps_);
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward_mish_mask_, Tensor<T, 4, D>, Tensor<T, 4, D>)
  /// In place x = Mish(GroupNorm(x)) * mask (mask (B, 1, 1, W)): Grad-TTS Block's tail fused
  /// into one pass over the activation.
  void forward_mish_mask_(Tensor<T, 4, D>& x, const Tensor<T, 4, D>& mask) const {
    detail::check_dim("GroupNorm", "input", x, 1, std::size_t(channels_));
    ops::group_norm_mish_mask_(D{}, x, groups_, weight, bias, eps_, mask);
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward_mish_mask_bias_mask_, Tensor<T, 4, D>, Tensor<T, 4, D>, Tensor<T, 2, D>)
  /// In place x = (Mish(GroupNorm(x)) * mask + bias[:, :, None, None]) * mask: Grad-TTS
  /// ResnetBlock's block1 tail, time bias and block2's input mask in one pass.
  void forward_mish_mask_bias_mask_(Tensor<T, 4, D>& x, const Tensor<T, 4, D>& mask,
                                    const Tensor<T, 2, D>& time_bias) const {
    detail::check_dim("GroupNorm", "input", x, 1, std::size_t(channels_));
    ops::group_norm_mish_mask_bias_mask_(D{}, x, groups_, weight, bias, eps_, mask, time_bias);
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    if (weight.size()) {
      v(p + "weight", weight);
      v(p + "bias", bias);
    }
  }

  int num_groups() const { return groups_; }
  int num_channels() const { return channels_; }
  double eps() const { return eps_; }

 private:
  int groups_, channels_;
  double eps_;
};

}  // namespace diffblocks
