#pragma once
// Element-wise ops written once for every device: each is a functor over one element (or one
// (row, column)) applied by the device's for_each primitive (ops/map.hpp). These are the
// reference implementations: a device inherits them and overrides the ones it does faster (the
// CPU's SIMD kernels, ops/cpu/ops.hpp; the op registry checks both against tests/ops/reference.hpp
// and, under CpuOptions::reference_ops, runs these on the CPU too).
//
// Adding an element-wise op: a functor and a short op here (or beside the block that needs it,
// like add_div_ in blocks/resnet_block2d.hpp), and one case in tests/ops/op_cases.hpp: every
// device runs it, the tests check it on each, the benchmarks time it.
#include <cstddef>
#include <type_traits>

#include "diffblocks/ops/generic/tensor_traits.hpp"
#include "diffblocks/ops/map.hpp"

namespace diffblocks {
namespace ops {

/// The scalar activations (torch's definitions, float32 order of operations).
namespace fn {
/// Mish x tanh(softplus x): with n = e^x (e^x + 2), tanh(log(1 + e^x)) = n / (n + 2); above 20
/// torch's softplus returns x and tanh is 1 in float32, so mish(x) = x there.
struct Mish {
  template <class T>
  DIFFBLOCKS_HD T operator()(T x) const {
    if (x > T(20)) return x;
    const T e = fmath::exp(x), n = e * (e + T(2));
    return x * n / (n + T(2));
  }
};
struct Silu {
  template <class T>
  DIFFBLOCKS_HD T operator()(T x) const {
    return x / (T(1) + fmath::exp(-x));
  }
};
/// Exact GELU 0.5 x (1 + erf(x / sqrt 2)).
struct Gelu {
  template <class T>
  DIFFBLOCKS_HD T operator()(T x) const {
    return T(0.5) * x * (T(1) + fmath::erf(x * T(0.70710678118654752440)));
  }
};
}  // namespace fn

namespace generic {
namespace kernel {
// The functors of the ops below (at namespace scope: CUDA kernels cannot take local types).
template <class T>
struct Fill {
  T* p;
  T v;
  DIFFBLOCKS_HD void operator()(std::size_t i) const { p[i] = v; }
};

template <class T>
struct Geglu {
  const T* s;
  T* o;
  std::size_t H;
  DIFFBLOCKS_HD void operator()(std::size_t r, std::size_t j) const {
    using C = compute_t<T>;
    o[r * H + j] = T(C(s[r * 2 * H + j]) * fn::Gelu{}(C(s[r * 2 * H + H + j])));
  }
};

template <class T>
struct Add {
  T* a;
  const T* b;
  DIFFBLOCKS_HD void operator()(std::size_t i) const { a[i] += b[i]; }
};

template <class T>
struct Affine {
  T* p;
  compute_t<T> a, b;
  DIFFBLOCKS_HD void operator()(std::size_t i) const { p[i] = p[i] * a + b; }
};

template <class T>
struct Mul {
  T* p;
  compute_t<T> s;
  DIFFBLOCKS_HD void operator()(std::size_t i) const { p[i] *= s; }
};

template <class T>
struct Scale {
  T* p;
  const T* g;
  DIFFBLOCKS_HD void operator()(std::size_t i) const { p[i] *= g[0]; }
};

template <class T>
struct Div {
  const T* s;
  T* o;
  compute_t<T> v;
  DIFFBLOCKS_HD void operator()(std::size_t i) const { o[i] = s[i] / v; }
};

template <class T>
struct AddBias {
  T* p;
  const T* bias;
  std::size_t HW;
  DIFFBLOCKS_HD void operator()(std::size_t bc, std::size_t j) const { p[bc * HW + j] += bias[bc]; }
};

template <class T>
struct ScaleShift {
  T* p;
  const T* ss;
  std::size_t C, HW;
  DIFFBLOCKS_HD void operator()(std::size_t bc, std::size_t j) const {
    const std::size_t b = bc / C, c = bc % C;
    using A = compute_t<T>;
    p[bc * HW + j] = T(A(p[bc * HW + j]) * (A(1) + A(ss[b * 2 * C + c])) + A(ss[b * 2 * C + C + c]));
  }
};
}  // namespace kernel

/// p[i] = f(p[i]), computed in compute_t<T> (float for the half types: one rounding).
template <class T, class F>
struct Apply {
  T* p;
  F f;
  DIFFBLOCKS_HD void operator()(std::size_t i) const { p[i] = T(f(static_cast<compute_t<T>>(p[i]))); }
};

/// o[i] = To(s[i]): a conversion between scalar types (round to nearest even into a half type).
template <class From, class To>
struct Cast {
  const From* s;
  To* o;
  DIFFBLOCKS_HD void operator()(std::size_t i) const { o[i] = To(static_cast<compute_t<From>>(s[i])); }
};

/// x = f(x) element by element, f a DIFFBLOCKS_HD functor (fn::Mish, ...).
template <class D, class X, class F, OnDevice<D, X> = 0>
void map_(const D& d, X& x, F f) {
  for_each_index(d, x.size(), Apply<typename X::value_type, F>{x.data(), f});
}

template <class T, std::size_t N, class D>
Tensor<T, N, D> full(const D& d, const std::array<std::size_t, N>& shape, T value) {
  auto y = Tensor<T, N, D>::from_shape(shape);
  for_each_index(d, y.size(), kernel::Fill<T>{y.data(), value});
  return y;
}

template <class D, class X, OnDevice<D, X> = 0>
void mish_(const D& d, X& x) {
  map_(d, x, fn::Mish{});
}
template <class D, class X, OnDevice<D, X> = 0>
void silu_(const D& d, X& x) {
  map_(d, x, fn::Silu{});
}
template <class D, class X, OnDevice<D, X> = 0>
void gelu_(const D& d, X& x) {
  map_(d, x, fn::Gelu{});
}

/// GEGLU: x (..., 2D) -> (..., D) = a * GELU(gate), a = first half, gate = second half.
template <class D, class X, OnDevice<D, X> = 0>
X geglu(const D& d, const X& x) {
  using T = typename X::value_type;
  const std::size_t R = leading_rows(x.shape()), H = x.shape(rank_of<X>() - 1) / 2;
  auto y = X::from_shape(with_last(x.shape(), H));
  for_each_row(d, R, H, kernel::Geglu<T>{x.data(), y.data(), H});
  return y;
}

/// a += b (same shape).
template <class D, class X, OnDevice<D, X> = 0>
void add_(const D& d, X& a, const X& b) {
  using T = typename X::value_type;
  for_each_index(d, a.size(), kernel::Add<T>{a.data(), b.data()});
}

/// x = x * a + b.
template <class D, class X, OnDevice<D, X> = 0>
void affine_(const D& d, X& x, compute_t<typename X::value_type> a, compute_t<typename X::value_type> b) {
  using T = typename X::value_type;
  for_each_index(d, x.size(), kernel::Affine<T>{x.data(), a, b});
}

/// x *= s.
template <class D, class X, OnDevice<D, X> = 0>
void mul_scalar_(const D& d, X& x, compute_t<typename X::value_type> s) {
  using T = typename X::value_type;
  for_each_index(d, x.size(), kernel::Mul<T>{x.data(), s});
}

/// x *= g[0], g a one-element tensor on the device (a learned scalar such as Rezero's g; read
/// where it lives, no synchronisation).
template <class D, class X, class G, OnDevice<D, X> = 0>
void scale_(const D& d, X& x, const G& g) {
  using T = typename X::value_type;
  for_each_index(d, x.size(), kernel::Scale<T>{x.data(), g.data()});
}

/// x / d (a division, as torch: not a multiplication by the reciprocal).
template <class D, class X, OnDevice<D, X> = 0>
X divide(const D& d, const X& x, compute_t<typename X::value_type> v) {
  using T = typename X::value_type;
  auto y = X::from_shape(x.shape());
  for_each_index(d, x.size(), kernel::Div<T>{x.data(), y.data(), v});
  return y;
}

/// o[r, w] = s[r, w] * mask[r / rows_per_mask, w]: a frame mask over rows of W values (NCHW:
/// rows_per_mask = C H; (B, F, T): F).
template <class T>
struct FrameMask {
  const T* s;
  T* o;
  const T* m;
  std::size_t rows_per_mask, W;
  DIFFBLOCKS_HD void operator()(std::size_t r, std::size_t w) const { o[r * W + w] = s[r * W + w] * m[(r / rows_per_mask) * W + w]; }
};

/// x[b, c, h, w] *= mask[b, 0, 0, w].
template <class D, class X, OnDevice<D, X> = 0>
void mul_mask_(const D& d, X& x, const X& mask) {
  const std::size_t CH = x.shape(1) * x.shape(2), W = x.shape(3);
  for_each_row(d, x.shape(0) * CH, W, FrameMask<typename X::value_type>{x.data(), x.data(), mask.data(), CH, W});
}

/// y = x * mask[b, 0, 0, w] as a new tensor.
template <class D, class X, OnDevice<D, X> = 0>
X masked_copy(const D& d, const X& x, const X& mask) {
  auto y = X::from_shape(x.shape());
  const std::size_t CH = x.shape(1) * x.shape(2), W = x.shape(3);
  for_each_row(d, x.shape(0) * CH, W, FrameMask<typename X::value_type>{x.data(), y.data(), mask.data(), CH, W});
  return y;
}

/// x[b, f, t] *= mask[b, 0, t] for (B, F, T) tensors.
template <class D, class X, OnDevice<D, X> = 0>
void mul_mask3_(const D& d, X& x, const X& mask) {
  const std::size_t F = x.shape(1), W = x.shape(2);
  for_each_row(d, x.shape(0) * F, W, FrameMask<typename X::value_type>{x.data(), x.data(), mask.data(), F, W});
}

/// x[b, c, :, :] += bias[b, c].
template <class D, class X, class Bias, OnDevice<D, X> = 0>
void add_channel_bias_(const D& d, X& x, const Bias& bias) {
  using T = typename X::value_type;
  const std::size_t HW = x.shape(2) * x.shape(3);
  for_each_row(d, x.shape(0) * x.shape(1), HW, kernel::AddBias<T>{x.data(), bias.data(), HW});
}

/// x = x * (1 + ss[b, c]) + ss[b, C + c] (AdaGroupNorm's scale and shift; ss (B, 2C)).
template <class D, class X, class SS, OnDevice<D, X> = 0>
void scale_shift_(const D& d, X& x, const SS& ss) {
  using T = typename X::value_type;
  const std::size_t HW = x.shape(2) * x.shape(3);
  for_each_row(d, x.shape(0) * x.shape(1), HW, kernel::ScaleShift<T>{x.data(), ss.data(), x.shape(1), HW});
}

/// x converted to scalar type To (same device and shape).
template <class To, class D, class X, OnDevice<D, X> = 0>
auto cast(const D& d, const X& x) {
  using From = typename X::value_type;
  auto y = Tensor<To, rank_of<X>(), D>::from_shape(x.shape());
  for_each_index(d, x.size(), Cast<From, To>{x.data(), y.data()});
  return y;
}

}  // namespace generic

using generic::add_;
using generic::cast;
using generic::add_channel_bias_;
using generic::affine_;
using generic::divide;
using generic::full;
using generic::geglu;
using generic::gelu_;
using generic::map_;
using generic::masked_copy;
using generic::mish_;
using generic::mul_mask3_;
using generic::mul_mask_;
using generic::mul_scalar_;
using generic::scale_;
using generic::scale_shift_;
using generic::silu_;

}  // namespace ops
}  // namespace diffblocks
