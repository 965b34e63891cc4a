#pragma once
// Deterministic, non-trivial parameters for a model built from code (no checkpoint): blocks are
// constructed with zeros / identity norms, and Rezero's g = 0 would switch attention off
// entirely, so trying a new block combination needs every parameter set. Not a training init.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "diffblocks/core/params.hpp"
#include "diffblocks/core/random.hpp"

namespace diffblocks {

/// Fills every visited parameter from Rng(seed), in visit order:
///   rank >= 2 (conv/linear weights, tables): N(0, 1 / fan_in), fan_in = numel / shape[0],
///     which keeps activations O(1) through deep stacks;
///   rank 1 named "...weight" (norm scales): 1 + N(0, 0.1^2);
///   other rank 1 (biases, Rezero g): N(0, scale^2) with scale = `bias_scale`.
template <class Module>
void init_parameters(Module& module, std::uint64_t seed = 0, double bias_scale = 0.1) {
  using D = typename Module::device_type;
  Rng rng(seed);
  module.visit([&](const std::string& name, auto& tensor) {
    const Shape shape = tensor_shape(tensor);
    std::vector<float> host(tensor.size());
    if (shape.size() >= 2) {
      const double fan_in = shape[0] > 0 ? double(host.size()) / double(shape[0]) : 1.0;
      for (auto& v : host) v = static_cast<float>(rng.normal() / std::sqrt(fan_in));
    } else {
      const bool norm_scale = name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0;
      const double center = norm_scale ? 1.0 : 0.0, spread = norm_scale ? 0.1 : bias_scale;
      for (auto& v : host) v = static_cast<float>(center + spread * rng.normal());
    }
    assign_from_host(D{}, tensor, host.data());
  });
}

}  // namespace diffblocks
