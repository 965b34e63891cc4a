#pragma once
// The CPU's ops on half-precision tensors (db::bf16, db::f16) that have no half kernel yet:
// each widens its operands to float32, runs the float32 kernel and rounds the result once to
// the half type. That is the contract of the half types (core/half.hpp): storage in half,
// arithmetic, accumulation and statistics in float32, one rounding per stored result, which is
// also what PyTorch's autocast does around a convolution or a matrix product. It is the path on
// every x86-64 CPU; an instruction set with half arithmetic (AVX512-BF16, AMX) overrides the
// products with kernels that read the half operands directly.
//
// Fused ops (GroupNorm + Mish + mask, AdaGroupNorm's norm + SiLU, ...) widen once and round once,
// so they cost the half model no extra rounding against the same ops in float32.
//
// Element-wise and layout ops need nothing here: the generic ones (ops/generic/) compute each
// element in compute_t<T> = float and store it once (the CPU's SIMD overrides are float-only).
//
// Prepared weights: a half block's slot (PreparedWeights<bf16, Cpu>) holds the float32 prepared
// form the float32 kernels use (Winograd planes, packed panels), made from the widened weight
// once and kept like a float32 block's.
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "diffblocks/core/device.hpp"
#include "diffblocks/ops/cpu/attention.hpp"
#include "diffblocks/ops/cpu/attention_bf16.hpp"
#include "diffblocks/ops/cpu/gemm_half.hpp"
#include "diffblocks/ops/cpu/half_convert.hpp"
#include "diffblocks/ops/cpu/kernels.hpp"
#include "diffblocks/ops/cpu/linear.hpp"
#include "diffblocks/ops/cpu/ops.hpp"
#include "diffblocks/ops/cpu/sequence_ops.hpp"
#include "diffblocks/ops/generic/elementwise.hpp"
#include "diffblocks/ops/prepared.hpp"

namespace diffblocks {
namespace ops {

namespace half_detail {
using cpu::half_convert::narrow_range;
using cpu::half_convert::widen_range;
}  // namespace half_detail

/// float32 <-> bf16 / f16 on the CPU: the SIMD conversions (same bits as the generic op's
/// scalar rounding, core/half.hpp; tests/test_half.cpp checks every copy).
template <class To, class From, std::size_t N,
          std::enable_if_t<(is_half_v<To> && std::is_same<From, float>::value) ||
                               (is_half_v<From> && std::is_same<To, float>::value),
                           int> = 0>
Tensor<To, N, Cpu> cast(const Cpu& dev, const Tensor<From, N, Cpu>& x) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::cast<To>(dev, x));
  auto y = Tensor<To, N, Cpu>::from_shape(x.shape());
  if constexpr (is_half_v<To>)
    half_detail::narrow_range(x.data(), y.data(), static_cast<std::ptrdiff_t>(x.size()));
  else
    half_detail::widen_range(x.data(), y.data(), static_cast<std::ptrdiff_t>(x.size()));
  return y;
}

namespace half_detail {
template <class H, std::size_t N>
Tensor<float, N, Cpu> widen(const Tensor<H, N, Cpu>& x) {
  return ops::cast<float>(Cpu{}, x);
}
template <class H, std::size_t N>
Tensor<H, N, Cpu> narrow(const Tensor<float, N, Cpu>& x) {
  return ops::cast<H>(Cpu{}, x);
}
/// y (half) = x (float32), in place of y's values (same shape).
template <class H, std::size_t N>
void narrow_into(const Tensor<float, N, Cpu>& x, Tensor<H, N, Cpu>& y) {
  narrow_range(x.data(), y.data(), static_cast<std::ptrdiff_t>(x.size()));
}
}  // namespace half_detail

// ---- convolutions and linear layers ----------------------------------------------------------

