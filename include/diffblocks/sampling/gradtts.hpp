#pragma once
// Grad-TTS diffusion: reverse_diffusion (Euler, ODE or stochastic) and forward_diffusion, with
// the linear beta schedule beta(t) = beta_min + (beta_max - beta_min) t.
#include <chrono>
#include <cstdint>
#include <functional>

#include "diffblocks/core/held_device.hpp"
#include "diffblocks/core/random.hpp"
#include "diffblocks/sampling/gradtts_ops.hpp"
#include "diffblocks/sampling/gradtts_schedule.hpp"
#include "diffblocks/unets/origin.hpp"

namespace diffblocks {

struct GradTTSSamplerOptions {
  int steps = 10;
  bool stochastic = false;
  std::uint64_t seed = 0;  // noise of the stochastic sampler
  /// Called after every step with (step index from 1, steps, seconds the step took).
  std::function<void(int, int, double)> progress;
  /// Devices with graph replay (Cuda): the ODE sampler captures one step and replays it (same
  /// results, far fewer launches; sampling/gradtts_cuda_graph.cuh). false: the eager loop.
  bool graph = true;
};

/// Grad-TTS Diffusion.reverse_diffusion: xt = z * mask; for i in 0..N-1 at the midpoint
/// t_i = 1 - (i + 0.5)/N: xt = (xt - dx) * mask (see ops::gradtts_step_). Returns x_0 (B, F, T).
///
/// The sampler's state is float32 whatever the model's type (T = compute_t of it): a half model
/// gets xt, mask and mu rounded to its type at each call and its score widened back, as under
/// PyTorch's autocast, where the update arithmetic stays float32. Ten steps of 0.1 h changes
/// to a state kept in bf16 (8 bits) would lose most of each update.
template <class Model, class T = compute_t<typename Model::scalar_type>, class D = typename Model::device_type>
Tensor<T, 3, D> reverse_diffusion(const Model& model, const Tensor<T, 3, D>& z, const Tensor<T, 3, D>& mask,
                                  const Tensor<T, 3, D>& mu, const GradTTSSamplerOptions& opt,
                                  const typename Model::Conditioning& cond = {}) {
  using M = typename Model::scalar_type;
  if (opt.steps <= 0) throw InputError("reverse_diffusion: steps must be positive, got " + std::to_string(opt.steps));
  const DeviceScope<D> on(device_of<D>(model));  // the steps' ops run on the model's device
  if (tensor_shape(z) != tensor_shape(mu))
    throw InputError("reverse_diffusion: input 'z' has shape " + shape_str(tensor_shape(z)) + ", expected " +
                     shape_str(tensor_shape(mu)) + " (like mu)");
  if constexpr (has_graph_sampler<D>::value && std::is_same<M, T>::value)
    if (!opt.stochastic && opt.graph) return reverse_diffusion_graph(D{}, model, z, mask, mu, opt, cond);
  const auto& cfg = model.config();
  const std::size_t B = z.shape(0);
  const T h = static_cast<T>(1.0 / opt.steps);
  Tensor<T, 3, D> xt = z;
  ops::mul_mask3_(D{}, xt, mask);
  const auto& mask_m = ops::in_type<M>(D{}, mask);  // the model's copies (the same tensors for float32)
  const auto& mu_m = ops::in_type<M>(D{}, mu);
  Rng rng(opt.seed);
  Tensor<T, 3, D> noise = ops::zeros<T, 3>(D{}, {0, 0, 0});
  Tensor<T, 1, D> t = ops::zeros<T, 1>(D{}, {B});
  for (int i = 0; i < opt.steps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const auto [ti, beta] = detail::gradtts_step_at<T>(i, opt.steps, cfg.beta_min, cfg.beta_max);
    t = ops::full<T, 1>(D{}, {B}, ti);
    const Tensor<M, 3, D> score = model.forward(ops::in_type<M>(D{}, xt), mask_m, mu_m, t, cond);
    if constexpr (std::is_same<M, f16>::value)
      if (ops::find_non_finite(D{}, score) >= 0) throw detail::f16_overflow("reverse_diffusion", i + 1, opt.steps, ti);
    const auto& est = ops::in_type<T>(D{}, score);
    if (opt.stochastic) {
      if (noise.size() != xt.size()) noise = ops::empty<T, 3>(D{}, {xt.shape(0), xt.shape(1), xt.shape(2)});
      ops::randn_(D{}, noise, rng);
    }
    ops::gradtts_step_(D{}, xt, mu, est, mask, noise, beta, h);
    // A model that diverges (e.g. untrained weights) should say so here, not as a NaN "input"
    // error on the next step or as silent garbage in the output.
    if (ops::find_non_finite(D{}, xt) >= 0) throw detail::gradtts_diverged(i + 1, opt.steps, ti);
    if (opt.progress)
      opt.progress(i + 1, opt.steps,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return xt;
}

/// Grad-TTS Diffusion.forward_diffusion with the noise given explicitly (draw it with
/// ops::randn_ for the original's behaviour). Returns xt; the original's second output is z * mask.
template <class D = Cpu, class T = float>
Tensor<T, 3, D> forward_diffusion(const Tensor<T, 3, D>& x0, const Tensor<T, 3, D>& mask, const Tensor<T, 3, D>& mu,
                                  const Tensor<T, 1, D>& t, const Tensor<T, 3, D>& z, double beta_min = 0.05,
                                  double beta_max = 20.0) {
  if (tensor_shape(x0) != tensor_shape(mu) || tensor_shape(z) != tensor_shape(x0) || t.shape(0) != x0.shape(0))
    throw InputError("forward_diffusion: x0 " + shape_str(tensor_shape(x0)) + ", mu " + shape_str(tensor_shape(mu)) +
                     ", z " + shape_str(tensor_shape(z)) + " and t " + shape_str(tensor_shape(t)) + " disagree");
  return ops::gradtts_forward_diffusion(D{}, x0, mask, mu, t, z, static_cast<T>(beta_min), static_cast<T>(beta_max));
}

}  // namespace diffblocks
