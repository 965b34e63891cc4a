#pragma once
// GroupNorm (and the fused Grad-TTS Block tails), AdaGroupNorm's scale/shift and LayerNorm on
// the Cuda device. Statistics are float32 Welford/Chan merges (no sum-of-squares cancellation);
// the per-slice merge of the block partials and 1/sqrt(var + eps) are in double, like the CPU's.
//
// GroupNorm in three kernels: (1) each block reduces a chunk of one (batch, group) slice (a
// contiguous run of C/G * H * W values) to (count, mean, M2); (2) one thread per slice merges its
// chunks into (mean, rstd); (3) an element-wise pass applies the affine map and the fused
// epilogue (Mish, SiLU, frame mask, time bias, AdaGroupNorm scale/shift). Chunking keeps every
// SM busy whatever the batch size (a block per slice would leave 124 of 132 SMs idle at B = 1).
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>

#include "diffblocks/ops/cuda/common.cuh"
#include "diffblocks/ops/generic/elementwise.hpp"

namespace diffblocks {
namespace ops {
namespace cuda_detail {

constexpr index_t kGnChunk = 8192;  // values per partial-statistics block

struct Moments {
  float n, mean, m2;
};

__device__ inline Moments merge(Moments a, Moments b) {
  const float n = a.n + b.n;
  if (n == 0.0f) return a;
  const float d = b.mean - a.mean;
  return Moments{n, a.mean + d * (b.n / n), a.m2 + b.m2 + d * d * (a.n * b.n / n)};
}

/// part[(slice * chunks + chunk)] = moments of values [chunk * kGnChunk, ...) of the slice.
/// Each thread sums v - K and (v - K)^2 with K a value of the chunk (so the squares do not cancel
/// against a large mean) and turns them into (n, mean, M2); threads merge Chan-style. Vec: the
/// slice length is a multiple of 4 (every chunk 16-byte aligned), read as float4.
template <bool Vec>
__global__ void gn_partial_kernel(const float* x, index_t slice_len, index_t chunks, Moments* part) {
  const index_t slice = blockIdx.y, chunk = blockIdx.x;
  const index_t begin = chunk * kGnChunk, end = min(slice_len, begin + kGnChunk);
  const float* p = x + slice * slice_len;
  const float K = p[begin];
  float s1 = 0.0f, s2 = 0.0f, n = 0.0f;
  if (Vec) {
    const float4* p4 = reinterpret_cast<const float4*>(p + begin);
    const int n4 = static_cast<int>((end - begin) >> 2);
    for (int i = threadIdx.x; i < n4; i += blockDim.x) {
      const float4 v = p4[i];
      const float a = v.x - K, b = v.y - K, c = v.z - K, d = v.w - K;
      s1 += (a + b) + (c + d);
      s2 += (a * a + b * b) + (c * c + d * d);
      n += 4.0f;
    }
  } else {
    for (index_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
      const float a = p[i] - K;
      s1 += a;
      s2 += a * a;
      n += 1.0f;
    }
  }
  Moments m{n, 0.0f, 0.0f};
  if (n > 0.0f) {
    m.mean = K + s1 / n;
    m.m2 = fmaxf(0.0f, s2 - s1 * (s1 / n));
  }
  for (int o = 16; o > 0; o >>= 1) {
    const Moments other{__shfl_xor_sync(0xffffffffu, m.n, o), __shfl_xor_sync(0xffffffffu, m.mean, o),
                        __shfl_xor_sync(0xffffffffu, m.m2, o)};
    m = merge(m, other);
  }
  __shared__ Moments warps[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warps[warp] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    Moments t = warps[0];
    for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w) t = merge(t, warps[w]);
    part[slice * chunks + chunk] = t;
  }
}

/// stats[2 * slice] = mean, stats[2 * slice + 1] = 1 / sqrt(var + eps) (biased variance).
template <int = 0>
__global__ void gn_finalize_kernel(const Moments* part, index_t slices, index_t chunks, index_t slice_len, double eps,
                                   float* stats) {
  const index_t s = blockIdx.x * static_cast<index_t>(blockDim.x) + threadIdx.x;
  if (s >= slices) return;
  double n = 0, mean = 0, m2 = 0;
  for (index_t c = 0; c < chunks; ++c) {
    const Moments m = part[s * chunks + c];
    const double nb = m.n, total = n + nb;
    if (total == 0) continue;
    const double d = static_cast<double>(m.mean) - mean;
    mean += d * nb / total;
    m2 += static_cast<double>(m.m2) + d * d * n * nb / total;
    n = total;
  }
  stats[2 * s] = static_cast<float>(mean);
  stats[2 * s + 1] = static_cast<float>(1.0 / sqrt(m2 / static_cast<double>(slice_len) + eps));
}

/// (mean, rstd) of every (batch, group) slice of x (B, C, H, W), in a device buffer of 2 B G floats.
inline cuda::DeviceTensor<float, 1> group_stats(const float* x, std::size_t B, std::size_t C, std::size_t HW, int groups,
                                          double eps) {
  const index_t slices = static_cast<index_t>(B) * groups;
  const index_t slice_len = static_cast<index_t>(C / groups) * static_cast<index_t>(HW);
  auto stats = scratch<float>(static_cast<std::size_t>(2 * slices));
  if (slices == 0) return stats;
  const index_t chunks = std::max<index_t>(1, (slice_len + kGnChunk - 1) / kGnChunk);
  auto part = scratch<Moments>(static_cast<std::size_t>(slices * chunks));
  // gridDim.y is at most 65535: split the slices into launches if there are more.
  for (index_t s0 = 0; s0 < slices; s0 += 65535) {
    const index_t ns = std::min<index_t>(65535, slices - s0);
    const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(ns));
    if (slice_len % 4 == 0)
      launch("gn_partial_kernel", gn_partial_kernel<true>, grid, dim3(kThreads), 0, x + s0 * slice_len, slice_len,
             chunks, part.data() + s0 * chunks);
    else
      launch("gn_partial_kernel", gn_partial_kernel<false>, grid, dim3(kThreads), 0, x + s0 * slice_len, slice_len,
             chunks, part.data() + s0 * chunks);
  }
  launch("gn_finalize_kernel", gn_finalize_kernel<>, dim3(blocks_for(slices, 128, 1 << 30)), dim3(128), 0, part.data(),
         slices, chunks, slice_len, eps, stats.data());
  return stats;
}

/// The element-wise pass: one (batch, channel) plane per blockIdx.y (its scale and shift computed
/// once), blockIdx.x over the plane. Vec: rows of a multiple of 4 values, read and written as
/// float4 (the 4 values share their row, so `post` sees each one's own frame index).
template <bool Vec, class Post>
__global__ void gn_apply_kernel(const float* src, float* dst, const float* stats, const float* gamma, const float* beta,
                                int C, int cpg, int G, int HW, int W, index_t plane0, Post post) {
  const index_t bc = plane0 + blockIdx.y;
  const int b = static_cast<int>(bc / C), c = static_cast<int>(bc % C), s = b * G + c / cpg;
  const float mean = stats[2 * s], rstd = stats[2 * s + 1];
  const float g = gamma ? gamma[c] : 1.0f, be = beta ? beta[c] : 0.0f;
  const float scale = rstd * g, shift = be - mean * rstd * g;
  const float* in = src + bc * HW;
  float* out = dst + bc * HW;
  if (Vec) {
    const float4* in4 = reinterpret_cast<const float4*>(in);
    float4* out4 = reinterpret_cast<float4*>(out);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < HW / 4; i += gridDim.x * blockDim.x) {
      const float4 v = in4[i];
      const int w = (4 * i) % W;
      out4[i] = make_float4(post(v.x * scale + shift, b, c, w), post(v.y * scale + shift, b, c, w + 1),
                            post(v.z * scale + shift, b, c, w + 2), post(v.w * scale + shift, b, c, w + 3));
    }
  } else {
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < HW; j += gridDim.x * blockDim.x)
      out[j] = post(in[j] * scale + shift, b, c, j % W);
  }
}

