#pragma once
// Deterministic test tensors for the op registry (its tests and benchmarks, every device):
// normal values with a fixed seed, frame masks and keep-masks with padding.
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "diffblocks/core/device.hpp"
#include "diffblocks/core/random.hpp"

namespace dbops {

namespace db = diffblocks;
template <std::size_t N>
using HT = db::Tensor<float, N>;

/// N(shift, scale^2) values with a fixed seed: xorshift64* and Box-Muller in float, ~20x faster
/// than db::Rng (the benchmarks fill tensors of 40 M values).
template <std::size_t N>
HT<N> randn(const std::array<std::size_t, N>& shape, std::uint64_t seed, float scale = 1.0f, float shift = 0.0f) {
  std::uint64_t s = 0x9E3779B97F4A7C15ull * (seed + 1);
  auto next = [&] {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return static_cast<std::uint32_t>((s * 0x2545F4914F6CDD1Dull) >> 40);  // 24 bits
  };
  auto t = HT<N>::from_shape(shape);
  float* p = t.data();
  const std::size_t n = t.size();
  for (std::size_t i = 0; i < n; i += 2) {
    const float u1 = (static_cast<float>(next()) + 0.5f) * (1.0f / 16777216.0f);
    const float u2 = static_cast<float>(next()) * (1.0f / 16777216.0f);
    const float r = std::sqrt(-2.0f * std::log(u1)), a = 6.2831853f * u2;
    p[i] = shift + scale * r * std::cos(a);
    if (i + 1 < n) p[i + 1] = shift + scale * r * std::sin(a);
  }
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
