#pragma once
// Every device's ops. Block, U-Net and sampler code calls `ops::name(D{}, ...)` with a qualified
// name, which C++ looks up where the template is *defined*: every overload must be declared
// before any block header. So the block headers include this file, which brings
//   ops/map.hpp         the primitives each device supplies (for_each_index, for_each_row,
//                       copy_rows, zeros): the CPU's, and the Cuda device's under nvcc;
//   ops/generic/        the ops written once on those primitives (element-wise, layout);
//   ops/cpu/            the CPU's own ops (convolutions, GEMMs, norms, attention) and its SIMD
//                       fast paths overriding generic ones; half_ops.hpp: the same ops on
//                       bf16 / f16 tensors (float32 kernels behind a conversion);
//   diffblocks/cuda.hpp in a translation unit compiled by nvcc (__CUDACC__), the Cuda device's.
// Model-specific ops live beside their blocks (the norm fusions in blocks/group_norm.hpp, the
// samplers' arithmetic in sampling/*_ops.hpp, the Origin's conditioning in unets/origin_ops.hpp).
// Define DIFFBLOCKS_NO_CUDA to keep a .cu file CPU-only.
#include <type_traits>

#include "diffblocks/ops/map.hpp"
#include "diffblocks/ops/generic/elementwise.hpp"
#include "diffblocks/ops/generic/layout.hpp"
#include "diffblocks/ops/prepared.hpp"
#include "diffblocks/ops/cpu/attention.hpp"
#include "diffblocks/ops/cpu/linear.hpp"
#include "diffblocks/ops/cpu/ops.hpp"
#include "diffblocks/ops/cpu/sequence_ops.hpp"
#include "diffblocks/ops/cpu/half_ops.hpp"
#if defined(__CUDACC__) && !defined(DIFFBLOCKS_NO_CUDA)
#include "diffblocks/cuda.hpp"
#endif

namespace diffblocks {
namespace ops {
// Conversions between a float32 state and a model's type, after every device's cast (the CPU's
// SIMD one in ops/cpu/half_ops.hpp), which they call.
/// x itself (a reference) when its scalar type is To already, else cast<To>(d, x): for code
/// that hands a float32 state to a model of any type (`const auto& xm = in_type<T>(d, xt);`,
/// which a float32 model reads without a copy).
template <class To, class D, class X, OnDevice<D, X> = 0>
decltype(auto) in_type(const D& d, const X& x) {
  if constexpr (std::is_same<typename X::value_type, To>::value)
    return (x);
  else
    return ops::cast<To>(d, x);
}

/// x as a tensor of scalar type To, by value: a temporary of type To already is moved, not
/// copied (`latents = to_type<float>(d, model.forward(...))`).
template <class To, class D, class X, OnDevice<D, X> = 0>
auto to_type(const D& d, X x) {
  if constexpr (std::is_same<typename X::value_type, To>::value)
    return x;
  else
    return ops::cast<To>(d, x);
}


// Devices that keep no prepared weights (PreparedWeights<T, D> is empty): the convolutions
// and linear layers with a slot are the plain ones. Defined after every device's ops, which they call.
template <class D, class X, class W, class B, class T, std::enable_if_t<!std::is_same<D, Cpu>::value, int> = 0>
auto conv2d(const D& d, const X& x, const W& w, const B& bias, int stride, int padding, PreparedWeights<T, D>&)
    -> decltype(ops::conv2d(d, x, w, bias, stride, padding)) {
  return ops::conv2d(d, x, w, bias, stride, padding);
}
template <class D, class X, class W, class B, class O, class T, std::enable_if_t<!std::is_same<D, Cpu>::value, int> = 0>
void conv2d_add_(const D& d, const X& x, const W& w, const B& bias, int stride, int padding, O& out,
                 PreparedWeights<T, D>&) {
  ops::conv2d_add_(d, x, w, bias, stride, padding, out);
}
template <class D, class X, class W, class B, class T, std::enable_if_t<!std::is_same<D, Cpu>::value, int> = 0>
auto conv_transpose2d(const D& d, const X& x, const W& w, const B& bias, int stride, int padding,
                      PreparedWeights<T, D>&) -> decltype(ops::conv_transpose2d(d, x, w, bias, stride, padding)) {
  return ops::conv_transpose2d(d, x, w, bias, stride, padding);
}
template <class D, class W, class T, std::enable_if_t<!std::is_same<D, Cpu>::value, int> = 0>
void prepare_conv2d(const D&, const W&, int, int, PreparedWeights<T, D>&) {}
template <class D, class W, class T, std::enable_if_t<!std::is_same<D, Cpu>::value, int> = 0>
void prepare_conv_transpose2d(const D&, const W&, int, int, PreparedWeights<T, D>&) {}
template <class D, class X, class W, class B, class T, std::enable_if_t<!std::is_same<D, Cpu>::value, int> = 0>
auto linear(const D& d, const X& x, const W& w, const B& bias, PreparedWeights<T, D>&)
    -> decltype(ops::linear(d, x, w, bias)) {
  return ops::linear(d, x, w, bias);
}
template <class D, class W, class T, std::enable_if_t<!std::is_same<D, Cpu>::value, int> = 0>
void prepare_linear(const D&, const W&, PreparedWeights<T, D>&) {}
}  // namespace ops
}  // namespace diffblocks
