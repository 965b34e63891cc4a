#pragma once
// diffusers ImageTimeEmbedding (addition_embed_type "image"; the TTS prosody vector):
//   aug_emb = image_norm(image_proj(image_embeds)). state_dict: image_proj.*, image_norm.*
#include "diffblocks/blocks/layer_norm.hpp"
#include "diffblocks/blocks/linear.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class ImageTimeEmbedding {
 public:
  using scalar_type = T;
  using device_type = D;
  Linear<T, D> image_proj;
  LayerNorm<T, D> image_norm;

  ImageTimeEmbedding(int image_embed_dim, int time_embed_dim)
      : image_proj(image_embed_dim, time_embed_dim), image_norm(time_embed_dim) {}

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 2, D>)
  Tensor<T, 2, D> forward(const Tensor<T, 2, D>& image_embeds) const {
    return image_norm.forward(image_proj.forward(image_embeds));
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    image_proj.visit(v, p + "image_proj.");
    image_norm.visit(v, p + "image_norm.");
  }
};

}  // namespace diffblocks
