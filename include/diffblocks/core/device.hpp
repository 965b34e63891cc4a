#pragma once
// The device is a policy: every block is `Block<T, Device = Cpu>` and calls ops as
// `ops::name(Device{}, ...)`. A device supplies its tensor container and overloads of the ops
// for its tag type; block code never changes between devices (as Eigen Tensor devices and CUTLASS do).
#include <array>
#include <cstddef>
#include <type_traits>

#include <xtensor/xtensor.hpp>

#include "diffblocks/core/allocator.hpp"
// The shape-only device: its ops::zeros/full/empty must be declared before any block template
// (blocks call ops:: by qualified name), so it comes with every device.
#include "diffblocks/core/meta.hpp"

namespace diffblocks {

/// Host CPU: xtensor containers (row-major, NCHW) whose storage comes from the caching
/// allocator, kernels compiled per instruction set and chosen at run time (ops/cpu/isa.hpp),
/// a small thread pool.
struct Cpu {
  template <class T, std::size_t N>
  using tensor = xt::xtensor<T, N, xt::layout_type::row_major, memory::CachingAllocator<T>>;
  static constexpr const char* name = "cpu";
};

/// Whether device D runs Grad-TTS's ODE sampler as a replayed graph (sampling/gradtts.hpp calls
/// reverse_diffusion_graph(D{}, ...) then; the Cuda device specialises it).
template <class D>
struct has_graph_sampler : std::false_type {};

/// The container a block stores and returns on device `D`.
template <class T, std::size_t N, class D = Cpu>
using Tensor = typename D::template tensor<T, N>;

/// Rows of a tensor of this shape seen as a matrix over its last axis (the ops that act on the
/// last axis of any rank, on every device): the product of the leading sizes.
template <std::size_t N>
std::size_t leading_rows(const std::array<std::size_t, N>& shape) {
  std::size_t rows = 1;
  for (std::size_t i = 0; i + 1 < N; ++i) rows *= shape[i];
  return rows;
}
/// The shape with its last size replaced.
template <std::size_t N>
std::array<std::size_t, N> with_last(std::array<std::size_t, N> shape, std::size_t last) {
  shape[N - 1] = last;
  return shape;
}

}  // namespace diffblocks
