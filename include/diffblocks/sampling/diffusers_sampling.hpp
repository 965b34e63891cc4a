#pragma once
// The diffusers sampling loop for the Diffuser U-Net. `sample` holds the initial noise in its
// first out_channels channels; any further channels are fixed conditioning (the TTS speaker
// plane), concatenated after scale_model_input as diffusers' inpainting pipelines do:
//   latents = sample[:, :out] * init_noise_sigma; cond = sample[:, out:]
//   for t in scheduler.timesteps: eps = unet(cat(scale_model_input(latents, t), cond), t, ...)
//                                 latents = scheduler.step(eps, t, latents)
// Returns latents (B, out_channels, H, W).
#include <chrono>
#include <functional>
#include <optional>

#include "diffblocks/sampling/gradtts_schedule.hpp"  // detail::f16_overflow
#include "diffblocks/sampling/schedulers.hpp"
#include "diffblocks/unets/diffuser.hpp"

namespace diffblocks {

struct DiffusersSamplingOptions {
  int steps = 20;
  std::uint64_t seed = 0;  // noise of stochastic schedulers (DDPM)
  /// Called after every step with (step from 1, steps, seconds the step took).
  std::function<void(int, int, double)> progress;
};

/// `inputs.sample`: (B, C, H, W) noise + conditioning channels; `inputs.timestep` is ignored.
/// The latents and the scheduler are float32 whatever the model's type M (a half model gets
/// its input rounded at each step and its output widened back, as under PyTorch's autocast).
template <class M, class D, class T = compute_t<M>>
Tensor<T, 4, D> diffusers_sample(const UNet2DConditionModel<M, D>& unet, Scheduler<T, D>& scheduler,
                                 DiffuserInputs<M, D> inputs, const DiffusersSamplingOptions& opt) {
  if (opt.steps <= 0) throw InputError("diffusers_sample: steps must be positive, got " + std::to_string(opt.steps));
  const DeviceScope<D> on(unet.device());  // the scheduler's ops run on the model's device
  const std::size_t out = std::size_t(unet.config().out_channels), C = inputs.sample.shape(1);
  if (C < out)
    throw InputError("diffusers_sample: input 'sample' has " + std::to_string(C) + " channels, fewer than the model's " +
                     std::to_string(out) + " output channels");
  scheduler.set_timesteps(opt.steps);
  Rng rng(opt.seed);
  Tensor<T, 4, D> latents = ops::to_type<T>(D{}, ops::slice_channels(D{}, inputs.sample, 0, out));
  const std::optional<Tensor<M, 4, D>> cond =
      C > out ? std::optional<Tensor<M, 4, D>>(ops::slice_channels(D{}, inputs.sample, out, C)) : std::nullopt;
  ops::mul_scalar_(D{}, latents, scheduler.init_noise_sigma());
  const std::size_t B = latents.shape(0);
  const auto& ts = scheduler.timesteps();
  for (std::size_t i = 0; i < ts.size(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    inputs.sample = ops::to_type<M>(D{}, scheduler.scale_model_input(latents, ts[i]));
    if (cond) inputs.sample = ops::concat_channels(D{}, inputs.sample, *cond);
    inputs.timestep = ops::full<T, 1>(D{}, {B}, static_cast<T>(ts[i]));
    const Tensor<M, 4, D> out_m = unet.forward(inputs);
    if constexpr (std::is_same<M, f16>::value)
      if (ops::find_non_finite(D{}, out_m) >= 0)
        throw detail::f16_overflow("diffusers_sample", static_cast<int>(i + 1), static_cast<int>(ts.size()), ts[i]);
    const auto& eps = ops::in_type<T>(D{}, out_m);
    latents = scheduler.step(eps, ts[i], latents, rng);
    if (ops::find_non_finite(D{}, latents) >= 0)
      throw Error("diffusers_sample: the sample became NaN/Inf at step " + std::to_string(i + 1) + "/" +
                  std::to_string(ts.size()) + " (timestep " + std::to_string(ts[i]) + ")");
    if (opt.progress)
      opt.progress(static_cast<int>(i + 1), static_cast<int>(ts.size()),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return latents;
}

}  // namespace diffblocks
