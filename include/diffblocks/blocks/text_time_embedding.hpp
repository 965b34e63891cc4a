#pragma once
// diffusers TextTimeEmbedding (addition_embed_type "text"), derived from the style sequence:
//   aug_emb = norm2(proj(AttentionPooling(norm1(encoder_hidden_states))))
// state_dict: norm1.*, pool.{positional_embedding, k_proj, q_proj, v_proj}.*, proj.*, norm2.*
#include <cmath>

#include "diffblocks/blocks/layer_norm.hpp"
#include "diffblocks/blocks/linear.hpp"

namespace diffblocks {
namespace ops {
namespace generic {
namespace kernel {
/// y[b, 0, c] = mean_l x[b, l, c] + pos[0, c], the sum in sequence order in float32 (torch's mean).
template <class T>
struct MeanToken {
  const T *x, *pos;
  T* y;
  std::size_t L, C;
  DIFFBLOCKS_HD void operator()(std::size_t b, std::size_t c) const {
    T s = 0;
    for (std::size_t l = 0; l < L; ++l) s += x[(b * L + l) * C + c];
    y[b * (L + 1) * C + c] = s / static_cast<T>(L) + pos[c];
  }
};
}  // namespace kernel

/// [mean_L(x) + pos, x] along the sequence: (B, L, C) -> (B, L+1, C) (AttentionPooling).
template <class D, class X, class P, OnDevice<D, X> = 0>
X prepend_mean_token(const D& d, const X& x, const P& pos) {
  const std::size_t B = x.shape(0), L = x.shape(1), C = x.shape(2);
  auto y = X::from_shape({B, L + 1, C});
  for_each_row(d, B, C, kernel::MeanToken<typename X::value_type>{x.data(), pos.data(), y.data(), L, C});
  copy_rows(d, y.data() + C, (L + 1) * C, x.data(), L * C, L * C, B);
  return y;
}
}  // namespace generic
using generic::prepend_mean_token;
}  // namespace ops

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

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 3, D>)
  Tensor<T, 2, D> forward(const Tensor<T, 3, D>& x) const {
    detail::check_dim("AttentionPooling", "input", x, 2, std::size_t(dim_));
    const std::size_t B = x.shape(0), L = x.shape(1), C = x.shape(2);
    Tensor<T, 3, D> seq = ops::prepend_mean_token(D{}, x, positional_embedding);  // (B, L+1, C)
    const Tensor<T, 3, D> cls = ops::reshape<T, 3>(D{}, ops::first_token(D{}, seq), {B, 1, C});
    const compute_t<T> scale = static_cast<compute_t<T>>(1.0 / std::sqrt(static_cast<double>(dim_ / heads_)));
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

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 3, D>)
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