/// dst = epilogue(GroupNorm(src)) element-wise, src may be dst. `post(v, b, c, w)` gets the
/// normalised, affine-mapped value (gamma/beta empty = identity) and returns the output.
template <class Post>
void group_norm_apply(const float* src, float* dst, std::size_t B, std::size_t C, std::size_t H, std::size_t W,
                      int groups, const float* gamma, const float* beta, double eps, Post post) {
  const std::size_t HW = H * W;
  if (B * C * HW == 0) return;
  if (HW > static_cast<std::size_t>(INT32_MAX) || C > static_cast<std::size_t>(INT32_MAX))
    throw InputError("group_norm: a plane of " + std::to_string(HW) + " values is beyond the Cuda kernels' 2^31");
  const auto stats = group_stats(src, B, C, HW, groups, eps);
  const bool vec = W % 4 == 0;
  const index_t per_block = vec ? 4 * kThreads : kThreads;
  const unsigned gx = static_cast<unsigned>(std::min<index_t>((static_cast<index_t>(HW) + per_block - 1) / per_block, 1024));
  const index_t planes = static_cast<index_t>(B * C);
  for (index_t p0 = 0; p0 < planes; p0 += 65535) {
    const dim3 grid(gx, static_cast<unsigned>(std::min<index_t>(65535, planes - p0)));
    const auto args = std::make_tuple(src, dst, static_cast<const float*>(stats.data()), gamma, beta, static_cast<int>(C),
                                      static_cast<int>(C / groups), groups, static_cast<int>(HW), static_cast<int>(W), p0, post);
    if (vec)
      std::apply([&](auto... a) { launch("gn_apply_kernel", gn_apply_kernel<true, Post>, grid, dim3(kThreads), 0, a...); }, args);
    else
      std::apply([&](auto... a) { launch("gn_apply_kernel", gn_apply_kernel<false, Post>, grid, dim3(kThreads), 0, a...); }, args);
  }
}

}  // namespace cuda_detail