// (cpu::detail::conv2d_on, conv_transpose2d_on: the kernels read and write the half tensors
// themselves; the weight is widened only when its float32 prepared form is made.)
template <class H, IfHalf<H> = 0>
Tensor<H, 4, Cpu> conv2d(Cpu dev, const Tensor<H, 4, Cpu>& x, const Tensor<H, 4, Cpu>& w, const Tensor<H, 1, Cpu>& bias,
                         int stride, int padding) {
  const DeviceScope<Cpu> on(dev);
  return cpu::detail::conv2d_on(dev.context(), x, w, bias, stride, padding, static_cast<cpu::PreparedSlot<float>*>(nullptr));
}
template <class H, IfHalf<H> = 0>
Tensor<H, 4, Cpu> conv2d(const Cpu& dev, const Tensor<H, 4, Cpu>& x, const Tensor<H, 4, Cpu>& w,
                         const Tensor<H, 1, Cpu>& bias, int stride, int padding, PreparedWeights<H, Cpu>& prepared) {
  const DeviceScope<Cpu> on(dev);
  return cpu::detail::conv2d_on(dev.context(), x, w, bias, stride, padding, &prepared);
}
template <class H, IfHalf<H> = 0>
Tensor<H, 4, Cpu> conv_transpose2d(Cpu dev, const Tensor<H, 4, Cpu>& x, const Tensor<H, 4, Cpu>& w,
                                   const Tensor<H, 1, Cpu>& bias, int stride, int padding) {
  const DeviceScope<Cpu> on(dev);
  return cpu::detail::conv_transpose2d_on(dev.context(), x, w, bias, stride, padding,
                                          static_cast<cpu::PreparedSlot<float>*>(nullptr));
}
template <class H, IfHalf<H> = 0>
Tensor<H, 4, Cpu> conv_transpose2d(const Cpu& dev, const Tensor<H, 4, Cpu>& x, const Tensor<H, 4, Cpu>& w,
                                   const Tensor<H, 1, Cpu>& bias, int stride, int padding,
                                   PreparedWeights<H, Cpu>& prepared) {
  const DeviceScope<Cpu> on(dev);
  return cpu::detail::conv_transpose2d_on(dev.context(), x, w, bias, stride, padding, &prepared);
}
/// out += conv2d(x): a 1x1 convolution's sum formed in float32 and rounded once (in chunks of
/// pixels: cpu::detail::conv1x1_add_on); others add the convolution's rounded result, as a half
/// model under autocast adds its convolution's output.
template <class H, IfHalf<H> = 0>
void conv2d_add_(Cpu dev, const Tensor<H, 4, Cpu>& x, const Tensor<H, 4, Cpu>& w, const Tensor<H, 1, Cpu>& bias,
                 int stride, int padding, Tensor<H, 4, Cpu>& out) {
  const DeviceScope<Cpu> on(dev);
  if (w.shape(2) == 1 && w.shape(3) == 1 && stride == 1 && padding == 0)
    return cpu::detail::conv1x1_add_on(dev.context(), x, w, bias, out, static_cast<cpu::PreparedSlot<float>*>(nullptr));
  ops::add_(dev, out, ops::conv2d(dev, x, w, bias, stride, padding));
}
template <class H, IfHalf<H> = 0>
void conv2d_add_(const Cpu& dev, const Tensor<H, 4, Cpu>& x, const Tensor<H, 4, Cpu>& w, const Tensor<H, 1, Cpu>& bias,
                 int stride, int padding, Tensor<H, 4, Cpu>& out, PreparedWeights<H, Cpu>& prepared) {
  const DeviceScope<Cpu> on(dev);
  if (w.shape(2) == 1 && w.shape(3) == 1 && stride == 1 && padding == 0)
    return cpu::detail::conv1x1_add_on(dev.context(), x, w, bias, out, &prepared);
  ops::add_(dev, out, ops::conv2d(dev, x, w, bias, stride, padding, prepared));
}
template <class H, IfHalf<H> = 0>
void prepare_conv2d(const Cpu& dev, const Tensor<H, 4, Cpu>& w, int stride, int padding,
                    PreparedWeights<H, Cpu>& prepared) {
  cpu::prepare_conv2d(dev, half_detail::widen(w), stride, padding, prepared);
}
template <class H, IfHalf<H> = 0>
void prepare_conv_transpose2d(const Cpu& dev, const Tensor<H, 4, Cpu>& w, int stride, int padding,
                              PreparedWeights<H, Cpu>& prepared) {
  cpu::prepare_conv_transpose2d(dev, half_detail::widen(w), stride, padding, prepared);
}

