#pragma once
// Grad-TTS Block: Mish(GroupNorm(Conv3x3(x * mask))) * mask.
// state_dict: block.0.* (conv), block.1.* (GroupNorm); Mish has no parameters.
#include <utility>

#include "diffblocks/blocks/conv2d.hpp"
#include "diffblocks/blocks/group_norm.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class Block {
 public:
  using scalar_type = T;
  using device_type = D;
  Conv2d<T, D> conv;
  GroupNorm<T, D> norm;

  Block(int dim, int dim_out, int groups = 8) : conv(dim, dim_out, 3, 1, 1), norm(groups, dim_out) {}

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 4, D>, Tensor<T, 4, D>)
  /// x (B, dim, H, W), mask (B, 1, 1, W) -> (B, dim_out, H, W), zero on padded frames.
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x, const Tensor<T, 4, D>& mask) const {
    detail::check_mask("Block", x, mask);
    Tensor<T, 4, D> h = conv.forward(ops::masked_copy(D{}, x, mask));
    norm.forward_mish_mask_(h, mask);
    return h;
  }
  /// The same on an x the caller gives up, masked in place instead of copied.
  Tensor<T, 4, D> forward(Tensor<T, 4, D>&& x, const Tensor<T, 4, D>& mask) const {
    detail::check_mask("Block", x, mask);
    Tensor<T, 4, D> xm = std::move(x);
    ops::mul_mask_(D{}, xm, mask);
    Tensor<T, 4, D> h = conv.forward(xm);
    norm.forward_mish_mask_(h, mask);
    return h;
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    conv.visit(v, p + "block.0.");
    norm.visit(v, p + "block.1.");
  }
};

}  // namespace diffblocks
