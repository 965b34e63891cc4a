#pragma once
// Which copies of the CPU kernels a translation unit compiles, the target regions they are
// compiled in, and the one-line dispatch of an op to the copy that runs.
//
// DIFFBLOCKS_CPU_DISPATCH = 1 (the default on x86-64 with GCC or clang): the kernel source
// (ops/cpu/kernels/) is compiled three times, in namespaces ops::cpu::generic (the x86-64
// baseline, SSE2), ops::cpu::avx2 (AVX2, FMA, F16C) and ops::cpu::avx512 (F, BW, DQ, VL); the
// last two inside target regions (#pragma GCC target / #pragma clang attribute), and every op
// picks one at run time from cpuid (isa.hpp). Only what is *defined* inside a region is compiled
// for its instruction set: std::, xtensor and core/ code instantiated from it stays baseline
// code, so no inline function that other translation units share (and the linker merges) ever
// holds AVX instructions. That is why the copies are not made by compiling whole translation
// units with -mavx512f: an std::vector<float> member compiled there could be the one the linker
// keeps, and crash a CPU without AVX-512.
//
// One more region, outside the three copies: ops::cpu::avx512_bf16 (the avx512 features plus
// AVX512-BF16), for the bf16 GEMM's vdpbf16ps kernel alone (ops/cpu/gemm_half.hpp); it is called
// only when the avx512 copy is the one in use and the CPU has the feature.
//
// DIFFBLOCKS_CPU_DISPATCH = 0 (define it before including diffblocks), and every other
// architecture: one copy, compiled for whatever the compiler targets (-march=...), in the
// namespace of the instruction set that is (avx512, avx2 or generic). Faster to compile, for
// programs built with -march=native for the machine they run on.
//
// Flags given to the compiler add to a region's target (GCC and clang both OR them in): with
// -march=native on an AVX-512 machine every copy may use AVX-512, so such a binary needs that
// machine whatever DIFFBLOCKS_CPU_ISA says.

#if !defined(DIFFBLOCKS_CPU_DISPATCH)
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define DIFFBLOCKS_CPU_DISPATCH 1
#else
#define DIFFBLOCKS_CPU_DISPATCH 0
#endif
#endif

#if DIFFBLOCKS_CPU_DISPATCH && !(defined(__x86_64__) || defined(__i386__))
#error "DIFFBLOCKS_CPU_DISPATCH=1 needs an x86 target (other architectures compile one copy: leave it undefined)"
#endif

// DIFFBLOCKS_CPU_HAS_<ISA>: whether this translation unit has that copy of the kernels.
#if DIFFBLOCKS_CPU_DISPATCH
#define DIFFBLOCKS_CPU_HAS_GENERIC 1
#define DIFFBLOCKS_CPU_HAS_AVX2 1
#define DIFFBLOCKS_CPU_HAS_AVX512 1
#elif defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define DIFFBLOCKS_CPU_HAS_AVX512 1
#define DIFFBLOCKS_CPU_ONLY_COPY avx512
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define DIFFBLOCKS_CPU_HAS_AVX2 1
#define DIFFBLOCKS_CPU_ONLY_COPY avx2
#else
#define DIFFBLOCKS_CPU_HAS_GENERIC 1
#define DIFFBLOCKS_CPU_ONLY_COPY generic
#endif
#ifndef DIFFBLOCKS_CPU_HAS_GENERIC
#define DIFFBLOCKS_CPU_HAS_GENERIC 0
#endif
#ifndef DIFFBLOCKS_CPU_HAS_AVX2
#define DIFFBLOCKS_CPU_HAS_AVX2 0
#endif
#ifndef DIFFBLOCKS_CPU_HAS_AVX512
#define DIFFBLOCKS_CPU_HAS_AVX512 0
#endif

