#pragma once
// What the device-generic ops deduce their tensors with. A device's tensor type is an alias
// (Tensor<T, N, D> = D::tensor<T, N>), from which C++ cannot deduce T, N or D, so the generic ops
// take the tensor type X as it is and check that it is D's.
#include <cstddef>
#include <tuple>
#include <type_traits>

#include "diffblocks/core/device.hpp"

namespace diffblocks {
namespace ops {

template <class X>
constexpr std::size_t rank_of() {
  return std::tuple_size<typename X::shape_type>::value;
}

/// Whether X is a tensor of device D (D::tensor<T, N> for some T, N).
template <class D, class X, class = void>
struct is_tensor_on : std::false_type {};
template <class D, class X>
struct is_tensor_on<D, X, std::void_t<typename X::value_type, typename X::shape_type>>
    : std::is_same<X, Tensor<typename X::value_type, std::tuple_size<typename X::shape_type>::value, D>> {};

/// `template <class D, class X, OnDevice<D, X> = 0>`: the op takes X, a tensor of D.
template <class D, class X>
using OnDevice = std::enable_if_t<is_tensor_on<D, X>::value, int>;

}  // namespace ops
}  // namespace diffblocks
