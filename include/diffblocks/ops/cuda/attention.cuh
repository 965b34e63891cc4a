#pragma once
// Multi-head softmax attention on the Cuda device: the same function as ops/cpu/attention.hpp,
//   out[b, i, h dv + e] = sum_j softmax_j(scale q_i . k_j + bias[b, j]) v[b, j, h dv + e],
// in two variants.
//
// * attention_naive: per head, S = scale Q K^T (cuBLAS, batched over the batch, queries in chunks
//   that keep S under kScoreBytes), a row softmax kernel with the key bias, then O = S V (cuBLAS).
//   Materialises the scores: the reference, and the fallback for heads wider than 64.
// * attention_streaming: the flash-attention recurrence in one fp32 kernel. A block holds 64
//   queries of one (batch, head), one query per thread with its scaled q and its output row in
//   registers; the block walks the keys in tiles of 32 staged through shared memory (K, V, and
//   the tile's 32 x 64 scores), and updates each query's running maximum m, normaliser l and
//   output o (rescaled by exp(m_old - m_new) once per tile). The score matrix never exists.
//   Head sizes up to 64 (kernels for 16, 32 and 64: the head size is rounded up, the padding
//   lanes hold zeros).
//
// * attention_tiled (attention_tiled.cuh): a register-blocked flash kernel, 64 queries x 32 keys
//   per step, each thread a 4 x 4 block of scores.
//
// `attention` follows its device's setting (Cuda::attention, not the CPU's): Naive -> naive;
// Streaming -> streaming when both head sizes are at most 64, else naive; Auto -> naive for
// kFewKeys < keys <= kNaiveMaxKeys (cuBLAS's GEMMs win there), else tiled. Measured on an H200
// (4 heads, batch 1): 1 024 keys dh 32 naive 0.129 / tiled 0.126 / streaming 0.259 ms; 4 096 dh 64
// 0.835 / 1.02 / 1.56 ms; 10 240 dh 32 4.7 / 2.84 / 3.26 ms; 16 384 dh 64 15.6 / 14.2 / 16.6 ms;
// cross-attention 10 240 x 16 keys 0.121 / 0.046 / 0.066 ms.
#include <algorithm>
#include <type_traits>

#include "diffblocks/ops/cpu/attention.hpp"
#include "diffblocks/ops/cuda/attention_tiled.cuh"
#include "diffblocks/ops/cuda/gemm.cuh"

