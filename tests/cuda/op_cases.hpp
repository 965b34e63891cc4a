#pragma once
// The registry of CUDA op cases (ggml test-backend-ops style), shared by the test binary
// (tests/cuda/test_cuda.cu: every case's CUDA result against the CPU op, at the accuracy
// contract) and the benchmark (benchmarks/bench_cuda.cu: the CUDA op alone, timed, with its
// compulsory bytes and FLOPs). One table, two sizes:
//   Size::Test  small, odd shapes that exercise the edges (tails of tiles, padded masks,
//               strides, several chunks of a reduction, heads wider than the streaming kernel);
//   Size::Perf  the shapes of an Origin forward at batch 16, T = 512 (level 0 (80, 512) at 64
//               channels for the element-wise ops; all three levels for the convolutions) and
//               of the TTS Diffuser (token counts, widths).
// A case makes its inputs on demand (make()): host tensors with a fixed seed, uploaded once; its
// closures run the CPU op, the CUDA op (result downloaded), or the CUDA op alone.
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "diffblocks/diffblocks.hpp"
#include "tensor_gen.hpp"

// 0: cases without their CPU closure (OpRun::cpu stays empty), so a benchmark does not
// instantiate the CPU ops at all.
#ifndef DBOPS_CPU_REFERENCE
#define DBOPS_CPU_REFERENCE 1
#endif

