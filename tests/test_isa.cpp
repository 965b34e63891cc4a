// Run-time CPU dispatch (ops/cpu/isa.hpp, target.hpp, kernels.hpp): every copy of the kernels
// this CPU can run computes what the baseline copy (generic) computes, op by op, on awkward
// shapes (odd widths, vector tails, channel counts that are not multiples of the register
// blocks); the choice of copy by DIFFBLOCKS_CPU_ISA and set_isa(), and its errors.
//
// The parity suites also run under DIFFBLOCKS_CPU_ISA=generic and =avx2 (tests/CMakeLists.txt,
// isa_generic_parity / isa_avx2_parity): the listener below skips such a run (exit 77) on a CPU
// that lacks the instruction set it names.
#define CATCH_CONFIG_EXTERNAL_INTERFACES  // Catch2 v2: the listener's base class
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "cli_helpers.hpp"
#include "helpers.hpp"

namespace {

using namespace dbt;
namespace cpu = db::ops::cpu;
using cpu::Isa;
template <class T, std::size_t N>
using Tensor = db::Tensor<T, N>;

/// A run of the parity suites under DIFFBLOCKS_CPU_ISA=<set this CPU lacks> is skipped, not
/// failed: CI machines differ.
struct SkipUnsupportedIsa : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testRunStarting(const Catch::TestRunInfo&) override {
    const char* env = std::getenv("DIFFBLOCKS_CPU_ISA");
    if (!env || !*env) return;
    for (Isa i : cpu::kAllIsas)
      if (std::string(env) == cpu::isa_name(i) && !cpu::isa_supported(i)) {
        std::printf("SKIPPED: DIFFBLOCKS_CPU_ISA=%s, which this CPU does not support (supported: %s)\n", env,
                    cpu::supported_isa_names().c_str());
        std::fflush(stdout);
        std::_Exit(77);
      }
  }
};

/// Restores the instruction set in use when a test section ends (also by a failed REQUIRE).
struct IsaGuard {
  Isa saved = cpu::isa();
  ~IsaGuard() { cpu::set_isa(saved); }
};

template <class T, std::size_t N>
Tensor<T, N> random_tensor(const std::array<std::size_t, N>& shape, std::uint64_t seed, double scale = 1.0) {
  db::Rng rng(seed);
  auto t = Tensor<T, N>::from_shape(shape);
  for (auto& v : t) v = static_cast<T>(scale * rng.normal());
  return t;
}

/// The lowest instruction set that runs here: generic, unless this is a one-copy build
/// (DIFFBLOCKS_CPU_DISPATCH=0), where there is nothing to compare.
Isa baseline_isa() {
  for (Isa i : cpu::kAllIsas)
    if (cpu::isa_supported(i)) return i;
  return Isa::Generic;
}

/// The result of `op` under every instruction set this CPU supports agrees with the generic
/// copy's within 1e-5 * max(1, max|generic|) (ten times inside the accuracy contract: they run
/// the same algorithm, only the order of additions and the exp/reciprocal estimates differ).
template <class Op>
void require_isas_agree(const std::string& what, Op op) {
  const IsaGuard guard;
  const Isa base = baseline_isa();
  cpu::set_isa(base);
  const auto want = op();
  for (Isa i : cpu::kAllIsas) {
    if (i == base || !cpu::isa_supported(i)) continue;
    cpu::set_isa(i);
    const auto got = op();
    REQUIRE(got.size() == want.size());
    const Diff d = diff(got, want);
    INFO(what << ", " << cpu::isa_name(i) << " vs " << cpu::isa_name(base) << ": max|err| = " << d.max_abs_err
              << ", max|" << cpu::isa_name(base) << "| = " << d.max_abs_ref);
    REQUIRE(d.max_abs_err <= 1e-5 * std::max(1.0, d.max_abs_ref));
  }
}

}  // namespace

CATCH_REGISTER_LISTENER(SkipUnsupportedIsa)

// ---- choosing the instruction set ----------------------------------------------------------

TEST_CASE("isa: the best supported instruction set is chosen, set_isa switches and refuses", "[isa]") {
  const IsaGuard guard;
  REQUIRE(cpu::isa_supported(Isa::Generic) == cpu::isa_compiled(Isa::Generic));  // the baseline always runs
  REQUIRE(cpu::isa_supported(cpu::best_isa()));
  const char* env = std::getenv("DIFFBLOCKS_CPU_ISA");
  if (!env || !*env) REQUIRE(guard.saved == cpu::best_isa());
  for (Isa i : cpu::kAllIsas) {
    if (!cpu::isa_supported(i)) {
      REQUIRE_THROWS_AS(cpu::set_isa(i), db::ConfigError);
      continue;
    }
    cpu::set_isa(i);
    REQUIRE(cpu::isa() == i);
    REQUIRE(std::string(cpu::isa_name()) == cpu::isa_name(i));
    REQUIRE(cpu::isa_report().rfind(cpu::isa_name(i), 0) == 0);
  }
  // Not an instruction set of this build: refused, and the active one stays.
  cpu::set_isa(baseline_isa());
  try {
    cpu::set_isa(static_cast<Isa>(7));
    FAIL("set_isa accepted an unknown instruction set");
  } catch (const db::ConfigError& e) {
    REQUIRE(std::string(e.what()) ==
            "set_isa(unknown): not compiled in this build; supported here: " + cpu::supported_isa_names());
  }
  REQUIRE(cpu::isa() == baseline_isa());
  // The features a copy needs are implied by its being supported.
  const cpu::CpuFeatures& f = cpu::cpu_features();
  if (cpu::isa_supported(Isa::Avx512)) REQUIRE((f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl && f.avx2));
  if (cpu::isa_supported(Isa::Avx2)) REQUIRE((f.avx2 && f.fma && f.f16c));
}

TEST_CASE("isa: DIFFBLOCKS_CPU_ISA values, bad ones and ones the CPU lacks", "[isa]") {
  Isa out = Isa::Avx512;
  // Accepted names (any case) of supported sets.
  auto any_cpu = [](Isa) { return true; };
  REQUIRE(cpu::detail::parse_isa_env("generic", out, any_cpu).empty());
  REQUIRE(out == Isa::Generic);
  REQUIRE(cpu::detail::parse_isa_env("AVX2", out, any_cpu).empty());
  REQUIRE(out == Isa::Avx2);
  // Not a name: the variable, the value and the accepted names.
  const std::string bad = cpu::detail::parse_isa_env("avx3", out);
  REQUIRE(bad == "DIFFBLOCKS_CPU_ISA='avx3' is not an instruction set; accepted: generic, avx2, avx512");
  // A set the CPU lacks (a CPU with AVX2 only, whatever this one has): named with what is supported.
  auto avx2_cpu = [](Isa i) { return i != Isa::Avx512; };
  const std::string lacking = cpu::detail::parse_isa_env("avx512", out, avx2_cpu);
  REQUIRE(lacking == "DIFFBLOCKS_CPU_ISA='avx512': this CPU does not support it; supported here: generic, avx2");
}