template <class H, std::size_t N, IfHalf<H> = 0>
Tensor<H, N, Cpu> linear(Cpu dev, const Tensor<H, N, Cpu>& x, const Tensor<H, 2, Cpu>& w, const Tensor<H, 1, Cpu>& bias) {
  const DeviceScope<Cpu> on(dev);
  using namespace half_detail;
  return narrow<H>(ops::linear(dev, widen(x), widen(w), widen(bias)));
}
namespace half_detail {
/// y = x W^T + b on the half GEMM (cpu/gemm_half.hpp, the path half_gemm_path<H>() names:
/// vdpbf16ps on an AVX512-BF16 CPU for bf16, else its copy's widening path): W^T packed once in
/// the path's layout and kept in `slot`, x read in place, blocks of rows accumulated in float32
/// by each thread, the bias added and the rows rounded once as they are stored. No float32 copy
/// of x, y or the weight is made.
template <class H>
cpu::PreparedUse<float> half_linear_form(CpuContext& c, const cpu::HalfGemmLayout& layout, const Tensor<H, 2, Cpu>& w,
                                         cpu::PreparedSlot<float>& slot) {
  const int out = static_cast<int>(w.shape(0)), in = static_cast<int>(w.shape(1));
  return cpu::detail::prepared_form(
      c, &slot, cpu::PreparedKey{cpu::isa(), cpu::kPackedHalfLinear},
      static_cast<std::ptrdiff_t>((layout.b_bytes(in, out) + sizeof(float) - 1) / sizeof(float)),
      [&](float* p) { cpu::pack_half_b_transposed(layout, in, out, w.data(), in, p); });
}
template <class H, std::size_t N>
Tensor<H, N, Cpu> linear_on_half_gemm(CpuContext& c, const Tensor<H, N, Cpu>& x, const Tensor<H, 2, Cpu>& w,
                                      const Tensor<H, 1, Cpu>& bias, cpu::PreparedSlot<float>& slot) {
  const int out = static_cast<int>(w.shape(0)), in = static_cast<int>(w.shape(1));
  const auto rows = static_cast<std::ptrdiff_t>(leading_rows(x.shape()));
  const cpu::HalfGemmLayout layout = cpu::half_gemm_layout<H>();
  const auto form = half_linear_form(c, layout, w, slot);
  auto shape = x.shape();
  shape[N - 1] = static_cast<std::size_t>(out);
  auto y = Tensor<H, N, Cpu>::from_shape(shape);
  const auto b = cpu::half_convert::widened(bias);
  constexpr std::ptrdiff_t kRows = 128;  // a block of rows per thread: W^T is read once per block
  parallel_for((rows + kRows - 1) / kRows, [&](std::ptrdiff_t j0, std::ptrdiff_t j1) {
    memory::Buffer<float> acc(static_cast<std::size_t>(kRows) * out);
    for (std::ptrdiff_t j = j0; j < j1; ++j) {
      const std::ptrdiff_t r0 = j * kRows, m = std::min(kRows, rows - r0);
      cpu::gemm_half_rows<H>(layout, static_cast<int>(m), out, in, x.data() + r0 * in, in, form.data(), acc.data(), out);
      if (b.size())
        for (std::ptrdiff_t r = 0; r < m; ++r)
          for (int o = 0; o < out; ++o) acc[static_cast<std::size_t>(r * out + o)] += b(o);
      narrow_range(acc.data(), y.data() + r0 * out, m * out);
    }
  });
  return y;
}
}  // namespace half_detail

