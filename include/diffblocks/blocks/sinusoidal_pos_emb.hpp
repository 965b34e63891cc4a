#pragma once
// Grad-TTS SinusoidalPosEmb(dim): [sin(a) | cos(a)], a = scale * t * exp(-i ln(1e4)/(half-1)),
// computed in float32 in torch's order of operations (arguments reach ~1000 with pe_scale 1000,
// so the rounding order is visible at the accuracy contract). No parameters.
#include "diffblocks/blocks/common.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class SinusoidalPosEmb {
 public:
  using scalar_type = T;
  using device_type = D;

  explicit SinusoidalPosEmb(int dim) : dim_(dim) {
    if (dim < 4 || dim % 2 != 0)
      throw ConfigError("SinusoidalPosEmb: dim must be even and >= 4, got " + std::to_string(dim));
  }

  /// t (B,) -> (B, dim)
  Tensor<T, 2, D> forward(const Tensor<T, 1, D>& t, double scale = 1000.0) const {
    return ops::sinusoidal_pos_emb(D{}, t, dim_, scale);
  }

  template <class V>
  void visit(V&&, const std::string& = "") {}

  int dim() const { return dim_; }

 private:
  int dim_;
};

}  // namespace diffblocks
