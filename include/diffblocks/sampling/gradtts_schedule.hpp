#pragma once
// Grad-TTS reverse diffusion's step schedule and its divergence error, shared by the eager loop
// (sampling/gradtts.hpp) and the Cuda device's graph replay (sampling/gradtts_cuda_graph.cuh),
// so that both compute the same float values (the graph replay promises the eager loop's bits).
#include <string>

#include "diffblocks/core/error.hpp"

namespace diffblocks {
namespace detail {

/// Step i of n (from 0): the midpoint time t_i = 1 - (i + 0.5) / n and the noise level
/// beta(t_i) = beta_min + (beta_max - beta_min) t_i, in T as the original computes them.
template <class T>
struct GradTTSStep {
  T t, beta;
};

template <class T>
GradTTSStep<T> gradtts_step_at(int i, int n, double beta_min, double beta_max) {
  const T t = static_cast<T>(1.0 - (i + 0.5) * (1.0 / n));
  return {t, static_cast<T>(beta_min) + static_cast<T>(beta_max - beta_min) * t};
}

/// The error of a sample that became NaN/Inf at step `step` (from 1) of `n`, at time t.
inline Error gradtts_diverged(int step, int n, double t) {
  return Error("reverse_diffusion: the sample became NaN/Inf at step " + std::to_string(step) + "/" +
               std::to_string(n) + " (t = " + std::to_string(t) + "); the estimator diverges on this input");
}

/// An f16 model's output with Inf/NaN where its float32 twin would be finite: f16 tops out at
/// 65504, and a model whose activations go beyond that overflows. Named as such, with the way out.
inline Error f16_overflow(const std::string& who, int step, int n, double t) {
  return Error(who + ": the f16 estimator's output holds NaN/Inf at step " + std::to_string(step) + "/" +
               std::to_string(n) + " (t = " + std::to_string(t) +
               "): an activation went beyond f16's largest value (65504); run the model in bf16 or f32");
}

}  // namespace detail
}  // namespace diffblocks
