#pragma once
// CrossAttention: diffusers' Attention with the TTS meaning spelled out. Queries come from the
// content stream (the U-Net's feature tokens, B x N x C), keys and values from the style stream
// (B x S x D); the output has the content's shape. Parameters as Attention (to_q, to_k, to_v,
// to_out.0), so a diffusers `attn2` loads into it directly.
#include <optional>

#include "diffblocks/blocks/attention.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class CrossAttention : public Attention<T, D> {
 public:
  CrossAttention(int content_dim, int style_dim, int heads, int dim_head)
      : Attention<T, D>(content_dim, style_dim, heads, dim_head) {}

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 3, D>, Tensor<T, 3, D>, std::optional<Tensor<T, 2, D>>)
  /// content (B, N, content_dim), style (B, S, style_dim), optional style_keep (B, S) with
  /// 1 = attend, 0 = padding -> (B, N, content_dim).
  Tensor<T, 3, D> forward(const Tensor<T, 3, D>& content, const Tensor<T, 3, D>& style,
                          const std::optional<Tensor<T, 2, D>>& style_keep = std::nullopt) const {
    if (!style_keep) return Attention<T, D>::forward(content, style);
    return Attention<T, D>::forward(content, style, ops::keep_mask_to_bias(D{}, *style_keep));
  }
};

}  // namespace diffblocks