/// torch.nn.functional.group_norm.
template <class T, IfKernelScalar<T> Enable = 0>
Tensor<T, 4, Cuda> group_norm(Cuda, const Tensor<T, 4, Cuda>& x, int groups, const Tensor<T, 1, Cuda>& gamma,
                              const Tensor<T, 1, Cuda>& beta, double eps) {
  Tensor<T, 4, Cuda> y(x.shape());
  cuda_detail::group_norm_apply(x.data(), y.data(), x.shape(0), x.shape(1), x.shape(2), x.shape(3), groups,
                                gamma.size() ? gamma.data() : nullptr, beta.size() ? beta.data() : nullptr, eps,
                                [] __device__(float v, cuda_detail::index_t, cuda_detail::index_t, cuda_detail::index_t) { return v; });
  return y;
}

/// x = Mish(GroupNorm(x)) * mask, in place (Grad-TTS Block's tail).
template <class T, IfKernelScalar<T> Enable = 0>
void group_norm_mish_mask_(Cuda, Tensor<T, 4, Cuda>& x, int groups, const Tensor<T, 1, Cuda>& gamma,
                           const Tensor<T, 1, Cuda>& beta, double eps, const Tensor<T, 4, Cuda>& mask) {
  const T* m = mask.data();
  const cuda_detail::index_t W = x.shape(3);
  cuda_detail::group_norm_apply(x.data(), x.data(), x.shape(0), x.shape(1), x.shape(2), x.shape(3), groups,
                                gamma.size() ? gamma.data() : nullptr, beta.size() ? beta.data() : nullptr, eps,
                                [=] __device__(float v, cuda_detail::index_t b, cuda_detail::index_t, cuda_detail::index_t w) {
                                  return fn::Mish{}(v) * m[b * W + w];
                                });
}

/// x = (Mish(GroupNorm(x)) * mask + bias[b, c]) * mask, in place (Grad-TTS ResnetBlock's middle).
template <class T, IfKernelScalar<T> Enable = 0>
void group_norm_mish_mask_bias_mask_(Cuda, Tensor<T, 4, Cuda>& x, int groups, const Tensor<T, 1, Cuda>& gamma,
                                     const Tensor<T, 1, Cuda>& beta, double eps, const Tensor<T, 4, Cuda>& mask,
                                     const Tensor<T, 2, Cuda>& bias) {
  const T* m = mask.data();
  const T* bv = bias.data();
  const cuda_detail::index_t W = x.shape(3), C = x.shape(1);
  cuda_detail::group_norm_apply(x.data(), x.data(), x.shape(0), x.shape(1), x.shape(2), x.shape(3), groups,
                                gamma.size() ? gamma.data() : nullptr, beta.size() ? beta.data() : nullptr, eps,
                                [=] __device__(float v, cuda_detail::index_t b, cuda_detail::index_t c, cuda_detail::index_t w) {
                                  const float mw = m[b * W + w];
                                  return (fn::Mish{}(v) * mw + bv[b * C + c]) * mw;
                                });
}

