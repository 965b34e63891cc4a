#pragma once
// The Cuda device's randn_: a counter-based generator (Philox4x32-10, Salmon et al. 2011; Random123's known-answer
// vectors are checked by the tests) keyed by 64 bits drawn from the host Rng at each call, with
// element index / 4 as the counter, and Box-Muller. The noise is therefore reproducible by seed
// on the Cuda device, but it is NOT the CPU's stream (xoshiro256** + Box-Muller in double): the
// stochastic samplers give other (equally distributed) samples on the two devices.
#include <cmath>
#include <cstdint>

#include "diffblocks/core/random.hpp"
#include "diffblocks/ops/cuda/common.cuh"

namespace diffblocks {
namespace ops {
namespace cuda_detail {

struct Philox4 {
  std::uint32_t v[4];
};

/// Philox4x32 with 10 rounds (Random123's philox4x32_R(10, ctr, key)).
__host__ __device__ inline Philox4 philox4x32_10(Philox4 ctr, std::uint32_t k0, std::uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    if (r > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const std::uint64_t p0 = static_cast<std::uint64_t>(0xD2511F53u) * ctr.v[0];
    const std::uint64_t p1 = static_cast<std::uint64_t>(0xCD9E8D57u) * ctr.v[2];
    const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    ctr = Philox4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
  }
  return ctr;
}

/// Uniform in (0, 1), never 0 or 1: 23 random bits, so that k + 0.5 is exact in float32.
__host__ __device__ inline float uniform_open(std::uint32_t bits) {
  return (static_cast<float>(bits >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

/// Four standard normals from counter `group` under `seed`: two Box-Muller pairs.
__device__ inline void normal4(std::uint64_t seed, std::uint64_t group, float out[4]) {
  const Philox4 r = philox4x32_10(Philox4{{static_cast<std::uint32_t>(group), static_cast<std::uint32_t>(group >> 32), 0u, 0u}},
                                  static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
  for (int p = 0; p < 2; ++p) {
    const float rad = sqrtf(-2.0f * logf(uniform_open(r.v[2 * p])));
    float s, c;
    sincospif(2.0f * uniform_open(r.v[2 * p + 1]), &s, &c);
    out[2 * p] = rad * c;
    out[2 * p + 1] = rad * s;
  }
}

}  // namespace cuda_detail

/// Fills x with standard normal noise: Philox keyed by rng.next() (see the file comment).
template <class T, std::size_t N>
void randn_(Cuda, Tensor<T, N, Cuda>& x, Rng& rng) {
  const std::uint64_t seed = rng.next();
  T* p = x.data();
  const cuda_detail::index_t n = static_cast<cuda_detail::index_t>(x.size());
  cuda_detail::for_each((n + 3) / 4, [=] __device__(cuda_detail::index_t g) {
    float v[4];
    cuda_detail::normal4(seed, static_cast<std::uint64_t>(g), v);
    for (int k = 0; k < 4; ++k)
      if (4 * g + k < n) p[4 * g + k] = static_cast<T>(v[k]);
  });
}

}  // namespace ops
}  // namespace diffblocks
