#pragma once
// Convolutions on the CPU: the algorithm setting and the entry points, which run the copy of
// the kernels (kernels/conv.inl, kernels/winograd.inl) for the instruction set in use. The
// entry points without a device read the context in effect and prepare the weight for the call;
// the device ones with a PreparedSlot (what Conv2d and ConvTranspose2d hold) follow their
// device's settings and use the block's own prepared form.
#include <atomic>
#include <memory>

#include "diffblocks/core/device.hpp"
#include "diffblocks/ops/cpu/half_convert.hpp"
#include "diffblocks/ops/cpu/kernels.hpp"
#include "diffblocks/ops/cpu/prepared.hpp"
#include "diffblocks/ops/cpu/weight_cache.hpp"  // deprecated shims, for old callers

namespace diffblocks {
namespace ops {
namespace cpu {

/// Sets the conv algorithm of the process default context (what `Cpu{}` means outside a model);
/// a device made with `Cpu(CpuOptions{...})` keeps its own (`context().set_conv_algorithm`).
inline void set_conv_algorithm(ConvAlgorithm a) { default_cpu_context()->set_conv_algorithm(a); }
/// The conv algorithm of the context in effect (outside any model: the process default's).
inline ConvAlgorithm conv_algorithm() { return current_cpu_context().conv_algorithm(); }

inline bool use_winograd(ConvAlgorithm a, int Cin, int Cout, int KH, int KW, int stride, int padding) {
  return a == ConvAlgorithm::Auto && KH == 3 && KW == 3 && stride == 1 && padding == 1 && Cin >= 8 && Cout >= 8;
}
inline bool use_winograd(int Cin, int Cout, int KH, int KW, int stride, int padding) {
  return use_winograd(conv_algorithm(), Cin, Cout, KH, KW, stride, padding);
}

namespace detail {
template <class T>
std::ptrdiff_t prepared_conv2d_size(int Cout, int Cin, int KH, int KW, bool winograd) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(prepared_conv2d_size<T>(Cout, Cin, KH, KW, winograd));
}
template <class T>
void prepare_conv2d_into(const T* w, int Cout, int Cin, int KH, int KW, bool winograd, T* p) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(prepare_conv2d_into<T>(w, Cout, Cin, KH, KW, winograd, p));
}
template <class T>
std::ptrdiff_t winograd_taps_size(int Cout, int Cin) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(winograd::taps_size<T>(Cout, Cin));
}
template <class T>
void pack_winograd_taps(const T* w, int Cout, int Cin, T* taps) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(winograd::pack_taps_into<T>(w, Cout, Cin, taps));
}
/// The size of, and the maker of, the prepared form of kind `kind` of a conv2d weight.
template <class T>
std::ptrdiff_t conv2d_form_size(int kind, int Cout, int Cin, int KH, int KW) {
  return kind == kWinogradTaps ? winograd_taps_size<T>(Cout, Cin)
                               : prepared_conv2d_size<T>(Cout, Cin, KH, KW, kind == kWinogradKernels);
}
template <class T>
void make_conv2d_form(int kind, const T* w, int Cout, int Cin, int KH, int KW, T* p) {
  if (kind == kWinogradTaps)
    pack_winograd_taps(w, Cout, Cin, p);
  else
    prepare_conv2d_into(w, Cout, Cin, KH, KW, kind == kWinogradKernels, p);
}
template <class T>
std::ptrdiff_t prepared_conv_transpose2d_size(int Cin, int Cout, int KH, int KW, int s, int padding) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(prepared_conv_transpose2d_size<T>(Cin, Cout, KH, KW, s, padding));
}
template <class T>
void prepare_conv_transpose2d_into(const T* w, int Cin, int Cout, int KH, int KW, int s, int padding, T* p) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(prepare_conv_transpose2d_into<T>(w, Cin, Cout, KH, KW, s, padding, p));
}

/// The prepared form for `key` (`n` values, written by fill(T*)): the slot's (made there once
/// when missing: WeightPreparation::Keep and Auto), or made for this call only in scratch from
/// the caching allocator (no slot: a raw op call; or WeightPreparation::PerCall). Counted in the
/// context's weight_preparations when made.
template <class T, class Fill>
PreparedUse<T> prepared_form(CpuContext& c, PreparedSlot<T>* slot, PreparedKey key, std::ptrdiff_t n, Fill&& fill) {
  PreparedUse<T> use;
  if (!slot || !keeps_prepared(c.weight_preparation())) {
    if (slot) slot->reset();
    ++c.counters().weight_preparations;
    use.own.resize(static_cast<std::size_t>(n));
    fill(use.own.data());
    return use;
  }
  bool made = false;
  use.kept = slot->get(
      key,
      [&] {
        memory::WeightBuffer<T> b(static_cast<std::size_t>(n));
        fill(b.data());
        return b;
      },
      &made);
  if (made) ++c.counters().weight_preparations;
  return use;
}
}  // namespace detail

