#pragma once
// The op registry, one table for every device (ggml's test-backend-ops; llm.c's "validate every
// kernel variant against the simple reference, then time it"). op_cases<D>(size) lists every op
// at the shapes that matter; a case makes its inputs on demand (host tensors with a fixed seed,
// copied to D once) and has three closures:
//   reference()  the plain implementation of reference.hpp on the host inputs (double loops;
//                for the two sinusoidal embeddings, whose definition is a float32 order of
//                operations, the CPU op itself: `cpu_reference`, checked on other devices only);
//   run()        D's op, result brought to the host (shape and values);
//   launch()     D's op alone, result left on D (the benchmarks time this; an in-place op
//                changes its target again and again, reset() puts the inputs back);
//   both are exec(bool), one instantiation of the op per case.
// Who uses it:
//   check.hpp           test mode: every case's reference against D's op under every variant of
//                       D (variants.hpp: the CPU's algorithm settings and thread counts, the
//                       Cuda device's convolution backends and math modes, ...) that can change
//                       the case's result (its `paths`);
//   tests/parity/ops.hpp the Catch2 case that runs check.hpp, instantiated by the CPU test binary
//                       (test_diffuser.cpp) and the CUDA test TU (tests/cuda/test_cuda.cu);
//   benchmarks/bench_ops.cpp, bench_cuda.cu  perf mode: every case x variant timed, with the
//                       case's compulsory bytes and FLOPs as GB/s and GFLOP/s counters.
// Two sizes:
//   Size::Test  small, odd shapes that take every path of every device: tails of SIMD vectors,
//               tiles and GEMM blocks, both sides of the thresholds that pick a kernel (Winograd:
//               3x3 stride 1 pad 1 with >= 8 channels in and out; linear's packed path from
//               kLinearPackFrom rows; serial element-wise below 2^14 / 2^15 values; CPU attention
//               streams from 512 keys, CUDA's Auto picks tiled <= 64 or > 6144 keys), padded
//               masks, strides, reductions over several chunks;
//   Size::Perf  an Origin forward at T = 512 (level 0 (80, 512) at 64 channels for the
//               element-wise ops, all three levels for the convolutions) and the TTS Diffuser's
//               token counts and widths, at batch perf_batch<D>() (CPU 1, other devices 16).
//
// Adding an op: one `add(...)` below (name, shapes, bytes/FLOPs, paths, a reference from
// reference.hpp or written inline, and the op called as `ops::name(d, ...)`); the CPU and
// CUDA tests and both benchmarks pick it up.
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "diffblocks/diffblocks.hpp"
#include "reference.hpp"
#include "tensor_gen.hpp"

