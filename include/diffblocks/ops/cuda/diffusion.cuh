#pragma once
// Sampler, scheduler and embedding ops of the Cuda device: Grad-TTS's Euler step and forward
// diffusion, the diffusers epsilon/Euler steps, the sinusoidal embeddings, and randn_.
//
// Transcendentals that feed the accuracy contract at large arguments (the embeddings' exp and
// sin/cos of arguments up to ~1000, the forward diffusion's decay) are evaluated in double and
// rounded once, which gives the correctly rounded float the CPU's glibc functions return in
// practically every case; CUDA's float sinf/expf may differ by an ulp or two.
//
// randn_: a counter-based generator (Philox4x32-10, Salmon et al. 2011; Random123's known-answer
// vectors are checked by the tests) keyed by 64 bits drawn from the host Rng at each call, with
// element index / 4 as the counter, and Box-Muller. The noise is therefore reproducible by seed
// on the Cuda device, but it is NOT the CPU's stream (xoshiro256** + Box-Muller in double): the
// stochastic samplers give other (equally distributed) samples on the two devices.
#include <cmath>
#include <cstdint>

#include "diffblocks/core/random.hpp"
#include "diffblocks/ops/cuda/elementwise.cuh"

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

/// sin / cos / exp of a float argument, correctly rounded in practice (computed in double).
__device__ inline float sin_rn(float a) { return static_cast<float>(sin(static_cast<double>(a))); }
__device__ inline float cos_rn(float a) { return static_cast<float>(cos(static_cast<double>(a))); }
__device__ inline float exp_rn(float a) { return static_cast<float>(exp(static_cast<double>(a))); }

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

namespace cuda_detail {
/// One element of the ODE step in torch's float32 order: dx = (0.5 ((mu - x) - est)) beta h,
/// (x - dx) mask. The eager step below and the graph-replayed sampler
/// (sampling/gradtts_cuda_graph.cuh) both use it, so their results are the same bits.
template <class T>
__device__ inline T gradtts_ode_update(T x, T m, T e, T mask, T beta, T h) {
  const T dx = (T(0.5) * ((m - x) - e)) * beta * h;
  return (x - dx) * mask;
}
}  // namespace cuda_detail

/// One Euler step of Grad-TTS reverse diffusion (see the CPU op: torch's float32 order).
template <class T>
void gradtts_step_(Cuda, Tensor<T, 3, Cuda>& xt, const Tensor<T, 3, Cuda>& mu, const Tensor<T, 3, Cuda>& est,
                   const Tensor<T, 3, Cuda>& mask, const Tensor<T, 3, Cuda>& noise, T beta, T h) {
  const cuda_detail::index_t F = xt.shape(1), W = xt.shape(2);
  const bool sde = noise.size() != 0;
  const T sq = std::sqrt(beta * h);
  T* xp = xt.data();
  const T* mp = mu.data();
  const T* ep = est.data();
  const T* mk = mask.data();
  const T* np = sde ? noise.data() : nullptr;
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(xt.shape(0)) * F, W, [=] __device__(cuda_detail::index_t r, cuda_detail::index_t w) {
    const cuda_detail::index_t i = r * W + w;
    const T x = xp[i], m = mp[i], e = ep[i], mw = mk[(r / F) * W + w];
    if (!sde) {
      xp[i] = cuda_detail::gradtts_ode_update(x, m, e, mw, beta, h);
      return;
    }
    const T dx = (T(0.5) * (m - x) - e) * beta * h + np[i] * sq;
    xp[i] = (x - dx) * mw;
  });
}

/// Grad-TTS forward diffusion with explicit noise z (see the CPU op).
template <class T>
Tensor<T, 3, Cuda> gradtts_forward_diffusion(Cuda, const Tensor<T, 3, Cuda>& x0, const Tensor<T, 3, Cuda>& mask,
                                             const Tensor<T, 3, Cuda>& mu, const Tensor<T, 1, Cuda>& t,
                                             const Tensor<T, 3, Cuda>& z, T beta_min, T beta_max) {
  static_assert(std::is_same<T, float>::value, "the Cuda device computes in float32");
  Tensor<T, 3, Cuda> xt(x0.shape());
  const cuda_detail::index_t F = x0.shape(1), W = x0.shape(2);
  const float* xp = x0.data();
  const float* mp = mu.data();
  const float* zp = z.data();
  const float* mk = mask.data();
  const float* tp = t.data();
  float* o = xt.data();
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(x0.shape(0)) * F, W, [=] __device__(cuda_detail::index_t r, cuda_detail::index_t w) {
    const cuda_detail::index_t b = r / F, i = r * W + w;
    const float tb = tp[b];
    const float c = beta_min * tb + 0.5f * (beta_max - beta_min) * (tb * tb);
    const float decay = cuda_detail::exp_rn(-0.5f * c), sd = sqrtf(1.0f - cuda_detail::exp_rn(-c));
    o[i] = ((xp[i] * decay + mp[i] * (1.0f - decay)) + zp[i] * sd) * mk[b * W + w];
  });
  return xt;
}

