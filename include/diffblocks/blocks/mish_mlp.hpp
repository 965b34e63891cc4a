#pragma once
// Linear -> Mish -> Linear, the nn.Sequential Grad-TTS uses for the time MLP (`mlp`), the
// speaker MLP (`spk_mlp`) and our emotion MLP (`emo_mlp`). Keys `0.*` and `2.*` (Mish is index 1).
#include "diffblocks/blocks/linear.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class MishMLP {
 public:
  using scalar_type = T;
  using device_type = D;
  Linear<T, D> fc1, fc2;

  MishMLP(int in_features, int hidden, int out_features) : fc1(in_features, hidden), fc2(hidden, out_features) {}

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 2, D>)
  Tensor<T, 2, D> forward(const Tensor<T, 2, D>& x) const {
    Tensor<T, 2, D> h = fc1.forward(x);
    ops::mish_(D{}, h);
    return fc2.forward(h);
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    fc1.visit(v, p + "0.");
    fc2.visit(v, p + "2.");
  }
};

}  // namespace diffblocks
