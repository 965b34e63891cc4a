#pragma once
// Multi-head softmax attention on the CPU, in two variants that compute the same function:
//
//   q (B, Nq, heads*dh), k (B, Nk, heads*dh), v (B, Nk, heads*dv); head h = channels [h*dh, (h+1)*dh)
//   out[b, i, h*dv + e] = sum_j softmax_j(scale * q_i . k_j + bias[b, j]) v[b, j, h*dv + e]
//   `bias` (B, Nk) is added to every query's scores (diffusers' encoder_attention_mask); empty = none.
//
// * attention_naive: the reference. For a tile of 64 queries the full score rows (64 x Nk) are
//   materialised, softmaxed (max-subtracted, float32) and multiplied by V. Memory O(64 * Nk)
//   per thread; the score rows leave the cache once Nk passes ~2k keys.
// * attention_streaming: the flash-attention recurrence (Milakov & Gimelshein's online softmax;
//   Dao et al. 2022). Keys are visited in blocks of 64; each query keeps its running maximum m,
//   normaliser l and unnormalised output o, rescaled by exp(m_old - m_new) when the maximum
//   grows. Scores never exist beyond one 64-key tile (12-16 KiB, L1-resident), whatever Nk is.
//   It works transposed (keys x queries), so the softmax statistics are vectors across queries
//   and the probabilities feed the second product without a transposition; both products run
//   on register-blocked kernels against K and V^T packed once per call. Agrees with the naive
//   variant to rounding (its exp2 has a relative error below 1e-7).
//
// `attention` picks one by its device's setting (CpuOptions::attention; set_attention_algorithm
// sets the default context's) (Auto: streaming from 512 keys on, where
// it is measured faster; below that the naive variant wastes less on padding short style
// sequences to 64 keys). Both are validated against each other in the tests
// and against a scalar double-precision reference in benchmarks/bench_attention.cpp.
#include <atomic>

#include "diffblocks/core/device.hpp"
#include "diffblocks/ops/cpu/kernels.hpp"

namespace diffblocks {
namespace ops {

/// Sets the attention algorithm of the process default context (what `Cpu{}` means outside a
/// model); a device made with `Cpu(CpuOptions{...})` keeps its own. The Cuda device has its own
/// setting too (Cuda::attention).
inline void set_attention_algorithm(AttentionAlgorithm a) { default_cpu_context()->set_attention_algorithm(a); }
/// The attention algorithm of the CPU context in effect (outside any model: the process default's).
inline AttentionAlgorithm attention_algorithm() { return current_cpu_context().attention_algorithm(); }

/// The reference variant: full score rows per tile of 64 queries (kernels/attention.inl).
template <class T, IfKernelScalar<T> = 0>
Tensor<T, 3, Cpu> attention_naive(Cpu dev, const Tensor<T, 3, Cpu>& q, const Tensor<T, 3, Cpu>& k,
                                  const Tensor<T, 3, Cpu>& v, int heads, T scale, const Tensor<T, 2, Cpu>& bias) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(attention_naive<T>(q, k, v, heads, scale, bias));
}

/// The streaming (flash) variant: online softmax over blocks of 64 keys (kernels/attention.inl).
template <class T, IfKernelScalar<T> = 0>
Tensor<T, 3, Cpu> attention_streaming(Cpu dev, const Tensor<T, 3, Cpu>& q, const Tensor<T, 3, Cpu>& k,
                                      const Tensor<T, 3, Cpu>& v, int heads, T scale, const Tensor<T, 2, Cpu>& bias) {
  const DeviceScope<Cpu> on(dev);
  DIFFBLOCKS_CPU_RETURN_KERNEL(attention_streaming<T>(q, k, v, heads, scale, bias));
}

/// Whether `attention` runs the streaming variant for `keys` keys under algorithm a: Streaming, or
/// Auto from 512 keys on (below, the naive variant wastes less padding short sequences to 64).
/// The float32 and the half ops (half_ops.hpp) decide by it alike.
inline bool attention_streams(AttentionAlgorithm a, std::size_t keys) {
  return a == AttentionAlgorithm::Streaming || (a == AttentionAlgorithm::Auto && keys >= 512);
}

/// Softmax attention by the device's algorithm setting (see the file comment).
template <class T, IfKernelScalar<T> = 0>
Tensor<T, 3, Cpu> attention(Cpu dev, const Tensor<T, 3, Cpu>& q, const Tensor<T, 3, Cpu>& k, const Tensor<T, 3, Cpu>& v,
                            int heads, T scale, const Tensor<T, 2, Cpu>& bias) {
  const DeviceScope<Cpu> on(dev);
  CpuContext& c = dev.context();
  const bool streaming = attention_streams(c.attention_algorithm(), k.shape(1));
  ++(streaming ? c.counters().streaming_attention : c.counters().naive_attention);
  return streaming ? attention_streaming(dev, q, k, v, heads, scale, bias)
                   : attention_naive(dev, q, k, v, heads, scale, bias);
}

}  // namespace ops
}  // namespace diffblocks