/// On the half GEMM, whatever the number of rows (token-wise projections, and a time embedding's
/// MLP on one row per batch item), when the device keeps prepared weights: W^T's packed half form
/// is then made once, half the bytes of a float32 copy that each call would otherwise widen.
/// Without kept weights (WeightPreparation::PerCall) x and W are widened for the float32 kernel.
template <class H, std::size_t N, IfHalf<H> = 0>
Tensor<H, N, Cpu> linear(const Cpu& dev, const Tensor<H, N, Cpu>& x, const Tensor<H, 2, Cpu>& w,
                         const Tensor<H, 1, Cpu>& bias, PreparedWeights<H, Cpu>& prepared) {
  const DeviceScope<Cpu> on(dev);
  using namespace half_detail;
  if (leading_rows(x.shape()) > 0 && x.shape(N - 1) > 0 && w.shape(0) > 0 &&
      cpu::keeps_prepared(dev.context().weight_preparation()))
    return linear_on_half_gemm(dev.context(), x, w, bias, prepared);
  return narrow<H>(cpu::linear(dev, widen(x), widen(w), widen(bias), prepared));
}
template <class H, IfHalf<H> = 0>
void prepare_linear(const Cpu& dev, const Tensor<H, 2, Cpu>& w, PreparedWeights<H, Cpu>& prepared) {
  // The form a token-wise call uses (linear above): W^T in the half GEMM's layout.
  const DeviceScope<Cpu> on(dev);
  if (!cpu::keeps_prepared(dev.context().weight_preparation()) || w.size() == 0) return;
  half_detail::half_linear_form(dev.context(), cpu::half_gemm_layout<H>(), w, prepared);
}

// ---- normalisations and their fusions ----------------------------------------------------------

/// The kernel reads and writes the half tensors (each row normalised in float32 and rounded once).
template <class H, IfHalf<H> = 0>
Tensor<H, 4, Cpu> group_norm(Cpu dev, const Tensor<H, 4, Cpu>& x, int groups, const Tensor<H, 1, Cpu>& gamma,
                             const Tensor<H, 1, Cpu>& beta, double eps) {
  const DeviceScope<Cpu> on(dev);
  using cpu::half_convert::widened;
  DIFFBLOCKS_CPU_RETURN_KERNEL(group_norm<H>(x, groups, widened(gamma), widened(beta), eps));
}
template <class H, std::size_t N, IfHalf<H> = 0>
Tensor<H, N, Cpu> layer_norm(Cpu dev, const Tensor<H, N, Cpu>& x, const Tensor<H, 1, Cpu>& gamma,
                             const Tensor<H, 1, Cpu>& beta, double eps) {
  const DeviceScope<Cpu> on(dev);
  using cpu::half_convert::widened;
  DIFFBLOCKS_CPU_RETURN_KERNEL(layer_norm<H, N>(x, widened(gamma), widened(beta), eps));  // rows widened in scratch
}

// ---- activations ------------------------------------------------------------------------------
// Mish / SiLU / GELU take half tensors in ops.hpp / sequence_ops.hpp themselves (the kernels run
// the float32 range functions on widened runs: kernels/activation.inl). GEGLU halves the last
// dimension, so it runs the float32 kernel between one widening and one rounding.

template <class H, std::size_t N, IfHalf<H> = 0>
Tensor<H, N, Cpu> geglu(const Cpu& dev, const Tensor<H, N, Cpu>& x) {
  DIFFBLOCKS_CPU_FAST_PATH(dev, generic::geglu(dev, x));
  DIFFBLOCKS_CPU_RETURN_KERNEL(geglu<H, N>(x));  // reads and writes H (kernels/activation.inl)
}

// ---- attention ---------------------------------------------------------------------------------