#ifdef DIFFBLOCKS_CLI
TEST_CASE("isa: the CLI reports the instruction set, and DIFFBLOCKS_CPU_ISA errors at first use", "[isa][cli]") {
  // The CLI inherits this process's environment; the variable is set around each command.
  const char* outer = std::getenv("DIFFBLOCKS_CPU_ISA");
  const std::string saved = outer ? outer : "";
  auto with_env = [&](const char* value, const std::string& args) {
    if (value)
      ::setenv("DIFFBLOCKS_CPU_ISA", value, 1);
    else
      ::unsetenv("DIFFBLOCKS_CPU_ISA");
    const CliResult r = cli(args, 120);
    if (outer)
      ::setenv("DIFFBLOCKS_CPU_ISA", saved.c_str(), 1);
    else
      ::unsetenv("DIFFBLOCKS_CPU_ISA");
    return r;
  };
  const auto best = with_env(nullptr, "--version");
  REQUIRE(best.status == 0);
  REQUIRE(best.out.find("cpu kernels: " + std::string(cpu::isa_name(cpu::best_isa())) + " (supported: ") !=
          std::string::npos);
  if (cpu::isa_supported(Isa::Generic)) {  // the CLI is built like this binary
    const auto generic = with_env("generic", "--version");
    REQUIRE(generic.status == 0);
    REQUIRE(generic.out.find("cpu kernels: generic (") != std::string::npos);
  }
  // A bad value fails the first command that runs a kernel (or asks which one runs), on one line.
  const std::string output = tmp_path("isa_bad_env.safetensors");
  const auto bad = with_env("avx3", "run --model " + fixture("origin_d") + " --inputs " +
                                        fixture("origin_d/inputs.safetensors") + " --output " + output);
  INFO("stderr: " << bad.err);
  REQUIRE(bad.status == 1);
  REQUIRE(bad.err.find("DIFFBLOCKS_CPU_ISA='avx3' is not an instruction set; accepted: generic, avx2, avx512") !=
          std::string::npos);
  REQUIRE(bad.err.find('\n') == bad.err.size() - 1);
  REQUIRE_FALSE(exists(output));
}
#endif

// ---- every copy agrees with the generic one ------------------------------------------------

TEST_CASE("isa: convolutions (Winograd, im2col, 1x1, strided, transposed) agree on every ISA", "[isa][conv]") {
  const int threads = db::get_num_threads();
  db::set_num_threads(std::max(threads, 2));  // the per-thread Winograd schedule needs two
  struct Case {
    std::size_t b, ci, co, h, w;
  };
  // Winograd: odd sizes, one and 8/16 tiles a row (the AVX-512 transforms' groups), a cut last
  // tile, many bands (per-thread schedule); channel counts off the 8/6/4-row panels.
  const Case cases3[] = {{2, 13, 11, 7, 37}, {1, 8, 9, 9, 29}, {1, 16, 10, 5, 64}, {2, 17, 19, 66, 50},
                         {2, 16, 16, 80, 128}, {1, 9, 8, 1, 1}};
  std::uint64_t seed = 1;
  for (const Case& c : cases3) {
    const auto x = random_tensor<float, 4>({c.b, c.ci, c.h, c.w}, seed++);
    const auto w = random_tensor<float, 4>({c.co, c.ci, 3, 3}, seed++, 0.2);
    const auto bias = random_tensor<float, 1>({c.co}, seed++);
    const std::string shape = std::to_string(c.ci) + "->" + std::to_string(c.co) + " " + std::to_string(c.h) + "x" +
                              std::to_string(c.w);
    require_isas_agree("winograd 3x3 " + shape, [&] { return db::ops::conv2d(db::Cpu{}, x, w, bias, 1, 1); });
    cpu::set_conv_algorithm(cpu::ConvAlgorithm::Im2col);
    require_isas_agree("im2col 3x3 " + shape, [&] { return db::ops::conv2d(db::Cpu{}, x, w, bias, 1, 1); });
    cpu::set_conv_algorithm(cpu::ConvAlgorithm::Auto);
  }
  {  // 1x1 (in place as the GEMM's right side), and accumulated into an output
    const auto x = random_tensor<float, 4>({2, 5, 7, 33}, seed++);
    const auto w = random_tensor<float, 4>({7, 5, 1, 1}, seed++);
    const auto bias = random_tensor<float, 1>({7}, seed++);
    require_isas_agree("1x1", [&] { return db::ops::conv2d(db::Cpu{}, x, w, bias, 1, 0); });
    require_isas_agree("1x1 accumulated", [&] {
      auto out = random_tensor<float, 4>({2, 7, 7, 33}, 99);
      db::ops::conv2d_add_(db::Cpu{}, x, w, bias, 1, 0, out);
      return out;
    });
  }
  {  // strided 3x3 (Downsample), odd input
    const auto x = random_tensor<float, 4>({2, 10, 11, 23}, seed++);
    const auto w = random_tensor<float, 4>({13, 10, 3, 3}, seed++, 0.2);
    const auto bias = random_tensor<float, 1>({13}, seed++);
    require_isas_agree("3x3 stride 2", [&] { return db::ops::conv2d(db::Cpu{}, x, w, bias, 2, 1); });
  }
  // Transposed: k 4 s 2 p 1 (Upsample: every phase the same grid) and k 3 s 2 p 1 (uneven phases).
  for (int k : {4, 3}) {
    const auto x = random_tensor<float, 4>({2, 9, 5, 13}, seed++);
    const auto w = random_tensor<float, 4>({9, 7, std::size_t(k), std::size_t(k)}, seed++, 0.2);
    const auto bias = random_tensor<float, 1>({7}, seed++);
    require_isas_agree("conv_transpose k" + std::to_string(k),
                       [&] { return db::ops::conv_transpose2d(db::Cpu{}, x, w, bias, 2, 1); });
  }
  db::set_num_threads(threads);
}

