#pragma once
// Fused normalisation + activation ops of diffusers' ResnetBlock2D. On the CPU they are the
// separate ops in sequence (bit-identical to calling them one by one); a device with its own
// kernels (ops/cuda/norm.cuh) does each in one pass over the activation.
#include "diffblocks/ops/cpu/ops.hpp"
#include "diffblocks/ops/cpu/sequence_ops.hpp"

namespace diffblocks {
namespace ops {

/// SiLU(GroupNorm(x)).
template <class T>
Tensor<T, 4, Cpu> group_norm_silu(Cpu dev, const Tensor<T, 4, Cpu>& x, int groups, const Tensor<T, 1, Cpu>& gamma,
                                  const Tensor<T, 1, Cpu>& beta, double eps) {
  const DeviceScope<Cpu> on(dev);
  Tensor<T, 4, Cpu> y = group_norm(Cpu{}, x, groups, gamma, beta, eps);
  silu_(Cpu{}, y);
  return y;
}

/// SiLU(AdaGroupNorm): GroupNorm without affine, then x (1 + ss[:, :C]) + ss[:, C:], then SiLU.
template <class T>
Tensor<T, 4, Cpu> ada_group_norm_silu(Cpu dev, const Tensor<T, 4, Cpu>& x, int groups, const Tensor<T, 2, Cpu>& ss,
                                      double eps) {
  const DeviceScope<Cpu> on(dev);
  const auto none = Tensor<T, 1, Cpu>::from_shape({0});
  Tensor<T, 4, Cpu> y = group_norm(Cpu{}, x, groups, none, none, eps);
  scale_shift_(Cpu{}, y, ss);
  silu_(Cpu{}, y);
  return y;
}

}  // namespace ops
}  // namespace diffblocks
