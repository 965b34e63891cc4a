#pragma once
// Deterministic test tensors for the CUDA tests and benchmarks: normal values with a fixed seed,
// frame masks and keep-masks with padding.
#include <array>
#include <cstdint>
#include <vector>

#include "diffblocks/core/device.hpp"
#include "diffblocks/core/random.hpp"

namespace dbops {

namespace db = diffblocks;
template <std::size_t N>
using HT = db::Tensor<float, N>;

/// N(shift, scale^2) values with a fixed seed.
template <std::size_t N>
HT<N> randn(const std::array<std::size_t, N>& shape, std::uint64_t seed, float scale = 1.0f, float shift = 0.0f) {
  db::Rng rng(seed);
  auto t = HT<N>::from_shape(shape);
  for (auto& v : t) v = shift + scale * static_cast<float>(rng.normal());
  return t;
}

/// Frame mask (B, 1, 1, W): 1 for the first valid[b] frames, 0 after.
inline HT<4> frame_mask(std::size_t B, std::size_t W, const std::vector<std::size_t>& valid) {
  auto m = HT<4>::from_shape({B, 1, 1, W});
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t w = 0; w < W; ++w) m(b, 0, 0, w) = w < valid[b % valid.size()] ? 1.0f : 0.0f;
  return m;
}

/// Keep-mask (B, S): 1 for the first valid[b] tokens.
inline HT<2> keep_mask(std::size_t B, std::size_t S, const std::vector<std::size_t>& valid) {
  auto m = HT<2>::from_shape({B, S});
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t s = 0; s < S; ++s) m(b, s) = s < valid[b % valid.size()] ? 1.0f : 0.0f;
  return m;
}

}  // namespace dbops
