// Block variants snapped into the Origin U-Net (SoftmaxSelfAttention, built on CrossAttention,
// in place of Grad-TTS's LinearAttention, with the padding mask) and the CPU kernels behind the
// blocks. Shared with every device's test binary (tests/parity/): SoftmaxSelfAttention against
// its definition, and the op registry (tests/ops/op_cases.hpp): every op under every CPU
// variant (Winograd / im2col, naive / streaming attention, 1 and 3 threads) against its plain
// reference. CPU-only here: what the attention kernels do with extreme logits and -inf masks,
// the algorithm setting, and the SIMD activations over a wide range.
#include <vector>

#include "ops/reference.hpp"
#include "parity/on_cpu.hpp"
#include "parity/ops.hpp"
#include "parity/variants.hpp"

using namespace dbt;
using db::Tensor;

namespace {

db::OriginConfig small_config() {
  db::OriginConfig cfg;
  cfg.dim = 16;
  cfg.dim_mults = {1, 2};
  cfg.n_feats = 8;
  return cfg;
}

// Records the masks the U-Net hands to its attention layers.
std::vector<std::pair<std::size_t, double>> g_seen;  // (frames, valid frames of item 1)

template <class T, class D>
struct SpyAttention : db::SoftmaxSelfAttention<T, D> {
  using db::SoftmaxSelfAttention<T, D>::SoftmaxSelfAttention;
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x, const Tensor<T, 4, D>& mask) const {
    double valid = 0;
    for (std::size_t w = 0; w < mask.shape(3); ++w) valid += mask(1, 0, 0, w);
    g_seen.emplace_back(mask.shape(3), valid);
    return db::SoftmaxSelfAttention<T, D>::forward(x, mask);
  }
};

}  // namespace

TEST_CASE("SoftmaxSelfAttention ignores padded frames", "[variants]") {
  db::SoftmaxSelfAttention<> a(8);
  db::init_parameters(a, 5);
  const auto mask = frame_mask({6, 4}, 6);
  auto x = random4(2, 8, 4, 6, 1), garbage = x;
  for (std::size_t c = 0; c < 8; ++c)
    for (std::size_t h = 0; h < 4; ++h) garbage(1, c, h, 5) = garbage(1, c, h, 4) = 50.f;
  const auto y = a.forward(x, mask), yg = a.forward(garbage, mask);
  REQUIRE(diff(yg, y).max_abs_err == 0.0);
  for (std::size_t c = 0; c < 8; ++c) REQUIRE(y(1, c, 2, 4) == 0.f);
  // Without the mask the same change does move the valid outputs: the check above can fail.
  REQUIRE(diff(a.forward(garbage), a.forward(x)).max_abs_err > 1e-3);
}

