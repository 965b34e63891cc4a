#pragma once
// torch.nn.SiLU: x * sigmoid(x), parameter-free.
#include "diffblocks/blocks/common.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class SiLU {
 public:
  using scalar_type = T;
  using device_type = D;
  template <std::size_t N>
  Tensor<T, N, D> forward(Tensor<T, N, D> x) const {
    ops::silu_(D{}, x);
    return x;
  }
  template <class V>
  void visit(V&&, const std::string& = "") {}
};

}  // namespace diffblocks
