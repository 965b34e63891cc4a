#pragma once
// The half-precision storage types: bf16 (bfloat16: the top half of a float32, 8-bit exponent,
// 7-bit mantissa) and f16 (IEEE 754 binary16: 5-bit exponent, 10-bit mantissa, subnormals).
// Both convert from float32 by rounding to nearest, ties to even (what torch's .to(bfloat16 /
// float16) and the hardware instructions do: vcvtneps2bf16, vcvtps2ph with RNE, CUDA's
// __float2bfloat16_rn / __float2half_rn); to float32 exactly. NaN stays NaN (made quiet), and
// f16 overflows to infinity from 65520 on, as IEEE rounding says. Arithmetic goes through float:
// these are what a tensor stores, the kernels compute in float32.
//
// Under nvcc every conversion is __host__ __device__ (the Cuda device's element-wise functors
// read and write half tensors with them). In device code they use CUDA's conversion intrinsics
// (cvt.rn: round to nearest even, subnormals kept, overflow to infinity) and, for NaN only,
// the host's formula: the intrinsics return a canonical NaN, the host keeps the sign and payload.
// So a value converts to the same bits on the host and on the device (tests/cuda: every 16-bit
// pattern and 2^20 float32 patterns).
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

#ifndef DIFFBLOCKS_HD  // host and device under nvcc (ops/map.hpp takes it from here)
#if defined(__CUDACC__)
#define DIFFBLOCKS_HD __host__ __device__
#else
#define DIFFBLOCKS_HD
#endif
#endif

namespace diffblocks {

namespace half_detail {
DIFFBLOCKS_HD inline std::uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
#endif
}
DIFFBLOCKS_HD inline float bits_float(std::uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(b);
#else
  float f;
  std::memcpy(&f, &b, 4);
  return f;
#endif
}
}  // namespace half_detail

/// bfloat16 bits -> float32 (exact).
DIFFBLOCKS_HD inline float bf16_bits_to_float(std::uint16_t h) { return half_detail::bits_float(static_cast<std::uint32_t>(h) << 16); }