TEST_CASE("isa: GEMMs and Linear (one row, a few, threaded row blocks) agree on every ISA", "[isa][gemm]") {
  std::uint64_t seed = 100;
  for (std::size_t rows : {std::size_t(1), std::size_t(3), std::size_t(13), std::size_t(200)}) {
    const auto x = random_tensor<float, 2>({rows, 37}, seed++);
    const auto w = random_tensor<float, 2>({45, 37}, seed++);
    const auto b = random_tensor<float, 1>({45}, seed++);
    require_isas_agree("linear " + std::to_string(rows) + " rows", [&] { return db::ops::linear(db::Cpu{}, x, w, b); });
  }
  {  // a rank-3 batch of token sequences
    const auto x = random_tensor<float, 3>({2, 75, 19}, seed++);
    const auto w = random_tensor<float, 2>({33, 19}, seed++);
    const auto none = Tensor<float, 1>::from_shape({0});
    require_isas_agree("linear tokens", [&] { return db::ops::linear(db::Cpu{}, x, w, none); });
  }
  // The raw products, with K past one pass of the packed kernel and strides wider than the rows.
  for (int M : {1, 7, 29})
    for (int N : {3, 33, 70})
      for (int K : {5, 300}) {
        const std::string shape = std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K);
        const auto A = random_tensor<float, 2>({std::size_t(M), std::size_t(K + 2)}, seed++);
        const auto At = random_tensor<float, 2>({std::size_t(K), std::size_t(M + 1)}, seed++);
        const auto B = random_tensor<float, 2>({std::size_t(K), std::size_t(N + 3)}, seed++);
        const auto Bt = random_tensor<float, 2>({std::size_t(N), std::size_t(K + 1)}, seed++);
        const auto C0 = random_tensor<float, 2>({std::size_t(M), std::size_t(N)}, seed++);
        require_isas_agree("gemm " + shape, [&] {
          auto C = C0;
          cpu::gemm(M, N, K, A.data(), K + 2, B.data(), N + 3, C.data(), N, /*accumulate=*/true);
          return C;
        });
        require_isas_agree("gemm_bt " + shape, [&] {
          auto C = C0;
          cpu::gemm_bt(M, N, K, A.data(), K + 2, Bt.data(), K + 1, C.data(), N);
          return C;
        });
        require_isas_agree("gemm_at " + shape, [&] {
          auto C = C0;
          cpu::gemm_at(M, N, K, At.data(), M + 1, B.data(), N + 3, C.data(), N);
          return C;
        });
      }
}

TEST_CASE("isa: softmax attention (naive, streaming, masked) and LinearAttention agree on every ISA",
          "[isa][attention]") {
  std::uint64_t seed = 300;
  // 2 heads of 12 (queries/keys) and 10 (values): no head is a whole vector; 37 queries, 70 keys.
  const auto q = random_tensor<float, 3>({2, 37, 24}, seed++);
  const auto k = random_tensor<float, 3>({2, 70, 24}, seed++);
  const auto v = random_tensor<float, 3>({2, 70, 20}, seed++);
  auto bias = Tensor<float, 2>::from_shape({2, 70});
  for (std::size_t j = 0; j < 70; ++j) {
    bias(0, j) = 0.0f;
    bias(1, j) = j < 51 ? 0.0f : -10000.0f;  // the second item's last keys are padding
  }
  const auto none = Tensor<float, 2>::from_shape({0});
  const Tensor<float, 2>* biases[] = {&none, &bias};
  for (const Tensor<float, 2>* b : biases) {
    const std::string m = b->size() ? " masked" : "";
    require_isas_agree("attention naive" + m,
                       [&] { return db::ops::attention_naive(db::Cpu{}, q, k, v, 2, 0.3f, *b); });
    require_isas_agree("attention streaming" + m,
                       [&] { return db::ops::attention_streaming(db::Cpu{}, q, k, v, 2, 0.3f, *b); });
  }
  // Grad-TTS LinearAttention: the core on qkv, and the whole block (odd plane, 2 heads of 16).
  const auto qkv = random_tensor<float, 4>({2, 3 * 2 * 16, 5, 23}, seed++);
  require_isas_agree("linear_attention", [&] { return db::ops::linear_attention(db::Cpu{}, qkv, 2, 16); });
  const auto x = random_tensor<float, 4>({2, 12, 5, 23}, seed++);
  const auto w_qkv = random_tensor<float, 4>({3 * 2 * 16, 12, 1, 1}, seed++, 0.3);
  const auto w_out = random_tensor<float, 4>({12, 2 * 16, 1, 1}, seed++, 0.3);
  const auto b_out = random_tensor<float, 1>({12}, seed++);
  require_isas_agree("linear_attention_block",
                     [&] { return db::ops::linear_attention_block(db::Cpu{}, x, w_qkv, w_out, b_out, 2, 16); });
}

