#pragma once
// diffusers Downsample2D (use_conv, padding 1): a 3x3 stride-2 conv, H -> ceil(H/2).
// state_dict: conv.*
#include "diffblocks/blocks/conv2d.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class Downsample2D {
 public:
  using scalar_type = T;
  using device_type = D;
  Conv2d<T, D> conv;

  explicit Downsample2D(int channels, int out_channels = -1, int padding = 1)
      : conv(channels, out_channels < 0 ? channels : out_channels, 3, 2, padding) {}

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 4, D>)
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const { return conv.forward(x); }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    conv.visit(v, p + "conv.");
  }
};

}  // namespace diffblocks