namespace dbops {

namespace db = diffblocks;
using db::Cpu;
using ref::Result;

/// What may change an op's result: a variant (variants.hpp) is run on the cases whose paths it
/// affects. Every case has at least one bit.
enum Path : unsigned {
  kOther = 1u << 0,      // everything not below (still changed by threads, ISA, ...)
  kConv = 1u << 1,       // convolutions: CPU Winograd / im2col, CUDA cuDNN / GEMM, TF32
  kAttention = 1u << 2,  // softmax attention: naive / streaming / tiled
  kAll = ~0u,
};

template <class D>
struct OpRun {
  std::function<Result()> reference;
  std::function<Result(bool)> exec;  // D's op; true: its result brought to the host, false: left on D
  std::function<void()> reset;       // in-place ops: launch()'s target back to its inputs (else empty)
  Result run() const { return exec(true); }
  void launch() const { exec(false); }
};

template <class D>
struct OpCase {
  std::string op, params;
  unsigned paths = kOther;
  double bytes = 0, flops = 0;  // per launch: compulsory traffic and 2 x multiply-adds
  double tolerance = 1e-4;      // |D - reference| <= tolerance * max(1, max|reference|) (the contract)
  bool absolute = false;        // ... <= tolerance instead
  bool cpu_reference = false;   // the reference is the CPU op: nothing to check on the CPU
  std::function<OpRun<D>()> make;
};

enum class Size { Test, Perf };

/// The batch of the Perf shapes: an Origin forward at batch 1 on the CPU, 16 on accelerators.
template <class D>
constexpr std::size_t perf_batch() {
  return std::is_same<D, Cpu>::value ? 1 : 16;
}

// ---- helpers ---------------------------------------------------------------------------------

/// A device result on the host: a tensor's shape and values, or a scalar.
template <class D, class X>
Result device_result(const X& x) {
  if constexpr (std::is_arithmetic<X>::value) {
    return {{}, {static_cast<double>(x)}};
  } else {
    const auto h = db::copy_to_host(D{}, x);
    return {db::tensor_shape(x), std::vector<double>(h.begin(), h.end())};
  }
}

/// An op that returns its result: f(device_tag, inputs...) runs on D's copies of the host
/// inputs; ref(inputs...) is the reference on the host inputs.
template <class D, class R, class F, class... Ts>
OpRun<D> functional(R ref, F f, Ts... host) {
  auto dev = std::make_shared<std::tuple<decltype(db::to_device(D{}, host))...>>(db::to_device(D{}, host)...);
  OpRun<D> r;
  r.reference = [=] { return Result(ref(host...)); };
  r.exec = [=](bool result) {
    return std::apply(
        [&](const auto&... d) {
          const auto y = f(D{}, d...);
          return result ? device_result<D>(y) : Result{};
        },
        *dev);
  };
  return r;
}

/// An in-place op: f(device_tag, target&, inputs...) changes target; the result is the target,
/// ref(target, inputs...) its expected value. run() works on a copy; launch() changes D's
/// target again and again (reset() restores it).
template <class D, std::size_t N, class R, class F, class... Ts>
OpRun<D> inplace(R ref, F f, HT<N> target, Ts... host) {
  using Target = decltype(db::to_device(D{}, target));
  auto dt = std::make_shared<Target>(db::to_device(D{}, target));
  auto pristine = std::make_shared<Target>(*dt);
  auto dev = std::make_shared<std::tuple<decltype(db::to_device(D{}, host))...>>(db::to_device(D{}, host)...);
  OpRun<D> r;
  r.reference = [=] { return Result(ref(target, host...)); };
  r.exec = [=](bool result) {
    Target copy;
    Target& y = result ? (copy = *pristine) : *dt;
    std::apply([&](const auto&... d) { f(D{}, y, d...); }, *dev);
    return result ? device_result<D>(y) : Result{};
  };
  r.reset = [dt, pristine] { *dt = *pristine; };
  return r;
}

/// The CPU op as the reference (cases marked cpu_reference).
template <class F>
auto cpu_op(F f) {
  return [f](const auto&... host) { return device_result<Cpu>(f(Cpu{}, host...)); };
}

inline std::string dims(std::initializer_list<std::size_t> d) {
  std::string s;
  for (auto v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

template <std::size_t N>
std::size_t numel(const std::array<std::size_t, N>& s) {
  std::size_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

// ---- the table -----------------------------------------------------------------------------------

template <class D>
std::vector<OpCase<D>> op_cases(Size size) {
  using A4 = std::array<std::size_t, 4>;
  using A3 = std::array<std::size_t, 3>;
  using A2 = std::array<std::size_t, 2>;
  using A1 = std::array<std::size_t, 1>;
  namespace ops = db::ops;
  const bool perf = size == Size::Perf;
  const std::size_t PB = perf_batch<D>();
  std::vector<OpCase<D>> cases;
  auto add = [&](std::string op, std::string params, double bytes, double flops, unsigned paths,
                 std::function<OpRun<D>()> make) -> OpCase<D>& {
    cases.push_back(OpCase<D>{std::move(op), std::move(params), paths, bytes, flops, 1e-4, false, false, std::move(make)});
    return cases.back();  // to set a tolerance or flag
  };
  constexpr double F4 = 4.0;  // bytes per float

  // Activation-sized NCHW shapes: the Origin's level 0 at T = 512 (the element-wise ops are
  // bandwidth-bound, so one large shape tells their GB/s), or small odd ones: {2, 5, 7, 13}
  // (910 values: serial on the CPU, a partial SIMD vector), {1, 16, 80, 130} (threaded; GroupNorm
  // groups over several 2048-value chunks), {2, 32, 6, 20} (rows of a multiple of 4: CUDA's
  // float4 paths, planes not a multiple of a block).
  const std::vector<A4> maps =
      perf ? std::vector<A4>{{PB, 64, 80, 512}} : std::vector<A4>{{2, 5, 7, 13}, {1, 16, 80, 130}, {2, 32, 6, 20}};

  // ---- creation and element-wise ----
  for (const A4& s : maps) {
    const double n = static_cast<double>(numel(s));
    const std::string ps = dims({s[0], s[1], s[2], s[3]});
    add("zeros", ps, n * F4, 0, kOther, [=] {
      return functional<D>(
          [=] {
            return Result{ref::Shape(s.begin(), s.end()), ref::V(numel(s), 0.0)};
          },
          [=](auto d) { return ops::zeros<float, 4>(d, s); });
    });
    add("full", ps, n * F4, 0, kOther, [=] {
      return functional<D>(
          [=] {
            return Result{ref::Shape(s.begin(), s.end()), ref::V(numel(s), 0.25)};
          },
          [=](auto d) { return ops::full<float, 4>(d, s, 0.25f); });
    });
    // Mish sees values past its threshold of 20 too.
    add("mish_", ps, 2 * n * F4, 0, kOther, [=] {
      return inplace<D>([](const HT<4>& x) { return ref::map(x, ref::mish); }, [](auto d, auto& x) { ops::mish_(d, x); },
                        randn(s, 1, 8.0f));
    });
    add("silu_", ps, 2 * n * F4, 0, kOther, [=] {
      return inplace<D>([](const HT<4>& x) { return ref::map(x, ref::silu); }, [](auto d, auto& x) { ops::silu_(d, x); },
                        randn(s, 2, 6.0f));
    });
    add("gelu_", ps, 2 * n * F4, 0, kOther, [=] {
      return inplace<D>([](const HT<4>& x) { return ref::map(x, ref::gelu); }, [](auto d, auto& x) { ops::gelu_(d, x); },
                        randn(s, 3, 3.0f));
    });
    const HT<4> mask = frame_mask(s[0], s[3], {s[3], s[3] * 3 / 4});
    add("mul_mask_", ps, 2 * n * F4, 0, kOther, [=] {
      return inplace<D>(
          ref::mul_mask, [](auto d, auto& x, const auto& m) { ops::mul_mask_(d, x, m); }, randn(s, 4), mask);
    });
    add("masked_copy", ps, 2 * n * F4, 0, kOther, [=] {
      return functional<D>(
          ref::mul_mask, [](auto d, const auto& x, const auto& m) { return ops::masked_copy(d, x, m); }, randn(s, 5), mask);
    });
    add("add_channel_bias_", ps, 2 * n * F4, 0, kOther, [=] {
      return inplace<D>(
          ref::add_channel_bias, [](auto d, auto& x, const auto& b) { ops::add_channel_bias_(d, x, b); }, randn(s, 6),
          randn(A2{s[0], s[1]}, 7));
    });
    add("add_", ps, 3 * n * F4, n, kOther, [=] {
      return inplace<D>(
          [](const HT<4>& x, const HT<4>& y) {
            Result r = ref::result(x);
            for (std::size_t i = 0; i < r.v.size(); ++i) r.v[i] += y.data()[i];
            return r;
          },
          [](auto d, auto& x, const auto& y) { ops::add_(d, x, y); }, randn(s, 8), randn(s, 9));
    });
    add("add_div_", ps, 3 * n * F4, 2 * n, kOther, [=] {
      return inplace<D>(
          [](const HT<4>& x, const HT<4>& y) {
            Result r = ref::result(x);
            for (std::size_t i = 0; i < r.v.size(); ++i) r.v[i] = (r.v[i] + y.data()[i]) / double(1.5f);
            return r;
          },
          [](auto d, auto& x, const auto& y) { ops::add_div_(d, x, y, 1.5f); }, randn(s, 81), randn(s, 82));
    });
    add("scale_", ps, 2 * n * F4, n, kOther, [=] {
      return inplace<D>([](const HT<4>& x, const HT<1>& g) { return ref::map(x, [g](double v) { return v * g(0); }); },
                        [](auto d, auto& x, const auto& g) { ops::scale_(d, x, g); }, randn(s, 10), randn(A1{1}, 11));
    });
    add("mul_scalar_", ps, 2 * n * F4, n, kOther, [=] {
      return inplace<D>([](const HT<4>& x) { return ref::map(x, [](double v) { return v * double(0.7f); }); },
                        [](auto d, auto& x) { ops::mul_scalar_(d, x, 0.7f); }, randn(s, 12));
    });
    add("affine_", ps, 2 * n * F4, 2 * n, kOther, [=] {
      return inplace<D>([](const HT<4>& x) { return ref::map(x, [](double v) { return v * 2.0 - 1.0; }); },
                        [](auto d, auto& x) { ops::affine_(d, x, 2.0f, -1.0f); }, randn(s, 13));
    });
    add("divide", ps, 2 * n * F4, n, kOther, [=] {
      return functional<D>([](const HT<4>& x) { return ref::map(x, [](double v) { return v / double(1.7f); }); },
                           [](auto d, const auto& x) { return ops::divide(d, x, 1.7f); }, randn(s, 14));
    });
    add("concat_channels", ps + "+" + std::to_string(s[1] / 2 + 1), 2 * (n + n / 2) * F4, 0, kOther, [=] {
      const A4 s2{s[0], s[1] / 2 + 1, s[2], s[3]};
      return functional<D>(
          ref::concat_channels, [](auto d, const auto& a, const auto& b) { return ops::concat_channels(d, a, b); }, randn(s, 15),
          randn(s2, 16));
    });
    add("slice_channels", ps + "[1:" + std::to_string(s[1] - 1) + "]", 2 * n * F4, 0, kOther, [=] {
      return functional<D>([=](const HT<4>& x) { return ref::slice_channels(x, 1, s[1] - 1); },
                           [=](auto d, const auto& x) { return ops::slice_channels(d, x, 1, s[1] - 1); }, randn(s, 17));
    });
    add("reshape", ps, 2 * n * F4, 0, kOther, [=] {
      return functional<D>(
          [=](const HT<4>& x) {
            return Result{{std::int64_t(s[0] * s[1]), std::int64_t(s[2]), std::int64_t(s[3])}, ref::values(x)};
          },
          [=](auto d, const auto& x) {
            return ops::reshape<float, 3>(d, x, A3{s[0] * s[1], s[2], s[3]});
          },
          randn(s, 18));
    });
    add("nchw_to_tokens", ps, 2 * n * F4, 0, kOther, [=] {
      return functional<D>(
          ref::nchw_to_tokens, [](auto d, const auto& x) { return ops::nchw_to_tokens(d, x); }, randn(s, 19));
    });
    add("tokens_to_nchw", ps, 2 * n * F4, 0, kOther, [=] {
      return functional<D>([=](const HT<3>& x) { return ref::tokens_to_nchw(x, s[2], s[3]); },
                           [=](auto d, const auto& x) { return ops::tokens_to_nchw(d, x, s[2], s[3]); },
                           randn(A3{s[0], s[2] * s[3], s[1]}, 20));
    });
    add("upsample_nearest", ps + "->2x", 5 * n * F4, 0, kOther, [=] {
      return functional<D>([=](const HT<4>& x) { return ref::upsample_nearest(x, 2 * s[2], 2 * s[3]); },
                           [=](auto d, const auto& x) { return ops::upsample_nearest(d, x, 2 * s[2], 2 * s[3]); }, randn(s, 21));
    });
    if (!perf)
      add("upsample_nearest", ps + "->" + dims({s[2] * 2 + 1, s[3] + 3}), 0, 0, kOther, [=] {
        return functional<D>([=](const HT<4>& x) { return ref::upsample_nearest(x, 2 * s[2] + 1, s[3] + 3); },
                             [=](auto d, const auto& x) { return ops::upsample_nearest(d, x, 2 * s[2] + 1, s[3] + 3); },
                             randn(s, 22));
      });
    // ---- normalisation ----
    for (int groups : {8, static_cast<int>(s[1] >= 32 ? 32 : 1)}) {
      if (s[1] % static_cast<std::size_t>(groups)) continue;
      const std::string pg = ps + " G" + std::to_string(groups);
      const HT<1> gamma = randn(A1{s[1]}, 30, 0.2f, 1.0f), beta = randn(A1{s[1]}, 31, 0.2f);
      const HT<1> none = HT<1>::from_shape({0});
      // A large common offset: a sum-of-squares variance would lose every digit here.
      add("group_norm", pg, 2 * n * F4, 0, kOther, [=] {
        return functional<D>(
            [=](const HT<4>& x, const HT<1>& g, const HT<1>& b) { return ref::group_norm(x, groups, g, b, 1e-5); },
            [=](auto d, const auto& x, const auto& g, const auto& b) { return ops::group_norm(d, x, groups, g, b, 1e-5); },
            randn(s, 32, 2.0f, 100.0f), gamma, beta);
      });
      add("group_norm(no affine)", pg, 2 * n * F4, 0, kOther, [=] {
        return functional<D>([=](const HT<4>& x, const HT<1>& g) { return ref::group_norm(x, groups, g, g, 1e-6); },
                             [=](auto d, const auto& x, const auto& g) { return ops::group_norm(d, x, groups, g, g, 1e-6); },
                             randn(s, 33, 3.0f, -1.0f), none);
      });
      add("group_norm_mish_mask_", pg, 2 * n * F4, 0, kOther, [=] {
        return inplace<D>(
            [=](const HT<4>& x, const HT<1>& g, const HT<1>& b, const HT<4>& m) {
              Result r = ref::group_norm(x, groups, g, b, 1e-5);
              const std::size_t CH = x.shape(1) * x.shape(2), W = x.shape(3);
              for (std::size_t i = 0; i < r.v.size(); ++i) r.v[i] = ref::mish(r.v[i]) * m(i / (CH * W), 0, 0, i % W);
              return r;
            },
            [=](auto d, auto& x, const auto& g, const auto& b, const auto& m) {
              ops::group_norm_mish_mask_(d, x, groups, g, b, 1e-5, m);
            },
            randn(s, 34, 1.5f), gamma, beta, mask);
      });
      add("group_norm_mish_mask_bias_mask_", pg, 2 * n * F4, 0, kOther, [=] {
        return inplace<D>(
            [=](const HT<4>& x, const HT<1>& g, const HT<1>& b, const HT<4>& m, const HT<2>& tb) {
              Result r = ref::group_norm(x, groups, g, b, 1e-5);
              const std::size_t C = x.shape(1), H = x.shape(2), W = x.shape(3);
              for (std::size_t i = 0; i < r.v.size(); ++i) {
                const std::size_t bi = i / (C * H * W), c = i / (H * W) % C;
                const double mk = m(bi, 0, 0, i % W);
                r.v[i] = (ref::mish(r.v[i]) * mk + tb(bi, c)) * mk;
              }
              return r;
            },
            [=](auto d, auto& x, const auto& g, const auto& b, const auto& m, const auto& tb) {
              ops::group_norm_mish_mask_bias_mask_(d, x, groups, g, b, 1e-5, m, tb);
            },
            randn(s, 35, 1.5f), gamma, beta, mask, randn(A2{s[0], s[1]}, 36));
      });
      add("group_norm_silu", pg, 2 * n * F4, 0, kOther, [=] {
        return functional<D>(
            [=](const HT<4>& x, const HT<1>& g, const HT<1>& b) {
              return ref::map(ref::group_norm(x, groups, g, b, 1e-5), ref::silu);
            },
            [=](auto d, const auto& x, const auto& g, const auto& b) { return ops::group_norm_silu(d, x, groups, g, b, 1e-5); },
            randn(s, 37, 2.0f), gamma, beta);
      });
      add("ada_group_norm_silu", pg, 2 * n * F4, 0, kOther, [=] {
        return functional<D>(
            [=](const HT<4>& x, const HT<2>& ss) {
              const HT<1> no = HT<1>::from_shape({0});
              return ref::map(ref::scale_shift(ref::group_norm(x, groups, no, no, 1e-5), ss), ref::silu);
            },
            [=](auto d, const auto& x, const auto& ss) { return ops::ada_group_norm_silu(d, x, groups, ss, 1e-5); },
            randn(s, 38, 2.0f), randn(A2{s[0], 2 * s[1]}, 39, 0.3f));
      });
    }
    add("scale_shift_", ps, 2 * n * F4, 2 * n, kOther, [=] {
      return inplace<D>([](const HT<4>& x, const HT<2>& ss) { return ref::scale_shift(ref::result(x), ss); },
                        [](auto d, auto& x, const auto& ss) { ops::scale_shift_(d, x, ss); }, randn(s, 40),
                        randn(A2{s[0], 2 * s[1]}, 41, 0.3f));
    });
  }

  // ---- masks and small layout ops (U-Net bookkeeping) ----
  for (std::size_t W : perf ? std::vector<std::size_t>{512} : std::vector<std::size_t>{24, 23, 1}) {
    const std::size_t B = perf ? PB : 3;
    const HT<4> m = frame_mask(B, W, {W, W / 2 + 1, 1});
    const std::string ps = dims({B, W});
    add("subsample_time", ps, 1.5 * B * W * F4, 0, kOther, [=] {
      return functional<D>(
          ref::subsample_time, [](auto d, const auto& x) { return ops::subsample_time(d, x); }, m);
    });
    add("frame_mask_to_tokens", ps + " H5", 6.0 * B * W * F4, 0, kOther, [=] {
      return functional<D>([](const HT<4>& x) { return ref::frame_mask_to_tokens(x, 5); },
                           [](auto d, const auto& x) { return ops::frame_mask_to_tokens(d, x, 5); }, m);
    });
    const A3 s3{B, std::size_t(perf ? 80 : 7), W};
    const HT<3> m3 = db::ops::reshape<float, 3>(Cpu{}, m, A3{B, 1, W});
    const double n3 = static_cast<double>(numel(s3));
    const std::string p3 = dims({s3[0], s3[1], s3[2]});
    add("mul_mask3_", p3, 2 * n3 * F4, n3, kOther, [=] {
      return inplace<D>(
          ref::mul_mask3, [](auto d, auto& x, const auto& mk) { ops::mul_mask3_(d, x, mk); }, randn(s3, 50), m3);
    });
    for (std::size_t frames : {W + 5, W / 2 + 1}) {
      add("resize_time", p3 + "->" + std::to_string(frames), 2 * n3 * F4, 0, kOther, [=] {
        return functional<D>([=](const HT<3>& x) { return ref::resize_time(x, frames); },
                             [=](auto d, const auto& x) { return ops::resize_time(d, x, frames); }, randn(s3, 51));
      });
    }
    const A4 dst{B, 5, s3[1], W};
    const std::string pd = dims({dst[0], dst[1], dst[2], dst[3]});
    add("set_channel_", pd + " c3", 2 * n3 * F4, 0, kOther, [=] {
      return inplace<D>(
          [](const HT<4>& x, const HT<3>& src) {
            return ref::set_channel(x, 3, [&](std::size_t b, std::size_t h, std::size_t w) { return src(b, h, w); });
          },
          [](auto d, auto& x, const auto& src) { ops::set_channel_(d, x, 3, src); }, randn(dst, 52), randn(s3, 53));
    });
    add("set_channel_repeat_time_", pd + " c1", n3 * F4, 0, kOther, [=] {
      return inplace<D>(
          [](const HT<4>& x, const HT<2>& v) {
            return ref::set_channel(x, 1, [&](std::size_t b, std::size_t h, std::size_t) { return v(b, h); });
          },
          [](auto d, auto& x, const auto& v) { ops::set_channel_repeat_time_(d, x, 1, v); }, randn(dst, 54),
          randn(A2{B, s3[1]}, 55));
    });
    add("set_channel_repeat_freq_", pd + " c4 i2", n3 * F4, 0, kOther, [=] {
      return inplace<D>(
          [](const HT<4>& x, const HT<3>& src) {
            return ref::set_channel(x, 4, [&](std::size_t b, std::size_t, std::size_t w) { return src(b, 2, w); });
          },
          [](auto d, auto& x, const auto& src) { ops::set_channel_repeat_freq_(d, x, 4, src, 2); }, randn(dst, 56),
          randn(A3{B, 3, W}, 57));
    });
    const HT<3> none = HT<3>::from_shape({0, 0, 0});
    auto step_ref = [](const HT<3>& x, const HT<3>& mu, const HT<3>& est, const HT<3>& mk, const HT<3>& nz) {
      return ref::gradtts_step(x, mu, est, mk, nz, 12.5f, 0.1f);
    };
    auto step = [](auto d, auto& x, const auto& mu, const auto& est, const auto& mk, const auto& nz) {
      ops::gradtts_step_(d, x, mu, est, mk, nz, 12.5f, 0.1f);
    };
    add("gradtts_step_ (ODE)", p3, 5 * n3 * F4, 6 * n3, kOther,
        [=] { return inplace<D>(step_ref, step, randn(s3, 58), randn(s3, 59), randn(s3, 60), m3, none); });
    add("gradtts_step_ (SDE)", p3, 6 * n3 * F4, 8 * n3, kOther,
        [=] { return inplace<D>(step_ref, step, randn(s3, 61), randn(s3, 62), randn(s3, 63), m3, randn(s3, 64)); });
    add("gradtts_forward_diffusion", p3, 5 * n3 * F4, 8 * n3, kOther, [=] {
      HT<1> t = HT<1>::from_shape({B});
      for (std::size_t b = 0; b < B; ++b) t(b) = 0.05f + 0.9f * static_cast<float>(b) / static_cast<float>(B);
      return functional<D>([](const HT<3>& x0, const HT<3>& mk, const HT<3>& mu, const HT<1>& tt,
                              const HT<3>& z) { return ref::gradtts_forward_diffusion(x0, mk, mu, tt, z, 0.05f, 20.0f); },
                           [](auto d, const auto& x0, const auto& mk, const auto& mu, const auto& tt, const auto& z) {
                             return ops::gradtts_forward_diffusion(d, x0, mk, mu, tt, z, 0.05f, 20.0f);
                           },
                           randn(s3, 65), m3, randn(s3, 66), t, randn(s3, 67));
    });
  }

  // ---- sequences ----
  {
    const std::size_t B = perf ? PB : 2, L = perf ? 64 : 7, C = perf ? 256 : 12;
    const A3 s{B, L, C};
    const double n = static_cast<double>(numel(s));
    add("prepend_mean_token", dims({B, L, C}), 2 * n * F4, n, kOther, [=] {
      return functional<D>(
          ref::prepend_mean_token, [](auto d, const auto& x, const auto& pos) { return ops::prepend_mean_token(d, x, pos); },
          randn(s, 70), randn(A2{1, C}, 71));
    });
    add("first_token", dims({B, L, C}), 2.0 * B * C * F4, 0, kOther, [=] {
      return functional<D>(
          ref::first_token, [](auto d, const auto& x) { return ops::first_token(d, x); }, randn(s, 72));
    });
    add("concat_cols", dims({B, C}) + "+" + std::to_string(C / 2 + 3), 4.0 * B * C * F4, 0, kOther, [=] {
      return functional<D>(
          ref::concat_cols, [](auto d, const auto& a, const auto& b) { return ops::concat_cols(d, a, b); }, randn(A2{B, C}, 73),
          randn(A2{B, C / 2 + 3}, 74));
    });
    add("keep_mask_to_bias", dims({B, L}), 2.0 * B * L * F4, 0, kOther, [=] {
      return functional<D>([](const HT<2>& k) { return ref::map(k, [](double v) { return (1 - v) * -10000.0; }); },
                           [](auto d, const auto& k) { return ops::keep_mask_to_bias(d, k); }, keep_mask(B, L, {L, L / 2}));
    });
    const std::size_t R = perf ? PB * 10240 : 1000;
    for (std::size_t Dm : perf ? std::vector<std::size_t>{128, 256} : std::vector<std::size_t>{64, 33, 320}) {
      const HT<1> g = randn(A1{Dm}, 75, 0.2f, 1.0f), b = randn(A1{Dm}, 76, 0.2f);
      add("layer_norm", dims({R, Dm}), 2.0 * R * Dm * F4, 0, kOther, [=] {
        return functional<D>(
            [](const HT<2>& x, const HT<1>& gg, const HT<1>& bb) { return ref::layer_norm(x, gg, bb, 1e-5); },
            [](auto d, const auto& x, const auto& gg, const auto& bb) { return ops::layer_norm(d, x, gg, bb, 1e-5); },
            randn(A2{R, Dm}, 77, 2.0f, 10.0f), g, b);
      });
      add("geglu", dims({R, 2 * Dm}), 3.0 * R * Dm * F4, 0, kOther, [=] {
        return functional<D>(
            ref::geglu, [](auto d, const auto& x) { return ops::geglu(d, x); }, randn(A2{R, 2 * Dm}, 78, 2.0f));
      });
    }
    add("layer_norm(no affine)", dims({R, 48}), 2.0 * R * 48 * F4, 0, kOther, [=] {
      const HT<1> none = HT<1>::from_shape({0});
      return functional<D>([](const HT<2>& x, const HT<1>& nn) { return ref::layer_norm(x, nn, nn, 1e-6); },
                           [](auto d, const auto& x, const auto& nn) { return ops::layer_norm(d, x, nn, nn, 1e-6); },
                           randn(A2{R, 48}, 79), none);
    });
    const HT<2> table = randn(A2{std::size_t(perf ? 300 : 9), C}, 80);
    add("gather_rows", dims({B, C}), 2.0 * B * C * F4, 0, kOther, [=] {
      std::vector<std::int64_t> ids;
      for (std::size_t b = 0; b < B; ++b) ids.push_back(static_cast<std::int64_t>((b * 7) % table.shape(0)));
      return functional<D>([ids](const HT<2>& t) { return ref::gather_rows(t, ids); },
                           [ids](auto d, const auto& t) { return ops::gather_rows(d, t, ids); }, table);
    });
  }

  // ---- host scalars (each synchronises) ----
  for (std::size_t n : perf ? std::vector<std::size_t>{PB * 64 * 80 * 512} : std::vector<std::size_t>{1, 1000, 300001}) {
    const A1 s{n};
    add("find_non_finite (finite)", std::to_string(n), n * F4, 0, kOther, [=] {
      return functional<D>(
          ref::find_non_finite, [](auto d, const auto& x) { return ops::find_non_finite(d, x); }, randn(s, 90));
    });
    add("find_non_finite (NaN, Inf)", std::to_string(n), n * F4, 0, kOther, [=] {
      HT<1> x = randn(s, 91);
      x(n - 1) = INFINITY;
      x(n / 2) = std::nanf("");
      if (n > 2) x(n - 2) = -INFINITY;
      return functional<D>(
          ref::find_non_finite, [](auto d, const auto& y) { return ops::find_non_finite(d, y); }, x);
    });
    add("first_value", std::to_string(n), F4, 0, kOther, [=] {
      return functional<D>(
          [](const HT<1>& x) {
            return Result{{}, {double(x(0))}};
          },
          [](auto d, const auto& x) { return ops::first_value(d, x); }, randn(s, 92));
    });
  }

  // ---- linear: one serial GEMM below kLinearPackFrom rows, packed row blocks from there (CPU) ----
  struct LinearShape {
    std::size_t rows, in, out;
    bool bias;
    bool absolute;  // held to 1e-4 absolute, not relative
  };
  const std::size_t row_block = static_cast<std::size_t>(db::ops::cpu::kLinearPackFrom);
  std::vector<LinearShape> linears = perf ? std::vector<LinearShape>{{PB, 256, 1024, true, false},
                                                                     {PB * 1280, 256, 256, false, false},
                                                                     {PB * 10240, 128, 1024, true, false}}
                                          : std::vector<LinearShape>{{1, 5, 3, true, false},
                                                                     {7, 64, 256, false, false},
                                                                     {300, 33, 65, true, false},
                                                                     {row_block - 1, 19, 37, true, false},
                                                                     {2 * row_block + 3, 40, 70, false, false}};
  if (!perf)  // 37 outputs: whole packed column blocks of W^T plus a zero-padded one; 3, 64, 200 rows
    for (std::size_t rows : {std::size_t(3), std::size_t(64), std::size_t(200)})
      for (bool bias : {false, true}) linears.push_back({rows, 19, 37, bias, true});
  for (const auto& l : linears) {
    auto& c =
        add("linear", dims({l.rows, l.in}) + "->" + std::to_string(l.out) + (l.bias ? "" : " nobias"),
            static_cast<double>(l.rows * l.in + l.in * l.out + l.rows * l.out) * F4, 2.0 * l.rows * l.in * l.out, kOther, [=] {
              return functional<D>(
                  ref::linear, [](auto d, const auto& x, const auto& w, const auto& b) { return ops::linear(d, x, w, b); },
                  randn(A2{l.rows, l.in}, 100), randn(A2{l.out, l.in}, 101, l.absolute ? 1.0f : 0.1f),
                  randn(A1{l.bias ? l.out : 0}, 102));
            });
    c.absolute = l.absolute;
  }

  // ---- convolutions ----
  struct ConvShape {
    std::size_t B, Cin, H, W, Cout, k;
    int stride, padding;
    bool bias;
    bool add;  // conv2d_add_ too
  };
  std::vector<ConvShape> convs =
      perf ? std::vector<ConvShape>{{PB, 64, 80, 512, 64, 3, 1, 1, true, false},
                                    {PB, 128, 40, 256, 128, 3, 1, 1, true, false},
                                    {PB, 256, 20, 128, 256, 3, 1, 1, true, false},
                                    {PB, 64, 80, 512, 64, 3, 2, 1, true, false},
                                    {PB, 64, 80, 512, 128, 1, 1, 0, true, true}}
           : std::vector<ConvShape>{{2, 3, 16, 24, 8, 3, 1, 1, true, true},  {1, 8, 15, 23, 8, 3, 2, 1, true, true},
                                    {3, 12, 9, 11, 20, 1, 1, 0, true, true}, {2, 6, 9, 11, 5, 1, 1, 0, false, true},
                                    {1, 4, 10, 13, 6, 5, 1, 2, true, true},  {2, 5, 12, 12, 7, 3, 2, 0, false, true},
                                    {1, 2, 4, 5, 3, 3, 1, 0, true, true},    {2, 16, 12, 20, 24, 3, 1, 1, true, true},
                                    {1, 6, 11, 14, 9, 3, 3, 1, true, true},   // stride 3: the generic strided gather
                                    {2, 10, 9, 12, 8, 1, 2, 0, true, true}};  // 1x1 stride 2: not the pointwise path
  if (!perf)
    // 3x3 stride 1 padding 1 (the CPU's Winograd F(4x4, 3x3) from 8 channels in and out): sizes
    // not divisible by the 4x4 tile, single rows/columns, channel counts on both sides of the
    // threshold; many bands of tile rows (the per-thread schedule: bands of 3 rows of 13 tiles, a
    // shorter last band, a part-filled block of GEMM columns); tile rows a multiple of 8 tiles
    // wide (the AVX-512 input transform): 8 (groups spanning two tile rows, a half-filled last
    // group), 8 with the last tile cut by the edge, 16, 24 (groups straddling rows) and 32 with
    // per-thread bands.
    for (const auto& w : std::vector<std::array<std::size_t, 5>>{{1, 8, 8, 1, 1},
                                                                 {2, 16, 24, 5, 7},
                                                                 {1, 9, 12, 13, 3},
                                                                 {1, 32, 16, 20, 67},
                                                                 {1, 4, 8, 6, 6},
                                                                 {2, 64, 32, 4, 4},
                                                                 {1, 16, 8, 2, 130},
                                                                 {2, 96, 64, 66, 50},
                                                                 {1, 24, 16, 20, 32},
                                                                 {2, 16, 8, 9, 29},
                                                                 {1, 16, 16, 12, 64},
                                                                 {1, 8, 8, 7, 96},
                                                                 {2, 16, 16, 80, 128}})
      convs.push_back({w[0], w[1], w[3], w[4], w[2], 3, 1, 1, true, false});
  for (const auto& c : convs) {
    const std::size_t Ho = (c.H + 2 * c.padding - c.k) / c.stride + 1, Wo = (c.W + 2 * c.padding - c.k) / c.stride + 1;
    const std::string ps = dims({c.B, c.Cin, c.H, c.W}) + " -> " + std::to_string(c.Cout) + " k" + std::to_string(c.k) + " s" +
                           std::to_string(c.stride) + " p" + std::to_string(c.padding) + (c.bias ? "" : " nobias");
    const double flops = 2.0 * c.B * c.Cin * c.Cout * c.k * c.k * Ho * Wo;
    const double bytes = static_cast<double>(c.B * c.Cin * c.H * c.W + c.Cout * c.Cin * c.k * c.k + c.B * c.Cout * Ho * Wo) * F4;
    // Weights N(0, 1 / fan-in): outputs of O(1) whatever the channel count.
    const HT<4> w = randn(A4{c.Cout, c.Cin, c.k, c.k}, 110, 1.0f / std::sqrt(static_cast<float>(c.Cin * c.k * c.k)));
    const HT<1> b = randn(A1{c.bias ? c.Cout : 0}, 111);
    const int stride = c.stride, padding = c.padding;
    add("conv2d", ps, bytes, flops, kConv, [=] {
      return functional<D>(
          [=](const HT<4>& x, const HT<4>& ww, const HT<1>& bb) { return ref::conv2d(x, ww, bb, stride, padding); },
          [=](auto d, const auto& x, const auto& ww, const auto& bb) { return ops::conv2d(d, x, ww, bb, stride, padding); },
          randn(A4{c.B, c.Cin, c.H, c.W}, 112), w, b);
    }).tolerance = 1e-5;
    if (c.add)
      add("conv2d_add_", ps, bytes + static_cast<double>(c.B * c.Cout * Ho * Wo) * F4, flops, kConv, [=] {
        return inplace<D>(
            [=](const HT<4>& out, const HT<4>& x, const HT<4>& ww, const HT<1>& bb) {
              Result r = ref::conv2d(x, ww, bb, stride, padding);
              for (std::size_t i = 0; i < r.v.size(); ++i) r.v[i] += out.data()[i];
              return r;
            },
            [=](auto d, auto& out, const auto& x, const auto& ww, const auto& bb) {
              ops::conv2d_add_(d, x, ww, bb, stride, padding, out);
            },
            randn(A4{c.B, c.Cout, Ho, Wo}, 113), randn(A4{c.B, c.Cin, c.H, c.W}, 114), w, b);
      }).tolerance = 1e-5;
  }
  // ConvTranspose2d. CPU: one grid for all phases (k4 s2 p1 = Upsample, k6 s3 p0) is the
  // interleaving path, with two batch items and tiles that end mid-row; phases with different
  // tap counts (k3 s2 p0, k2 s2 p1) the per-phase path; k1 s2 a phase no tap reaches (bias only).
  const std::vector<ConvShape> deconvs =
      perf ? std::vector<ConvShape>{{PB, 64, 40, 256, 64, 4, 2, 1, true, false}, {PB, 128, 20, 128, 128, 4, 2, 1, true, false}}
           : std::vector<ConvShape>{{2, 6, 5, 7, 4, 4, 2, 1, true, false}, {1, 3, 4, 6, 5, 3, 2, 1, false, false},
                                    {2, 4, 3, 5, 3, 2, 2, 0, true, false}, {1, 5, 6, 7, 4, 3, 1, 1, true, false},
                                    {1, 2, 4, 5, 3, 3, 2, 0, true, false}, {2, 5, 6, 37, 7, 4, 2, 1, true, false},
                                    {2, 3, 5, 9, 4, 6, 3, 0, true, false}, {1, 3, 5, 7, 2, 2, 2, 1, true, false},
                                    {1, 3, 4, 5, 2, 1, 2, 0, true, false}};
  for (const auto& c : deconvs) {
    const std::size_t Ho = (c.H - 1) * c.stride - 2 * c.padding + c.k, Wo = (c.W - 1) * c.stride - 2 * c.padding + c.k;
    const std::string ps = dims({c.B, c.Cin, c.H, c.W}) + " -> " + std::to_string(c.Cout) + " k" + std::to_string(c.k) + " s" +
                           std::to_string(c.stride) + " p" + std::to_string(c.padding) + (c.bias ? "" : " nobias");
    const int stride = c.stride, padding = c.padding;
    add("conv_transpose2d", ps,
        static_cast<double>(c.B * c.Cin * c.H * c.W + c.Cout * c.Cin * c.k * c.k + c.B * c.Cout * Ho * Wo) * F4,
        2.0 * c.B * c.Cin * c.Cout * c.k * c.k * c.H * c.W, kConv, [=] {
          return functional<D>(
              [=](const HT<4>& x, const HT<4>& ww, const HT<1>& bb) { return ref::conv_transpose2d(x, ww, bb, stride, padding); },
              [=](auto d, const auto& x, const auto& ww, const auto& bb) {
                return ops::conv_transpose2d(d, x, ww, bb, stride, padding);
              },
              randn(A4{c.B, c.Cin, c.H, c.W}, 120), randn(A4{c.Cin, c.Cout, c.k, c.k}, 121, 0.1f),
              randn(A1{c.bias ? c.Cout : 0}, 122));
        });
  }

  // ---- Grad-TTS LinearAttention ----
  struct LaShape {
    std::size_t B, C, H, W;
    int heads, dh;
  };
  const std::vector<LaShape> las =
      perf ? std::vector<LaShape>{{PB, 64, 80, 512, 4, 32}, {PB, 256, 20, 128, 4, 32}}
           : std::vector<LaShape>{{2, 16, 8, 12, 4, 32},
                                  {1, 6, 5, 7, 2, 8},
                                  {3, 32, 3, 1, 1, 16},
                                  {2, 8, 17, 485, 2, 8}};  // last: 8245 positions, split-K with a tail
  for (const auto& l : las) {
    const std::size_t hidden = static_cast<std::size_t>(l.heads) * l.dh, N = l.H * l.W;
    const double flops = 2.0 * l.B * N * (hidden * l.C /* k */ + hidden * l.C /* P */ + l.C * l.C /* Mix x */);
    const int heads = l.heads, dh = l.dh;
    add("linear_attention_block", dims({l.B, l.C, l.H, l.W}) + " heads" + std::to_string(l.heads) + " dh" + std::to_string(l.dh),
        2.0 * l.B * l.C * N * F4, flops, kOther, [=] {
          return functional<D>([=](const HT<4>& x, const HT<4>& wqkv, const HT<4>& wout,
                                   const HT<1>& bout) { return ref::linear_attention_block(x, wqkv, wout, bout, heads, dh); },
                               [=](auto d, const auto& x, const auto& wqkv, const auto& wout, const auto& bout) {
                                 return ops::linear_attention_block(d, x, wqkv, wout, bout, heads, dh);
                               },
                               randn(A4{l.B, l.C, l.H, l.W}, 130), randn(A4{3 * hidden, l.C, 1, 1}, 131, 0.2f),
                               randn(A4{l.C, hidden, 1, 1}, 132, 0.1f), randn(A1{l.C}, 133));
        });
  }

  // ---- softmax attention (ops::attention: the variant the setting picks) ----
  struct AttnShape {
    std::size_t B, Nq, Nk;
    int heads, dh, dv;
    bool bias;
  };
  const std::vector<AttnShape> attns =
      perf ? std::vector<AttnShape>{{1, 1024, 1024, 4, 32, 32, false},
                                    {1, 4096, 4096, 4, 64, 64, false},
                                    {PB, 1280, 16, 4, 64, 64, true},
                                    {1, 10240, 10240, 4, 32, 32, false}}
           : std::vector<AttnShape>{{1, 100, 100, 4, 32, 32, false}, {2, 77, 16, 2, 16, 16, true},   {2, 33, 45, 3, 8, 8, true},
                                    {1, 70, 1, 2, 64, 64, false},    {2, 65, 130, 2, 64, 48, true},  {1, 40, 50, 2, 80, 80, true},
                                    {1, 64, 64, 1, 5, 7, false},     {2, 300, 200, 4, 32, 32, true}, {2, 100, 257, 3, 8, 5, true},
                                    {1, 9, 600, 2, 8, 8, false}};  // CPU Auto: streaming
  for (const auto& a : attns) {
    const std::string ps = dims({a.B, a.Nq, a.Nk}) + " heads" + std::to_string(a.heads) + " dh" + std::to_string(a.dh) +
                           (a.dv != a.dh ? " dv" + std::to_string(a.dv) : "") + (a.bias ? " bias" : "");
    const double flops = 2.0 * a.B * a.heads * a.Nq * a.Nk * (a.dh + a.dv);
    const double bytes = static_cast<double>(a.B) * (a.Nq * a.heads * (a.dh + a.dv) + a.Nk * a.heads * (a.dh + a.dv)) * F4;
    const HT<3> q = randn(A3{a.B, a.Nq, a.heads * static_cast<std::size_t>(a.dh)}, 140);
    const HT<3> k = randn(A3{a.B, a.Nk, a.heads * static_cast<std::size_t>(a.dh)}, 141);
    const HT<3> v = randn(A3{a.B, a.Nk, a.heads * static_cast<std::size_t>(a.dv)}, 142);
    // Padding: none in item 0, the last keys of item 1 (17 valid of 200 or more).
    const HT<2> bias = a.bias ? db::ops::keep_mask_to_bias(Cpu{}, keep_mask(a.B, a.Nk, {a.Nk, a.Nk > 150 ? 17 : a.Nk / 2 + 1}))
                              : HT<2>::from_shape({0, 0});
    const float scale = 1.0f / std::sqrt(static_cast<float>(a.dh));
    const int heads = a.heads;
    // op(d, q, k, v, heads, scale, bias) against softmax attention written out.
    auto add_attention = [&](const char* name, unsigned paths, auto op) {
      add(name, ps, bytes, flops, paths, [=] {
        return functional<D>([=](const HT<3>& qq, const HT<3>& kk, const HT<3>& vv,
                                 const HT<2>& bb) { return ref::attention(qq, kk, vv, heads, scale, bb); },
                             [=](auto d, const auto&... in) { return op(d, in..., heads, scale); }, q, k, v, bias);
      });
    };
    add_attention("attention", kAttention,
                  [](auto d, const auto& qq, const auto& kk, const auto& vv, const auto& bb, int h, float sc) {
                    return ops::attention(d, qq, kk, vv, h, sc, bb);
                  });
#if defined(DIFFBLOCKS_HAS_CUDA)
    // The CUDA register-blocked kernel, which its Auto setting reaches only for some key counts
    // (called directly: the attention setting does not change it).
    if constexpr (std::is_same<D, db::Cuda>::value)
      add_attention("attention_tiled", kOther,
                    [](auto d, const auto& qq, const auto& kk, const auto& vv, const auto& bb, int h, float sc) {
                      return ops::attention_tiled(d, qq, kk, vv, h, sc, bb);
                    });
#endif
  }

  // ---- embeddings and scheduler steps ----
  {
    const std::size_t B = perf ? PB : 5;
    HT<1> t = HT<1>::from_shape({B});
    for (std::size_t b = 0; b < B; ++b) t(b) = 0.013f + 0.97f * static_cast<float>(b) / static_cast<float>(B);
    HT<1> steps = HT<1>::from_shape({B});
    for (std::size_t b = 0; b < B; ++b) steps(b) = static_cast<float>((b * 211) % 1000);
    // torch's float32 order of operations is the definition here (sin/cos of arguments up to
    // ~1000 rounded to float): the CPU op is the reference.
    for (int dim : {64, 16})
      for (double sc : {1000.0, 1.0}) {
        auto f = [=](auto d, const auto& tt) { return ops::sinusoidal_pos_emb(d, tt, dim, sc); };
        add("sinusoidal_pos_emb", dims({B}) + " dim" + std::to_string(dim) + " scale" + std::to_string(static_cast<int>(sc)), 0,
            0, kOther, [=] { return functional<D>(cpu_op(f), f, t); })
            .cpu_reference = true;
      }
    for (int ch : {32, 33, 320})
      for (bool flip : {true, false})
        for (float shift : {0.0f, 1.0f}) {
          auto f = [=](auto d, const auto& tt) { return ops::timestep_embedding(d, tt, ch, flip, shift, 10000.0f); };
          add("timestep_embedding",
              dims({B}) + " ch" + std::to_string(ch) + (flip ? " flip" : "") + " shift" + std::to_string(static_cast<int>(shift)),
              0, 0, kOther, [=] { return functional<D>(cpu_op(f), f, steps); })
              .cpu_reference = true;
        }
    for (const A4& s : maps) {
      const std::string ps = dims({s[0], s[1], s[2], s[3]});
      const double n = static_cast<double>(numel(s));
      add("epsilon_step (DDIM, clip)", ps, 3 * n * F4, 8 * n, kOther, [=] {
        const HT<4> none = HT<4>::from_shape({0, 0, 0, 0});
        return functional<D>(
            [](const HT<4>& e, const HT<4>& x, const HT<4>& nz) {
              return ref::epsilon_step(e, x, nz, 0.8f, 0.6f, 1.0f, 0.9f, 0.0f, 0.43f, 0.0f);
            },
            [](auto d, const auto& e, const auto& x, const auto& nz) {
              return ops::epsilon_step(d, e, x, nz, 0.8f, 0.6f, 1.0f, 0.9f, 0.0f, 0.43f, 0.0f);
            },
            randn(s, 150), randn(s, 151, 2.0f), none);
      });
      add("epsilon_step (DDPM, noise)", ps, 4 * n * F4, 10 * n, kOther, [=] {
        return functional<D>(
            [](const HT<4>& e, const HT<4>& x, const HT<4>& nz) {
              return ref::epsilon_step(e, x, nz, 0.3f, 0.95f, 0.0f, 0.2f, 0.7f, 0.0f, 0.1f);
            },
            [](auto d, const auto& e, const auto& x, const auto& nz) {
              return ops::epsilon_step(d, e, x, nz, 0.3f, 0.95f, 0.0f, 0.2f, 0.7f, 0.0f, 0.1f);
            },
            randn(s, 152), randn(s, 153, 2.0f), randn(s, 154));
      });
      add("euler_step", ps, 3 * n * F4, 6 * n, kOther, [=] {
        return functional<D>([](const HT<4>& e, const HT<4>& x) { return ref::euler_step(e, x, 3.2f, -0.4f); },
                             [](auto d, const auto& e, const auto& x) { return ops::euler_step(d, e, x, 3.2f, -0.4f); },
                             randn(s, 155), randn(s, 156, 3.0f));
      });
    }
  }
  return cases;
}

}  // namespace dbops
