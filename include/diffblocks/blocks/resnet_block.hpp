#pragma once
// Grad-TTS ResnetBlock:
//   h = block1(x, mask) + Linear(Mish(t_emb))[:, :, None, None]   (bias added after the mask)
//   h = block2(h, mask)
//   out = h + res_conv(x * mask)     (1x1 conv when dim != dim_out, identity otherwise)
// state_dict: mlp.1.* (Mish is mlp.0), block1.*, block2.*, res_conv.* (only when dim != dim_out).
#include <optional>
#include <utility>

#include "diffblocks/blocks/block.hpp"
#include "diffblocks/blocks/linear.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class ResnetBlock {
 public:
  using scalar_type = T;
  using device_type = D;
  Linear<T, D> mlp;
  Block<T, D> block1, block2;
  std::optional<Conv2d<T, D>> res_conv;  // empty = Identity

  ResnetBlock(int dim, int dim_out, int time_emb_dim, int groups = 8)
      : mlp(time_emb_dim, dim_out), block1(dim, dim_out, groups), block2(dim_out, dim_out, groups) {
    if (dim != dim_out) res_conv.emplace(dim, dim_out, 1);
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 4, D>, Tensor<T, 4, D>, Tensor<T, 2, D>)
  /// x (B, dim, H, W), mask (B, 1, 1, W), t_emb (B, time_emb_dim) -> (B, dim_out, H, W)
  ///
  /// The element-wise steps are fused, with PyTorch's order of operations kept: the masked copy
  /// of x feeds block1's conv (and res_conv); block1's GroupNorm pass also applies Mish, the
  /// mask, the time bias and block2's input mask; the residual is accumulated straight into h.
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x, const Tensor<T, 4, D>& mask, const Tensor<T, 2, D>& t_emb) const {
    check(x, mask, t_emb);
    return forward_masked(ops::masked_copy(D{}, x, mask), mask, t_emb);
  }
  /// The same on an x the caller gives up: it is masked in place and becomes the masked copy,
  /// so a U-Net level holds one tensor of x's size fewer at once (the Origin's peak at T = 512).
  Tensor<T, 4, D> forward(Tensor<T, 4, D>&& x, const Tensor<T, 4, D>& mask, const Tensor<T, 2, D>& t_emb) const {
    check(x, mask, t_emb);
    Tensor<T, 4, D> xm = std::move(x);
    ops::mul_mask_(D{}, xm, mask);
    return forward_masked(xm, mask, t_emb);
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    mlp.visit(v, p + "mlp.1.");
    block1.visit(v, p + "block1.");
    block2.visit(v, p + "block2.");
    if (res_conv) res_conv->visit(v, p + "res_conv.");
  }

 private:
  void check(const Tensor<T, 4, D>& x, const Tensor<T, 4, D>& mask, const Tensor<T, 2, D>& t_emb) const {
    detail::check_dim("ResnetBlock", "time embedding", t_emb, 0, x.shape(0));
    detail::check_mask("ResnetBlock", x, mask);
  }
  /// xm = x * mask.
  Tensor<T, 4, D> forward_masked(const Tensor<T, 4, D>& xm, const Tensor<T, 4, D>& mask,
                                 const Tensor<T, 2, D>& t_emb) const {
    Tensor<T, 2, D> te = t_emb;
    ops::mish_(D{}, te);
    const Tensor<T, 2, D> time_bias = mlp.forward(te);
    Tensor<T, 4, D> h = block1.conv.forward(xm);
    block1.norm.forward_mish_mask_bias_mask_(h, mask, time_bias);  // = block2's conv input
    h = block2.conv.forward(h);
    block2.norm.forward_mish_mask_(h, mask);
    if (res_conv)
      res_conv->forward_add_(xm, h);
    else
      ops::add_(D{}, h, xm);
    return h;
  }
};

}  // namespace diffblocks