// DIFFBLOCKS_CPU_HAS_AVX512_BF16: whether this translation unit compiles the kernels of the
// avx512bf16 region (namespace ops::cpu::avx512_bf16: the bf16 GEMM on vdpbf16ps,
// ops/cpu/gemm_half.hpp), which run only where the avx512 copy does and the CPU has AVX512-BF16
// (isa.hpp, avx512_bf16_supported). With dispatch: when the compiler knows the feature (GCC 10,
// clang 9); a one-copy build: when its flags enable it (-march=cooperlake, znver4, native...).
#if DIFFBLOCKS_CPU_DISPATCH
#if (defined(__clang__) && __clang_major__ >= 9) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 10)
#define DIFFBLOCKS_CPU_HAS_AVX512_BF16 1
#endif
#elif DIFFBLOCKS_CPU_HAS_AVX512 && defined(__AVX512BF16__)
#define DIFFBLOCKS_CPU_HAS_AVX512_BF16 1
#endif
#ifndef DIFFBLOCKS_CPU_HAS_AVX512_BF16
#define DIFFBLOCKS_CPU_HAS_AVX512_BF16 0
#endif

// The target regions. The feature lists must match what isa.hpp checks before it lets a copy
// run (cpu_features): a feature enabled here but not checked there could crash a CPU without it.
#define DIFFBLOCKS_CPU_AVX2_FEATURES "avx2,fma,f16c,bmi,bmi2"
#define DIFFBLOCKS_CPU_AVX512_FEATURES "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,bmi,bmi2"
// Checked by avx512_bf16_supported() (isa.hpp).
#define DIFFBLOCKS_CPU_AVX512_BF16_FEATURES DIFFBLOCKS_CPU_AVX512_FEATURES ",avx512bf16"
#if !DIFFBLOCKS_CPU_DISPATCH
#define DIFFBLOCKS_CPU_TARGET_BEGIN(features)
#define DIFFBLOCKS_CPU_TARGET_END
#elif defined(__clang__)
// Applies to every function declared in the region, lambdas and templates included.
#define DIFFBLOCKS_CPU_TARGET_BEGIN(features) \
  _Pragma(DIFFBLOCKS_CPU_PRAGMA_STR(clang attribute push(__attribute__((target(features))), apply_to = function)))
#define DIFFBLOCKS_CPU_TARGET_END _Pragma("clang attribute pop")
#define DIFFBLOCKS_CPU_PRAGMA_STR(...) #__VA_ARGS__
#else
#define DIFFBLOCKS_CPU_TARGET_BEGIN(features) \
  _Pragma("GCC push_options") _Pragma(DIFFBLOCKS_CPU_PRAGMA_STR(GCC target(features)))
#define DIFFBLOCKS_CPU_TARGET_END _Pragma("GCC pop_options")
#define DIFFBLOCKS_CPU_PRAGMA_STR(...) #__VA_ARGS__
#endif

/// `return <copy>::call;` for the copy of the kernels that runs now (cpu::isa()), e.g.
///   DIFFBLOCKS_CPU_RETURN_KERNEL(conv2d<T>(x, w, bias, stride, padding, winograd));
/// in an op's entry point. isa() is also asked in a one-copy build, so that a bad
/// DIFFBLOCKS_CPU_ISA is reported the same way.
#if DIFFBLOCKS_CPU_DISPATCH
#define DIFFBLOCKS_CPU_RETURN_KERNEL(...)                                            \
  switch (::diffblocks::ops::cpu::isa()) {                                           \
    case ::diffblocks::ops::cpu::Isa::Avx512:                                        \
      return ::diffblocks::ops::cpu::avx512::__VA_ARGS__;                           \
    case ::diffblocks::ops::cpu::Isa::Avx2:                                          \
      return ::diffblocks::ops::cpu::avx2::__VA_ARGS__;                             \
    case ::diffblocks::ops::cpu::Isa::Generic:                                       \
      break;                                                                         \
  }                                                                                  \
  return ::diffblocks::ops::cpu::generic::__VA_ARGS__
#else
#define DIFFBLOCKS_CPU_RETURN_KERNEL(...) \
  (void)::diffblocks::ops::cpu::isa();    \
  return ::diffblocks::ops::cpu::DIFFBLOCKS_CPU_ONLY_COPY::__VA_ARGS__
#endif
