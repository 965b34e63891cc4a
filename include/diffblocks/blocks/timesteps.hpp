#pragma once
// diffusers Timesteps: the sinusoidal projection of the timestep (no parameters), in float32
// with torch's order of operations:
//   freq_i = exp((-ln(max_period) * i) / (half - downscale_freq_shift)),  arg = t * freq_i
//   emb = [sin | cos] (or [cos | sin] with flip_sin_to_cos); odd width gets a zero column.
#include "diffblocks/blocks/common.hpp"

namespace diffblocks {

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

  /// t (B,) -> (B, num_channels)
  Tensor<T, 2, D> forward(const Tensor<T, 1, D>& t) const {
    return ops::timestep_embedding(D{}, t, channels_, flip_, static_cast<T>(shift_), static_cast<T>(max_period_));
  }

  template <class V>
  void visit(V&&, const std::string& = "") {}

 private:
  int channels_;
  bool flip_;
  double shift_, max_period_;
};

}  // namespace diffblocks