TEST_CASE("Origin U-Net with SoftmaxSelfAttention runs and passes it the mask", "[variants][origin]") {
  using Softmax = db::GradLogPEstimator2d<float, db::Cpu, db::SoftmaxSelfAttention>;
  static_assert(Softmax::attention_takes_mask, "the adapter must be handed the mask");
  static_assert(!db::GradLogPEstimator2d<>::attention_takes_mask, "Grad-TTS's LinearAttention never sees it");
  const db::OriginConfig cfg = small_config();
  Softmax m(cfg);
  db::init_parameters(m, 1, 0.5);
  bool has_to_q = false;
  for (const auto& p : db::parameter_list(m)) has_to_q = has_to_q || p.first == "downs.0.2.fn.fn.to_q.weight";
  REQUIRE(has_to_q);

  const std::size_t W = 24, valid = 20;
  auto x = Tensor<float, 3>::from_shape({2, 8, W}), mu = x, mask = Tensor<float, 3>::from_shape({2, 1, W});
  db::Rng rng(9);
  for (auto& v : x) v = float(rng.normal());
  for (auto& v : mu) v = float(rng.normal());
  for (std::size_t w = 0; w < W; ++w) mask(0, 0, w) = 1.f, mask(1, 0, w) = w < valid ? 1.f : 0.f;
  auto t = Tensor<float, 1>::from_shape({2});
  t.fill(0.4f);

  const auto y = m.forward(x, mask, mu, t);
  REQUIRE(y.shape(2) == W);
  REQUIRE(db::ops::find_non_finite(db::Cpu{}, y) < 0);
  double mag = 0;
  for (auto v : y) mag = std::max(mag, double(std::fabs(v)));
  REQUIRE(mag > 1e-3);
  for (std::size_t f = 0; f < 8; ++f) REQUIRE(y(1, f, W - 1) == 0.f);

  // Garbage in the padded frames of x and mu leaves every output unchanged.
  auto xg = x, mug = mu;
  for (std::size_t f = 0; f < 8; ++f)
    for (std::size_t w = valid; w < W; ++w) xg(1, f, w) = mug(1, f, w) = 100.f;
  REQUIRE(diff(m.forward(xg, mask, mug, t), y).max_abs_err == 0.0);

  // Each attention layer got its level's mask: downs at 24 and 12 frames, mid and the up level
  // at 12 (Grad-TTS upsamples after the up level's attention).
  db::GradLogPEstimator2d<float, db::Cpu, SpyAttention> spy(cfg);
  g_seen.clear();
  spy.forward(x, mask, mu, t);
  const std::vector<std::pair<std::size_t, double>> want{{24, 20}, {12, 10}, {12, 10}, {12, 10}};
  REQUIRE(g_seen == want);
}

TEST_CASE("Swapping the attention block keeps the rest of the U-Net", "[variants][origin]") {
  const db::OriginConfig cfg = small_config();
  db::GradLogPEstimator2d<> linear(cfg);
  db::GradLogPEstimator2d<float, db::Cpu, db::SoftmaxSelfAttention> softmax(cfg);
  const auto a = db::parameter_list(linear), b = db::parameter_list(softmax);
  auto non_attention = [](const std::vector<std::pair<std::string, db::Shape>>& ps) {
    std::vector<std::pair<std::string, db::Shape>> out;
    for (const auto& p : ps)
      if (p.first.find(".fn.fn.") == std::string::npos) out.push_back(p);
    return out;
  };
  REQUIRE(non_attention(a) == non_attention(b));
  // Same hidden width (4 heads x 32): q, k, v and out cost what to_qkv and to_out do.
  REQUIRE(db::parameter_count(linear) == db::parameter_count(softmax));
}

// ---- softmax attention kernels: naive (full score rows) and streaming (online softmax) -------

namespace {

Tensor<float, 3> random3(std::size_t B, std::size_t N, std::size_t C, double scale, std::uint64_t seed) {
  db::Rng rng(seed);
  auto x = Tensor<float, 3>::from_shape({B, N, C});
  for (auto& v : x) v = float(scale * rng.normal());
  return x;
}

/// The definition in double (tests/ops/reference.hpp): softmax over keys of scale * q.k + bias,
/// times v, per head.
std::vector<double> attention_reference(const Tensor<float, 3>& q, const Tensor<float, 3>& k, const Tensor<float, 3>& v,
                                        int heads, double scale, const Tensor<float, 2>& bias) {
  return dbops::ref::attention(q, k, v, heads, scale, bias).v;
}

}  // namespace

