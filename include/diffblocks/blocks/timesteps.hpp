#pragma once
// diffusers Timesteps: the sinusoidal projection of the timestep (no parameters), in float32
// with torch's order of operations:
//   freq_i = exp((-ln(max_period) * i) / (half - downscale_freq_shift)),  arg = t * freq_i
//   emb = [sin | cos] (or [cos | sin] with flip_sin_to_cos); odd width gets a zero column.
#include <cmath>

#include "diffblocks/blocks/common.hpp"

namespace diffblocks {
namespace ops {
namespace generic {
namespace kernel {
/// Row b, column i < half: the sin/cos pair of frequency i; column half: the odd width's zero.
/// T: the timesteps' type (float32 for a half model too); Out: the embedding's.
template <class T, class Out>
struct TimestepEmbedding {
  const T* t;
  Out* y;
  T neg_log, shift;
  std::size_t half, channels;
  bool flip;
  DIFFBLOCKS_HD void operator()(std::size_t b, std::size_t i) const {
    if (i == half) {
      if (channels % 2) y[b * channels + channels - 1] = Out(0.0f);
      return;
    }
    const T freq = fmath::exp_rn((neg_log * static_cast<T>(i)) / (static_cast<T>(half) - shift));
    const T a = t[b] * freq;
    y[b * channels + (flip ? half + i : i)] = Out(fmath::sin_rn(a));
    y[b * channels + (flip ? i : half + i)] = Out(fmath::cos_rn(a));
  }
};
}  // namespace kernel

/// The op, on every device: t (B,) -> (B, channels).
/// Computed in t's type, stored as Out (see sinusoidal_pos_emb: timesteps reach 1000, which a
/// half type cannot hold to the step).
template <class Out = void, class D, class X, OnDevice<D, X> = 0>
auto timestep_embedding(const D& d, const X& t, int channels, bool flip, typename X::value_type shift,
                        typename X::value_type max_period) {
  using T = typename X::value_type;
  using O = std::conditional_t<std::is_void<Out>::value, T, Out>;
  const std::size_t half = static_cast<std::size_t>(channels / 2), C = static_cast<std::size_t>(channels);
  auto y = Tensor<O, 2, D>::from_shape({t.shape(0), C});
  for_each_row(d, t.shape(0), half + 1,
               kernel::TimestepEmbedding<T, O>{t.data(), y.data(), -std::log(max_period), shift, half, C, flip});
  return y;
}
}  // namespace generic
using generic::timestep_embedding;
}  // namespace ops

template <class T = float, class D = Cpu>
class Timesteps {
 public:
  using scalar_type = T;
  using device_type = D;

  Timesteps(int num_channels, bool flip_sin_to_cos, double downscale_freq_shift, double max_period = 10000.0)
      : channels_(num_channels), flip_(flip_sin_to_cos), shift_(downscale_freq_shift), max_period_(max_period) {
    detail::check_positive("Timesteps", "num_channels", num_channels);
    if (num_channels / 2 - downscale_freq_shift == 0)
      throw ConfigError("Timesteps: num_channels / 2 - downscale_freq_shift must not be 0");
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<compute_t<T>, 1, D>)
  /// t (B,) -> (B, num_channels); t in float32 for a half model (compute_t<T>).
  Tensor<T, 2, D> forward(const Tensor<compute_t<T>, 1, D>& t) const {
    using C = compute_t<T>;
    return ops::timestep_embedding<T>(D{}, t, channels_, flip_, static_cast<C>(shift_), static_cast<C>(max_period_));
  }

  template <class V>
  void visit(V&&, const std::string& = "") {}

 private:
  int channels_;
  bool flip_;
  double shift_, max_period_;
};

}  // namespace diffblocks
