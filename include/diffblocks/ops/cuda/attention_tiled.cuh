#pragma once
// attention_tiled: softmax attention in float32 as a register-blocked flash kernel (the same
// function as attention_naive; the score matrix never exists).
//
// A block of 128 threads owns 64 queries of one (batch, head) and walks the keys in tiles of 32:
//   S (64 x 32) = Q K^T   each thread a 4 x 4 block (queries 4 ty.., keys 4 tx..), from Q and
//                         the K tile held transposed in shared memory (float4 reads: the 8
//                         threads of a query row read one Q vector, broadcast, and 8 K vectors)
//   online softmax        per query row: the tile's maximum and sum over the 8 threads of the
//                         row (lanes of one warp: shuffles), rescale of o, l by exp(m_old - m)
//   O (64 x dv) += P V    P written to shared memory by rows; a query row's P is written and
//                         read only by the 8 lanes that own the row (one warp): __syncwarp
// Compared with the streaming kernel (one query per thread, scores through shared memory one at
// a time), each shared-memory load feeds 4-8 FMAs instead of one.
// Head sizes up to 64 (template D = 16, 32 or 64: padded with zeros); the key bias may be any
// finite value (a tile of masked keys only rescales by exp(m_old - m) with m finite).
#include <algorithm>

#include "diffblocks/ops/cuda/common.cuh"

namespace diffblocks {
namespace ops {
namespace cuda_detail {

constexpr int kTiledQueries = 64;  // queries per block
constexpr int kTiledKeys = 32;     // keys per tile
constexpr int kTiledThreads = 128;

template <int D>
__global__ void __launch_bounds__(kTiledThreads)
    attention_tiled_kernel(const float* q, const float* k, const float* v, float* out, const float* bias, int Nq,
                           int Nk, int Cq, int Cv, int dh, int dv, float scale) {
  constexpr int BQ = kTiledQueries, BK = kTiledKeys, VC = D / 8;  // value columns per thread
  __shared__ __align__(16) float qt[D][BQ];  // scaled Q, transposed
  __shared__ __align__(16) float kt[D][BK];  // K tile, transposed
  __shared__ __align__(16) float vs[BK][D];  // V tile
  __shared__ __align__(16) float ps[BQ][BK];  // probabilities of the tile
  const int tid = threadIdx.x, ty = tid >> 3, tx = tid & 7;
  const int r0 = ty * 4, c0 = tx * 4, e0 = tx * VC;
  const int b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * BQ;
  const float* qb = q + static_cast<index_t>(b) * Nq * Cq + static_cast<index_t>(h) * dh;
  const float* kb = k + static_cast<index_t>(b) * Nk * Cq + static_cast<index_t>(h) * dh;
  const float* vb = v + static_cast<index_t>(b) * Nk * Cv + static_cast<index_t>(h) * dv;
  const float* bb = bias ? bias + static_cast<index_t>(b) * Nk : nullptr;

  // Lanes run over queries (conflict-free transposed stores; the rows' cache lines are reused
  // from L1 as d advances).
  for (int t = tid; t < BQ * D; t += kTiledThreads) {
    const int qi = t % BQ, d = t / BQ;
    qt[d][qi] = (i0 + qi < Nq && d < dh) ? qb[static_cast<index_t>(i0 + qi) * Cq + d] * scale : 0.0f;
  }
  float o[4][VC], m[4], l[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int e = 0; e < VC; ++e) o[i][e] = 0.0f;
  }

  for (int j0 = 0; j0 < Nk; j0 += BK) {
    __syncthreads();  // the previous tile's K and V are no longer read
    for (int t = tid; t < BK * D; t += kTiledThreads) {
      const int j = t % BK, d = t / BK;
      kt[d][j] = (j0 + j < Nk && d < dh) ? kb[static_cast<index_t>(j0 + j) * Cq + d] : 0.0f;
    }
    for (int t = tid; t < BK * D; t += kTiledThreads) {
      const int e = t % D, j = t / D;
      vs[j][e] = (j0 + j < Nk && e < dv) ? vb[static_cast<index_t>(j0 + j) * Cv + e] : 0.0f;
    }
    __syncthreads();

    float s[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) s[i][j] = 0.0f;
#pragma unroll 8
    for (int d = 0; d < D; ++d) {
      const float4 a = *reinterpret_cast<const float4*>(&qt[d][r0]);
      const float4 c = *reinterpret_cast<const float4*>(&kt[d][c0]);
      const float av[4] = {a.x, a.y, a.z, a.w}, cv[4] = {c.x, c.y, c.z, c.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) s[i][j] = fmaf(av[i], cv[j], s[i][j]);
    }
    // Key bias; keys past the end do not count.
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int key = j0 + c0 + j;
      const float add = key < Nk ? (bb ? bb[key] : 0.0f) : -INFINITY;
#pragma unroll
      for (int i = 0; i < 4; ++i) s[i][j] += add;
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float mx = fmaxf(fmaxf(s[i][0], s[i][1]), fmaxf(s[i][2], s[i][3]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
      const float m_new = fmaxf(m[i], mx);  // finite: the tile holds a key with a finite bias
      const float corr = __expf(m[i] - m_new);  // 0 on the first tile (m = -inf)
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        s[i][j] = __expf(s[i][j] - m_new);
        sum += s[i][j];
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      sum += __shfl_xor_sync(0xffffffffu, sum, 4);
      l[i] = l[i] * corr + sum;
      m[i] = m_new;
#pragma unroll
      for (int e = 0; e < VC; ++e) o[i][e] *= corr;
      *reinterpret_cast<float4*>(&ps[r0 + i][c0]) = make_float4(s[i][0], s[i][1], s[i][2], s[i][3]);
    }
    __syncwarp();  // the row's P is written by the 8 lanes that read it
#pragma unroll 2
    for (int j = 0; j < BK; j += 4) {
      float pr[4][4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float4 p = *reinterpret_cast<const float4*>(&ps[r0 + i][j]);
        pr[i][0] = p.x;
        pr[i][1] = p.y;
        pr[i][2] = p.z;
        pr[i][3] = p.w;
      }
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
        float vr[VC];
#pragma unroll
        for (int e = 0; e < VC; ++e) vr[e] = vs[j + jj][e0 + e];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int e = 0; e < VC; ++e) o[i][e] = fmaf(pr[i][jj], vr[e], o[i][e]);
      }
    }
    __syncwarp();  // P is read before the next tile overwrites it
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int qi = i0 + r0 + i;
    if (qi >= Nq) continue;
    const float inv = 1.0f / l[i];
    float* op = out + (static_cast<index_t>(b) * Nq + qi) * Cv + static_cast<index_t>(h) * dv;
#pragma unroll
    for (int e = 0; e < VC; ++e)
      if (e0 + e < dv) op[e0 + e] = o[i][e] * inv;
  }
}

}  // namespace cuda_detail
}  // namespace ops
}  // namespace diffblocks