TEST_CASE("isa: norms, activations, element-wise ops and the content hash agree on every ISA", "[isa][norm]") {
  std::uint64_t seed = 500;
  const auto x = random_tensor<float, 4>({2, 12, 5, 37}, seed++, 2.0);
  const auto gamma = random_tensor<float, 1>({12}, seed++), beta = random_tensor<float, 1>({12}, seed++);
  const auto none = Tensor<float, 1>::from_shape({0});
  auto mask = Tensor<float, 4>::from_shape({2, 1, 1, 37});
  for (std::size_t w = 0; w < 37; ++w) mask(0, 0, 0, w) = 1.0f, mask(1, 0, 0, w) = w < 29 ? 1.0f : 0.0f;
  const auto tbias = random_tensor<float, 2>({2, 12}, seed++);
  require_isas_agree("group_norm", [&] { return db::ops::group_norm(db::Cpu{}, x, 4, gamma, beta, 1e-5); });
  require_isas_agree("group_norm without affine", [&] { return db::ops::group_norm(db::Cpu{}, x, 3, none, none, 1e-6); });
  require_isas_agree("group_norm_mish_mask_", [&] {
    auto y = x;
    db::ops::group_norm_mish_mask_(db::Cpu{}, y, 4, gamma, beta, 1e-5, mask);
    return y;
  });
  require_isas_agree("group_norm_mish_mask_bias_mask_", [&] {
    auto y = x;
    db::ops::group_norm_mish_mask_bias_mask_(db::Cpu{}, y, 4, gamma, beta, 1e-5, mask, tbias);
    return y;
  });
  require_isas_agree("group_norm_silu", [&] { return db::ops::group_norm_silu(db::Cpu{}, x, 4, gamma, beta, 1e-5); });
  // A long group (past the 2048-value chunks of the moments) with a large mean.
  const auto big = random_tensor<float, 4>({1, 4, 33, 129}, seed++, 3.0);
  require_isas_agree("group_norm long", [&] {
    auto y = big;
    for (auto& v : y) v += 50.0f;
    return db::ops::group_norm(db::Cpu{}, y, 2, none, none, 1e-5);
  });
  const auto tokens = random_tensor<float, 3>({2, 9, 45}, seed++);
  const auto lg = random_tensor<float, 1>({45}, seed++), lb = random_tensor<float, 1>({45}, seed++);
  require_isas_agree("layer_norm", [&] { return db::ops::layer_norm(db::Cpu{}, tokens, lg, lb, 1e-5); });
  // Activations over [-30, 30] (every branch and tail), lengths off the vector widths, and
  // large enough (> 16 K) to run on the pool.
  for (std::size_t n : {std::size_t(13), std::size_t(40001)}) {
    auto a = Tensor<float, 1>::from_shape({n});
    for (std::size_t i = 0; i < n; ++i) a(i) = -30.0f + 60.0f * float(i) / float(n);
    require_isas_agree("mish", [&] { auto y = a; db::ops::mish_(db::Cpu{}, y); return y; });
    require_isas_agree("silu", [&] { auto y = a; db::ops::silu_(db::Cpu{}, y); return y; });
    require_isas_agree("gelu", [&] { auto y = a; db::ops::gelu_(db::Cpu{}, y); return y; });
  }
  const auto gg = random_tensor<float, 2>({7, 2 * 19}, seed++);
  require_isas_agree("geglu", [&] { return db::ops::geglu(db::Cpu{}, gg); });
  // The streaming ops (kernels/elementwise.inl), serial and (large) on the pool.
  for (std::size_t w : {std::size_t(37), std::size_t(1001)}) {
    const auto a = random_tensor<float, 4>({2, 12, 5, w}, seed++), b = random_tensor<float, 4>({2, 12, 5, w}, seed++);
    auto m = Tensor<float, 4>::from_shape({2, 1, 1, w});
    for (std::size_t t = 0; t < w; ++t) m(0, 0, 0, t) = 1.0f, m(1, 0, 0, t) = t % 3 ? 1.0f : 0.0f;
    const auto ss = random_tensor<float, 2>({2, 24}, seed++);
    const auto g = random_tensor<float, 1>({1}, seed++);
    require_isas_agree("masked_copy", [&] { return db::ops::masked_copy(db::Cpu{}, a, m); });
    require_isas_agree("mul_mask_, add_, add_channel_bias_, scale_, scale_shift_, affine_", [&] {
      auto y = a;
      db::ops::mul_mask_(db::Cpu{}, y, m);
      db::ops::add_(db::Cpu{}, y, b);
      db::ops::add_channel_bias_(db::Cpu{}, y, tbias);
      db::ops::scale_(db::Cpu{}, y, g);
      db::ops::scale_shift_(db::Cpu{}, y, ss);
      db::ops::affine_(db::Cpu{}, y, 2.0f, -1.0f);
      db::ops::mul_scalar_(db::Cpu{}, y, 0.5f);
      return y;
    });
    require_isas_agree("nchw_to_tokens, tokens_to_nchw", [&] {
      const auto t = db::ops::nchw_to_tokens(db::Cpu{}, a);
      auto back = db::ops::tokens_to_nchw(db::Cpu{}, t, 5, w);
      db::ops::add_(db::Cpu{}, back, a);  // 2a, via both layouts
      return back;
    });
  }
  // The weight cache's hash is integer arithmetic: the same value on every copy.
  std::vector<float> wv(300037);
  for (std::size_t i = 0; i < wv.size(); ++i) wv[i] = float(i % 11) * 0.25f;
  const IsaGuard guard;
  cpu::set_isa(baseline_isa());
  const std::uint64_t h = cpu::content_hash(wv.data(), wv.size() * sizeof(float));
  const std::uint64_t h_small = cpu::content_hash(wv.data(), 1001 * sizeof(float));
  for (Isa i : cpu::kAllIsas)
    if (cpu::isa_supported(i)) {
      cpu::set_isa(i);
      REQUIRE(cpu::content_hash(wv.data(), wv.size() * sizeof(float)) == h);
      REQUIRE(cpu::content_hash(wv.data(), 1001 * sizeof(float)) == h_small);
    }
}

TEST_CASE("isa: the Origin U-Net on every ISA, the weight cache keyed by ISA", "[isa][origin]") {
  // One model, run on each copy in turn: the derived weights (Winograd-transformed, packed) of one
  // copy's layout must never be served to another's.
  db::OriginConfig cfg = small_origin_config();
  cfg.groups = 4;
  db::GradLogPEstimator2d<> net(cfg);
  db::Rng rng(7);
  net.visit([&](const std::string&, auto& t) {
    for (auto& v : t) v = static_cast<float>(0.2 * rng.normal());
  });
  const auto x = random_tensor<float, 3>({2, 16, 36}, 1), mu = random_tensor<float, 3>({2, 16, 36}, 2);
  auto mask = Tensor<float, 3>::from_shape({2, 1, 36});
  for (std::size_t t = 0; t < 36; ++t) mask(0, 0, t) = 1.0f, mask(1, 0, t) = t < 28 ? 1.0f : 0.0f;
  auto tt = Tensor<float, 1>::from_shape({2});
  tt(0) = 0.3f, tt(1) = 0.8f;
  require_isas_agree("Origin forward", [&] { return net.forward(x, mask, mu, tt); });
}

