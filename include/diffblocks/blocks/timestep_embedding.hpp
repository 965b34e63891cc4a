#pragma once
// diffusers TimestepEmbedding: linear_1 -> SiLU -> linear_2. state_dict: linear_1.*, linear_2.*
#include "diffblocks/blocks/linear.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class TimestepEmbedding {
 public:
  using scalar_type = T;
  using device_type = D;
  Linear<T, D> linear_1, linear_2;

  TimestepEmbedding(int in_channels, int time_embed_dim, int out_dim = -1)
      : linear_1(in_channels, time_embed_dim), linear_2(time_embed_dim, out_dim < 0 ? time_embed_dim : out_dim) {}

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 2, D>)
  Tensor<T, 2, D> forward(const Tensor<T, 2, D>& x) const {
    Tensor<T, 2, D> h = linear_1.forward(x);
    ops::silu_(D{}, h);
    return linear_2.forward(h);
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    linear_1.visit(v, p + "linear_1.");
    linear_2.visit(v, p + "linear_2.");
  }
};

}  // namespace diffblocks
