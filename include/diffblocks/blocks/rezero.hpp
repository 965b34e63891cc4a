#pragma once
// Rezero(fn): fn(x) * g, with g a learned scalar (shape [1], initialised to 0 in PyTorch).
// state_dict: g, fn.*
#include <utility>

#include "diffblocks/blocks/common.hpp"

namespace diffblocks {

template <class Fn>
class Rezero {
 public:
  using scalar_type = typename Fn::scalar_type;
  using device_type = typename Fn::device_type;
  Fn fn;
  Tensor<scalar_type, 1, device_type> g;

  template <class... Args>
  explicit Rezero(Args&&... args)
      : fn(std::forward<Args>(args)...), g(ops::zeros<scalar_type, 1>(device_type{}, {1})) {}

  template <class X, class... Rest>
  X forward(const X& x, const Rest&... rest) const {
    X y = fn.forward(x, rest...);
    ops::scale_(device_type{}, y, g);
    return y;
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    v(p + "g", g);
    fn.visit(v, p + "fn.");
  }
};

}  // namespace diffblocks