namespace dbops {

namespace db = diffblocks;
using db::Cpu;
using db::Cuda;
using Out = std::vector<std::vector<float>>;
template <std::size_t N>
using DT = db::Tensor<float, N, Cuda>;

struct OpRun {
  std::function<Out()> cpu;     // reference results
  std::function<Out()> cuda;    // CUDA results, downloaded
  std::function<void()> launch;  // the CUDA op alone (benchmarks; results stay on the device)
};

struct OpCase {
  std::string op, params;
  double bytes = 0, flops = 0;  // per launch: compulsory traffic and 2 x multiply-adds
  double tolerance = 1e-4;      // max|cuda - cpu| <= tolerance * max(1, max|cpu|)
  std::function<OpRun()> make;
  std::function<bool()> runnable;  // empty: always; else whether this machine can run the variant
};

/// A variant of the CUDA op: the convolution backend and math mode its closures run under.
struct Variant {
  const char* name;
  db::cuda::ConvBackend backend;
  db::cuda::MathMode math;
  double tolerance;
  bool needs_cudnn;
};

/// Every convolution case runs on each path: the library's own GEMM path (the default where cuDNN
/// is missing), cuDNN in float32 (the default where it is there), and both in TF32, whose 10-bit
/// mantissa inputs give ~1e-3 relative error (PyTorch's allow_tf32).
inline const std::vector<Variant>& conv_variants() {
  using B = db::cuda::ConvBackend;
  using M = db::cuda::MathMode;
  static const std::vector<Variant> v{{"gemm", B::Gemm, M::F32, 1e-4, false},
                                      {"cudnn", B::Cudnn, M::F32, 1e-4, true},
                                      {"gemm,tf32", B::Gemm, M::TF32, 5e-3, false},
                                      {"cudnn,tf32", B::Cudnn, M::TF32, 5e-3, true}};
  return v;
}

/// r with its CUDA closures run under the variant's settings.
inline OpRun under(OpRun r, const Variant& v) {
  auto wrap = [v](auto f) {
    return [v, f] {
      db::cuda::ConvBackendGuard backend(v.backend);
      db::cuda::MathModeGuard math(v.math);
      return f();
    };
  };
  r.cuda = wrap(r.cuda);
  r.launch = wrap(r.launch);
  return r;
}

enum class Size { Test, Perf };

// ---- helpers ---------------------------------------------------------------------------------

template <std::size_t N>
std::vector<float> flat(const HT<N>& x) {
  return std::vector<float>(x.begin(), x.end());
}
template <std::size_t N>
std::vector<float> flat(const DT<N>& x) {
  return db::copy_to_host(Cuda{}, x);
}
inline std::vector<float> flat(float v) { return {v}; }
inline std::vector<float> flat(std::ptrdiff_t v) { return {static_cast<float>(v)}; }

template <std::size_t N>
DT<N> upload(const HT<N>& x) {
  return db::cuda::upload(x);
}

template <std::size_t N>
std::size_t numel(const std::array<std::size_t, N>& s) {
  std::size_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

/// An op that returns its result: f(device_tag, inputs...) is run on the host tensors and on
/// their device copies.
template <class F, class... Ts>
OpRun functional(F f, Ts... host) {
  auto dev = std::make_shared<std::tuple<decltype(upload(host))...>>(upload(host)...);
  OpRun r;
#if DBOPS_CPU_REFERENCE
  r.cpu = [=] { return Out{flat(f(Cpu{}, host...))}; };
#endif
  r.cuda = [=] { return std::apply([&](const auto&... d) { return Out{flat(f(Cuda{}, d...))}; }, *dev); };
  r.launch = [=] { std::apply([&](const auto&... d) { (void)f(Cuda{}, d...); }, *dev); };
  return r;
}

/// An in-place op: f(device_tag, target&, inputs...) changes target; the result is the target.
/// The test closures work on copies; launch() changes the device target again and again.
template <std::size_t N, class F, class... Ts>
OpRun inplace(F f, HT<N> target, Ts... host) {
  auto dt = std::make_shared<DT<N>>(upload(target));
  auto dev = std::make_shared<std::tuple<decltype(upload(host))...>>(upload(host)...);
  OpRun r;
#if DBOPS_CPU_REFERENCE
  r.cpu = [=] {
    HT<N> y = target;
    f(Cpu{}, y, host...);
    return Out{flat(y)};
  };
#endif
  r.cuda = [=] {
    DT<N> y = *dt;
    std::apply([&](const auto&... d) { f(Cuda{}, y, d...); }, *dev);
    return Out{flat(y)};
  };
  r.launch = [=] { std::apply([&](const auto&... d) { f(Cuda{}, *dt, d...); }, *dev); };
  return r;
}

inline std::string dims(std::initializer_list<std::size_t> d) {
  std::string s;
  for (auto v : d) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

// ---- the table -----------------------------------------------------------------------------------

inline std::vector<OpCase> op_cases(Size size) {
  using A4 = std::array<std::size_t, 4>;
  using A3 = std::array<std::size_t, 3>;
  using A2 = std::array<std::size_t, 2>;
  namespace ops = db::ops;
  const bool perf = size == Size::Perf;
  std::vector<OpCase> cases;
  auto add = [&](std::string op, std::string params, double bytes, double flops, std::function<OpRun()> make,
                 double tolerance = 1e-4) {
    cases.push_back(OpCase{std::move(op), std::move(params), bytes, flops, tolerance, std::move(make), {}});
  };
  // The op once per convolution variant: "conv2d[cudnn,tf32]".
  auto add_conv = [&](const std::string& op, const std::string& params, double bytes, double flops,
                      std::function<OpRun()> make) {
    for (const Variant& v : conv_variants()) {
      std::function<bool()> runnable;
      if (v.needs_cudnn) runnable = [] { return db::cuda::cudnn::available(); };
      cases.push_back(OpCase{op + "[" + v.name + "]", params, bytes, flops, v.tolerance,
                             [make, v] { return under(make(), v); }, runnable});
    }
  };
  constexpr double F4 = 4.0;  // bytes per float

  // Activation-sized NCHW shapes: the Origin's level 0 at B = 16, T = 512 (the element-wise ops
  // are bandwidth-bound, so one large shape tells their GB/s), or small odd ones.
  // {2, 32, 6, 20}: rows of a multiple of 4 (the float4 paths), planes not a multiple of a block.
  const std::vector<A4> maps =
      perf ? std::vector<A4>{{16, 64, 80, 512}} : std::vector<A4>{{2, 5, 7, 13}, {1, 16, 80, 130}, {2, 32, 6, 20}};

  // ---- creation and element-wise ----
  for (const A4& s : maps) {
    const double n = static_cast<double>(numel(s)), p = static_cast<double>(s[0] * s[1] * s[2]);
    const std::string ps = dims({s[0], s[1], s[2], s[3]});
    add("zeros", ps, n * F4, 0, [=] { return functional([=](auto d) { return ops::zeros<float, 4>(d, s); }); });
    add("full", ps, n * F4, 0, [=] { return functional([=](auto d) { return ops::full<float, 4>(d, s, 0.25f); }); });
    // Mish sees values past its threshold of 20 too.
    add("mish_", ps, 2 * n * F4, 0, [=] {
      return inplace([](auto d, auto& x) { ops::mish_(d, x); }, randn(s, 1, 8.0f));
    });
    add("silu_", ps, 2 * n * F4, 0, [=] {
      return inplace([](auto d, auto& x) { ops::silu_(d, x); }, randn(s, 2, 6.0f));
    });
    add("gelu_", ps, 2 * n * F4, 0, [=] {
      return inplace([](auto d, auto& x) { ops::gelu_(d, x); }, randn(s, 3, 3.0f));
    });
    const HT<4> mask = frame_mask(s[0], s[3], {s[3], s[3] * 3 / 4});
    add("mul_mask_", ps, 2 * n * F4, 0, [=] {
      return inplace([](auto d, auto& x, const auto& m) { ops::mul_mask_(d, x, m); }, randn(s, 4), mask);
    });
    add("masked_copy", ps, 2 * n * F4, 0, [=] {
      return functional([](auto d, const auto& x, const auto& m) { return ops::masked_copy(d, x, m); }, randn(s, 5), mask);
    });
    add("add_channel_bias_", ps, 2 * n * F4, 0, [=] {
      return inplace([](auto d, auto& x, const auto& b) { ops::add_channel_bias_(d, x, b); }, randn(s, 6),
                     randn(A2{s[0], s[1]}, 7));
    });
    add("add_", ps, 3 * n * F4, n, [=] {
      return inplace([](auto d, auto& x, const auto& y) { ops::add_(d, x, y); }, randn(s, 8), randn(s, 9));
    });
    add("scale_", ps, 2 * n * F4, n, [=] {
      return inplace([](auto d, auto& x, const auto& g) { ops::scale_(d, x, g); }, randn(s, 10), randn(std::array<std::size_t, 1>{1}, 11));
    });
    add("mul_scalar_", ps, 2 * n * F4, n, [=] {
      return inplace([](auto d, auto& x) { ops::mul_scalar_(d, x, 0.7f); }, randn(s, 12));
    });
    add("affine_", ps, 2 * n * F4, 2 * n, [=] {
      return inplace([](auto d, auto& x) { ops::affine_(d, x, 2.0f, -1.0f); }, randn(s, 13));
    });
    add("divide", ps, 2 * n * F4, n, [=] {
      return functional([](auto d, const auto& x) { return ops::divide(d, x, 1.7f); }, randn(s, 14));
    });
    add("concat_channels", ps + "+" + std::to_string(s[1] / 2 + 1), 2 * (n + n / 2) * F4, 0, [=] {
      const A4 s2{s[0], s[1] / 2 + 1, s[2], s[3]};
      return functional([](auto d, const auto& a, const auto& b) { return ops::concat_channels(d, a, b); }, randn(s, 15),
                        randn(s2, 16));
    });
    add("slice_channels", ps + "[1:" + std::to_string(s[1] - 1) + "]", 2 * n * F4, 0, [=] {
      return functional([=](auto d, const auto& x) { return ops::slice_channels(d, x, 1, s[1] - 1); }, randn(s, 17));
    });
    add("reshape", ps, 2 * n * F4, 0, [=] {
      return functional([=](auto d, const auto& x) { return ops::reshape<float, 3>(d, x, A3{s[0] * s[1], s[2], s[3]}); },
                        randn(s, 18));
    });
    add("nchw_to_tokens", ps, 2 * n * F4, 0, [=] {
      return functional([](auto d, const auto& x) { return ops::nchw_to_tokens(d, x); }, randn(s, 19));
    });
    add("tokens_to_nchw", ps, 2 * n * F4, 0, [=] {
      return functional([=](auto d, const auto& x) { return ops::tokens_to_nchw(d, x, s[2], s[3]); },
                        randn(A3{s[0], s[2] * s[3], s[1]}, 20));
    });
    add("upsample_nearest", ps + "->2x", 5 * n * F4, 0, [=] {
      return functional([=](auto d, const auto& x) { return ops::upsample_nearest(d, x, 2 * s[2], 2 * s[3]); }, randn(s, 21));
    });
    if (!perf)
      add("upsample_nearest", ps + "->" + dims({s[2] * 2 + 1, s[3] + 3}), 0, 0, [=] {
        return functional([=](auto d, const auto& x) { return ops::upsample_nearest(d, x, 2 * s[2] + 1, s[3] + 3); },
                          randn(s, 22));
      });
    // ---- normalisation ----
    for (int groups : {8, static_cast<int>(s[1] >= 32 ? 32 : 1)}) {
      if (s[1] % static_cast<std::size_t>(groups)) continue;
      const std::string pg = ps + " G" + std::to_string(groups);
      const HT<1> gamma = randn(std::array<std::size_t, 1>{s[1]}, 30, 0.2f, 1.0f), beta = randn(std::array<std::size_t, 1>{s[1]}, 31, 0.2f);
      const HT<1> none = HT<1>::from_shape({0});
      // A large common offset: a sum-of-squares variance would lose every digit here.
      add("group_norm", pg, 2 * n * F4, 0, [=] {
        return functional([=](auto d, const auto& x, const auto& g, const auto& b) { return ops::group_norm(d, x, groups, g, b, 1e-5); },
                          randn(s, 32, 2.0f, 100.0f), gamma, beta);
      });
      add("group_norm(no affine)", pg, 2 * n * F4, 0, [=] {
        return functional([=](auto d, const auto& x, const auto& g) { return ops::group_norm(d, x, groups, g, g, 1e-6); },
                          randn(s, 33, 3.0f, -1.0f), none);
      });
      add("group_norm_mish_mask_", pg, 2 * n * F4, 0, [=] {
        return inplace([=](auto d, auto& x, const auto& g, const auto& b, const auto& m) {
          ops::group_norm_mish_mask_(d, x, groups, g, b, 1e-5, m);
        }, randn(s, 34, 1.5f), gamma, beta, mask);
      });
      add("group_norm_mish_mask_bias_mask_", pg, 2 * n * F4, 0, [=] {
        return inplace([=](auto d, auto& x, const auto& g, const auto& b, const auto& m, const auto& tb) {
          ops::group_norm_mish_mask_bias_mask_(d, x, groups, g, b, 1e-5, m, tb);
        }, randn(s, 35, 1.5f), gamma, beta, mask, randn(A2{s[0], s[1]}, 36));
      });
      add("group_norm_silu", pg, 2 * n * F4, 0, [=] {
        return functional([=](auto d, const auto& x, const auto& g, const auto& b) { return ops::group_norm_silu(d, x, groups, g, b, 1e-5); },
                          randn(s, 37, 2.0f), gamma, beta);
      });
      add("ada_group_norm_silu", pg, 2 * n * F4, 0, [=] {
        return functional([=](auto d, const auto& x, const auto& ss) { return ops::ada_group_norm_silu(d, x, groups, ss, 1e-5); },
                          randn(s, 38, 2.0f), randn(A2{s[0], 2 * s[1]}, 39, 0.3f));
      });
    }
    add("scale_shift_", ps, 2 * n * F4, 2 * n, [=] {
      return inplace([](auto d, auto& x, const auto& ss) { ops::scale_shift_(d, x, ss); }, randn(s, 40),
                     randn(A2{s[0], 2 * s[1]}, 41, 0.3f));
    });
    (void)p;
  }

  // ---- masks and small layout ops (U-Net bookkeeping) ----
  for (std::size_t W : perf ? std::vector<std::size_t>{512} : std::vector<std::size_t>{24, 23, 1}) {
    const std::size_t B = perf ? 16 : 3;
    const HT<4> m = frame_mask(B, W, {W, W / 2 + 1, 1});
    const std::string ps = dims({B, W});
    add("subsample_time", ps, 1.5 * B * W * F4, 0, [=] {
      return functional([](auto d, const auto& x) { return ops::subsample_time(d, x); }, m);
    });
    add("frame_mask_to_tokens", ps + " H5", 6.0 * B * W * F4, 0, [=] {
      return functional([](auto d, const auto& x) { return ops::frame_mask_to_tokens(d, x, 5); }, m);
    });
    const A3 s3{B, std::size_t(perf ? 80 : 7), W};
    const HT<3> m3 = db::ops::reshape<float, 3>(Cpu{}, m, A3{B, 1, W});
    const double n3 = static_cast<double>(numel(s3));
    add("mul_mask3_", dims({s3[0], s3[1], s3[2]}), 2 * n3 * F4, n3, [=] {
      return inplace([](auto d, auto& x, const auto& mk) { ops::mul_mask3_(d, x, mk); }, randn(s3, 50), m3);
    });
    for (std::size_t frames : {W + 5, W / 2 + 1}) {
      add("resize_time", dims({s3[0], s3[1], s3[2]}) + "->" + std::to_string(frames), 2 * n3 * F4, 0, [=] {
        return functional([=](auto d, const auto& x) { return ops::resize_time(d, x, frames); }, randn(s3, 51));
      });
    }
    const A4 dst{B, 5, s3[1], W};
    add("set_channel_", dims({dst[0], dst[1], dst[2], dst[3]}) + " c3", 2 * n3 * F4, 0, [=] {
      return inplace([](auto d, auto& x, const auto& src) { ops::set_channel_(d, x, 3, src); }, randn(dst, 52), randn(s3, 53));
    });
    add("set_channel_repeat_time_", dims({dst[0], dst[1], dst[2], dst[3]}) + " c1", n3 * F4, 0, [=] {
      return inplace([](auto d, auto& x, const auto& v) { ops::set_channel_repeat_time_(d, x, 1, v); }, randn(dst, 54),
                     randn(A2{B, s3[1]}, 55));
    });
    add("set_channel_repeat_freq_", dims({dst[0], dst[1], dst[2], dst[3]}) + " c4 i2", n3 * F4, 0, [=] {
      return inplace([](auto d, auto& x, const auto& src) { ops::set_channel_repeat_freq_(d, x, 4, src, 2); },
                     randn(dst, 56), randn(A3{B, 3, W}, 57));
    });
    add("gradtts_step_ (ODE)", dims({s3[0], s3[1], s3[2]}), 5 * n3 * F4, 6 * n3, [=] {
      const HT<3> none = HT<3>::from_shape({0, 0, 0});
      return inplace([](auto d, auto& x, const auto& mu, const auto& est, const auto& mk, const auto& nz) {
        ops::gradtts_step_(d, x, mu, est, mk, nz, 12.5f, 0.1f);
      }, randn(s3, 58), randn(s3, 59), randn(s3, 60), m3, none);
    });
    add("gradtts_step_ (SDE)", dims({s3[0], s3[1], s3[2]}), 6 * n3 * F4, 8 * n3, [=] {
      return inplace([](auto d, auto& x, const auto& mu, const auto& est, const auto& mk, const auto& nz) {
        ops::gradtts_step_(d, x, mu, est, mk, nz, 12.5f, 0.1f);
      }, randn(s3, 61), randn(s3, 62), randn(s3, 63), m3, randn(s3, 64));
    });
    add("gradtts_forward_diffusion", dims({s3[0], s3[1], s3[2]}), 5 * n3 * F4, 8 * n3, [=] {
      HT<1> t = HT<1>::from_shape({B});
      for (std::size_t b = 0; b < B; ++b) t(b) = 0.05f + 0.9f * static_cast<float>(b) / static_cast<float>(B);
      return functional([](auto d, const auto& x0, const auto& mk, const auto& mu, const auto& tt, const auto& z) {
        return ops::gradtts_forward_diffusion(d, x0, mk, mu, tt, z, 0.05f, 20.0f);
      }, randn(s3, 65), m3, randn(s3, 66), t, randn(s3, 67));
    });
  }

  // ---- sequences ----
  {
    const std::size_t B = perf ? 16 : 2, L = perf ? 64 : 7, C = perf ? 256 : 12;
    const A3 s{B, L, C};
    const double n = static_cast<double>(numel(s));
    add("prepend_mean_token", dims({B, L, C}), 2 * n * F4, n, [=] {
      return functional([](auto d, const auto& x, const auto& pos) { return ops::prepend_mean_token(d, x, pos); }, randn(s, 70),
                        randn(A2{1, C}, 71));
    });
    add("first_token", dims({B, L, C}), 2.0 * B * C * F4, 0, [=] {
      return functional([](auto d, const auto& x) { return ops::first_token(d, x); }, randn(s, 72));
    });
    add("concat_cols", dims({B, C}) + "+" + std::to_string(C / 2 + 3), 4.0 * B * C * F4, 0, [=] {
      return functional([](auto d, const auto& a, const auto& b) { return ops::concat_cols(d, a, b); }, randn(A2{B, C}, 73),
                        randn(A2{B, C / 2 + 3}, 74));
    });
    add("keep_mask_to_bias", dims({B, L}), 2.0 * B * L * F4, 0, [=] {
      return functional([](auto d, const auto& k) { return ops::keep_mask_to_bias(d, k); }, keep_mask(B, L, {L, L / 2}));
    });
    const std::size_t R = perf ? 16 * 10240 : 1000;
    for (std::size_t D : perf ? std::vector<std::size_t>{128, 256} : std::vector<std::size_t>{64, 33, 320}) {
      const HT<1> g = randn(std::array<std::size_t, 1>{D}, 75, 0.2f, 1.0f), b = randn(std::array<std::size_t, 1>{D}, 76, 0.2f);
      add("layer_norm", dims({R, D}), 2.0 * R * D * F4, 0, [=] {
        return functional([](auto d, const auto& x, const auto& gg, const auto& bb) { return ops::layer_norm(d, x, gg, bb, 1e-5); },
                          randn(A2{R, D}, 77, 2.0f, 10.0f), g, b);
      });
      add("geglu", dims({R, 2 * D}), 3.0 * R * D * F4, 0, [=] {
        return functional([](auto d, const auto& x) { return ops::geglu(d, x); }, randn(A2{R, 2 * D}, 78, 2.0f));
      });
    }
    add("layer_norm(no affine)", dims({R, 48}), 2.0 * R * 48 * F4, 0, [=] {
      const HT<1> none = HT<1>::from_shape({0});
      return functional([](auto d, const auto& x, const auto& nn) { return ops::layer_norm(d, x, nn, nn, 1e-6); },
                        randn(A2{R, 48}, 79), none);
    });
    const HT<2> table = randn(A2{std::size_t(perf ? 300 : 9), C}, 80);
    add("gather_rows", dims({B, C}), 2.0 * B * C * F4, 0, [=] {
      std::vector<std::int64_t> ids;
      for (std::size_t b = 0; b < B; ++b) ids.push_back(static_cast<std::int64_t>((b * 7) % table.shape(0)));
      return functional([ids](auto d, const auto& t) { return ops::gather_rows(d, t, ids); }, table);
    });
  }

  // ---- host scalars (each synchronises) ----
  for (std::size_t n : perf ? std::vector<std::size_t>{16 * 64 * 80 * 512} : std::vector<std::size_t>{1, 1000, 300001}) {
    const std::array<std::size_t, 1> s{n};
    add("find_non_finite (finite)", std::to_string(n), n * F4, 0, [=] {
      return functional([](auto d, const auto& x) { return ops::find_non_finite(d, x); }, randn(s, 90));
    });
    add("find_non_finite (NaN, Inf)", std::to_string(n), n * F4, 0, [=] {
      HT<1> x = randn(s, 91);
      x(n - 1) = INFINITY;
      x(n / 2) = std::nanf("");
      if (n > 2) x(n - 2) = -INFINITY;
      return functional([](auto d, const auto& y) { return ops::find_non_finite(d, y); }, x);
    });
    add("first_value", std::to_string(n), F4, 0, [=] {
      return functional([](auto d, const auto& x) { return ops::first_value(d, x); }, randn(s, 92));
    });
  }

  // ---- linear and convolutions ----
  struct LinearShape {
    std::size_t rows, in, out;
    bool bias;
  };
  const std::vector<LinearShape> linears =
      perf ? std::vector<LinearShape>{{16, 256, 1024, true}, {16 * 1280, 256, 256, false}, {16 * 10240, 128, 1024, true}}
           : std::vector<LinearShape>{{1, 5, 3, true}, {7, 64, 256, false}, {300, 33, 65, true}};
  for (const auto& l : linears) {
    add("linear", dims({l.rows, l.in}) + "->" + std::to_string(l.out) + (l.bias ? "" : " nobias"),
        static_cast<double>(l.rows * l.in + l.in * l.out + l.rows * l.out) * F4, 2.0 * l.rows * l.in * l.out, [=] {
          return functional([](auto d, const auto& x, const auto& w, const auto& b) { return ops::linear(d, x, w, b); },
                            randn(A2{l.rows, l.in}, 100), randn(A2{l.out, l.in}, 101, 0.1f),
                            randn(std::array<std::size_t, 1>{l.bias ? l.out : 0}, 102));
        });
  }
  struct ConvShape {
    std::size_t B, Cin, H, W, Cout, k;
    int stride, padding;
    bool bias;
  };
  const std::vector<ConvShape> convs =
      perf ? std::vector<ConvShape>{{16, 64, 80, 512, 64, 3, 1, 1, true},
                                    {16, 128, 40, 256, 128, 3, 1, 1, true},
                                    {16, 256, 20, 128, 256, 3, 1, 1, true},
                                    {16, 64, 80, 512, 64, 3, 2, 1, true},
                                    {16, 64, 80, 512, 128, 1, 1, 0, true}}
           : std::vector<ConvShape>{{2, 3, 16, 24, 8, 3, 1, 1, true},  {1, 8, 15, 23, 8, 3, 2, 1, true},
                                    {3, 12, 9, 11, 20, 1, 1, 0, true}, {2, 6, 9, 11, 5, 1, 1, 0, false},
                                    {1, 4, 10, 13, 6, 5, 1, 2, true},  {2, 5, 12, 12, 7, 3, 2, 0, false},
                                    {1, 2, 4, 5, 3, 3, 1, 0, true},    {2, 16, 12, 20, 24, 3, 1, 1, true}};  // last: CPU Winograd
  for (const auto& c : convs) {
    const std::size_t Ho = (c.H + 2 * c.padding - c.k) / c.stride + 1, Wo = (c.W + 2 * c.padding - c.k) / c.stride + 1;
    const std::string ps = dims({c.B, c.Cin, c.H, c.W}) + " -> " + std::to_string(c.Cout) + " k" + std::to_string(c.k) + " s" +
                           std::to_string(c.stride) + " p" + std::to_string(c.padding) + (c.bias ? "" : " nobias");
    const double flops = 2.0 * c.B * c.Cin * c.Cout * c.k * c.k * Ho * Wo;
    const double bytes = static_cast<double>(c.B * c.Cin * c.H * c.W + c.Cout * c.Cin * c.k * c.k + c.B * c.Cout * Ho * Wo) * F4;
    const HT<4> w = randn(A4{c.Cout, c.Cin, c.k, c.k}, 110, 0.1f);
    const HT<1> b = randn(std::array<std::size_t, 1>{c.bias ? c.Cout : 0}, 111);
    add_conv("conv2d", ps, bytes, flops, [=] {
      return functional([=](auto d, const auto& x, const auto& ww, const auto& bb) { return ops::conv2d(d, x, ww, bb, c.stride, c.padding); },
                        randn(A4{c.B, c.Cin, c.H, c.W}, 112), w, b);
    });
    if (!perf || c.k == 1)
      add_conv("conv2d_add_", ps, bytes + static_cast<double>(c.B * c.Cout * Ho * Wo) * F4, flops, [=] {
        return inplace([=](auto d, auto& out, const auto& x, const auto& ww, const auto& bb) {
          ops::conv2d_add_(d, x, ww, bb, c.stride, c.padding, out);
        }, randn(A4{c.B, c.Cout, Ho, Wo}, 113), randn(A4{c.B, c.Cin, c.H, c.W}, 114), w, b);
      });
  }
  const std::vector<ConvShape> deconvs =
      perf ? std::vector<ConvShape>{{16, 64, 40, 256, 64, 4, 2, 1, true}, {16, 128, 20, 128, 128, 4, 2, 1, true}}
           : std::vector<ConvShape>{{2, 6, 5, 7, 4, 4, 2, 1, true}, {1, 3, 4, 6, 5, 3, 2, 1, false},
                                    {2, 4, 3, 5, 3, 2, 2, 0, true}, {1, 5, 6, 7, 4, 3, 1, 1, true}};
  for (const auto& c : deconvs) {
    const std::size_t Ho = (c.H - 1) * c.stride - 2 * c.padding + c.k, Wo = (c.W - 1) * c.stride - 2 * c.padding + c.k;
    const std::string ps = dims({c.B, c.Cin, c.H, c.W}) + " -> " + std::to_string(c.Cout) + " k" + std::to_string(c.k) + " s" +
                           std::to_string(c.stride) + " p" + std::to_string(c.padding) + (c.bias ? "" : " nobias");
    add_conv("conv_transpose2d", ps,
        static_cast<double>(c.B * c.Cin * c.H * c.W + c.Cout * c.Cin * c.k * c.k + c.B * c.Cout * Ho * Wo) * F4,
        2.0 * c.B * c.Cin * c.Cout * c.k * c.k * c.H * c.W, [=] {
          return functional([=](auto d, const auto& x, const auto& ww, const auto& bb) {
            return ops::conv_transpose2d(d, x, ww, bb, c.stride, c.padding);
          }, randn(A4{c.B, c.Cin, c.H, c.W}, 120), randn(A4{c.Cin, c.Cout, c.k, c.k}, 121, 0.1f),
                            randn(std::array<std::size_t, 1>{c.bias ? c.Cout : 0}, 122));
        });
  }

  // ---- Grad-TTS LinearAttention ----
  struct LaShape {
    std::size_t B, C, H, W;
    int heads, dh;
  };
  const std::vector<LaShape> las = perf ? std::vector<LaShape>{{16, 64, 80, 512, 4, 32}, {16, 256, 20, 128, 4, 32}}
                                        : std::vector<LaShape>{{2, 16, 8, 12, 4, 32}, {1, 6, 5, 7, 2, 8}, {3, 32, 3, 1, 1, 16},
                                                                  {2, 8, 17, 485, 2, 8}};  // last: 8245 positions, split-K with a tail
  for (const auto& l : las) {
    const std::size_t hidden = static_cast<std::size_t>(l.heads) * l.dh, N = l.H * l.W;
    const double flops = 2.0 * l.B * N * (hidden * l.C /* k */ + hidden * l.C /* P */ + l.C * l.C /* Mix x */);
    add("linear_attention_block", dims({l.B, l.C, l.H, l.W}) + " heads" + std::to_string(l.heads) + " dh" + std::to_string(l.dh),
        2.0 * l.B * l.C * N * F4, flops, [=] {
          return functional([=](auto d, const auto& x, const auto& wqkv, const auto& wout, const auto& bout) {
            return ops::linear_attention_block(d, x, wqkv, wout, bout, l.heads, l.dh);
          }, randn(A4{l.B, l.C, l.H, l.W}, 130), randn(A4{3 * hidden, l.C, 1, 1}, 131, 0.2f),
                            randn(A4{l.C, hidden, 1, 1}, 132, 0.1f), randn(std::array<std::size_t, 1>{l.C}, 133));
        });
  }

  // ---- softmax attention ----
  struct AttnShape {
    std::size_t B, Nq, Nk;
    int heads, dh, dv;
    bool bias;
  };
  const std::vector<AttnShape> attns =
      perf ? std::vector<AttnShape>{{1, 1024, 1024, 4, 32, 32, false}, {1, 4096, 4096, 4, 64, 64, false},
                                    {16, 1280, 16, 4, 64, 64, true}, {1, 10240, 10240, 4, 32, 32, false}}
           : std::vector<AttnShape>{{1, 100, 100, 4, 32, 32, false}, {2, 77, 16, 2, 16, 16, true},
                                    {2, 33, 45, 3, 8, 8, true},      {1, 70, 1, 2, 64, 64, false},
                                    {2, 65, 130, 2, 64, 48, true},   {1, 40, 50, 2, 80, 80, true},
                                    {1, 64, 64, 1, 5, 7, false}};
  for (const auto& a : attns) {
    const std::string ps = dims({a.B, a.Nq, a.Nk}) + " heads" + std::to_string(a.heads) + " dh" + std::to_string(a.dh) +
                           (a.dv != a.dh ? " dv" + std::to_string(a.dv) : "") + (a.bias ? " bias" : "");
    const double flops = 2.0 * a.B * a.heads * a.Nq * a.Nk * (a.dh + a.dv);
    const double bytes = static_cast<double>(a.B) * (a.Nq * a.heads * (a.dh + a.dv) + a.Nk * a.heads * (a.dh + a.dv)) * F4;
    const HT<3> q = randn(A3{a.B, a.Nq, a.heads * static_cast<std::size_t>(a.dh)}, 140);
    const HT<3> k = randn(A3{a.B, a.Nk, a.heads * static_cast<std::size_t>(a.dh)}, 141);
    const HT<3> v = randn(A3{a.B, a.Nk, a.heads * static_cast<std::size_t>(a.dv)}, 142);
    const HT<2> bias = a.bias ? db::ops::keep_mask_to_bias(Cpu{}, keep_mask(a.B, a.Nk, {a.Nk, a.Nk / 2 + 1}))
                              : HT<2>::from_shape({0, 0});
    const float scale = 1.0f / std::sqrt(static_cast<float>(a.dh));
    const int heads = a.heads;
    // Both devices run the named variant (the CPU's are each other's reference).
    add("attention_naive", ps, bytes, flops, [=] {
      return functional([=](auto d, const auto& qq, const auto& kk, const auto& vv, const auto& bb) {
        return ops::attention_naive(d, qq, kk, vv, heads, scale, bb);
      }, q, k, v, bias);
    });
    add("attention_streaming", ps, bytes, flops, [=] {
      return functional([=](auto d, const auto& qq, const auto& kk, const auto& vv, const auto& bb) {
        return ops::attention_streaming(d, qq, kk, vv, heads, scale, bb);
      }, q, k, v, bias);
    });
    // The CUDA-only register-blocked kernel, against the CPU's naive attention.
    add("attention_tiled", ps, bytes, flops, [=] {
      return functional([=](auto d, const auto& qq, const auto& kk, const auto& vv, const auto& bb) {
        if constexpr (std::is_same<decltype(d), Cpu>::value) return ops::attention_naive(d, qq, kk, vv, heads, scale, bb);
        else return ops::attention_tiled(d, qq, kk, vv, heads, scale, bb);
      }, q, k, v, bias);
    });
  }

  // ---- embeddings and scheduler steps ----
  {
    const std::size_t B = perf ? 16 : 5;
    HT<1> t = HT<1>::from_shape({B});
    for (std::size_t b = 0; b < B; ++b) t(b) = 0.013f + 0.97f * static_cast<float>(b) / static_cast<float>(B);
    HT<1> steps = HT<1>::from_shape({B});
    for (std::size_t b = 0; b < B; ++b) steps(b) = static_cast<float>((b * 211) % 1000);
    for (int dim : {64, 16})
      for (double sc : {1000.0, 1.0})
        add("sinusoidal_pos_emb", dims({B}) + " dim" + std::to_string(dim) + " scale" + std::to_string(static_cast<int>(sc)), 0, 0, [=] {
          return functional([=](auto d, const auto& tt) { return ops::sinusoidal_pos_emb(d, tt, dim, sc); }, t);
        });
    for (int ch : {32, 33, 320})
      for (bool flip : {true, false})
        for (float shift : {0.0f, 1.0f})
          add("timestep_embedding", dims({B}) + " ch" + std::to_string(ch) + (flip ? " flip" : "") + " shift" + std::to_string(static_cast<int>(shift)),
              0, 0, [=] {
                return functional([=](auto d, const auto& tt) { return ops::timestep_embedding(d, tt, ch, flip, shift, 10000.0f); },
                                  steps);
              });
    for (const A4& s : maps) {
      const std::string ps = dims({s[0], s[1], s[2], s[3]});
      const double n = static_cast<double>(numel(s));
      add("epsilon_step (DDIM, clip)", ps, 3 * n * F4, 8 * n, [=] {
        const HT<4> none = HT<4>::from_shape({0, 0, 0, 0});
        return functional([](auto d, const auto& e, const auto& x, const auto& nz) {
          return ops::epsilon_step(d, e, x, nz, 0.8f, 0.6f, 1.0f, 0.9f, 0.0f, 0.43f, 0.0f);
        }, randn(s, 150), randn(s, 151, 2.0f), none);
      });
      add("epsilon_step (DDPM, noise)", ps, 4 * n * F4, 10 * n, [=] {
        return functional([](auto d, const auto& e, const auto& x, const auto& nz) {
          return ops::epsilon_step(d, e, x, nz, 0.3f, 0.95f, 0.0f, 0.2f, 0.7f, 0.0f, 0.1f);
        }, randn(s, 152), randn(s, 153, 2.0f), randn(s, 154));
      });
      add("euler_step", ps, 3 * n * F4, 6 * n, [=] {
        return functional([](auto d, const auto& e, const auto& x) { return ops::euler_step(d, e, x, 3.2f, -0.4f); },
                          randn(s, 155), randn(s, 156, 3.0f));
      });
    }
  }
  return cases;
}

}  // namespace dbops