template <class H, IfHalf<H> = 0>
Tensor<H, 4, Cpu> linear_attention(Cpu dev, const Tensor<H, 4, Cpu>& qkv, int heads, int dim_head) {
  const DeviceScope<Cpu> on(dev);
  using namespace half_detail;
  return narrow<H>(ops::linear_attention(dev, widen(qkv), heads, dim_head));
}
/// The whole block in float32 from the half input and weights: its inner products (q, k, v,
/// the softmax and the context) never round to half, as in autocast only the block's output does.
/// The kernel reads x and writes the result in the half type (widening chunks of x as it goes).
template <class H, IfHalf<H> = 0>
Tensor<H, 4, Cpu> linear_attention_block(Cpu dev, const Tensor<H, 4, Cpu>& x, const Tensor<H, 4, Cpu>& w_qkv,
                                         const Tensor<H, 4, Cpu>& w_out, const Tensor<H, 1, Cpu>& b_out, int heads,
                                         int dim_head) {
  const DeviceScope<Cpu> on(dev);
  using cpu::half_convert::widened;
  DIFFBLOCKS_CPU_RETURN_KERNEL(
      linear_attention_block<H>(x, widened(w_qkv), widened(w_out), widened(b_out), heads, dim_head));
}

template <class H, IfHalf<H> = 0>
Tensor<H, 3, Cpu> attention_naive(Cpu dev, const Tensor<H, 3, Cpu>& q, const Tensor<H, 3, Cpu>& k,
                                  const Tensor<H, 3, Cpu>& v, int heads, float scale, const Tensor<H, 2, Cpu>& bias) {
  const DeviceScope<Cpu> on(dev);
  using namespace half_detail;
  return narrow<H>(ops::attention_naive(dev, widen(q), widen(k), widen(v), heads, scale, widen(bias)));
}
template <class H, IfHalf<H> = 0>
Tensor<H, 3, Cpu> attention_streaming(Cpu dev, const Tensor<H, 3, Cpu>& q, const Tensor<H, 3, Cpu>& k,
                                      const Tensor<H, 3, Cpu>& v, int heads, float scale, const Tensor<H, 2, Cpu>& bias) {
  const DeviceScope<Cpu> on(dev);
  if constexpr (std::is_same<H, bf16>::value)
    if (cpu::bf16_attention_native()) return cpu::attention_streaming_bf16(q, k, v, heads, scale, bias);
  // The float32 kernel reading and writing H (widened as packed, rounded as stored).
  DIFFBLOCKS_CPU_RETURN_KERNEL(attention_streaming<H>(q, k, v, heads, scale, bias));
}
/// Softmax attention by the device's algorithm setting; the scores, the softmax and the
/// weighted sum in float32, the output rounded once. bf16 where the vdpbf16ps kernel runs
/// (cpu::bf16_attention_native): that kernel for Auto and Streaming, whatever the key count (it
/// pads keys to 16, not 64, so short style sequences waste little); the weights of the value
/// product are rounded to bf16 there, as in PyTorch's bf16 attention (attention_bf16.inl).
template <class H, IfHalf<H> = 0>
Tensor<H, 3, Cpu> attention(Cpu dev, const Tensor<H, 3, Cpu>& q, const Tensor<H, 3, Cpu>& k, const Tensor<H, 3, Cpu>& v,
                            int heads, float scale, const Tensor<H, 2, Cpu>& bias) {
  const DeviceScope<Cpu> on(dev);
  CpuContext& c = dev.context();
  const AttentionAlgorithm a = c.attention_algorithm();
  if constexpr (std::is_same<H, bf16>::value) {
    if (a != AttentionAlgorithm::Naive && cpu::bf16_attention_native()) {
      ++c.counters().streaming_attention;
      return cpu::attention_streaming_bf16(q, k, v, heads, scale, bias);
    }
  }
  // Otherwise the float32 variants' choice (cpu/attention.hpp): the streaming kernel reads and
  // writes H itself; the naive one (short key sequences) runs on the operands widened.
  if (attention_streams(a, k.shape(1))) {
    ++c.counters().streaming_attention;
    DIFFBLOCKS_CPU_RETURN_KERNEL(attention_streaming<H>(q, k, v, heads, scale, bias));
  }
  using namespace half_detail;
  return narrow<H>(ops::attention(dev, widen(q), widen(k), widen(v), heads, scale, widen(bias)));
}

}  // namespace ops
}  // namespace diffblocks
