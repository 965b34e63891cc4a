#pragma once
// Grad-TTS LinearAttention(dim, heads=4, dim_head=32). Hidden width is heads*dim_head (128 by
// default) regardless of dim. qkv = 1x1 conv without bias; k is softmaxed over all H*W
// positions (padded frames included, no mask, no 1/sqrt(d) scale); out = (k v^T)^T q per head;
// then a 1x1 conv with bias back to dim. state_dict: to_qkv.weight, to_out.{weight,bias}.
#include "diffblocks/blocks/conv2d.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class LinearAttention {
 public:
  using scalar_type = T;
  using device_type = D;
  Conv2d<T, D> to_qkv, to_out;

  explicit LinearAttention(int dim, int heads = 4, int dim_head = 32)
      : to_qkv(dim, 3 * heads * dim_head, 1, 1, 0, false), to_out(heads * dim_head, dim, 1), heads_(heads),
        dim_head_(dim_head) {}

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 4, D>)
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const {
    detail::check_dim("LinearAttention", "input", x, 1, std::size_t(to_qkv.in_channels()));
    // One fused op (ops::linear_attention_block: the same function, never forming q and v).
    return ops::linear_attention_block(D{}, x, to_qkv.weight, to_out.weight, to_out.bias, heads_, dim_head_);
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    // The fused op reads the two weights as they are: preparing forms for them (prepare())
    // would hold memory nothing uses, so the prepared-weights walk skips them.
    if constexpr (detail::is_prepared_walk<V>::value) return;
    to_qkv.visit(v, p + "to_qkv.");
    to_out.visit(v, p + "to_out.");
  }

  int heads() const { return heads_; }
  int dim_head() const { return dim_head_; }

 private:
  int heads_, dim_head_;
};

}  // namespace diffblocks
