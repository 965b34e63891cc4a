#pragma once
// diffusers Upsample2D (use_conv, interpolate): nearest x2, or to an explicit size (the U-Net
// passes one when a sample dimension is not a multiple of 2^num_upsamplers), then a 3x3 conv.
// state_dict: conv.*
#include "diffblocks/blocks/conv2d.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class Upsample2D {
 public:
  using scalar_type = T;
  using device_type = D;
  Conv2d<T, D> conv;

  explicit Upsample2D(int channels, int out_channels = -1) : conv(channels, out_channels < 0 ? channels : out_channels, 3, 1, 1) {}

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 4, D>, std::size_t, std::size_t)
  /// Nearest x2, or to (out_h, out_w) when given (> 0), then the conv.
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x, std::size_t out_h = 0, std::size_t out_w = 0) const {
    if (out_h == 0) out_h = 2 * x.shape(2);
    if (out_w == 0) out_w = 2 * x.shape(3);
    return conv.forward(ops::upsample_nearest(D{}, x, out_h, out_w));
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    conv.visit(v, p + "conv.");
  }
};

}  // namespace diffblocks
