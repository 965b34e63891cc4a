#pragma once
// The CPU kernels, compiled once per instruction set: the kernel source in ops/cpu/kernels/ is
// included here inside namespace ops::cpu::generic, ::avx2 and ::avx512 (or the one copy of a
// DIFFBLOCKS_CPU_DISPATCH=0 build; see target.hpp), with DIFFBLOCKS_KERNEL_ISA telling it which
// (vector width, register blocks, the AVX-512-only transforms). The ops' entry points
// (ops.hpp, conv.hpp, attention.hpp, sequence_ops.hpp, gemm.hpp) pick a copy per call by
// cpu::isa() (isa.hpp).
//
// Everything the kernels use from outside is included first, outside any target region: a
// header first included inside one would have its inline functions compiled for that ISA.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "diffblocks/core/allocator.hpp"
#include "diffblocks/core/device.hpp"
#include "diffblocks/core/parallel.hpp"
#include "diffblocks/ops/cpu/isa.hpp"
#include "diffblocks/ops/cpu/target.hpp"
#include "diffblocks/ops/cpu/prepared.hpp"

#if DIFFBLOCKS_CPU_HAS_GENERIC
#define DIFFBLOCKS_KERNEL_ISA 0
namespace diffblocks {
namespace ops {
namespace cpu {
namespace generic {
#include "diffblocks/ops/cpu/kernels/all.inl"
}  // namespace generic
}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
#undef DIFFBLOCKS_KERNEL_ISA
#endif

#if DIFFBLOCKS_CPU_HAS_AVX2
#define DIFFBLOCKS_KERNEL_ISA 1
DIFFBLOCKS_CPU_TARGET_BEGIN(DIFFBLOCKS_CPU_AVX2_FEATURES)
namespace diffblocks {
namespace ops {
namespace cpu {
namespace avx2 {
#include "diffblocks/ops/cpu/kernels/all.inl"
}  // namespace avx2
}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
DIFFBLOCKS_CPU_TARGET_END
#undef DIFFBLOCKS_KERNEL_ISA
#endif

#if DIFFBLOCKS_CPU_HAS_AVX512
#define DIFFBLOCKS_KERNEL_ISA 2
DIFFBLOCKS_CPU_TARGET_BEGIN(DIFFBLOCKS_CPU_AVX512_FEATURES)
namespace diffblocks {
namespace ops {
namespace cpu {
namespace avx512 {
#include "diffblocks/ops/cpu/kernels/all.inl"
}  // namespace avx512
}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
DIFFBLOCKS_CPU_TARGET_END
#undef DIFFBLOCKS_KERNEL_ISA
#endif

namespace diffblocks {
namespace ops {
namespace cpu {

#if DIFFBLOCKS_CPU_DISPATCH
namespace baseline_copy = generic;
#else
namespace baseline_copy = DIFFBLOCKS_CPU_ONLY_COPY;
#endif
/// The packed GEMM and SIMD helpers of the copy that runs on every CPU this build supports
/// (ops::cpu::generic, or the one copy of a DIFFBLOCKS_CPU_DISPATCH=0 build), for code that
/// calls them directly; the others are ops::cpu::avx2::packed etc. (check isa_supported first).
namespace packed = baseline_copy::packed;
namespace simd = baseline_copy::simd;

/// 64-bit content hash of `bytes` bytes (kernels/hash.inl; the same value on every copy).
inline std::uint64_t content_hash(const void* data, std::size_t bytes) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(content_hash(data, bytes));
}

}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