namespace diffblocks {
namespace ops {
namespace cuda_detail {

constexpr std::size_t kScoreBytes = std::size_t(1) << 30;  // naive: scores of one head chunk
constexpr int kNaiveMaxKeys = 6144;                         // Auto: naive from kFewKeys up to this many keys
constexpr int kFewKeys = 64;                                // Auto: tiled for cross-attention to few keys
constexpr int kAttnQueries = 64;  // queries (threads) per block
constexpr int kAttnKeys = 32;     // keys per shared-memory tile
constexpr int kAttnMaxHead = 64;  // largest head size of the streaming kernel

template <int D>
__global__ void __launch_bounds__(kAttnQueries)
    attention_stream_kernel(const float* q, const float* k, const float* v, float* out, const float* bias, int Nq,
                            int Nk, int Cq, int Cv, int dh, int dv, float scale) {
  __shared__ float ks[kAttnKeys][D];
  __shared__ float vs[kAttnKeys][D];
  __shared__ float ps[kAttnKeys][kAttnQueries];  // this tile's scores, then probabilities: column = thread
  const int b = blockIdx.z, h = blockIdx.y, tid = threadIdx.x;
  const int i = blockIdx.x * kAttnQueries + tid;
  const bool active = i < Nq;
  float qr[D], o[D];
  const float* qp = q + (static_cast<index_t>(b) * Nq + (active ? i : 0)) * Cq + static_cast<index_t>(h) * dh;
#pragma unroll
  for (int d = 0; d < D; ++d) {
    qr[d] = (active && d < dh) ? qp[d] * scale : 0.0f;
    o[d] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const float* kb = k + static_cast<index_t>(b) * Nk * Cq + static_cast<index_t>(h) * dh;
  const float* vb = v + static_cast<index_t>(b) * Nk * Cv + static_cast<index_t>(h) * dv;
  const float* bb = bias ? bias + static_cast<index_t>(b) * Nk : nullptr;
  for (int j0 = 0; j0 < Nk; j0 += kAttnKeys) {
    const int nj = min(kAttnKeys, Nk - j0);
    __syncthreads();  // every thread is done with the previous tile
    for (int t = tid; t < kAttnKeys * D; t += kAttnQueries) {
      const int jj = t / D, d = t % D;
      ks[jj][d] = (jj < nj && d < dh) ? kb[static_cast<index_t>(j0 + jj) * Cq + d] : 0.0f;
      vs[jj][d] = (jj < nj && d < dv) ? vb[static_cast<index_t>(j0 + jj) * Cv + d] : 0.0f;
    }
    __syncthreads();
    // Scores of this thread's query against the tile's nj keys, and their maximum.
    float tile_max = -INFINITY;
    for (int jj = 0; jj < nj; ++jj) {
      float acc = 0.0f;
#pragma unroll
      for (int d = 0; d < D; ++d) acc += qr[d] * ks[jj][d];
      if (bb) acc += bb[j0 + jj];
      ps[jj][tid] = acc;
      tile_max = fmaxf(tile_max, acc);
    }
    // Online softmax: rescale what was accumulated to the new maximum, add this tile.
    const float m_new = fmaxf(m, tile_max);  // finite: the tile holds at least one key
    const float corr = expf(m - m_new);      // 0 on the first tile (m = -inf)
    float psum = 0.0f;
    for (int jj = 0; jj < nj; ++jj) {
      const float p = expf(ps[jj][tid] - m_new);
      ps[jj][tid] = p;
      psum += p;
    }
    l = l * corr + psum;
    m = m_new;
#pragma unroll
    for (int e = 0; e < D; ++e) o[e] *= corr;
    for (int jj = 0; jj < nj; ++jj) {
      const float p = ps[jj][tid];
#pragma unroll
      for (int e = 0; e < D; ++e) o[e] += p * vs[jj][e];
    }
  }
  if (!active) return;
  const float inv = 1.0f / l;
  float* op = out + (static_cast<index_t>(b) * Nq + i) * Cv + static_cast<index_t>(h) * dv;
#pragma unroll
  for (int e = 0; e < D; ++e)
    if (e < dv) op[e] = o[e] * inv;
}

inline bool streaming_supported(int dh, int dv) { return dh <= kAttnMaxHead && dv <= kAttnMaxHead; }

/// f(integral_constant<int, D>) with D the kernels' padded head size for d (16, 32 or 64).
template <class F>
void by_head_size(int d, F f) {
  if (d <= 16) f(std::integral_constant<int, 16>{});
  else if (d <= 32) f(std::integral_constant<int, 32>{});
  else f(std::integral_constant<int, 64>{});
}

}  // namespace cuda_detail

/// The reference variant: materialised scores per head (see the file comment).
template <class T, IfKernelScalar<T> Enable = 0>
Tensor<T, 3, Cuda> attention_naive(Cuda, const Tensor<T, 3, Cuda>& q, const Tensor<T, 3, Cuda>& k,
                                   const Tensor<T, 3, Cuda>& v, int heads, T scale, const Tensor<T, 2, Cuda>& bias) {
  static_assert(std::is_same<T, float>::value, "the Cuda device computes in float32");
  const int B = static_cast<int>(q.shape(0)), Nq = static_cast<int>(q.shape(1)), Nk = static_cast<int>(k.shape(1));
  const int Cq = static_cast<int>(q.shape(2)), Cv = static_cast<int>(v.shape(2)), dh = Cq / heads, dv = Cv / heads;
  Tensor<T, 3, Cuda> out({q.shape(0), q.shape(1), v.shape(2)});
  if (B == 0 || Nq == 0 || Cv == 0) return out;
  const std::size_t row_bytes = static_cast<std::size_t>(B) * std::max(Nk, 1) * sizeof(float);
  const int chunk = static_cast<int>(std::max<std::size_t>(1, std::min<std::size_t>(Nq, cuda_detail::kScoreBytes / row_bytes)));
  auto S = cuda_detail::scratch<float>(static_cast<std::size_t>(B) * chunk * Nk);
  for (int h = 0; h < heads; ++h)
    for (int i0 = 0; i0 < Nq; i0 += chunk) {
      const int nq = std::min(chunk, Nq - i0);
      // S_b (nq x Nk) = Q_b[i0:i0+nq, h] (nq x dh) K_b[:, h]^T (dh x Nk)
      cuda_detail::gemm(false, true, nq, Nk, dh, 1.0f, q.data() + static_cast<std::size_t>(i0) * Cq + h * dh, Cq,
                        static_cast<long long>(Nq) * Cq, k.data() + h * dh, Cq, static_cast<long long>(Nk) * Cq, 0.0f,
                        S.data(), Nk, static_cast<long long>(nq) * Nk, B);
      cuda_detail::softmax_rows(S.data(), static_cast<std::size_t>(B) * nq, Nk, scale,
                                bias.size() ? bias.data() : nullptr, static_cast<std::size_t>(nq));
      // O_b[i0:i0+nq, h] (nq x dv) = P_b (nq x Nk) V_b[:, h] (Nk x dv)
      cuda_detail::gemm(false, false, nq, dv, Nk, 1.0f, S.data(), Nk, static_cast<long long>(nq) * Nk,
                        v.data() + h * dv, Cv, static_cast<long long>(Nk) * Cv, 0.0f,
                        out.data() + static_cast<std::size_t>(i0) * Cv + h * dv, Cv, static_cast<long long>(Nq) * Cv, B);
    }
  return out;
}

namespace cuda_detail {

/// What the fused kernels share: heads wider than 64 go to attention_naive; otherwise the output
/// is allocated and kernel<D>, D the padded head size, runs on a grid of (64-query blocks, heads,
/// batch) with `threads` threads per block.
template <class T, class Kernel>
Tensor<T, 3, Cuda> fused_attention(const char* name, Kernel kernel, int threads, const Tensor<T, 3, Cuda>& q,
                                   const Tensor<T, 3, Cuda>& k, const Tensor<T, 3, Cuda>& v, int heads, T scale,
                                   const Tensor<T, 2, Cuda>& bias) {
  static_assert(std::is_same<T, float>::value, "the Cuda device computes in float32");
  const int B = static_cast<int>(q.shape(0)), Nq = static_cast<int>(q.shape(1)), Nk = static_cast<int>(k.shape(1));
  const int Cq = static_cast<int>(q.shape(2)), Cv = static_cast<int>(v.shape(2)), dh = Cq / heads, dv = Cv / heads;
  if (!streaming_supported(dh, dv)) return attention_naive(Cuda{}, q, k, v, heads, scale, bias);
  Tensor<T, 3, Cuda> out({q.shape(0), q.shape(1), v.shape(2)});
  if (B == 0 || Nq == 0 || Cv == 0) return out;
  static_assert(kAttnQueries == kTiledQueries, "both fused kernels take 64 queries per block");
  const dim3 grid(static_cast<unsigned>((Nq + kAttnQueries - 1) / kAttnQueries), static_cast<unsigned>(heads),
                  static_cast<unsigned>(B));
  const float* bp = bias.size() ? bias.data() : nullptr;
  by_head_size(std::max(dh, dv), [&](auto D) {
    launch(name, kernel(D), grid, dim3(threads), 0, q.data(), k.data(), v.data(), out.data(), bp, Nq, Nk, Cq, Cv, dh, dv,
           static_cast<float>(scale));
  });
  return out;
}

}  // namespace cuda_detail

/// The streaming (flash) variant; heads wider than 64 fall back to attention_naive.
template <class T, IfKernelScalar<T> Enable = 0>
Tensor<T, 3, Cuda> attention_streaming(Cuda, const Tensor<T, 3, Cuda>& q, const Tensor<T, 3, Cuda>& k,
                                       const Tensor<T, 3, Cuda>& v, int heads, T scale, const Tensor<T, 2, Cuda>& bias) {
  auto kernel = [](auto D) { return cuda_detail::attention_stream_kernel<decltype(D)::value>; };
  return cuda_detail::fused_attention("attention_stream_kernel", kernel, cuda_detail::kAttnQueries, q, k, v, heads, scale,
                                      bias);
}

/// The register-blocked flash variant (ops/cuda/attention_tiled.cuh); heads wider than 64 fall
/// back to attention_naive.
template <class T, IfKernelScalar<T> Enable = 0>
Tensor<T, 3, Cuda> attention_tiled(Cuda, const Tensor<T, 3, Cuda>& q, const Tensor<T, 3, Cuda>& k,
                                   const Tensor<T, 3, Cuda>& v, int heads, T scale, const Tensor<T, 2, Cuda>& bias) {
  auto kernel = [](auto D) { return cuda_detail::attention_tiled_kernel<decltype(D)::value>; };
  return cuda_detail::fused_attention("attention_tiled_kernel", kernel, cuda_detail::kTiledThreads, q, k, v, heads, scale,
                                      bias);
}

/// Softmax attention by the device's own algorithm setting (Cuda::attention; see the file comment).
template <class T, IfKernelScalar<T> Enable = 0>
Tensor<T, 3, Cuda> attention(Cuda dev, const Tensor<T, 3, Cuda>& q, const Tensor<T, 3, Cuda>& k, const Tensor<T, 3, Cuda>& v,
                             int heads, T scale, const Tensor<T, 2, Cuda>& bias) {
  const AttentionAlgorithm a = dev.attention;
  const std::size_t Nk = k.shape(1);
  if (a == AttentionAlgorithm::Naive) return attention_naive(Cuda{}, q, k, v, heads, scale, bias);
  if (a == AttentionAlgorithm::Streaming) return attention_streaming(Cuda{}, q, k, v, heads, scale, bias);
  if (Nk > cuda_detail::kFewKeys && Nk <= cuda_detail::kNaiveMaxKeys) return attention_naive(Cuda{}, q, k, v, heads, scale, bias);
  return attention_tiled(Cuda{}, q, k, v, heads, scale, bias);
}

}  // namespace ops
}  // namespace diffblocks