/// SiLU(GroupNorm(x)) as a new tensor (diffusers ResnetBlock2D's norm + nonlinearity in one pass).
template <class T, IfKernelScalar<T> Enable = 0>
Tensor<T, 4, Cuda> group_norm_silu(Cuda, const Tensor<T, 4, Cuda>& x, int groups, const Tensor<T, 1, Cuda>& gamma,
                                   const Tensor<T, 1, Cuda>& beta, double eps) {
  Tensor<T, 4, Cuda> y(x.shape());
  cuda_detail::group_norm_apply(x.data(), y.data(), x.shape(0), x.shape(1), x.shape(2), x.shape(3), groups,
                                gamma.size() ? gamma.data() : nullptr, beta.size() ? beta.data() : nullptr, eps,
                                [] __device__(float v, cuda_detail::index_t, cuda_detail::index_t, cuda_detail::index_t) {
                                  return fn::Silu{}(v);
                                });
  return y;
}

/// SiLU(GroupNorm(x, no affine) * (1 + ss[b, c]) + ss[b, C + c]) as a new tensor: AdaGroupNorm
/// and the nonlinearity after it in one pass (ss = (B, 2C), scale first).
template <class T, IfKernelScalar<T> Enable = 0>
Tensor<T, 4, Cuda> ada_group_norm_silu(Cuda, const Tensor<T, 4, Cuda>& x, int groups, const Tensor<T, 2, Cuda>& ss,
                                       double eps) {
  Tensor<T, 4, Cuda> y(x.shape());
  const T* s = ss.data();
  const cuda_detail::index_t C = x.shape(1);
  cuda_detail::group_norm_apply(x.data(), y.data(), x.shape(0), x.shape(1), x.shape(2), x.shape(3), groups, nullptr,
                                nullptr, eps,
                                [=] __device__(float v, cuda_detail::index_t b, cuda_detail::index_t c, cuda_detail::index_t) {
                                  const float sc = 1.0f + s[b * 2 * C + c], sh = s[b * 2 * C + C + c];
                                  return fn::Silu{}(v * sc + sh);
                                });
  return y;
}

namespace cuda_detail {

/// One warp per row: two passes (mean, then squared deviations) over a row held in L1/L2.
template <int = 0>
__global__ void layer_norm_kernel(const float* x, float* y, index_t rows, index_t D, const float* gamma,
                                  const float* beta, float eps) {
  const index_t row = blockIdx.x * static_cast<index_t>(blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const float* s = x + row * D;
  float* d = y + row * D;
  float sum = 0.0f;
  for (index_t i = lane; i < D; i += 32) sum += s[i];
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const float mean = sum / static_cast<float>(D);
  float ss = 0.0f;
  for (index_t i = lane; i < D; i += 32) ss += (s[i] - mean) * (s[i] - mean);
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  const float rstd = 1.0f / sqrtf(ss / static_cast<float>(D) + eps);
  for (index_t i = lane; i < D; i += 32) {
    const float v = (s[i] - mean) * rstd;
    d[i] = gamma ? v * gamma[i] + beta[i] : v;
  }
}

}  // namespace cuda_detail

/// LayerNorm over the last dimension (biased variance).
template <class T, std::size_t N, IfKernelScalar<T> Enable = 0>
Tensor<T, N, Cuda> layer_norm(Cuda, const Tensor<T, N, Cuda>& x, const Tensor<T, 1, Cuda>& gamma,
                              const Tensor<T, 1, Cuda>& beta, double eps) {
  static_assert(std::is_same<T, float>::value, "the Cuda device computes in float32");
  static_assert(N >= 2, "layer_norm: x is (rows..., D)");
  Tensor<T, N, Cuda> y(x.shape());
  const cuda_detail::index_t R = leading_rows(x.shape()), D = x.shape(N - 1);
  if (R == 0 || D == 0) return y;
  constexpr int kRowsPerBlock = cuda_detail::kThreads / 32;
  cuda_detail::launch("layer_norm_kernel", cuda_detail::layer_norm_kernel<>,
                      dim3(cuda_detail::blocks_for(R, kRowsPerBlock, 1 << 30)), dim3(cuda_detail::kThreads), 0,
                      x.data(), y.data(), R, D, gamma.size() ? gamma.data() : nullptr,
                      gamma.size() ? beta.data() : nullptr, static_cast<float>(eps));
  return y;
}

}  // namespace ops
}  // namespace diffblocks
