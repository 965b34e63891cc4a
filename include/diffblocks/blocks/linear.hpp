#pragma once
// torch.nn.Linear: y = x W^T + b, weight (out, in). Keeps its weight's prepared form (packed
// W^T for token-wise calls; ops/cpu/linear.hpp) like Conv2d: edit `weight` after a forward and
// call invalidate_prepared() (or db::invalidate_prepared(model)); loading a state dict does it.
#include "diffblocks/blocks/common.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class Linear {
 public:
  using scalar_type = T;
  using device_type = D;
  Tensor<T, 2, D> weight;
  Tensor<T, 1, D> bias;  // empty when bias=false

  Linear(int in_features, int out_features, bool has_bias = true) : in_(in_features), out_(out_features) {
    detail::check_positive("Linear", "in_features", in_features);
    detail::check_positive("Linear", "out_features", out_features);
    weight = ops::zeros<T, 2>(D{}, {std::size_t(out_features), std::size_t(in_features)});
    bias = ops::zeros<T, 1>(D{}, {has_bias ? std::size_t(out_features) : 0});
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 3, D>)
  /// x (B, in) -> (B, out)
  Tensor<T, 2, D> forward(const Tensor<T, 2, D>& x) const {
    detail::check_dim("Linear", "input", x, 1, std::size_t(in_));
    return ops::linear(D{}, x, weight, bias, prepared_);
  }

  /// x (B, N, in) -> (B, N, out): applied to every token.
  Tensor<T, 3, D> forward(const Tensor<T, 3, D>& x) const {
    detail::check_dim("Linear", "input", x, 2, std::size_t(in_));
    return ops::linear(D{}, x, weight, bias, prepared_);
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    detail::offer_prepared(v, *this);
    v(p + "weight", weight);
    if (bias.size()) v(p + "bias", bias);
  }

  /// Makes the prepared form now, for the device in effect (else at the first token-wise forward).
  void prepare() { ops::prepare_linear(D{}, weight, prepared_); }
  /// Drops the prepared form: the next forward prepares from `weight` as it is then.
  void invalidate_prepared() { prepared_.reset(); }
  std::size_t prepared_bytes() const { return prepared_.bytes(); }

  int in_features() const { return in_; }
  int out_features() const { return out_; }

 private:
  int in_, out_;
  mutable ops::PreparedWeights<T, D> prepared_;
};

}  // namespace diffblocks
