#pragma once
// PreparedWeights<T, D>: what a block keeps of its weights' prepared form on device D (the
// CPU's: cpu::PreparedSlot, ops/cpu/prepared.hpp). Devices that prepare nothing (Cuda: cuDNN
// and cuBLAS take the weights as they are; Meta) get an empty slot, and their ops ignore it
// (ops.hpp's fallbacks), so Conv2d calls `ops::conv2d(device, x, weight, bias, s, p, prepared_)`
// on every device.
#include <cstddef>

#include "diffblocks/core/device.hpp"
#include "diffblocks/ops/cpu/prepared.hpp"

namespace diffblocks {
namespace ops {

template <class T, class D>
struct PreparedWeights {
  void reset() {}
  std::size_t bytes() const { return 0; }
};

/// The CPU keeps the float32 prepared form for the half types too: their products run on the
/// float32 kernels (ops/cpu/half_ops.hpp).
template <class T>
struct PreparedWeights<T, Cpu> : cpu::PreparedSlot<compute_t<T>> {};

}  // namespace ops
}  // namespace diffblocks