/// float32 -> bfloat16 bits, round to nearest even; NaN -> a quiet NaN of the same sign.
DIFFBLOCKS_HD inline std::uint16_t float_to_bf16_bits(float f) {
  const std::uint32_t b = half_detail::float_bits(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((b >> 16) | 0x0040u);
#if defined(__CUDA_ARCH__)
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
#else
  return static_cast<std::uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
#endif
}

/// IEEE binary16 bits -> float32 (exact; subnormals renormalised).
DIFFBLOCKS_HD inline float f16_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
#if defined(__CUDA_ARCH__)
  if (exp != 0x1f || man == 0) return __half2float(__ushort_as_half(h));  // all but NaN: exact
#endif
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while (!(man & 0x400u)) {
        man <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  return half_detail::bits_float(bits);
}

/// float32 -> IEEE binary16 bits, round to nearest even (subnormals included; from 65520 on,
/// infinity); NaN -> a quiet NaN of the same sign.
DIFFBLOCKS_HD inline std::uint16_t float_to_f16_bits(float f) {
  const std::uint32_t b = half_detail::float_bits(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((b >> 16) & 0x8000u);
  const std::uint32_t a = b & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN
#if defined(__CUDA_ARCH__)
  return __half_as_ushort(__float2half_rn(f));
#else
  if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520: rounds to inf
  const int e = static_cast<int>(a >> 23) - 127;  // unbiased exponent
  if (e >= -14) {  // normal half: drop 13 mantissa bits, rounding to nearest even
    const std::uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - ((127u - 15u) << 23);
    return static_cast<std::uint16_t>(sign | (r >> 13));
  }
  if (e < -25) return sign;  // below half the smallest subnormal (2^-25): zero
  // Subnormal half: the value is m * 2^-24 with m = mantissa (with its leading 1) >> shift.
  const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const int shift = -e - 1;  // 14..24: m * 2^(e - 23) = (m >> (shift + ... )) in units of 2^-24
  const std::uint32_t q = m >> shift, rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
  const std::uint32_t rounded = q + (rest > half || (rest == half && (q & 1u)) ? 1u : 0u);
  return static_cast<std::uint16_t>(sign | rounded);
#endif
}

/// bfloat16 storage: converts to and from float (see the file comment).
// Default construction leaves the bits unset, as for float: a tensor of half values is then
// allocated without a pass that zeroes it (xtensor constructs each element of a type that is not
// trivially default constructible, one 16-bit store at a time: a fifth of a bf16 Mish), and the
// sanitizer build's poisoned allocations reach half tensors too. bf16{} and bf16(0.0f) are zero.
struct bf16 {
  std::uint16_t bits;
  bf16() = default;
  DIFFBLOCKS_HD bf16(float f) : bits(float_to_bf16_bits(f)) {}  // NOLINT: implicit, like float -> double
  DIFFBLOCKS_HD operator float() const { return bf16_bits_to_float(bits); }
  DIFFBLOCKS_HD static bf16 from_bits(std::uint16_t b) {
    bf16 h;
    h.bits = b;
    return h;
  }
  // Compound assignment computes in float and rounds once (a += b is a = float(a) + float(b)).
  DIFFBLOCKS_HD bf16& operator+=(float v) { return *this = float(*this) + v; }
  DIFFBLOCKS_HD bf16& operator-=(float v) { return *this = float(*this) - v; }
  DIFFBLOCKS_HD bf16& operator*=(float v) { return *this = float(*this) * v; }
  DIFFBLOCKS_HD bf16& operator/=(float v) { return *this = float(*this) / v; }
};

/// IEEE binary16 storage: converts to and from float (see the file comment).
struct f16 {  // default construction as bf16's
  std::uint16_t bits;
  f16() = default;
  DIFFBLOCKS_HD f16(float f) : bits(float_to_f16_bits(f)) {}  // NOLINT
  DIFFBLOCKS_HD operator float() const { return f16_bits_to_float(bits); }
  DIFFBLOCKS_HD static f16 from_bits(std::uint16_t b) {
    f16 h;
    h.bits = b;
    return h;
  }
  // Compound assignment computes in float and rounds once (a += b is a = float(a) + float(b)).
  DIFFBLOCKS_HD f16& operator+=(float v) { return *this = float(*this) + v; }
  DIFFBLOCKS_HD f16& operator-=(float v) { return *this = float(*this) - v; }
  DIFFBLOCKS_HD f16& operator*=(float v) { return *this = float(*this) * v; }
  DIFFBLOCKS_HD f16& operator/=(float v) { return *this = float(*this) / v; }
};

/// Whether T is one of the half-precision storage types.
template <class T>
struct is_half : std::bool_constant<std::is_same<T, bf16>::value || std::is_same<T, f16>::value> {};
template <class T>
constexpr bool is_half_v = is_half<T>::value;

/// The type a kernel computes a T in: float for the half types (f32 accumulation, statistics and
/// activations; one rounding when the result is stored), T itself otherwise.
template <class T>
using compute_t = std::conditional_t<is_half_v<T>, float, T>;

/// Template-parameter constraints: ops whose kernels compute in T itself (float, double), and
/// their half-precision counterparts (which widen to float; ops/cpu/half_ops.hpp).
template <class T>
using IfKernelScalar = std::enable_if_t<!is_half_v<T>, int>;
template <class T>
using IfHalf = std::enable_if_t<is_half_v<T>, int>;

static_assert(sizeof(bf16) == 2 && sizeof(f16) == 2, "half types are two bytes, as stored in files");
static_assert(std::is_trivially_default_constructible<bf16>::value && std::is_trivially_default_constructible<f16>::value,
              "a half tensor is allocated without a zeroing pass (see bf16)");

}  // namespace diffblocks
