#pragma once
// diffusers Transformer2DModel (continuous input, conv or linear projections):
//   res = x; h = GroupNorm(G, C, eps 1e-6)(x); proj_in (1x1 conv before, or Linear after, the
//   NCHW -> (B, H*W, inner) permutation); blocks; proj_out; + res
#include <optional>
#include <vector>

#include "diffblocks/blocks/basic_transformer_block.hpp"
#include "diffblocks/blocks/conv2d.hpp"
#include "diffblocks/blocks/group_norm.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class Transformer2DModel {
 public:
  using scalar_type = T;
  using device_type = D;
  GroupNorm<T, D> norm;
  std::optional<Conv2d<T, D>> proj_in_conv, proj_out_conv;
  std::optional<Linear<T, D>> proj_in_linear, proj_out_linear;
  std::vector<BasicTransformerBlock<T, D>> transformer_blocks;

  Transformer2DModel(int num_attention_heads, int attention_head_dim, int in_channels, int num_layers,
                     int cross_attention_dim, int norm_num_groups, bool use_linear_projection = false,
                     bool only_cross_attention = false)
      : norm(norm_num_groups, in_channels, 1e-6), in_(in_channels), linear_(use_linear_projection) {
    const int inner = num_attention_heads * attention_head_dim;
    if (linear_) {
      proj_in_linear.emplace(in_channels, inner);
      proj_out_linear.emplace(inner, in_channels);
    } else {
      proj_in_conv.emplace(in_channels, inner, 1);
      proj_out_conv.emplace(inner, in_channels, 1);
    }
    for (int i = 0; i < num_layers; ++i)
      transformer_blocks.emplace_back(inner, num_attention_heads, attention_head_dim, cross_attention_dim,
                                      only_cross_attention);
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 4, D>, Tensor<T, 3, D>, std::optional<Tensor<T, 2, D>>)
  /// x (B, C, H, W), enc (B, S, cross_dim) -> (B, C, H, W)
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x, const Tensor<T, 3, D>& enc,
                          const std::optional<Tensor<T, 2, D>>& enc_mask_bias = std::nullopt) const {
    detail::check_dim("Transformer2DModel", "input", x, 1, std::size_t(in_));
    const std::size_t H = x.shape(2), W = x.shape(3);
    Tensor<T, 4, D> h = norm.forward(x);
    Tensor<T, 3, D> tokens = linear_ ? proj_in_linear->forward(ops::nchw_to_tokens(D{}, h))
                                     : ops::nchw_to_tokens(D{}, proj_in_conv->forward(h));
    for (const auto& block : transformer_blocks) tokens = block.forward(tokens, enc, enc_mask_bias);
    h = linear_ ? ops::tokens_to_nchw(D{}, proj_out_linear->forward(tokens), H, W)
                : proj_out_conv->forward(ops::tokens_to_nchw(D{}, tokens, H, W));
    ops::add_(D{}, h, x);
    return h;
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    norm.visit(v, p + "norm.");
    if (linear_) proj_in_linear->visit(v, p + "proj_in.");
    else proj_in_conv->visit(v, p + "proj_in.");
    for (std::size_t i = 0; i < transformer_blocks.size(); ++i)
      transformer_blocks[i].visit(v, p + "transformer_blocks." + std::to_string(i) + ".");
    if (linear_) proj_out_linear->visit(v, p + "proj_out.");
    else proj_out_conv->visit(v, p + "proj_out.");
  }

 private:
  int in_;
  bool linear_;
};

}  // namespace diffblocks
