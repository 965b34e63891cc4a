#pragma once
// diffusers Timesteps (sinusoidal projection, no parameters) and TimestepEmbedding
// (linear_1 -> SiLU -> linear_2), in float32 with torch's order of operations:
//   freq_i = exp((-ln(max_period) * i) / (half - downscale_freq_shift)),  arg = t * freq_i
//   emb = [sin | cos] (or [cos | sin] with flip_sin_to_cos); odd width gets a zero column.
#include <cmath>

#include "diffblocks/blocks/linear.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class Timesteps {
 public:
  using scalar_type = T;
  using device_type = D;

  Timesteps(int num_channels, bool flip_sin_to_cos, double downscale_freq_shift, double max_period = 10000.0)
      : channels_(num_channels), flip_(flip_sin_to_cos), shift_(downscale_freq_shift), max_period_(max_period) {
    detail::check_positive("Timesteps", "num_channels", num_channels);
    if (num_channels / 2 - downscale_freq_shift == 0)
      throw ConfigError("Timesteps: num_channels / 2 - downscale_freq_shift must not be 0");
  }

  /// t (B,) -> (B, num_channels)
  Tensor<T, 2, D> forward(const Tensor<T, 1, D>& t) const {
    return ops::timestep_embedding(D{}, t, channels_, flip_, static_cast<T>(shift_), static_cast<T>(max_period_));
  }

  template <class V>
  void visit(V&&, const std::string& = "") {}

 private:
  int channels_;
  bool flip_;
  double shift_, max_period_;
};

template <class T = float, class D = Cpu>
class TimestepEmbedding {
 public:
  using scalar_type = T;
  using device_type = D;
  Linear<T, D> linear_1, linear_2;

  TimestepEmbedding(int in_channels, int time_embed_dim, int out_dim = -1)
      : linear_1(in_channels, time_embed_dim), linear_2(time_embed_dim, out_dim < 0 ? time_embed_dim : out_dim) {}

  Tensor<T, 2, D> forward(const Tensor<T, 2, D>& x) const {
    Tensor<T, 2, D> h = linear_1.forward(x);
    ops::silu_(D{}, h);
    return linear_2.forward(h);
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    linear_1.visit(v, p + "linear_1.");
    linear_2.visit(v, p + "linear_2.");
  }
};

/// torch.nn.Embedding: rows of `weight` (num, dim) looked up by id. state_dict: weight.
template <class T = float, class D = Cpu>
class Embedding {
 public:
  using scalar_type = T;
  using device_type = D;
  Tensor<T, 2, D> weight;

  Embedding(int num_embeddings, int embedding_dim)
      : weight(ops::zeros<T, 2>(D{}, {std::size_t(num_embeddings), std::size_t(embedding_dim)})) {}

  /// ids (B,) -> (B, dim); ids outside [0, num) throw InputError naming `what`.
  Tensor<T, 2, D> forward(const std::vector<std::int64_t>& ids, const std::string& what = "ids") const {
    for (auto id : ids)
      if (id < 0 || id >= static_cast<std::int64_t>(weight.shape(0)))
        throw InputError("Embedding: " + what + " holds " + std::to_string(id) + ", outside [0, " +
                         std::to_string(weight.shape(0)) + ")");
    return ops::gather_rows(D{}, weight, ids);
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    v(p + "weight", weight);
  }
};

}  // namespace diffblocks
