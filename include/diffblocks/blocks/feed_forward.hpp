#pragma once
// diffusers FeedForward(dim, mult=4, activation_fn="geglu"):
//   net.0 = GEGLU: proj Linear(dim, 2*inner), a, gate = chunk(2) -> a * GELU_erf(gate)
//   net.1 = Dropout (p = 0), net.2 = Linear(inner, dim_out)
// state_dict: net.0.proj.*, net.2.*
#include "diffblocks/blocks/linear.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class FeedForward {
 public:
  using scalar_type = T;
  using device_type = D;
  Linear<T, D> proj, out;

  explicit FeedForward(int dim, int mult = 4, int dim_out = -1)
      : proj(dim, 2 * dim * mult), out(dim * mult, dim_out < 0 ? dim : dim_out) {}

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 3, D>)
  Tensor<T, 3, D> forward(const Tensor<T, 3, D>& x) const {
    return out.forward(ops::geglu(D{}, proj.forward(x)));
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    proj.visit(v, p + "net.0.proj.");
    out.visit(v, p + "net.2.");
  }
};

}  // namespace diffblocks