/// The key of a Conv2d weight's prepared form on context c: Winograd planes (or, under
/// WeightPreparation::Auto, for kWinogradTapsFrom bytes of planes and more, the taps they are
/// made from at each call) or packed panels.
template <class T = float>
PreparedKey conv2d_key(const CpuContext& c, int Cin, int Cout, int KH, int KW, int stride, int padding) {
  if (!use_winograd(c.conv_algorithm(), Cin, Cout, KH, KW, stride, padding)) return PreparedKey{isa(), kPackedConv};
  const bool taps = c.weight_preparation() == WeightPreparation::Auto &&
                    std::size_t{36} * static_cast<std::size_t>(Cout) * static_cast<std::size_t>(Cin) * sizeof(T) >=
                        kWinogradTapsFrom;
  return PreparedKey{isa(), taps ? kWinogradTaps : kWinogradKernels};
}

namespace detail {
/// A tensor's values as T: the tensor itself when it stores T; for a half tensor a float32 copy,
/// made at once or (kLazy) at the first data() call.
template <class T, class S, std::size_t N>
class StoredAs {
 public:
  enum Lazy { kLazy };
  explicit StoredAs(const Tensor<S, N, Cpu>& x) : x_(x) { data(); }
  StoredAs(const Tensor<S, N, Cpu>& x, Lazy) : x_(x) {}
  const T* data() {
    if constexpr (std::is_same<S, T>::value) {
      return x_.data();
    } else {
      if (!wide_.size() && x_.size()) wide_ = half_convert::widened(x_);
      return wide_.data();
    }
  }

