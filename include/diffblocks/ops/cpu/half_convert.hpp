#pragma once
// float32 <-> bf16 / f16 over whole buffers and tensors on the CPU: the SIMD conversions of
// kernels/elementwise.inl (over the pool), with core/half.hpp's rounding bit for bit. What the
// half ops (half_ops.hpp) and the half paths of the convolutions (conv.hpp) widen and round with.
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "diffblocks/core/device.hpp"
#include "diffblocks/core/half.hpp"
#include "diffblocks/ops/cpu/kernels.hpp"

namespace diffblocks {
namespace ops {
namespace cpu {
namespace half_convert {

/// d[0, n) = s as float32.
template <class H>
void widen_range(const H* s, float* d, std::ptrdiff_t n) {
  static_assert(is_half_v<H>, "widen_range: a half type");
  const auto* bits = reinterpret_cast<const std::uint16_t*>(s);
  if constexpr (std::is_same<H, bf16>::value) {
    DIFFBLOCKS_CPU_RETURN_KERNEL(widen_bf16(bits, d, n));
  } else {
    DIFFBLOCKS_CPU_RETURN_KERNEL(widen_f16(bits, d, n));
  }
}
/// d[0, n) = s rounded to H.
template <class H>
void narrow_range(const float* s, H* d, std::ptrdiff_t n) {
  static_assert(is_half_v<H>, "narrow_range: a half type");
  auto* bits = reinterpret_cast<std::uint16_t*>(d);
  if constexpr (std::is_same<H, bf16>::value) {
    DIFFBLOCKS_CPU_RETURN_KERNEL(narrow_bf16(s, bits, n));
  } else {
    DIFFBLOCKS_CPU_RETURN_KERNEL(narrow_f16(s, bits, n));
  }
}

/// x as float32 (a new tensor).
template <class H, std::size_t N>
Tensor<float, N, Cpu> widened(const Tensor<H, N, Cpu>& x) {
  auto y = Tensor<float, N, Cpu>::from_shape(x.shape());
  widen_range(x.data(), y.data(), static_cast<std::ptrdiff_t>(x.size()));
  return y;
}
/// x rounded to H (a new tensor).
template <class H, std::size_t N>
Tensor<H, N, Cpu> narrowed(const Tensor<float, N, Cpu>& x) {
  auto y = Tensor<H, N, Cpu>::from_shape(x.shape());
  narrow_range(x.data(), y.data(), static_cast<std::ptrdiff_t>(x.size()));
  return y;
}

}  // namespace half_convert
}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
