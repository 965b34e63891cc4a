#pragma once
// The diffusers schedulers' tensor arithmetic (schedulers.hpp), written once for every device
// (ops/map.hpp), in torch's float32 order of operations.
#include <cstddef>
#include <type_traits>

#include "diffblocks/ops/generic/tensor_traits.hpp"
#include "diffblocks/ops/map.hpp"

namespace diffblocks {
namespace ops {
namespace generic {
namespace kernel {
/// The three invariant choices are template arguments, so that each loop is branch-free and
/// vectorises (the CPU's each_index) as the scheduler's plain loop did.
template <class T, bool Clip, bool Eps, bool Noise>
struct EpsilonStep {
  const T *eps, *sample, *noise;
  T* prev;
  T sqrt_alpha, sqrt_beta, clip, c_x0, c_sample, c_eps, c_noise;
  DIFFBLOCKS_HD void operator()(std::size_t i) const {
    const T s = sample[i], e = eps[i];
    T x0 = (s - sqrt_beta * e) / sqrt_alpha;
    if (Clip) {  // std::min(std::max(x0, -clip), clip): NaN passes through
      x0 = x0 < -clip ? -clip : x0;
      x0 = clip < x0 ? clip : x0;
    }
    T p = c_x0 * x0 + c_sample * s;
    if (Eps) p = p + c_eps * e;
    if (Noise) p = p + c_noise * noise[i];
    prev[i] = p;
  }
};
template <class T>
struct EulerStep {
  const T *eps, *sample;
  T* prev;
  T sigma, dt;
  DIFFBLOCKS_HD void operator()(std::size_t i) const {
    const T s = sample[i];
    const T x0 = s - sigma * eps[i];
    prev[i] = s + ((s - x0) / sigma) * dt;
  }
};
}  // namespace kernel

/// epsilon-prediction update shared by DDPM and DDIM:
///   x0 = (sample - sqrt_beta * eps) / sqrt_alpha, clamped to [-clip, clip] when clip > 0
///   prev = c_x0 * x0 + c_sample * sample + c_eps * eps + c_noise * noise   (noise may be empty)
template <class D, class X, OnDevice<D, X> = 0>
X epsilon_step(const D& d, const X& eps, const X& sample, const X& noise, typename X::value_type sqrt_alpha,
               typename X::value_type sqrt_beta, typename X::value_type clip, typename X::value_type c_x0,
               typename X::value_type c_sample, typename X::value_type c_eps, typename X::value_type c_noise) {
  using T = typename X::value_type;
  auto prev = X::from_shape(sample.shape());
  const auto run = [&](auto clip_on, auto eps_on, auto noise_on) {
    for_each_index(d, sample.size(),
                   kernel::EpsilonStep<T, decltype(clip_on)::value, decltype(eps_on)::value, decltype(noise_on)::value>{
                       eps.data(), sample.data(), noise.size() ? noise.data() : nullptr, prev.data(), sqrt_alpha,
                       sqrt_beta, clip, c_x0, c_sample, c_eps, c_noise});
  };
  using On = std::true_type;
  using Off = std::false_type;
  const bool has_clip = clip > 0, has_eps = c_eps != T(0), has_noise = noise.size() != 0;
  if (has_clip) {
    if (has_eps) has_noise ? run(On{}, On{}, On{}) : run(On{}, On{}, Off{});
    else has_noise ? run(On{}, Off{}, On{}) : run(On{}, Off{}, Off{});
  } else {
    if (has_eps) has_noise ? run(Off{}, On{}, On{}) : run(Off{}, On{}, Off{});
    else has_noise ? run(Off{}, Off{}, On{}) : run(Off{}, Off{}, Off{});
  }
  return prev;
}

/// Euler (epsilon): x0 = sample - sigma * eps; d = (sample - x0) / sigma; prev = sample + d * dt.
template <class D, class X, OnDevice<D, X> = 0>
X euler_step(const D& d, const X& eps, const X& sample, typename X::value_type sigma, typename X::value_type dt) {
  auto prev = X::from_shape(sample.shape());
  for_each_index(d, sample.size(),
                 kernel::EulerStep<typename X::value_type>{eps.data(), sample.data(), prev.data(), sigma, dt});
  return prev;
}

}  // namespace generic

using generic::epsilon_step;
using generic::euler_step;

}  // namespace ops
}  // namespace diffblocks
