#pragma once
// Softmax attention on bf16 tensors with both products on vdpbf16ps (kernels/attention_bf16.inl,
// compiled in gemm_half.hpp's avx512bf16 region beside the bf16 GEMM), run where the bf16 GEMM
// runs (its Avx512Bf16 path: the avx512 copy in use and a CPU with AVX512-BF16). Elsewhere, and
// for f16, half attention widens to the float32 kernels (half_ops.hpp).
#include "diffblocks/core/error.hpp"
#include "diffblocks/core/half.hpp"
#include "diffblocks/ops/cpu/gemm_half.hpp"

namespace diffblocks {
namespace ops {
namespace cpu {

/// Whether softmax attention on bf16 runs the vdpbf16ps kernel now (the bf16 GEMM's path is
/// Avx512Bf16: isa() is the avx512 copy and the CPU has AVX512-BF16).
inline bool bf16_attention_native() {
#if DIFFBLOCKS_CPU_HAS_AVX512_BF16
  return half_gemm_path<bf16>() == HalfGemmPath::Avx512Bf16;
#else
  return false;
#endif
}

/// The vdpbf16ps streaming kernel; only where bf16_attention_native() (else a ConfigError).
inline Tensor<bf16, 3, Cpu> attention_streaming_bf16(const Tensor<bf16, 3, Cpu>& q, const Tensor<bf16, 3, Cpu>& k,
                                                     const Tensor<bf16, 3, Cpu>& v, int heads, float scale,
                                                     const Tensor<bf16, 2, Cpu>& bias) {
#if DIFFBLOCKS_CPU_HAS_AVX512_BF16
  if (bf16_attention_native()) return avx512_bf16::attention_bf16::streaming(q, k, v, heads, scale, bias);
#endif
  (void)q, (void)k, (void)v, (void)heads, (void)scale, (void)bias;
  throw ConfigError("bf16 attention: the vdpbf16ps kernel cannot run here (needs the avx512 kernels and AVX512-BF16)");
}

}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
