#pragma once
// torch.nn.GroupNorm: contiguous channel groups, biased variance over (C/G, H, W), eps inside
// the square root, optional per-channel affine. Statistics include every pixel, padded frames
// too (Grad-TTS depends on that).
#include "diffblocks/blocks/common.hpp"

namespace diffblocks {

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

  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const {
    detail::check_dim("GroupNorm", "input", x, 1, std::size_t(channels_));
    return ops::group_norm(D{}, x, groups_, weight, bias, eps_);
  }

  /// SiLU(GroupNorm(x)): diffusers ResnetBlock2D's norm and nonlinearity (one pass on devices
  /// with a fused kernel; on the CPU exactly forward() then SiLU).
  Tensor<T, 4, D> forward_silu(const Tensor<T, 4, D>& x) const {
    detail::check_dim("GroupNorm", "input", x, 1, std::size_t(channels_));
    return ops::group_norm_silu(D{}, x, groups_, weight, bias, eps_);
  }

  /// In place x = Mish(GroupNorm(x)) * mask (mask (B, 1, 1, W)): Grad-TTS Block's tail fused
  /// into one pass over the activation.
  void forward_mish_mask_(Tensor<T, 4, D>& x, const Tensor<T, 4, D>& mask) const {
    detail::check_dim("GroupNorm", "input", x, 1, std::size_t(channels_));
    ops::group_norm_mish_mask_(D{}, x, groups_, weight, bias, eps_, mask);
  }

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