TEST_CASE("isa: float32 <-> bf16 / f16 conversions give core/half.hpp's bits on every copy", "[isa][half]") {
  const IsaGuard guard;
  // Every 16-bit pattern, and 2^20 float32 patterns over the whole range plus every tie around
  // the halves' values' neighbourhoods (round to nearest even decides there).
  auto h = Tensor<db::bf16, 1>::from_shape({65536});
  auto hf = Tensor<db::f16, 1>::from_shape({65536});
  for (std::uint32_t i = 0; i < 65536; ++i) {
    h(i) = db::bf16::from_bits(static_cast<std::uint16_t>(i));
    hf(i) = db::f16::from_bits(static_cast<std::uint16_t>(i));
  }
  std::vector<float> fs;
  for (std::uint32_t b = 0; b < (1u << 20); ++b) {
    const std::uint32_t bits = b * 4096u + (b * 2654435761u & 4095u);
    float f;
    std::memcpy(&f, &bits, 4);
    fs.push_back(f);
  }
  for (std::uint32_t e = 0; e < 65536; e += 7) {  // the exact midpoints between neighbouring halves
    fs.push_back(0.5f * (db::bf16_bits_to_float(static_cast<std::uint16_t>(e)) + db::bf16_bits_to_float(static_cast<std::uint16_t>(e + 1))));
    fs.push_back(0.5f * (db::f16_bits_to_float(static_cast<std::uint16_t>(e)) + db::f16_bits_to_float(static_cast<std::uint16_t>(e + 1))));
  }
  auto f = Tensor<float, 1>::from_shape({fs.size()});
  std::copy(fs.begin(), fs.end(), f.begin());
  auto same = [](float a, float b) {  // bit for bit; NaN for NaN (the payload's quiet bit may be set)
    std::uint32_t x, y;
    std::memcpy(&x, &a, 4);
    std::memcpy(&y, &b, 4);
    return std::isnan(a) ? std::isnan(b) && std::signbit(a) == std::signbit(b) : x == y;
  };
  for (Isa i : {Isa::Generic, Isa::Avx2, Isa::Avx512}) {
    if (!cpu::isa_supported(i)) continue;
    cpu::set_isa(i);
    INFO(cpu::isa_name(i));
    const auto wb = db::ops::cast<float>(db::Cpu{}, h), wf = db::ops::cast<float>(db::Cpu{}, hf);
    std::int64_t bad_bf16 = -1, bad_f16 = -1;  // the first pattern that differs
    for (std::uint32_t k = 0; k < 65536; ++k) {
      if (bad_bf16 < 0 && !same(wb(k), db::bf16_bits_to_float(static_cast<std::uint16_t>(k)))) bad_bf16 = k;
      if (bad_f16 < 0 && !same(wf(k), db::f16_bits_to_float(static_cast<std::uint16_t>(k)))) bad_f16 = k;
    }
    CHECK(bad_bf16 == -1);
    CHECK(bad_f16 == -1);
    const auto nb = db::ops::cast<db::bf16>(db::Cpu{}, f);
    const auto nf = db::ops::cast<db::f16>(db::Cpu{}, f);
    bad_bf16 = bad_f16 = -1;  // the first float32 whose rounding differs
    for (std::size_t k = 0; k < fs.size(); ++k) {
      if (bad_bf16 < 0 && nb(k).bits != db::float_to_bf16_bits(fs[k]) &&
          !same(db::bf16_bits_to_float(nb(k).bits), db::bf16_bits_to_float(db::float_to_bf16_bits(fs[k]))))
        bad_bf16 = static_cast<std::int64_t>(k);
      if (bad_f16 < 0 && nf(k).bits != db::float_to_f16_bits(fs[k]) &&
          !same(db::f16_bits_to_float(nf(k).bits), db::f16_bits_to_float(db::float_to_f16_bits(fs[k]))))
        bad_f16 = static_cast<std::int64_t>(k);
    }
    INFO("bf16: first differing float " << (bad_bf16 < 0 ? 0.0f : fs[bad_bf16]) << ", f16: " << (bad_f16 < 0 ? 0.0f : fs[bad_f16]));
    CHECK(bad_bf16 == -1);
    CHECK(bad_f16 == -1);
  }
}

// ---- half tensors: the kernels that read and write them in place ------------------------------

namespace {

/// x widened to float32 / y rounded to H, with the scalar conversions of core/half.hpp (not the
/// library's SIMD casts, which are what is under test here).
template <class H, std::size_t N>
Tensor<float, N> widen_ref(const Tensor<H, N>& x) {
  auto y = Tensor<float, N>::from_shape(x.shape());
  for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = static_cast<float>(x.data()[i]);
  return y;
}
template <class H, std::size_t N>
Tensor<H, N> narrow_ref(const Tensor<float, N>& x) {
  auto y = Tensor<H, N>::from_shape(x.shape());
  for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = H(x.data()[i]);
  return y;
}
template <class H, std::size_t N>
Tensor<H, N> random_half(const std::array<std::size_t, N>& shape, std::uint64_t seed, double scale = 1.0) {
  return narrow_ref<H>(random_tensor<float, N>(shape, seed, scale));
}
/// Index of the first element whose bits differ, or -1.
template <class H, std::size_t N>
std::ptrdiff_t first_bit_difference(const Tensor<H, N>& a, const Tensor<H, N>& b) {
  REQUIRE(a.shape() == b.shape());
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a.data()[i].bits != b.data()[i].bits) return static_cast<std::ptrdiff_t>(i);
  return -1;
}

/// On every instruction set: `half_op()` (the op on half tensors) gives the bits of `float_op()`
/// (the float32 op on the same values, widened) rounded once.
template <class HalfOp, class FloatOp>
void require_rounded_float32(const std::string& what, HalfOp half_op, FloatOp float_op) {
  const IsaGuard guard;
  for (Isa i : cpu::kAllIsas) {
    if (!cpu::isa_supported(i)) continue;
    cpu::set_isa(i);
    const auto got = half_op();
    using H = typename std::decay_t<decltype(got)>::value_type;
    const auto want = narrow_ref<H>(float_op());
    const std::ptrdiff_t at = first_bit_difference(got, want);
    INFO(what << " on " << cpu::isa_name(i) << ": first differing element " << at << " of " << got.size()
              << (at >= 0 ? ": " + std::to_string(float(got.data()[at])) + " vs " + std::to_string(float(want.data()[at]))
                          : std::string()));
    REQUIRE(at == -1);
  }
}

