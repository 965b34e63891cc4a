#pragma once
// diffusers ImageHintTimeEmbedding (addition_embed_type "image_hint"; a TTS prosody plane):
//   aug_emb = image_norm(image_proj(image_embeds)), and a conv stack turning hint (B, 3, 8H, 8W)
//   into (B, 4, H, W), which the U-Net concatenates to the sample.
// state_dict: image_proj.*, image_norm.*, input_hint_block.{0,2,...,14}.*
#include <utility>
#include <vector>

#include "diffblocks/blocks/conv2d.hpp"
#include "diffblocks/blocks/layer_norm.hpp"
#include "diffblocks/blocks/linear.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class ImageHintTimeEmbedding {
 public:
  using scalar_type = T;
  using device_type = D;
  Linear<T, D> image_proj;
  LayerNorm<T, D> image_norm;
  std::vector<Conv2d<T, D>> input_hint_block;  // state_dict indices 0, 2, ..., 14 (SiLU between)

  ImageHintTimeEmbedding(int image_embed_dim, int time_embed_dim)
      : image_proj(image_embed_dim, time_embed_dim), image_norm(time_embed_dim) {
    // (in, out, stride) of the eight 3x3 convs; a SiLU follows every conv but the last.
    const int spec[8][3] = {{3, 16, 1},  {16, 16, 1}, {16, 32, 2},  {32, 32, 1},
                            {32, 96, 2}, {96, 96, 1}, {96, 256, 2}, {256, 4, 1}};
    for (const auto& s : spec) input_hint_block.emplace_back(s[0], s[1], 3, s[2], 1);
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 2, D>, Tensor<T, 4, D>)
  /// Returns (aug_emb (B, time_embed_dim), hint (B, 4, H/8, W/8)).
  std::pair<Tensor<T, 2, D>, Tensor<T, 4, D>> forward(const Tensor<T, 2, D>& image_embeds,
                                                      const Tensor<T, 4, D>& hint) const {
    detail::check_dim("ImageHintTimeEmbedding", "hint", hint, 1, 3);
    Tensor<T, 4, D> h = hint;
    for (std::size_t i = 0; i < input_hint_block.size(); ++i) {
      h = input_hint_block[i].forward(h);
      if (i + 1 < input_hint_block.size()) ops::silu_(D{}, h);
    }
    return {image_norm.forward(image_proj.forward(image_embeds)), std::move(h)};
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    image_proj.visit(v, p + "image_proj.");
    image_norm.visit(v, p + "image_norm.");
    for (std::size_t i = 0; i < input_hint_block.size(); ++i)
      input_hint_block[i].visit(v, p + "input_hint_block." + std::to_string(2 * i) + ".");
  }
};

}  // namespace diffblocks
