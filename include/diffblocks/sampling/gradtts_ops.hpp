#pragma once
// Grad-TTS's diffusion arithmetic, written once for every device (ops/map.hpp): the Euler step
// of reverse diffusion and forward diffusion, in torch's float32 order of operations. The Cuda
// device's graph sampler (gradtts_cuda_graph.cuh) replays the same per-element update.
#include <cstddef>

#include "diffblocks/ops/generic/tensor_traits.hpp"
#include "diffblocks/ops/map.hpp"

namespace diffblocks {
namespace ops {

/// One element of the ODE step: dx = (0.5 ((mu - x) - est)) beta h; (x - dx) mask.
template <class T>
DIFFBLOCKS_HD inline T gradtts_ode_update(T x, T m, T e, T mask, T beta, T h) {
  const T dx = (T(0.5) * ((m - x) - e)) * beta * h;
  return (x - dx) * mask;
}

namespace generic {
namespace kernel {
template <class T>
struct GradTtsStep {
  T* xt;
  const T *mu, *est, *mask, *noise;  // noise null: the ODE
  T beta, h, sq;
  std::size_t F, W;
  DIFFBLOCKS_HD void operator()(std::size_t r, std::size_t w) const {
    const std::size_t i = r * W + w;
    const T x = xt[i], m = mu[i], e = est[i], mk = mask[(r / F) * W + w];
    if (!noise) {
      xt[i] = gradtts_ode_update(x, m, e, mk, beta, h);
      return;
    }
    const T dx = (T(0.5) * (m - x) - e) * beta * h + noise[i] * sq;
    xt[i] = (x - dx) * mk;
  }
};

template <class T>
struct GradTtsForward {
  const T *x0, *mu, *z, *mask, *t;
  T* xt;
  T beta_min, beta_max;
  std::size_t F, W;
  DIFFBLOCKS_HD void operator()(std::size_t r, std::size_t w) const {
    const std::size_t b = r / F, i = r * W + w;
    const T tb = t[b];
    const T c = beta_min * tb + T(0.5) * (beta_max - beta_min) * (tb * tb);
    const T decay = fmath::exp_rn(T(-0.5) * c), sd = fmath::sqrt(T(1) - fmath::exp_rn(-c));
    xt[i] = ((x0[i] * decay + mu[i] * (T(1) - decay)) + z[i] * sd) * mask[b * W + w];
  }
};
}  // namespace kernel

/// One Euler step of Grad-TTS reverse diffusion, in place on xt (B, F, T):
///   ODE: dx = (0.5 * ((mu - xt) - est)) * beta * h
///   SDE: dx = ((0.5 * (mu - xt)) - est) * beta * h + noise * sqrt(beta * h)
///   xt = (xt - dx) * mask[b, 0, t]
/// `noise` is empty for the ODE.
template <class D, class X, OnDevice<D, X> = 0>
void gradtts_step_(const D& d, X& xt, const X& mu, const X& est, const X& mask, const X& noise,
                   typename X::value_type beta, typename X::value_type h) {
  using T = typename X::value_type;
  const std::size_t F = xt.shape(1), W = xt.shape(2);
  const T sq = fmath::sqrt(beta * h);
  for_each_row(d, xt.shape(0) * F, W,
               kernel::GradTtsStep<T>{xt.data(), mu.data(), est.data(), mask.data(),
                                      noise.size() ? noise.data() : nullptr, beta, h, sq, F, W});
}

/// Grad-TTS forward diffusion with explicit noise z:
///   c = b0 t + 0.5 (b1 - b0) t^2; xt = (x0 e^{-c/2} + mu (1 - e^{-c/2}) + z sqrt(1 - e^{-c})) * mask.
template <class D, class X, class Tv, OnDevice<D, X> = 0>
X gradtts_forward_diffusion(const D& d, const X& x0, const X& mask, const X& mu, const Tv& t, const X& z,
                            typename X::value_type beta_min, typename X::value_type beta_max) {
  using T = typename X::value_type;
  auto xt = X::from_shape(x0.shape());
  const std::size_t F = x0.shape(1), W = x0.shape(2);
  for_each_row(d, x0.shape(0) * F, W,
               kernel::GradTtsForward<T>{x0.data(), mu.data(), z.data(), mask.data(), t.data(), xt.data(), beta_min,
                                         beta_max, F, W});
  return xt;
}

}  // namespace generic

using generic::gradtts_forward_diffusion;
using generic::gradtts_step_;

}  // namespace ops
}  // namespace diffblocks
