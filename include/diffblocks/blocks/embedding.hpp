#pragma once
// torch.nn.Embedding (the Diffuser's class embedding: emotion id -> time-embedding offset).
#include <cstdint>
#include <vector>

#include "diffblocks/blocks/common.hpp"

namespace diffblocks {

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
