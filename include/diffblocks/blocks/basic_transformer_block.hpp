#pragma once
// diffusers BasicTransformerBlock (norm_type "layer_norm", geglu FeedForward):
//   h = attn1(LN1(h), enc if only_cross_attention else h) + h
//   h = attn2(LN2(h), enc, mask) + h          (when cross_attention_dim is set)
//   h = ff(LN3(h)) + h
// state_dict: norm1, attn1, [norm2, attn2], norm3, ff
#include <optional>

#include "diffblocks/blocks/attention.hpp"
#include "diffblocks/blocks/feed_forward.hpp"
#include "diffblocks/blocks/layer_norm.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class BasicTransformerBlock {
 public:
  using scalar_type = T;
  using device_type = D;
  LayerNorm<T, D> norm1;
  Attention<T, D> attn1;
  std::optional<LayerNorm<T, D>> norm2;
  std::optional<Attention<T, D>> attn2;
  LayerNorm<T, D> norm3;
  FeedForward<T, D> ff;

  /// cross_attention_dim <= 0: no attn2 (self-attention only).
  BasicTransformerBlock(int dim, int heads, int dim_head, int cross_attention_dim, bool only_cross_attention = false)
      : norm1(dim), attn1(dim, only_cross_attention ? cross_attention_dim : 0, heads, dim_head), norm3(dim), ff(dim),
        only_cross_(only_cross_attention) {
    if (only_cross_attention && cross_attention_dim <= 0)
      throw ConfigError("BasicTransformerBlock: only_cross_attention needs a cross_attention_dim");
    if (cross_attention_dim > 0) {
      norm2.emplace(dim);
      attn2.emplace(dim, cross_attention_dim, heads, dim_head);
    }
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 3, D>, Tensor<T, 3, D>, std::optional<Tensor<T, 2, D>>)
  /// h (B, N, dim), enc (B, S, cross_dim), optional mask bias (B, S) for the cross-attention.
  Tensor<T, 3, D> forward(const Tensor<T, 3, D>& h_in, const Tensor<T, 3, D>& enc,
                          const std::optional<Tensor<T, 2, D>>& enc_mask_bias = std::nullopt) const {
    Tensor<T, 3, D> h = h_in;
    {
      const Tensor<T, 3, D> n = norm1.forward(h);
      ops::add_(D{}, h, only_cross_ ? attn1.forward(n, enc) : attn1.forward(n));
    }
    if (attn2) ops::add_(D{}, h, attn2->forward(norm2->forward(h), enc, enc_mask_bias));
    ops::add_(D{}, h, ff.forward(norm3.forward(h)));
    return h;
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    norm1.visit(v, p + "norm1.");
    attn1.visit(v, p + "attn1.");
    if (attn2) {
      norm2->visit(v, p + "norm2.");
      attn2->visit(v, p + "attn2.");
    }
    norm3.visit(v, p + "norm3.");
    ff.visit(v, p + "ff.");
  }

 private:
  bool only_cross_;
};

}  // namespace diffblocks
