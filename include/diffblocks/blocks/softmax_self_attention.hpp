#pragma once
// SoftmaxSelfAttention(dim, heads=4, dim_head=32): an alternative to Grad-TTS's LinearAttention
// for the Origin U-Net, with the same constructor and the same hidden width. Every position of
// the (B, C, H, W) feature map is a token of C channels and attends to all H*W positions with
// softmax(q k^T / sqrt(dim_head)) — built on CrossAttention with the map as both the content and
// the style stream. Unlike LinearAttention it sees the padding mask (B, 1, 1, W): padded frames
// are never attended to (diffusers' -10000 key bias, so their weight underflows to exactly 0) and
// their outputs are 0, so the valid frames' outputs do not depend on the padded ones.
// Cost is quadratic in H*W; with 80 mel bins that is (80 T)^2 scores per head at level 0, so
// it suits small maps (or reduced n_feats) rather than a full-size decoder.
// state_dict: to_q.weight, to_k.weight, to_v.weight, to_out.0.{weight,bias} (diffusers names).
#include "diffblocks/blocks/common.hpp"
#include "diffblocks/blocks/cross_attention.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class SoftmaxSelfAttention {
 public:
  using scalar_type = T;
  using device_type = D;
  CrossAttention<T, D> attn;

  explicit SoftmaxSelfAttention(int dim, int heads = 4, int dim_head = 32)
      : attn(dim, dim, heads, dim_head), dim_(dim) {}

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 4, D>, Tensor<T, 4, D>)
  /// x (B, dim, H, W) -> (B, dim, H, W); every position attends to every position.
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const {
    check(x);
    const Tensor<T, 3, D> tokens = ops::nchw_to_tokens(D{}, x);
    return ops::tokens_to_nchw(D{}, attn.forward(tokens, tokens), x.shape(2), x.shape(3));
  }

  /// x (B, dim, H, W), mask (B, 1, 1, W) with 1 = valid frame -> (B, dim, H, W), 0 on padded
  /// frames. The Origin U-Net calls this overload (it passes each level's mask when it can).
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x, const Tensor<T, 4, D>& mask) const {
    check(x);
    detail::check_mask("SoftmaxSelfAttention", x, mask);
    const Tensor<T, 3, D> tokens = ops::nchw_to_tokens(D{}, x);
    const Tensor<T, 2, D> keep = ops::frame_mask_to_tokens(D{}, mask, x.shape(2));
    Tensor<T, 4, D> y = ops::tokens_to_nchw(D{}, attn.forward(tokens, tokens, keep), x.shape(2), x.shape(3));
    ops::mul_mask_(D{}, y, mask);
    return y;
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    attn.visit(v, p);
  }

  int heads() const { return attn.heads(); }
  int dim_head() const { return attn.dim_head(); }

 private:
  void check(const Tensor<T, 4, D>& x) const {
    detail::check_dim("SoftmaxSelfAttention", "input", x, 1, std::size_t(dim_));
  }

  int dim_;
};

}  // namespace diffblocks