/// Grad-TTS SinusoidalPosEmb: [sin a | cos a], a = (scale t) exp(i * -(ln 1e4 / (half - 1))).
template <class T>
Tensor<T, 2, Cuda> sinusoidal_pos_emb(Cuda, const Tensor<T, 1, Cuda>& t, int dim, double scale) {
  static_assert(std::is_same<T, float>::value, "the Cuda device computes in float32");
  const int half = dim / 2;
  const float step = static_cast<float>(-(std::log(10000.0) / (half - 1)));
  const float sc = static_cast<float>(scale);
  Tensor<T, 2, Cuda> y({t.shape(0), static_cast<std::size_t>(dim)});
  const float* tp = t.data();
  float* o = y.data();
  const cuda_detail::index_t H = half, D = dim;
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(t.shape(0)), H, [=] __device__(cuda_detail::index_t b, cuda_detail::index_t i) {
    const float a = (sc * tp[b]) * cuda_detail::exp_rn(static_cast<float>(i) * step);
    o[b * D + i] = cuda_detail::sin_rn(a);
    o[b * D + H + i] = cuda_detail::cos_rn(a);
  });
  return y;
}

/// diffusers get_timestep_embedding in float32 (see blocks/timesteps.hpp).
template <class T>
Tensor<T, 2, Cuda> timestep_embedding(Cuda, const Tensor<T, 1, Cuda>& t, int channels, bool flip, T shift, T max_period) {
  static_assert(std::is_same<T, float>::value, "the Cuda device computes in float32");
  const int half = channels / 2;
  const float neg_log = -std::log(max_period);
  Tensor<T, 2, Cuda> y({t.shape(0), static_cast<std::size_t>(channels)});
  const float* tp = t.data();
  float* o = y.data();
  const cuda_detail::index_t H = half, Ch = channels;
  // One extra column per row writes the odd channel's zero.
  cuda_detail::for_each_plane(static_cast<cuda_detail::index_t>(t.shape(0)), H + 1, [=] __device__(cuda_detail::index_t b, cuda_detail::index_t i) {
    if (i == H) {
      if (Ch % 2) o[b * Ch + Ch - 1] = 0.0f;
      return;
    }
    const float freq = cuda_detail::exp_rn((neg_log * static_cast<float>(i)) / (static_cast<float>(H) - shift));
    const float a = tp[b] * freq;
    o[b * Ch + (flip ? H + i : i)] = cuda_detail::sin_rn(a);
    o[b * Ch + (flip ? i : H + i)] = cuda_detail::cos_rn(a);
  });
  return y;
}

/// epsilon-prediction update shared by DDPM and DDIM (see ops/cpu/scheduler_ops.hpp).
template <class T>
Tensor<T, 4, Cuda> epsilon_step(Cuda, const Tensor<T, 4, Cuda>& eps, const Tensor<T, 4, Cuda>& sample,
                                const Tensor<T, 4, Cuda>& noise, T sqrt_alpha, T sqrt_beta, T clip, T c_x0, T c_sample,
                                T c_eps, T c_noise) {
  Tensor<T, 4, Cuda> prev(sample.shape());
  const T* sp = sample.data();
  const T* ep = eps.data();
  const T* np = noise.size() ? noise.data() : nullptr;
  T* o = prev.data();
  cuda_detail::for_each(static_cast<cuda_detail::index_t>(sample.size()), [=] __device__(cuda_detail::index_t i) {
    const T s = sp[i], e = ep[i];
    T x0 = (s - sqrt_beta * e) / sqrt_alpha;
    if (clip > 0) {  // std::min(std::max(x0, -clip), clip), NaN kept as on the CPU
      x0 = x0 < -clip ? -clip : x0;
      x0 = clip < x0 ? clip : x0;
    }
    T p = c_x0 * x0 + c_sample * s;
    if (c_eps != T(0)) p = p + c_eps * e;
    if (np) p = p + c_noise * np[i];
    o[i] = p;
  });
  return prev;
}

/// Euler (epsilon): x0 = sample - sigma eps; d = (sample - x0) / sigma; prev = sample + d dt.
template <class T>
Tensor<T, 4, Cuda> euler_step(Cuda, const Tensor<T, 4, Cuda>& eps, const Tensor<T, 4, Cuda>& sample, T sigma, T dt) {
  Tensor<T, 4, Cuda> prev(sample.shape());
  const T* sp = sample.data();
  const T* ep = eps.data();
  T* o = prev.data();
  cuda_detail::for_each(static_cast<cuda_detail::index_t>(sample.size()), [=] __device__(cuda_detail::index_t i) {
    const T s = sp[i];
    const T x0 = s - sigma * ep[i];
    o[i] = s + ((s - x0) / sigma) * dt;
  });
  return prev;
}

}  // namespace ops
}  // namespace diffblocks
