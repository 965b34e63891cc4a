#pragma once
// Grad-TTS Upsample(dim): ConvTranspose2d(dim, dim, 4, stride 2, padding 1): H, W -> 2H, 2W.
// state_dict: conv.* (weight layout (in, out, 4, 4)).
#include "diffblocks/blocks/conv_transpose2d.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class Upsample {
 public:
  using scalar_type = T;
  using device_type = D;
  ConvTranspose2d<T, D> conv;

  explicit Upsample(int dim) : conv(dim, dim, 4, 2, 1) {}

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 4, D>)
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const { return conv.forward(x); }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    conv.visit(v, p + "conv.");
  }
};

}  // namespace diffblocks
