#pragma once
// Element-wise scheduler updates on the CPU (the diffusers schedulers' tensor math, in torch's
// float32 order of operations).
#include <algorithm>
#include <cstddef>

#include "diffblocks/core/device.hpp"

namespace diffblocks {
namespace ops {

/// epsilon-prediction update shared by DDPM and DDIM:
///   x0 = (sample - sqrt_beta * eps) / sqrt_alpha, clamped to [-clip, clip] when clip > 0
///   prev = c_x0 * x0 + c_sample * sample + c_eps * eps + c_noise * noise   (noise may be empty)
template <class T>
Tensor<T, 4, Cpu> epsilon_step(Cpu dev, const Tensor<T, 4, Cpu>& eps, const Tensor<T, 4, Cpu>& sample,
                               const Tensor<T, 4, Cpu>& noise, T sqrt_alpha, T sqrt_beta, T clip, T c_x0, T c_sample,
                               T c_eps, T c_noise) {
  const DeviceScope<Cpu> on(dev);
  auto prev = Tensor<T, 4, Cpu>::from_shape(sample.shape());
  const bool has_noise = noise.size() != 0;
  for (std::size_t i = 0; i < sample.size(); ++i) {
    const T s = sample.data()[i], e = eps.data()[i];
    T x0 = (s - sqrt_beta * e) / sqrt_alpha;
    if (clip > 0) x0 = std::min(std::max(x0, -clip), clip);
    T p = c_x0 * x0 + c_sample * s;
    if (c_eps != T(0)) p = p + c_eps * e;
    if (has_noise) p = p + c_noise * noise.data()[i];
    prev.data()[i] = p;
  }
  return prev;
}

/// Euler (epsilon): x0 = sample - sigma * eps; d = (sample - x0) / sigma; prev = sample + d * dt.
template <class T>
Tensor<T, 4, Cpu> euler_step(Cpu dev, const Tensor<T, 4, Cpu>& eps, const Tensor<T, 4, Cpu>& sample, T sigma, T dt) {
  const DeviceScope<Cpu> on(dev);
  auto prev = Tensor<T, 4, Cpu>::from_shape(sample.shape());
  for (std::size_t i = 0; i < sample.size(); ++i) {
    const T s = sample.data()[i];
    const T x0 = s - sigma * eps.data()[i];
    prev.data()[i] = s + ((s - x0) / sigma) * dt;
  }
  return prev;
}

/// x / d (torch divides, it does not multiply by the reciprocal).
template <class T, std::size_t N>
Tensor<T, N, Cpu> divide(Cpu dev, const Tensor<T, N, Cpu>& x, T d) {
  const DeviceScope<Cpu> on(dev);
  auto y = Tensor<T, N, Cpu>::from_shape(x.shape());
  for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = x.data()[i] / d;
  return y;
}

}  // namespace ops
}  // namespace diffblocks