 private:
  const Tensor<S, N, Cpu>& x_;
  Tensor<T, N, Cpu> wide_;
};

// The convolutions on context c with the weight's prepared form from `slot`, or made for this
// call when slot is null. A raw op call (no block, so no slot) prepares its weights every time:
// no library code loops over raw calls, and a per-call preparation always sees the weights as
// they are (the process-wide content-hashed cache that served such calls is gone).
//
// A tensor stored in a half type S computes in float32 (T = compute_t<S>), with the float32
// prepared form: the weight is widened only when a form is made, never when the slot holds one;
// the kernels read x and write the result in S themselves (the Winograd transforms and the patch
// gathering widen, each result is rounded once as it is stored: no float32 copy of either, the
// memory a half model saves).
template <class S>
Tensor<S, 4, Cpu> conv2d_on(CpuContext& c, const Tensor<S, 4, Cpu>& x, const Tensor<S, 4, Cpu>& w,
                            const Tensor<S, 1, Cpu>& bias, int stride, int padding, PreparedSlot<compute_t<S>>* slot) {
  using T = compute_t<S>;
  const int Cout = static_cast<int>(w.shape(0)), Cin = static_cast<int>(w.shape(1));
  const int KH = static_cast<int>(w.shape(2)), KW = static_cast<int>(w.shape(3));
  const PreparedKey key = conv2d_key<T>(c, static_cast<int>(x.shape(1)), Cout, KH, KW, stride, padding);
  const bool winograd = key.kind == kWinogradKernels || key.kind == kWinogradTaps;
  ++(winograd ? c.counters().winograd_convs : c.counters().im2col_convs);
  StoredAs<T, S, 1> b(bias);
  StoredAs<T, S, 4> wv(w, StoredAs<T, S, 4>::kLazy);
  const T* const bp = bias.size() ? b.data() : nullptr;
  auto run = [&](const T* wp, const T* form, bool taps) -> Tensor<S, 4, Cpu> {
    DIFFBLOCKS_CPU_RETURN_KERNEL(conv2d_shaped<T>(x, Cout, KH, KW, wp, bp, stride, padding, winograd, form, taps));
  };
  if (winograd && (!slot || !keeps_prepared(c.weight_preparation()))) {
    // Made by the kernel for this call (winograd::conv3x3), a row of points at a time where it can.
    if (slot) slot->reset();
    ++c.counters().weight_preparations;
    return run(wv.data(), nullptr, false);
  }
  const auto form = prepared_form(c, slot, key, conv2d_form_size<T>(key.kind, Cout, Cin, KH, KW),
                                  [&](T* p) { make_conv2d_form(key.kind, wv.data(), Cout, Cin, KH, KW, p); });
  return run(nullptr, form.data(), key.kind == kWinogradTaps);
}
// A half out (and x) goes in chunks of pixels, shared out over the threads: each chunk of x and
// of out is widened into the thread's scratch (about 1 MB), the GEMM accumulates into it in
// float32 and it is rounded once on the way back, so no float32 copy of either tensor is made.
template <class S>
void conv1x1_add_on(CpuContext& c, const Tensor<S, 4, Cpu>& x, const Tensor<S, 4, Cpu>& w,
                    const Tensor<S, 1, Cpu>& bias, Tensor<S, 4, Cpu>& out, PreparedSlot<compute_t<S>>* slot) {
  using T = compute_t<S>;
  const int Cout = static_cast<int>(w.shape(0)), Cin = static_cast<int>(w.shape(1));
  ++c.counters().im2col_convs;
  StoredAs<T, S, 4> wv(w, StoredAs<T, S, 4>::kLazy);
  const auto form = prepared_form(c, slot, PreparedKey{isa(), kPackedConv}, prepared_conv2d_size<T>(Cout, Cin, 1, 1, false),
                                  [&](T* p) { prepare_conv2d_into(wv.data(), Cout, Cin, 1, 1, false, p); });
  if constexpr (std::is_same<S, T>::value) {
    DIFFBLOCKS_CPU_RETURN_KERNEL(conv1x1_add_<T>(x, w, bias, out, form.data()));
  } else {
    StoredAs<T, S, 1> b(bias);
    const T* const bp = bias.size() ? b.data() : nullptr;
    const std::ptrdiff_t B = static_cast<std::ptrdiff_t>(x.shape(0));
    const std::ptrdiff_t HW = static_cast<std::ptrdiff_t>(x.shape(2) * x.shape(3));
    if (B == 0 || HW == 0 || Cout == 0) return;
    const std::ptrdiff_t n_max = std::clamp<std::ptrdiff_t>((std::ptrdiff_t{1} << 18) / std::max(1, std::max(Cin, Cout)), 64, HW);
    const std::ptrdiff_t per_item = (HW + n_max - 1) / n_max;
    parallel_for(B * per_item, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
      memory::Buffer<T> xc(static_cast<std::size_t>(Cin * n_max)), yc(static_cast<std::size_t>(Cout * n_max));
      for (std::ptrdiff_t job = first; job < last; ++job) {
        const std::ptrdiff_t bi = job / per_item, p0 = (job % per_item) * n_max, n = std::min(n_max, HW - p0);
        for (int ci = 0; ci < Cin; ++ci) half_convert::widen_range(x.data() + (bi * Cin + ci) * HW + p0, xc.data() + ci * n, n);
        for (int co = 0; co < Cout; ++co) half_convert::widen_range(out.data() + (bi * Cout + co) * HW + p0, yc.data() + co * n, n);
        [&] {
          DIFFBLOCKS_CPU_RETURN_KERNEL(
              conv1x1_accumulate<T>(xc.data(), Cin, static_cast<int>(n), form.data(), Cout, bp, yc.data()));
        }();
        for (int co = 0; co < Cout; ++co) half_convert::narrow_range(yc.data() + co * n, out.data() + (bi * Cout + co) * HW + p0, n);
      }
    });
  }
}
// As conv2d_on: a half x is widened as it is gathered and the result rounded once as it is
// stored; the prepared form is float32, the weight widened only when it is made.
template <class S>
Tensor<S, 4, Cpu> conv_transpose2d_on(CpuContext& c, const Tensor<S, 4, Cpu>& x, const Tensor<S, 4, Cpu>& w,
                                      const Tensor<S, 1, Cpu>& bias, int stride, int padding,
                                      PreparedSlot<compute_t<S>>* slot) {
  using T = compute_t<S>;
  const int Cin = static_cast<int>(w.shape(0)), Cout = static_cast<int>(w.shape(1));
  const int KH = static_cast<int>(w.shape(2)), KW = static_cast<int>(w.shape(3));
  StoredAs<T, S, 4> wv(w, StoredAs<T, S, 4>::kLazy);
  StoredAs<T, S, 1> b(bias);
  const auto form = prepared_form(c, slot, PreparedKey{isa(), kPackedConvTranspose},
                                  prepared_conv_transpose2d_size<T>(Cin, Cout, KH, KW, stride, padding), [&](T* p) {
                                    prepare_conv_transpose2d_into(wv.data(), Cin, Cout, KH, KW, stride, padding, p);
                                  });
  const T* const bp = bias.size() ? b.data() : nullptr;
  DIFFBLOCKS_CPU_RETURN_KERNEL(conv_transpose2d<T>(x, Cout, KH, KW, bp, stride, padding, form.data()));
}
}  // namespace detail