template <class H>
void check_stored_convolutions() {
  const int threads = db::get_num_threads();
  db::set_num_threads(std::max(threads, 2));
  struct Case {
    std::size_t b, ci, co, h, w;
  };
  // As the float32 test above: both transform paths (groups of 16 tiles, and the row path),
  // both schedules (per-thread bands, shared bands), cut tiles.
  const Case cases3[] = {{2, 13, 11, 7, 37}, {1, 16, 10, 5, 64}, {2, 17, 19, 66, 50}, {2, 16, 16, 80, 128}, {1, 9, 8, 1, 1}};
  std::uint64_t seed = 101;
  for (const Case& c : cases3) {
    const auto x = random_half<H, 4>({c.b, c.ci, c.h, c.w}, seed++);
    const auto w = random_half<H, 4>({c.co, c.ci, 3, 3}, seed++, 0.2);
    const auto bias = random_half<H, 1>({c.co}, seed++);
    const std::string shape = std::to_string(c.ci) + "->" + std::to_string(c.co) + " " + std::to_string(c.h) + "x" +
                              std::to_string(c.w);
    auto reference = [&] { return db::ops::conv2d(db::Cpu{}, widen_ref(x), widen_ref(w), widen_ref(bias), 1, 1); };
    require_rounded_float32("winograd 3x3 (a form per call) " + shape,
                            [&] { return db::ops::conv2d(db::Cpu{}, x, w, bias, 1, 1); }, reference);
    db::ops::PreparedWeights<H, db::Cpu> slot;  // the kept form: made by the first call, used by the second
    for (int call = 0; call < 2; ++call)
      require_rounded_float32("winograd 3x3 (kept form, call " + std::to_string(call) + ") " + shape,
                              [&] { return db::ops::conv2d(db::Cpu{}, x, w, bias, 1, 1, slot); }, reference);
  }
  {  // 1x1 accumulated into a half output: pixel chunks (two of them and a cut one), two items
    const auto x = random_half<H, 4>({2, 8, 80, 72}, seed++);
    const auto w = random_half<H, 4>({64, 8, 1, 1}, seed++);
    const auto bias = random_half<H, 1>({64}, seed++);
    const auto out0 = random_half<H, 4>({2, 64, 80, 72}, seed++);
    db::ops::PreparedWeights<H, db::Cpu> slot;
    require_rounded_float32(
        "1x1 accumulated",
        [&] {
          auto out = out0;
          db::ops::conv2d_add_(db::Cpu{}, x, w, bias, 1, 0, out, slot);
          return out;
        },
        [&] {
          auto out = widen_ref(out0);
          db::ops::conv2d_add_(db::Cpu{}, widen_ref(x), widen_ref(w), widen_ref(bias), 1, 0, out);
          return out;
        });
  }
  // The patch GEMM (x widened as its patches are gathered, each result rounded as it is stored):
  // strided 3x3 (Downsample), a plain 1x1 (gathered, not read in place), 5x5; then transposed
  // convolutions: k4 s2 p1 (Upsample: every phase the same grid, rows interleaved in scratch)
  // and k3 s2 p1 (phases of different sizes, scattered stores), with and without a kept form.
  // Shapes of several GEMM tiles per item (the last one cut), two items, no bias for one.
  struct Strided {
    std::size_t ci, co, h, w, k;
    int stride, padding;
    bool bias;
  };
  const Strided strided[] = {{10, 13, 11, 23, 3, 2, 1, true},
                             {16, 24, 40, 130, 3, 2, 1, false},
                             {12, 7, 9, 33, 1, 1, 0, true},
                             {5, 6, 13, 21, 5, 1, 2, true}};
  for (const Strided& c : strided) {
    const auto x = random_half<H, 4>({2, c.ci, c.h, c.w}, seed++);
    const auto w = random_half<H, 4>({c.co, c.ci, c.k, c.k}, seed++, 0.2);
    const auto bias = c.bias ? random_half<H, 1>({c.co}, seed++) : Tensor<H, 1>::from_shape({0});
    const std::string what = std::to_string(c.k) + "x" + std::to_string(c.k) + " stride " + std::to_string(c.stride) + " " +
                             std::to_string(c.ci) + "->" + std::to_string(c.co);
    auto reference = [&] {
      return db::ops::conv2d(db::Cpu{}, widen_ref(x), widen_ref(w), widen_ref(bias), c.stride, c.padding);
    };
    require_rounded_float32(what, [&] { return db::ops::conv2d(db::Cpu{}, x, w, bias, c.stride, c.padding); }, reference);
    db::ops::PreparedWeights<H, db::Cpu> slot;
    require_rounded_float32(what + " (kept form)",
                            [&] { return db::ops::conv2d(db::Cpu{}, x, w, bias, c.stride, c.padding, slot); }, reference);
  }
  struct Transposed {
    std::size_t ci, co, h, w, k;
  };
  const Transposed transposed[] = {{16, 12, 20, 70, 4}, {9, 11, 7, 19, 3}, {8, 8, 1, 1, 4}};
  for (const Transposed& c : transposed) {
    const auto x = random_half<H, 4>({2, c.ci, c.h, c.w}, seed++);
    const auto w = random_half<H, 4>({c.ci, c.co, c.k, c.k}, seed++, 0.2);
    const auto bias = random_half<H, 1>({c.co}, seed++);
    const std::string what = "transposed k" + std::to_string(c.k) + " s2 " + std::to_string(c.ci) + "->" +
                             std::to_string(c.co) + " " + std::to_string(c.h) + "x" + std::to_string(c.w);
    auto reference = [&] { return db::ops::conv_transpose2d(db::Cpu{}, widen_ref(x), widen_ref(w), widen_ref(bias), 2, 1); };
    require_rounded_float32(what, [&] { return db::ops::conv_transpose2d(db::Cpu{}, x, w, bias, 2, 1); }, reference);
    db::ops::PreparedWeights<H, db::Cpu> slot;
    for (int call = 0; call < 2; ++call)
      require_rounded_float32(what + " (kept form, call " + std::to_string(call) + ")",
                              [&] { return db::ops::conv_transpose2d(db::Cpu{}, x, w, bias, 2, 1, slot); }, reference);
  }
  db::set_num_threads(threads);
}

