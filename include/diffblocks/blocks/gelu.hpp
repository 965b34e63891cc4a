#pragma once
// torch.nn.GELU, exact erf form: 0.5 x (1 + erf(x / sqrt 2)), parameter-free.
#include "diffblocks/blocks/common.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class GELU {
 public:
  using scalar_type = T;
  using device_type = D;
  template <std::size_t N>
  Tensor<T, N, D> forward(Tensor<T, N, D> x) const {
    ops::gelu_(D{}, x);
    return x;
  }
  template <class V>
  void visit(V&&, const std::string& = "") {}
};

}  // namespace diffblocks
