#pragma once
// diffusers AdaGroupNorm(embedding_dim, out_dim, num_groups, act_fn=None, eps):
//   ss = linear(emb) (no activation); scale = ss[:, :C], shift = ss[:, C:]
//   y = group_norm(x, G, no affine) * (1 + scale) + shift
// state_dict: linear.{weight [2C, emb], bias [2C]}.
#include "diffblocks/blocks/linear.hpp"

namespace diffblocks {
namespace ops {
namespace generic {
/// SiLU(AdaGroupNorm): GroupNorm without affine, then x (1 + ss[:, :C]) + ss[:, C:], then SiLU,
/// on every device as the ops in sequence (ops/cuda/norm.cuh has a one-pass form).
template <class D, class X, class SS, OnDevice<D, X> = 0>
X ada_group_norm_silu(const D& d, const X& x, int groups, const SS& ss, double eps) {
  const auto none = ops::zeros<typename X::value_type, 1>(d, {0});
  X y = ops::group_norm(d, x, groups, none, none, eps);
  ops::scale_shift_(d, y, ss);
  ops::silu_(d, y);
  return y;
}
}  // namespace generic
using generic::ada_group_norm_silu;
}  // namespace ops

template <class T = float, class D = Cpu>
class AdaGroupNorm {
 public:
  using scalar_type = T;
  using device_type = D;
  Linear<T, D> linear;

  AdaGroupNorm(int embedding_dim, int out_dim, int num_groups, double eps = 1e-5)
      : linear(embedding_dim, 2 * out_dim), channels_(out_dim), groups_(num_groups), eps_(eps) {
    if (out_dim % num_groups != 0)
      throw ConfigError("AdaGroupNorm: out_dim " + std::to_string(out_dim) + " is not divisible by num_groups " +
                        std::to_string(num_groups));
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 4, D>, Tensor<T, 2, D>)
  /// x (B, C, H, W), emb (B, embedding_dim)
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x, const Tensor<T, 2, D>& emb) const {
    detail::check_dim("AdaGroupNorm", "input", x, 1, std::size_t(channels_));
    detail::check_dim("AdaGroupNorm", "embedding", emb, 0, x.shape(0));
    const Tensor<T, 1, D> none = ops::zeros<T, 1>(D{}, {0});
    Tensor<T, 4, D> y = ops::group_norm(D{}, x, groups_, none, none, eps_);
    ops::scale_shift_(D{}, y, linear.forward(emb));
    return y;
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward_silu, Tensor<T, 4, D>, Tensor<T, 2, D>)
  /// SiLU(forward(x, emb)) (one pass on devices with a fused kernel).
  Tensor<T, 4, D> forward_silu(const Tensor<T, 4, D>& x, const Tensor<T, 2, D>& emb) const {
    detail::check_dim("AdaGroupNorm", "input", x, 1, std::size_t(channels_));
    detail::check_dim("AdaGroupNorm", "embedding", emb, 0, x.shape(0));
    return ops::ada_group_norm_silu(D{}, x, groups_, linear.forward(emb), eps_);
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    linear.visit(v, p + "linear.");
  }

 private:
  int channels_, groups_;
  double eps_;
};

}  // namespace diffblocks