template <class H>
void check_stored_norms_and_attention() {
  std::uint64_t seed = 201;
  // GroupNorm and its fusions: rows of 37 values (a vector and a tail), 2 items, 4 groups.
  const auto x = random_half<H, 4>({2, 8, 3, 37}, seed++, 3.0);
  const auto gamma = random_half<H, 1>({8}, seed++), beta = random_half<H, 1>({8}, seed++);
  auto mask = Tensor<H, 4>::from_shape({2, 1, 1, 37});
  for (std::size_t i = 0; i < 37; ++i) mask(0, 0, 0, i) = mask(1, 0, 0, i) = H(i < 30 ? 1.0f : 0.0f);
  const auto tbias = random_half<H, 2>({2, 8}, seed++);
  require_rounded_float32(
      "group_norm", [&] { return db::ops::group_norm(db::Cpu{}, x, 4, gamma, beta, 1e-5); },
      [&] { return db::ops::group_norm(db::Cpu{}, widen_ref(x), 4, widen_ref(gamma), widen_ref(beta), 1e-5); });
  // The activations alone: the float32 range functions on widened runs of 512 (3 runs and a tail).
  const std::pair<const char*, void (*)(const db::Cpu&, Tensor<H, 4>&)> half_acts[] = {
      {"mish_", [](const db::Cpu& d, Tensor<H, 4>& t) { db::ops::mish_(d, t); }},
      {"silu_", [](const db::Cpu& d, Tensor<H, 4>& t) { db::ops::silu_(d, t); }},
      {"gelu_", [](const db::Cpu& d, Tensor<H, 4>& t) { db::ops::gelu_(d, t); }}};
  const std::pair<const char*, void (*)(const db::Cpu&, Tensor<float, 4>&)> float_acts[] = {
      {"mish_", [](const db::Cpu& d, Tensor<float, 4>& t) { db::ops::mish_(d, t); }},
      {"silu_", [](const db::Cpu& d, Tensor<float, 4>& t) { db::ops::silu_(d, t); }},
      {"gelu_", [](const db::Cpu& d, Tensor<float, 4>& t) { db::ops::gelu_(d, t); }}};
  // GEGLU: rows of 2 x 1100 values (two runs of 512 and a tail in each half), gate and a widened.
  const auto gx = random_half<H, 3>({2, 3, 2200}, seed++, 2.0);
  require_rounded_float32(
      "geglu", [&] { return db::ops::geglu(db::Cpu{}, gx); }, [&] { return db::ops::geglu(db::Cpu{}, widen_ref(gx)); });
  for (int a = 0; a < 3; ++a)
    require_rounded_float32(
        half_acts[a].first,
        [&] {
          auto y = x;
          half_acts[a].second(db::Cpu{}, y);
          return y;
        },
        [&] {
          auto y = widen_ref(x);
          float_acts[a].second(db::Cpu{}, y);
          return y;
        });
  require_rounded_float32(
      "group_norm_mish_mask_",
      [&] {
        auto y = x;
        db::ops::group_norm_mish_mask_(db::Cpu{}, y, 4, gamma, beta, 1e-5, mask);
        return y;
      },
      [&] {
        auto y = widen_ref(x);
        db::ops::group_norm_mish_mask_(db::Cpu{}, y, 4, widen_ref(gamma), widen_ref(beta), 1e-5, widen_ref(mask));
        return y;
      });
  require_rounded_float32(
      "group_norm_mish_mask_bias_mask_",
      [&] {
        auto y = x;
        db::ops::group_norm_mish_mask_bias_mask_(db::Cpu{}, y, 4, gamma, beta, 1e-5, mask, tbias);
        return y;
      },
      [&] {
        auto y = widen_ref(x);
        db::ops::group_norm_mish_mask_bias_mask_(db::Cpu{}, y, 4, widen_ref(gamma), widen_ref(beta), 1e-5,
                                                 widen_ref(mask), widen_ref(tbias));
        return y;
      });

  // LayerNorm: rows widened into scratch; rows of 300 values (vectors and a tail), affine and not.
  const auto tokens = random_half<H, 3>({2, 7, 300}, seed++, 3.0);
  const auto lg = random_half<H, 1>({300}, seed++), lb = random_half<H, 1>({300}, seed++);
  require_rounded_float32(
      "layer_norm", [&] { return db::ops::layer_norm(db::Cpu{}, tokens, lg, lb, 1e-5); },
      [&] { return db::ops::layer_norm(db::Cpu{}, widen_ref(tokens), widen_ref(lg), widen_ref(lb), 1e-5); });
  const auto none = Tensor<H, 1>::from_shape({0});
  require_rounded_float32(
      "layer_norm (no affine)", [&] { return db::ops::layer_norm(db::Cpu{}, tokens, none, none, 1e-6); },
      [&] { return db::ops::layer_norm(db::Cpu{}, widen_ref(tokens), widen_ref(none), widen_ref(none), 1e-6); });

  // LinearAttention's block on a half x: chunks of positions (several, the last cut) and runs of
  // the k~ x^T reduction; its sums run in another order than the float32 kernel's, so the
  // result is compared within the half type's resolution instead of bit for bit.
  const IsaGuard guard;
  const auto xa = random_half<H, 4>({2, 64, 80, 65}, seed++);
  const auto w_qkv = random_half<H, 4>({3 * 4 * 32, 64, 1, 1}, seed++, 0.1);
  const auto w_out = random_half<H, 4>({64, 4 * 32, 1, 1}, seed++, 0.1);
  const auto b_out = random_half<H, 1>({64}, seed++);
  const double ulp = std::is_same<H, db::bf16>::value ? 1.0 / 128 : 1.0 / 1024;
  for (Isa i : cpu::kAllIsas) {
    if (!cpu::isa_supported(i)) continue;
    cpu::set_isa(i);
    const auto got = widen_ref(db::ops::linear_attention_block(db::Cpu{}, xa, w_qkv, w_out, b_out, 4, 32));
    const auto want = db::ops::linear_attention_block(db::Cpu{}, widen_ref(xa), widen_ref(w_qkv), widen_ref(w_out),
                                                      widen_ref(b_out), 4, 32);
    REQUIRE(got.shape() == want.shape());
    std::size_t worst = 0;
    double worst_err = 0;
    for (std::size_t k = 0; k < got.size(); ++k) {
      const double err = std::fabs(double(got.data()[k]) - double(want.data()[k])) / std::max(1e-3, std::fabs(double(want.data()[k])));
      if (err > worst_err) worst_err = err, worst = k;
    }
    INFO("linear_attention_block on " << cpu::isa_name(i) << ": worst relative error " << worst_err << " at " << worst
                                      << " (" << got.data()[worst] << " vs " << want.data()[worst] << ")");
    REQUIRE(worst_err <= ulp);  // one rounding of (nearly) the same float32 value: at most a half-type ulp
  }
}

/// The element-wise ops on half tensors (vector runs, kernels/elementwise.inl) against the
/// device-generic functors (CpuOps::Reference: one value at a time in float32, rounded once), on
/// every copy: the same expression, the same bits. Rows of 37 (a vector and a tail), runs of
/// more than one 512-value run.
template <class H>
void check_stored_elementwise() {
  std::uint64_t seed = 301;
  const auto x = random_half<H, 4>({2, 3, 5, 601}, seed++, 2.0);
  const auto y = random_half<H, 4>({2, 3, 5, 601}, seed++, 2.0);
  auto mask = Tensor<H, 4>::from_shape({2, 1, 1, 601});
  for (std::size_t i = 0; i < 601; ++i) mask(0, 0, 0, i) = mask(1, 0, 0, i) = H(i < 500 ? 1.0f : 0.0f);
  mask(1, 0, 0, 7) = H(0.5f);
  const auto bias = random_half<H, 2>({2, 3}, seed++), ss = random_half<H, 2>({2, 6}, seed++, 0.5);
  const auto g = random_half<H, 1>({1}, seed++);
  const db::Cpu fast(db::CpuOptions{}), reference([] {
    db::CpuOptions o;
    o.ops = db::CpuOps::Reference;
    return o;
  }());
  struct Op {
    const char* name;
    std::function<Tensor<H, 4>(const db::Cpu&)> run;
  };
  const Op ops[] = {
      {"mul_mask_", [&](const db::Cpu& d) { auto t = x; db::ops::mul_mask_(d, t, mask); return t; }},
      {"masked_copy", [&](const db::Cpu& d) { return db::ops::masked_copy(d, x, mask); }},
      {"add_channel_bias_", [&](const db::Cpu& d) { auto t = x; db::ops::add_channel_bias_(d, t, bias); return t; }},
      {"add_", [&](const db::Cpu& d) { auto t = x; db::ops::add_(d, t, y); return t; }},
      {"add_div_", [&](const db::Cpu& d) { auto t = x; db::ops::add_div_(d, t, y, H(1.5f)); return t; }},
      {"scale_", [&](const db::Cpu& d) { auto t = x; db::ops::scale_(d, t, g); return t; }},
      {"scale_shift_", [&](const db::Cpu& d) { auto t = x; db::ops::scale_shift_(d, t, ss); return t; }},
  };
  const IsaGuard guard;
  for (Isa i : cpu::kAllIsas) {
    if (!cpu::isa_supported(i)) continue;
    cpu::set_isa(i);
    for (const Op& op : ops) {
      const auto got = op.run(fast), want = op.run(reference);
      const std::ptrdiff_t at = first_bit_difference(got, want);
      INFO(op.name << " on " << cpu::isa_name(i) << ": first differing element " << at);
      REQUIRE(at == -1);
    }
  }
  // And they are not the identity: the op changed x.
  auto t = x;
  db::ops::add_(fast, t, y);
  REQUIRE(first_bit_difference(t, x) != -1);
}

