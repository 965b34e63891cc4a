#pragma once
// The CPU's primitives for the device-generic ops (ops/map.hpp): loops over the pool of the
// device's context, serial below 128 K values: the generic ops are one cheap pass over data that
// is mostly in L2, where waking the pool costs more than it saves (a scheduler step over 80 x 512
// latents: 2.1 us serial, 3.8 us on 2 threads).
// The loops themselves are kernels (kernels/elementwise.inl: each_index, each_row), compiled per
// instruction set, so each op's functor is inlined and vectorised at the width the CPU has.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>

#include "diffblocks/core/device.hpp"
#include "diffblocks/core/parallel.hpp"
#include "diffblocks/ops/cpu/kernels.hpp"

namespace diffblocks {
namespace ops {

/// The first lines of a CPU op that overrides a device-generic one: the device's context in
/// effect for the call, and the generic implementation (`__VA_ARGS__`, e.g.
/// `generic::mish_(dev, x)`) returned instead when the context asks for CpuOps::Reference.
#define DIFFBLOCKS_CPU_FAST_PATH(dev, ...)                                   \
  const ::diffblocks::DeviceScope<::diffblocks::Cpu> diffblocks_on_(dev);    \
  if ((dev).context().ops() == ::diffblocks::CpuOps::Reference) return __VA_ARGS__

namespace cpu_map {
constexpr std::size_t kSerialBelow = std::size_t{1} << 17;
}

template <class T, std::size_t N>
Tensor<T, N, Cpu> empty(const Cpu& dev, const std::array<std::size_t, N>& shape) {
  const DeviceScope<Cpu> on(dev);
  return Tensor<T, N, Cpu>::from_shape(shape);
}

template <class T, std::size_t N>
Tensor<T, N, Cpu> zeros(const Cpu& dev, const std::array<std::size_t, N>& shape) {
  auto t = empty<T, N>(dev, shape);
  std::fill_n(t.data(), t.size(), T(0));
  return t;
}

/// f(i) for i in [0, n).
template <class F>
void for_each_index(const Cpu& dev, std::size_t n, const F& f) {
  const DeviceScope<Cpu> on(dev);
  auto part = [&](std::size_t first, std::size_t last) { DIFFBLOCKS_CPU_RETURN_KERNEL(each_index(first, last, f)); };
  if (n < cpu_map::kSerialBelow) return part(0, n);
  parallel_for(static_cast<std::ptrdiff_t>(n), [&](std::ptrdiff_t b, std::ptrdiff_t e) {
    part(static_cast<std::size_t>(b), static_cast<std::size_t>(e));
  });
}

/// f(r, c) for r in [0, rows), c in [0, cols), c innermost.
template <class F>
void for_each_row(const Cpu& dev, std::size_t rows, std::size_t cols, const F& f) {
  const DeviceScope<Cpu> on(dev);
  auto part = [&](std::size_t first, std::size_t last) { DIFFBLOCKS_CPU_RETURN_KERNEL(each_row(first, last, cols, f)); };
  if (rows * cols < cpu_map::kSerialBelow) return part(0, rows);
  parallel_for(static_cast<std::ptrdiff_t>(rows), [&](std::ptrdiff_t b, std::ptrdiff_t e) {
    part(static_cast<std::size_t>(b), static_cast<std::size_t>(e));
  });
}

/// rows x width values from src (rows src_pitch apart) to dst (rows dst_pitch apart).
template <class T>
void copy_rows(const Cpu&, T* dst, std::size_t dst_pitch, const T* src, std::size_t src_pitch, std::size_t width,
               std::size_t rows) {
  if (width == 0) return;
  for (std::size_t r = 0; r < rows; ++r) std::memcpy(dst + r * dst_pitch, src + r * src_pitch, width * sizeof(T));
}

}  // namespace ops
}  // namespace diffblocks
