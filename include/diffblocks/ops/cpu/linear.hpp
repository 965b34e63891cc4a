#pragma once
// Linear on the CPU with the weight's prepared form (packed W^T, kernels/linear.inl) kept in a
// slot, as Conv2d keeps its own (conv.hpp): a token-wise projection (kLinearPackFrom rows or
// more) no longer packs W^T at every call. Fewer rows never need the form and do not make it.
#include <cstddef>

#include "diffblocks/core/device.hpp"
#include "diffblocks/ops/cpu/conv.hpp"
#include "diffblocks/ops/cpu/kernels.hpp"
#include "diffblocks/ops/cpu/prepared.hpp"
#include "diffblocks/ops/prepared.hpp"

namespace diffblocks {
namespace ops {
namespace cpu {

namespace detail {
template <class T>
std::ptrdiff_t prepared_linear_size(int out, int in) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(prepared_linear_size<T>(out, in));
}
template <class T>
void pack_linear_weight(const T* w, int out, int in, T* wt) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(pack_linear_weight<T>(w, out, in, wt));
}
template <class T>
PreparedUse<T> linear_form(CpuContext& c, const Tensor<T, 2, Cpu>& w, PreparedSlot<T>* slot) {
  const int out = static_cast<int>(w.shape(0)), in = static_cast<int>(w.shape(1));
  return prepared_form(c, slot, PreparedKey{isa(), kPackedLinear}, prepared_linear_size<T>(out, in),
                       [&](T* p) { pack_linear_weight(w.data(), out, in, p); });
}
}  // namespace detail

/// y (..., out) = x (..., in) W^T + b with W^T's packed form kept in `slot` (made at the first
/// call with kLinearPackFrom rows or more). Later edits of w are not seen until slot.reset().
template <class T, std::size_t N>
Tensor<T, N, Cpu> linear(const Cpu& d, const Tensor<T, N, Cpu>& x, const Tensor<T, 2, Cpu>& w,
                         const Tensor<T, 1, Cpu>& bias, PreparedSlot<T>& slot) {
  const DeviceScope<Cpu> on(d);
  if (leading_rows(x.shape()) < static_cast<std::size_t>(kLinearPackFrom) || x.shape(N - 1) == 0 || w.shape(0) == 0) {
    if (!keeps_prepared(d.context().weight_preparation())) slot.reset();  // PerCall keeps nothing
    DIFFBLOCKS_CPU_RETURN_KERNEL(linear<T, N>(x, w, bias, static_cast<const T*>(nullptr)));
  }
  const auto form = detail::linear_form(d.context(), w, &slot);
  DIFFBLOCKS_CPU_RETURN_KERNEL(linear<T, N>(x, w, bias, form.data()));
}

/// Makes the prepared form of a Linear weight in `slot` now (nothing under PerCall).
template <class T>
void prepare_linear(const Cpu& d, const Tensor<T, 2, Cpu>& w, PreparedSlot<T>& slot) {
  const DeviceScope<Cpu> on(d);
  CpuContext& c = d.context();
  if (!keeps_prepared(c.weight_preparation()) || w.size() == 0) return;
  detail::linear_form(c, w, &slot);
}

}  // namespace cpu

/// Linear on the weight's prepared form kept in `prepared` (what the Linear block holds).
template <class T, std::size_t N, IfKernelScalar<T> = 0>
Tensor<T, N, Cpu> linear(const Cpu& dev, const Tensor<T, N, Cpu>& x, const Tensor<T, 2, Cpu>& w,
                         const Tensor<T, 1, Cpu>& bias, PreparedWeights<T, Cpu>& prepared) {
  return cpu::linear(dev, x, w, bias, prepared);
}
template <class T, IfKernelScalar<T> = 0>
void prepare_linear(const Cpu& dev, const Tensor<T, 2, Cpu>& w, PreparedWeights<T, Cpu>& prepared) {
  cpu::prepare_linear(dev, w, prepared);
}

}  // namespace ops
}  // namespace diffblocks