/// A half Linear with a token-wise x (rows >= cpu::kLinearPackFrom) runs on the half GEMM
/// (vdpbf16ps for bf16 on an AVX512-BF16 CPU, else the copy's widening path): each output is the
/// exact sum in double, rounded to H, within one half ulp (the float32 accumulation adds less
/// than that); rows in blocks of 128 and a cut one, an odd K (padded pairs), a cut column block.
template <class H>
void check_half_linear() {
  std::uint64_t seed = 401;
  // Token-wise (blocks of 128 rows and a cut one), a few rows, and one (a time embedding's MLP).
  const std::array<std::size_t, 2> shapes[] = {{2, 150}, {2, 3}, {1, 1}};
  for (const auto& [B, T] : shapes) {
    const std::size_t in = 71, out = 45;
    const auto x = random_half<H, 3>({B, T, in}, seed++);
    const auto w = random_half<H, 2>({out, in}, seed++, 0.2);
    const auto bias = random_half<H, 1>({out}, seed++);
    const double ulp = std::is_same<H, db::bf16>::value ? 1.0 / 256 : 1.0 / 2048;  // half an ulp, relative
    const IsaGuard guard;
    for (Isa i : cpu::kAllIsas) {
      if (!cpu::isa_supported(i)) continue;
      cpu::set_isa(i);
      db::ops::PreparedWeights<H, db::Cpu> slot;
      for (int call = 0; call < 2; ++call) {  // the first call packs W^T, the second uses it
        const auto y = db::ops::linear(db::Cpu{}, x, w, bias, slot);
        REQUIRE(y.shape() == (std::array<std::size_t, 3>{B, T, out}));
        REQUIRE(slot.bytes() > 0);
        double worst = 0;
        for (std::size_t b = 0; b < B; ++b)
          for (std::size_t t = 0; t < T; ++t)
            for (std::size_t o = 0; o < out; ++o) {
              double ref = float(bias(o));
              for (std::size_t k = 0; k < in; ++k) ref += double(float(x(b, t, k))) * double(float(w(o, k)));
              const double err = std::fabs(double(float(y(b, t, o))) - ref) - ulp * std::fabs(ref);
              worst = std::max(worst, err);
            }
        INFO("half Linear, " << B * T << " rows, on " << cpu::isa_name(i) << " ("
                              << cpu::half_gemm_path_name(cpu::half_gemm_path<H>()) << "), call " << call
                              << ": worst error beyond half an ulp " << worst);
        REQUIRE(worst <= 1e-5);
      }
    }
  }
}

/// Softmax attention on half q, k, v: the float32 streaming kernel reading and writing H (packing
/// widens, each output rounded once) gives the float32 result on the widened inputs, rounded, bit
/// for bit; on the copies where bf16 runs its vdpbf16ps kernel instead (its weights are rounded to
/// bf16: tests/test_gemm_half.cpp bounds it) bf16 is not compared here.
template <class H>
void check_stored_attention() {
  std::uint64_t seed = 501;
  // Query tiles with a cut one, key blocks with a cut one, 2 heads of 24 / 20 channels, 2 items.
  const std::size_t B = 2, Nq = 70, Nk = 600, heads = 2, dh = 24, dv = 20;
  const auto q = random_half<H, 3>({B, Nq, heads * dh}, seed++);
  const auto k = random_half<H, 3>({B, Nk, heads * dh}, seed++);
  const auto v = random_half<H, 3>({B, Nk, heads * dv}, seed++);
  auto bias = random_half<H, 2>({B, Nk}, seed++);
  for (std::size_t j = 590; j < Nk; ++j) bias(1, j) = H(-std::numeric_limits<float>::infinity());  // masked keys
  const auto none = Tensor<H, 2>::from_shape({0, 0});
  const float scale = 1.0f / std::sqrt(float(dh));
  const IsaGuard guard;
  for (Isa i : cpu::kAllIsas) {
    if (!cpu::isa_supported(i)) continue;
    cpu::set_isa(i);
    if (std::is_same<H, db::bf16>::value && cpu::bf16_attention_native()) continue;
    const Tensor<H, 2>* const biases[] = {&bias, &none};
    for (const Tensor<H, 2>* b : biases) {
      const std::string what = std::string(b == &bias ? "biased" : "unbiased") + " attention on " + cpu::isa_name(i);
      const auto want = narrow_ref<H>(db::ops::attention_streaming(db::Cpu{}, widen_ref(q), widen_ref(k), widen_ref(v),
                                                                   static_cast<int>(heads), scale, widen_ref(*b)));
      const auto streaming = db::ops::attention_streaming(db::Cpu{}, q, k, v, static_cast<int>(heads), scale, *b);
      const auto automatic = db::ops::attention(db::Cpu{}, q, k, v, static_cast<int>(heads), scale, *b);  // 600 keys: streaming
      INFO(what << ": first differing element " << first_bit_difference(streaming, want) << " (streaming), "
                << first_bit_difference(automatic, want) << " (Auto)");
      REQUIRE(first_bit_difference(streaming, want) == -1);
      REQUIRE(first_bit_difference(automatic, want) == -1);
    }
  }
}

}  // namespace

TEST_CASE("isa: half softmax attention reads and writes the half type, the float32 result rounded once",
          "[isa][half][attention]") {
  SECTION("bf16") { check_stored_attention<db::bf16>(); }
  SECTION("f16") { check_stored_attention<db::f16>(); }
}

TEST_CASE("isa: half tensors' convolutions give the float32 result rounded once, on every copy", "[isa][half][conv]") {
  SECTION("bf16") { check_stored_convolutions<db::bf16>(); }
  SECTION("f16") { check_stored_convolutions<db::f16>(); }
}

TEST_CASE("isa: half tensors' GroupNorm fusions and LinearAttention read and write the half type", "[isa][half][norm]") {
  SECTION("bf16") { check_stored_norms_and_attention<db::bf16>(); }
  SECTION("f16") { check_stored_norms_and_attention<db::f16>(); }
}

TEST_CASE("isa: element-wise ops on half tensors give the generic functors' bits, on every copy", "[isa][half]") {
  SECTION("bf16") { check_stored_elementwise<db::bf16>(); }
  SECTION("f16") { check_stored_elementwise<db::f16>(); }
}

TEST_CASE("isa: a half Linear (token-wise, a few rows, one) runs on the half GEMM, within half an ulp, on every copy", "[isa][half][gemm]") {
  SECTION("bf16") { check_half_linear<db::bf16>(); }
  SECTION("f16") { check_half_linear<db::f16>(); }
}
