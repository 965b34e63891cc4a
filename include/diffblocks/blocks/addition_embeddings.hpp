#pragma once
// diffusers' addition embeddings (UNet2DConditionModel `add_embedding`), each producing an
// extra (B, time_embed_dim) term added to the time embedding:
//   ImageTimeEmbedding:     image_norm(image_proj(image_embeds))                     ("image")
//   ImageHintTimeEmbedding: the same, plus a conv stack turning hint (B, 3, 8H, 8W) into
//                           (B, 4, H, W) that is concatenated to the sample             ("image_hint")
//   TextTimeEmbedding:      norm2(proj(AttentionPooling(norm1(encoder_hidden_states))))  ("text")
// ("text_time" is a TimestepEmbedding on [text_embeds | Timesteps(time_ids)]; see unets/diffuser.hpp.)
#include <utility>
#include <vector>

#include "diffblocks/blocks/attention.hpp"
#include "diffblocks/blocks/conv2d.hpp"
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

  Tensor<T, 2, D> forward(const Tensor<T, 2, D>& image_embeds) const {
    return image_norm.forward(image_proj.forward(image_embeds));
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    image_proj.visit(v, p + "image_proj.");
    image_norm.visit(v, p + "image_norm.");
  }
};

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

/// diffusers AttentionPooling: a class token (mean over the sequence + positional_embedding)
/// attends over [class token, sequence] with num_heads heads; returns the class token (B, D).
template <class T = float, class D = Cpu>
class AttentionPooling {
 public:
  using scalar_type = T;
  using device_type = D;
  Tensor<T, 2, D> positional_embedding;  // (1, D)
  Linear<T, D> k_proj, q_proj, v_proj;

  AttentionPooling(int num_heads, int embed_dim)
      : positional_embedding(ops::zeros<T, 2>(D{}, {1, std::size_t(embed_dim)})), k_proj(embed_dim, embed_dim),
        q_proj(embed_dim, embed_dim), v_proj(embed_dim, embed_dim), heads_(num_heads), dim_(embed_dim) {
    if (num_heads <= 0 || embed_dim % num_heads != 0)
      throw ConfigError("AttentionPooling: num_heads " + std::to_string(num_heads) + " must divide embed_dim " +
                        std::to_string(embed_dim));
  }

  Tensor<T, 2, D> forward(const Tensor<T, 3, D>& x) const {
    detail::check_dim("AttentionPooling", "input", x, 2, std::size_t(dim_));
    const std::size_t B = x.shape(0), L = x.shape(1), C = x.shape(2);
    Tensor<T, 3, D> seq = ops::prepend_mean_token(D{}, x, positional_embedding);  // (B, L+1, C)
    const Tensor<T, 3, D> cls = ops::reshape<T, 3>(D{}, ops::first_token(D{}, seq), {B, 1, C});
    const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(dim_ / heads_)));
    const Tensor<T, 2, D> none = ops::zeros<T, 2>(D{}, {0, 0});
    const Tensor<T, 3, D> a = ops::attention(D{}, q_proj.forward(cls), k_proj.forward(seq), v_proj.forward(seq), heads_, scale, none);
    (void)L;
    return ops::reshape<T, 2>(D{}, a, {B, C});
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    v(p + "positional_embedding", positional_embedding);
    k_proj.visit(v, p + "k_proj.");
    q_proj.visit(v, p + "q_proj.");
    v_proj.visit(v, p + "v_proj.");
  }

 private:
  int heads_, dim_;
};

template <class T = float, class D = Cpu>
class TextTimeEmbedding {
 public:
  using scalar_type = T;
  using device_type = D;
  LayerNorm<T, D> norm1;
  AttentionPooling<T, D> pool;
  Linear<T, D> proj;
  LayerNorm<T, D> norm2;

  TextTimeEmbedding(int encoder_dim, int time_embed_dim, int num_heads = 64)
      : norm1(encoder_dim), pool(num_heads, encoder_dim), proj(encoder_dim, time_embed_dim), norm2(time_embed_dim) {}

  /// hidden_states (B, L, encoder_dim) -> (B, time_embed_dim)
  Tensor<T, 2, D> forward(const Tensor<T, 3, D>& hidden_states) const {
    return norm2.forward(proj.forward(pool.forward(norm1.forward(hidden_states))));
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    norm1.visit(v, p + "norm1.");
    pool.visit(v, p + "pool.");
    proj.visit(v, p + "proj.");
    norm2.visit(v, p + "norm2.");
  }
};

}  // namespace diffblocks
