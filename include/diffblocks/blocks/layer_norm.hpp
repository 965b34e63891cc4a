#pragma once
// torch.nn.LayerNorm over the last dimension (biased variance, eps inside the square root).
#include "diffblocks/blocks/common.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class LayerNorm {
 public:
  using scalar_type = T;
  using device_type = D;
  Tensor<T, 1, D> weight, bias;  // empty when elementwise_affine=false

  explicit LayerNorm(int dim, double eps = 1e-5, bool affine = true) : dim_(dim), eps_(eps) {
    detail::check_positive("LayerNorm", "normalized_shape", dim);
    weight = ops::full<T, 1>(D{}, {affine ? std::size_t(dim) : 0}, T(1));
    bias = ops::zeros<T, 1>(D{}, {affine ? std::size_t(dim) : 0});
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 3, D>)
  Tensor<T, 2, D> forward(const Tensor<T, 2, D>& x) const {
    detail::check_dim("LayerNorm", "input", x, 1, std::size_t(dim_));
    return ops::layer_norm(D{}, x, weight, bias, eps_);
  }

  Tensor<T, 3, D> forward(const Tensor<T, 3, D>& x) const {
    detail::check_dim("LayerNorm", "input", x, 2, std::size_t(dim_));
    return ops::layer_norm(D{}, x, weight, bias, eps_);
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    if (weight.size()) {
      v(p + "weight", weight);
      v(p + "bias", bias);
    }
  }

 private:
  int dim_;
  double eps_;
};

}  // namespace diffblocks