/// Conv2d (cross-correlation, zero padding). x (B,Cin,H,W), w (Cout,Cin,k,k), bias (Cout) or empty.
/// On the context in effect; the weight is prepared for this call only (see conv2d_on).
template <class T>
Tensor<T, 4, Cpu> conv2d(const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias,
                         int stride, int padding) {
  return detail::conv2d_on(current_cpu_context(), x, w, bias, stride, padding, static_cast<PreparedSlot<T>*>(nullptr));
}

/// out += Conv2d(x) for a 1x1 stride-1 convolution, accumulated by the GEMM itself (no temporary,
/// no separate add pass); out (B, Cout, H, W). ResnetBlock's res_conv residual.
template <class T>
void conv1x1_add_(const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias,
                  Tensor<T, 4, Cpu>& out) {
  detail::conv1x1_add_on(current_cpu_context(), x, w, bias, out, static_cast<PreparedSlot<T>*>(nullptr));
}

/// ConvTranspose2d (no output_padding, dilation 1). x (B,Cin,H,W), w (Cin,Cout,k,k) as in PyTorch.
/// Output (H-1)*s - 2p + k.
template <class T>
Tensor<T, 4, Cpu> conv_transpose2d(const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w,
                                   const Tensor<T, 1, Cpu>& bias, int stride, int padding) {
  return detail::conv_transpose2d_on(current_cpu_context(), x, w, bias, stride, padding,
                                     static_cast<PreparedSlot<T>*>(nullptr));
}

/// Makes the prepared form of a Conv2d weight in `slot` now, as the first conv2d on `d` would.
template <class T>
void prepare_conv2d(const Cpu& d, const Tensor<T, 4, Cpu>& w, int stride, int padding, PreparedSlot<T>& slot) {
  const DeviceScope<Cpu> on(d);
  CpuContext& c = d.context();
  if (!keeps_prepared(c.weight_preparation())) return;
  const int Cout = static_cast<int>(w.shape(0)), Cin = static_cast<int>(w.shape(1));
  const int KH = static_cast<int>(w.shape(2)), KW = static_cast<int>(w.shape(3));
  const PreparedKey key = conv2d_key<T>(c, Cin, Cout, KH, KW, stride, padding);
  detail::prepared_form(c, &slot, key, detail::conv2d_form_size<T>(key.kind, Cout, Cin, KH, KW),
                        [&](T* p) { detail::make_conv2d_form(key.kind, w.data(), Cout, Cin, KH, KW, p); });
}

/// Conv2d with the weight's prepared form kept in `slot` (made at the first call, or when the
/// algorithm or instruction set changed). Later edits of w are not seen until slot.reset().
template <class T>
Tensor<T, 4, Cpu> conv2d(const Cpu& d, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w,
                         const Tensor<T, 1, Cpu>& bias, int stride, int padding, PreparedSlot<T>& slot) {
  const DeviceScope<Cpu> on(d);
  return detail::conv2d_on(d.context(), x, w, bias, stride, padding, &slot);
}

/// conv1x1_add_ with the packed weight kept in `slot` (see conv2d above).
template <class T>
void conv1x1_add_(const Cpu& d, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias,
                  Tensor<T, 4, Cpu>& out, PreparedSlot<T>& slot) {
  const DeviceScope<Cpu> on(d);
  detail::conv1x1_add_on(d.context(), x, w, bias, out, &slot);
}

/// ConvTranspose2d with the weight's prepared form (every phase packed) kept in `slot`.
template <class T>
Tensor<T, 4, Cpu> conv_transpose2d(const Cpu& d, const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w,
                                   const Tensor<T, 1, Cpu>& bias, int stride, int padding, PreparedSlot<T>& slot) {
  const DeviceScope<Cpu> on(d);
  return detail::conv_transpose2d_on(d.context(), x, w, bias, stride, padding, &slot);
}

}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks

namespace diffblocks {
namespace ops {
namespace cpu {
/// Makes the prepared form of a ConvTranspose2d weight in `slot` now.
template <class T>
void prepare_conv_transpose2d(const Cpu& d, const Tensor<T, 4, Cpu>& w, int stride, int padding,
                              PreparedSlot<T>& slot) {
  const DeviceScope<Cpu> on(d);
  CpuContext& c = d.context();
  if (!keeps_prepared(c.weight_preparation())) return;
  const int Cin = static_cast<int>(w.shape(0)), Cout = static_cast<int>(w.shape(1));
  const int KH = static_cast<int>(w.shape(2)), KW = static_cast<int>(w.shape(3));
  const std::ptrdiff_t n = detail::prepared_conv_transpose2d_size<T>(Cin, Cout, KH, KW, stride, padding);
  detail::prepared_form(c, &slot, PreparedKey{isa(), kPackedConvTranspose}, n, [&](T* p) {
    detail::prepare_conv_transpose2d_into(w.data(), Cin, Cout, KH, KW, stride, padding, p);
  });
}
}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
