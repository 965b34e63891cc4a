#pragma once
// Blocks take exactly the tensor types they declare. A CPU Tensor<T, N> is an xtensor, and
// xtensor converts any expression implicitly: without this, a rank-3 tensor given to a rank-4
// forward compiled and failed at run time with a shape the caller never made ([64, 8, 8, 0]),
// and a Tensor<double, 4> was silently copied to float.
//
// DIFFBLOCKS_TAKES_EXACTLY(method, P1, P2, ...) declares, beside the method's real overloads, a
// catch-all template over the same arguments, which overload resolution picks only when a
// tensor argument (an xtensor expression, or an optional of one) is not exactly the declared
// parameter type at its position: the catch-all binds every argument as it is, while the real
// overload would need a conversion. Its body is a static_assert, so the call fails to compile
// with a message that says why. Calls with the exact types never see it (it is not viable for
// them), so scalar arguments keep their ordinary conversions (upsample.forward(x, 0, 0)), and
// a Tensor passed where the method takes std::optional of it is exact too.
#include <cstddef>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <xtensor/xexpression.hpp>

namespace diffblocks {
namespace detail {

template <class A>
struct is_tensor_argument : xt::is_xexpression<A> {};
template <class A>
struct is_tensor_argument<std::optional<A>> : is_tensor_argument<A> {};

/// Marks a position past the declared parameters.
struct no_parameter {};

/// The declared parameter at position I, or no_parameter past the end.
template <std::size_t I, class Params, bool = (I < std::tuple_size<Params>::value)>
struct param_at {
  using type = no_parameter;
};
template <std::size_t I, class Params>
struct param_at<I, Params, true> {
  using type = std::tuple_element_t<I, Params>;
};

/// Past the end counts as exact: the real overload is not viable with too many arguments either,
/// so the call stays an ordinary "no matching function" (and detection idioms that ask whether
/// forward(x, mask) exists keep their answer).
template <class A, class P>
constexpr bool binds_exactly = std::is_same<P, no_parameter>::value || std::is_same<A, P>::value ||
                               std::is_same<std::optional<A>, P>::value;

template <class Params, class... A, std::size_t... I>
constexpr bool converts_a_tensor_(std::index_sequence<I...>) {
  return (... || (is_tensor_argument<A>::value && !binds_exactly<A, typename param_at<I, Params>::type>));
}

/// Whether a call with arguments A... would convert a tensor argument to the parameters Params.
template <class Params, class... A>
constexpr bool converts_a_tensor = converts_a_tensor_<Params, A...>(std::index_sequence_for<A...>{});

template <class...>
constexpr bool always_false = false;

}  // namespace detail
}  // namespace diffblocks

// `const` member functions only (every block's forward is one). The parameters are given in
// order, as declared, without references or const: DIFFBLOCKS_TAKES_EXACTLY(forward,
// Tensor<T, 4, D>, Tensor<T, 2, D>).
#define DIFFBLOCKS_TAKES_EXACTLY(method, ...)                                                                 \
  template <class... A,                                                                                       \
            std::enable_if_t<::diffblocks::detail::converts_a_tensor<std::tuple<__VA_ARGS__>, A...>, int> = 0> \
  void method(const A&...) const {                                                                            \
    static_assert(::diffblocks::detail::always_false<A...>,                                                   \
                  "diffblocks: " #method " takes exactly the tensor types it declares (Tensor<T, N, D>: "     \
                  "the block's scalar type, rank and device); a tensor of another type or rank, or an "       \
                  "xtensor expression, is not converted silently: make the exact Tensor first");              \
  }