TEST_CASE("attention kernels: naive and streaming softmax both match the definition", "[attention][variants]") {
  // Key counts around the streaming kernel's 64-key block and its 4/8-key panels (1, a partial
  // panel, one block less/more, several blocks), queries not a multiple of its 48/96-query tile,
  // dv != dh and not a multiple of the panel, a padding bias, and logits of ~+-40 so that a
  // softmax without max subtraction, or a wrong rescale between blocks, is visibly off.
  const int heads = 3;
  for (std::size_t nk : {1u, 3u, 63u, 64u, 65u, 257u, 700u}) {
    const auto q = random3(2, 100, heads * 8, 2.0, 1 + nk), k = random3(2, nk, heads * 8, 2.0, 2 + nk);
    const auto v = random3(2, nk, heads * 5, 1.0, 3 + nk);
    auto bias = Tensor<float, 2>::from_shape({2, nk});
    for (std::size_t j = 0; j < nk; ++j) {
      bias(0, j) = 0.f;
      bias(1, j) = (j % 3 == 1 && nk > 1) ? -10000.f : 0.f;  // padded style tokens in item 1
    }
    const float scale = 1.0f / std::sqrt(8.0f);
    const auto want = attention_reference(q, k, v, heads, scale, bias);
    const auto naive = db::ops::attention_naive(db::Cpu{}, q, k, v, heads, scale, bias);
    const auto streaming = db::ops::attention_streaming(db::Cpu{}, q, k, v, heads, scale, bias);
    double err_naive = 0, err_stream = 0, big = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      err_naive = std::max(err_naive, std::fabs(naive.data()[i] - want[i]));
      err_stream = std::max(err_stream, std::fabs(streaming.data()[i] - want[i]));
      big = std::max(big, std::fabs(want[i]));
    }
    INFO("Nk = " << nk << ": naive " << err_naive << ", streaming " << err_stream << ", max |ref| " << big);
    REQUIRE(big > 0.5);
    REQUIRE(err_naive <= 1e-5 * std::max(1.0, big));
    REQUIRE(err_stream <= 1e-5 * std::max(1.0, big));
    // Without a bias too (the self-attention path).
    const Tensor<float, 2> none = db::ops::zeros<float, 2>(db::Cpu{}, {0, 0});
    const auto a = db::ops::attention_naive(db::Cpu{}, q, k, v, heads, scale, none);
    const auto b = db::ops::attention_streaming(db::Cpu{}, q, k, v, heads, scale, none);
    REQUIRE(diff(b, a).max_abs_err <= 1e-5);
  }
}

TEST_CASE("streaming attention: keys masked with -inf, whole blocks of them, are skipped", "[attention][variants]") {
  // The first 130 keys (two whole 64-key blocks and more) of item 0 and every other key of item
  // 1 get a -inf bias: the online softmax must neither produce NaN (-inf - -inf) nor give the
  // masked keys weight; the result equals attention over the unmasked keys alone.
  const int heads = 2;
  const std::size_t nk = 300;
  const auto q = random3(2, 50, heads * 16, 1.5, 11), k = random3(2, nk, heads * 16, 1.5, 12);
  const auto v = random3(2, nk, heads * 16, 1.0, 13);
  auto bias = Tensor<float, 2>::from_shape({2, nk});
  for (std::size_t j = 0; j < nk; ++j) {
    bias(0, j) = j < 130 ? -std::numeric_limits<float>::infinity() : 0.f;
    bias(1, j) = j % 2 ? -std::numeric_limits<float>::infinity() : 0.f;
  }
  const float scale = 0.25f;
  const auto got = db::ops::attention_streaming(db::Cpu{}, q, k, v, heads, scale, bias);
  const auto want = attention_reference(q, k, v, heads, scale, bias);
  double err = 0;
  for (std::size_t i = 0; i < want.size(); ++i) err = std::max(err, double(std::fabs(got.data()[i] - want[i])));
  REQUIRE(std::isfinite(want[0]));
  REQUIRE(err <= 1e-5);
}

