#pragma once
// Residual(fn): fn(x, ...) + x. state_dict: fn.*
#include <utility>

#include "diffblocks/blocks/common.hpp"

namespace diffblocks {

template <class Fn>
class Residual {
 public:
  using scalar_type = typename Fn::scalar_type;
  using device_type = typename Fn::device_type;
  Fn fn;

  template <class... Args>
  explicit Residual(Args&&... args) : fn(std::forward<Args>(args)...) {}

  template <class X, class... Rest>
  X forward(const X& x, const Rest&... rest) const {
    X y = fn.forward(x, rest...);
    ops::add_(device_type{}, y, x);
    return y;
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    fn.visit(v, p + "fn.");
  }
};

}  // namespace diffblocks
