#pragma once
// Grad-TTS SinusoidalPosEmb(dim): [sin(a) | cos(a)], a = scale * t * exp(-i ln(1e4)/(half-1)),
// computed in float32 in torch's order of operations (arguments reach ~1000 with pe_scale 1000,
// so the rounding order is visible at the accuracy contract). No parameters.
#include <cmath>

#include "diffblocks/blocks/common.hpp"

namespace diffblocks {
namespace ops {
namespace generic {
namespace kernel {
/// T: the time's type (float32 for a half model too); Out: the embedding's.
template <class T, class Out>
struct SinusoidalPosEmb {
  const T* t;
  Out* y;
  T scale, step;
  std::size_t half;
  DIFFBLOCKS_HD void operator()(std::size_t b, std::size_t i) const {
    const T a = (scale * t[b]) * fmath::exp_rn(static_cast<T>(i) * step);
    y[b * 2 * half + i] = Out(fmath::sin_rn(a));
    y[b * 2 * half + half + i] = Out(fmath::cos_rn(a));
  }
};
}  // namespace kernel

/// The op, on every device: t (B,) -> (B, dim), f_i = exp(i * -(ln 1e4 / (half-1))),
/// a = (scale * t) * f_i, [sin a | cos a], computed in t's type and stored as Out (a half
/// model's embedding is rounded once; its time never is: with pe_scale 1000 a bf16 t would move
/// the argument by up to ~2 rad).
template <class Out = void, class D, class X, OnDevice<D, X> = 0>
auto sinusoidal_pos_emb(const D& d, const X& t, int dim, double scale) {
  using T = typename X::value_type;
  using O = std::conditional_t<std::is_void<Out>::value, T, Out>;
  const std::size_t half = static_cast<std::size_t>(dim / 2);
  const T step = static_cast<T>(-(std::log(10000.0) / static_cast<double>(half - 1)));
  auto y = Tensor<O, 2, D>::from_shape({t.shape(0), 2 * half});
  for_each_row(d, t.shape(0), half, kernel::SinusoidalPosEmb<T, O>{t.data(), y.data(), static_cast<T>(scale), step, half});
  return y;
}
}  // namespace generic
using generic::sinusoidal_pos_emb;
}  // namespace ops

template <class T = float, class D = Cpu>
class SinusoidalPosEmb {
 public:
  using scalar_type = T;
  using device_type = D;

  explicit SinusoidalPosEmb(int dim) : dim_(dim) {
    if (dim < 4 || dim % 2 != 0)
      throw ConfigError("SinusoidalPosEmb: dim must be even and >= 4, got " + std::to_string(dim));
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<compute_t<T>, 1, D>, double)
  /// t (B,) -> (B, dim); t in float32 for a half model (compute_t<T>).
  Tensor<T, 2, D> forward(const Tensor<compute_t<T>, 1, D>& t, double scale = 1000.0) const {
    return ops::sinusoidal_pos_emb<T>(D{}, t, dim_, scale);
  }

  template <class V>
  void visit(V&&, const std::string& = "") {}

  int dim() const { return dim_; }

 private:
  int dim_;
};

}  // namespace diffblocks