TEST_CASE("attention algorithm setting selects the kernel", "[attention][variants]") {
  const auto q = random3(1, 9, 16, 1.0, 5), k = random3(1, 1500, 16, 1.0, 6), v = random3(1, 1500, 16, 1.0, 7);
  const Tensor<float, 2> none = db::ops::zeros<float, 2>(db::Cpu{}, {0, 0});
  const auto naive = db::ops::attention_naive(db::Cpu{}, q, k, v, 2, 0.25f, none);
  const auto streaming = db::ops::attention_streaming(db::Cpu{}, q, k, v, 2, 0.25f, none);
  REQUIRE_FALSE(std::equal(naive.begin(), naive.end(), streaming.begin()));  // rounding differs
  auto same = [](const Tensor<float, 3>& a, const Tensor<float, 3>& b) { return std::equal(a.begin(), a.end(), b.begin()); };
  REQUIRE(same(db::ops::attention(db::Cpu{}, q, k, v, 2, 0.25f, none), streaming));  // Auto, 1500 keys
  db::ops::set_attention_algorithm(db::ops::AttentionAlgorithm::Naive);
  REQUIRE(same(db::ops::attention(db::Cpu{}, q, k, v, 2, 0.25f, none), naive));
  db::ops::set_attention_algorithm(db::ops::AttentionAlgorithm::Streaming);
  const auto k_short = random3(1, 40, 16, 1.0, 8), v_short = random3(1, 40, 16, 1.0, 9);
  REQUIRE(same(db::ops::attention(db::Cpu{}, q, k_short, v_short, 2, 0.25f, none),
               db::ops::attention_streaming(db::Cpu{}, q, k_short, v_short, 2, 0.25f, none)));
  db::ops::set_attention_algorithm(db::ops::AttentionAlgorithm::Auto);
}

// ---- float32 SIMD activations (simd.hpp) against double-precision definitions ---------------

TEST_CASE("SIMD exp2, erf, Mish, SiLU and GELU match their definitions over a wide range", "[kernels]") {
  namespace simd = db::ops::cpu::simd;
  // 200 001 points over [-30, 30] (past Mish's x > 20 branch and deep into every tail), not a
  // multiple of the vector width, so the padded tail path runs too.
  const int n = 200001;
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = -30.f + 60.f * float(i) / float(n - 1);
  auto m = x, s = x, g = x;
  db::ops::mish_range(m.data(), n);
  db::ops::silu_range(s.data(), n);
  db::ops::gelu_range(g.data(), n);
  double em = 0, es = 0, eg = 0, ee = 0, ef = 0;
  for (int i = 0; i < n; ++i) {
    const double v = x[i], sp = v > 20 ? v : std::log1p(std::exp(v));
    const double mish = v * std::tanh(sp), silu = v / (1 + std::exp(-v)), gelu = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
    em = std::max(em, std::fabs(m[i] - mish) / std::max(1.0, std::fabs(mish)));
    es = std::max(es, std::fabs(s[i] - silu) / std::max(1.0, std::fabs(silu)));
    eg = std::max(eg, std::fabs(g[i] - gelu) / std::max(1.0, std::fabs(gelu)));
    const double e2 = -60.0 + 120.0 * i / (n - 1);  // 2^x over [-60, 60]: relative error
    ee = std::max(ee, std::fabs(simd::exp2(simd::splat(float(e2)))[0] - std::exp2(double(float(e2)))) /
                          std::exp2(double(float(e2))));
    ef = std::max(ef, std::fabs(simd::erf(simd::splat(x[i] / 3))[0] - std::erf(double(x[i] / 3))));
  }
  INFO("mish " << em << ", silu " << es << ", gelu " << eg << ", exp2 " << ee << ", erf " << ef);
  REQUIRE(em < 1e-6);
  REQUIRE(es < 1e-6);
  REQUIRE(eg < 1e-6);
  REQUIRE(ee < 3e-7);
  REQUIRE(ef < 1e-6);
  // Saturation and propagation: exp2 far below its range is ~0, not garbage; NaN stays NaN.
  REQUIRE(simd::exp2(simd::splat(-1000.f))[0] < 1e-37f);
  REQUIRE(simd::exp2(simd::splat(-1000.f))[0] >= 0.f);
  REQUIRE(simd::erf(simd::splat(std::numeric_limits<float>::infinity()))[0] == 1.f);
  REQUIRE(simd::erf(simd::splat(-std::numeric_limits<float>::infinity()))[0] == -1.f);
  for (auto f : {db::ops::mish_range<float>, db::ops::silu_range<float>, db::ops::gelu_range<float>}) {
    float v[3] = {std::numeric_limits<float>::quiet_NaN(), 1.f, std::numeric_limits<float>::infinity()};
    f(v, 3);
    REQUIRE(std::isnan(v[0]));
    REQUIRE(v[2] == std::numeric_limits<float>::infinity());
  }
}
