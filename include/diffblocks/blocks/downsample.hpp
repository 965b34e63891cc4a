#pragma once
// Grad-TTS Downsample(dim): Conv2d(dim, dim, 3, stride 2, padding 1): H, W -> ceil(H/2), ceil(W/2).
// state_dict: conv.*
#include "diffblocks/blocks/conv2d.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class Downsample {
 public:
  using scalar_type = T;
  using device_type = D;
  Conv2d<T, D> conv;

  explicit Downsample(int dim) : conv(dim, dim, 3, 2, 1) {}

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 4, D>)
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const { return conv.forward(x); }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    conv.visit(v, p + "conv.");
  }
};

}  // namespace diffblocks
