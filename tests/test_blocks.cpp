// The Grad-TTS blocks and the block variants on the CPU (one translation unit: they instantiate
// the same blocks and kernels).
//
// Shared with every device's test binary (tests/parity/): every Grad-TTS block against the
// PyTorch fixtures (blocks.hpp) and SoftmaxSelfAttention against its definition (variants.hpp).
// CPU-only here: ConvTranspose2d's phases and weight cache, the Winograd weight cache and the
// hash it keys on, packed GEMM edges, threads; SoftmaxSelfAttention snapped into the Origin
// U-Net in place of Grad-TTS's LinearAttention (with the padding mask); what the attention
// kernels do with extreme logits and -inf masks, the algorithm setting, the SIMD activations
// over a wide range. Every op's kernels under every CPU variant (Winograd / im2col, naive /
// streaming attention, 1 and 3 threads) against their plain references: the op registry
// (tests/ops/op_cases.hpp), run by test_diffuser.cpp.
#include <vector>

#include "ops/reference.hpp"
#include "parity/on_cpu.hpp"
#include "parity/blocks.hpp"
#include "parity/variants.hpp"

using namespace dbt;
using db::Tensor;

namespace {
/// ConvTranspose2d by its definition (tests/ops/reference.hpp: every input pixel scatters its
/// kernel into the output).
db::Tensor<double, 4> conv_transpose_scatter(const Tensor<float, 4>& x, const db::ConvTranspose2d<>& conv, int s, int p) {
  return dbops::ref::tensor<4>(dbops::ref::conv_transpose2d(x, conv.weight, conv.bias, s, p));
}
}  // namespace

TEST_CASE("ConvTranspose2d phases cover odd kernels, strides and tiles", "[blocks][conv]") {
  struct Case {
    int cin, cout, k, s, p, b, h, w;
    const char* what;
  };
  // k=3, s=2, p=0 leaves phases with different tap counts (the per-phase path); k=4, s=2, p=1
  // (Upsample) and k=6, s=3, p=0 have one grid for all phases (the interleaving path), here with
  // two batch items and a grid cut into tiles that end mid-row; k=2, s=2, p=1 has phases of
  // one tap each.
  const Case cases[] = {{2, 3, 3, 2, 0, 1, 4, 5, "k3 s2 p0"},
                        {5, 7, 4, 2, 1, 2, 6, 37, "k4 s2 p1"},
                        {3, 4, 6, 3, 0, 2, 5, 9, "k6 s3 p0"},
                        {3, 2, 2, 2, 1, 1, 5, 7, "k2 s2 p1"}};
  for (const Case& c : cases) {
    SECTION(c.what) {
      db::ConvTranspose2d<> conv(c.cin, c.cout, c.k, c.s, c.p);
      db::Rng rng(7);
      for (auto& v : conv.weight) v = float(rng.normal());
      for (auto& v : conv.bias) v = float(rng.normal());
      auto x = Tensor<float, 4>::from_shape({std::size_t(c.b), std::size_t(c.cin), std::size_t(c.h), std::size_t(c.w)});
      for (auto& v : x) v = float(rng.normal());
      const std::size_t Ho = std::size_t((c.h - 1) * c.s - 2 * c.p + c.k), Wo = std::size_t((c.w - 1) * c.s - 2 * c.p + c.k);
      auto y = conv.forward(x);
      REQUIRE(y.shape(2) == Ho);
      REQUIRE(y.shape(3) == Wo);
      require_close(y, conv_transpose_scatter(x, conv, c.s, c.p), c.what);
      // The packed phases are kept by the block: an edited weight is seen after invalidate_prepared().
      conv.weight(0, 0, 1, 1) += 1.0f;
      conv.invalidate_prepared();
      require_close(conv.forward(x), conv_transpose_scatter(x, conv, c.s, c.p), c.what);
    }
  }
}

TEST_CASE("Blocks report every parameter under its PyTorch name", "[blocks][params]") {
  db::ResnetBlock<> rb(8, 16, 24);
  const auto names = db::parameter_list(rb);
  std::vector<std::string> got;
  for (const auto& n : names) got.push_back(n.first);
  const std::vector<std::string> want{"mlp.1.weight",         "mlp.1.bias",           "block1.block.0.weight",
                                      "block1.block.0.bias",  "block1.block.1.weight", "block1.block.1.bias",
                                      "block2.block.0.weight", "block2.block.0.bias",  "block2.block.1.weight",
                                      "block2.block.1.bias",  "res_conv.weight",      "res_conv.bias"};
  REQUIRE(got == want);
  REQUIRE(db::parameter_count(rb) == 16 * 24 + 16 + 16 * 8 * 9 + 16 + 32 + 16 * 16 * 9 + 16 + 32 + 16 * 8 + 16);
}

TEST_CASE("Blocks reject inputs of the wrong shape", "[blocks][errors]") {
  db::Conv2d<> conv(4, 8, 3, 1, 1);
  auto x = Tensor<float, 4>::from_shape({1, 5, 6, 6});
  REQUIRE_THROWS_AS(conv.forward(x), db::InputError);
  REQUIRE_THROWS_WITH(conv.forward(x), Catch::Contains("Conv2d") && Catch::Contains("[1, 5, 6, 6]"));
  db::Block<> block(4, 8);
  auto x4 = Tensor<float, 4>::from_shape({1, 4, 6, 6});
  auto bad_mask = Tensor<float, 4>::from_shape({1, 1, 1, 5});
  REQUIRE_THROWS_AS(block.forward(x4, bad_mask), db::InputError);
  REQUIRE_THROWS_AS(db::GroupNorm<>(8, 12), db::ConfigError);
  db::Linear<> lin(3, 4);
  REQUIRE_THROWS_AS(lin.forward(Tensor<float, 2>::from_shape({2, 4})), db::InputError);
}

TEST_CASE("Threaded and single-threaded convolutions agree exactly", "[blocks][threads]") {
  db::Conv2d<> conv(16, 24, 3, 1, 1);
  db::Rng rng(3);
  for (auto& v : conv.weight) v = float(rng.normal() * 0.1);
  auto x = Tensor<float, 4>::from_shape({2, 16, 20, 67});
  for (auto& v : x) v = float(rng.normal());
  const int before = db::get_num_threads();
  db::set_num_threads(1);
  auto a = conv.forward(x);
  db::set_num_threads(3);
  auto b = conv.forward(x);
  db::set_num_threads(before);
  REQUIRE(std::equal(a.begin(), a.end(), b.begin()));
}

namespace {
/// Direct 3x3 stride-1 padding-1 convolution in double (tests/ops/reference.hpp): the plain
/// definition, for checking the fast algorithms.
db::Tensor<double, 4> conv3x3_direct(const Tensor<float, 4>& x, const Tensor<float, 4>& w, const Tensor<float, 1>& bias) {
  return dbops::ref::tensor<4>(dbops::ref::conv2d(x, w, bias, 1, 1));
}
}  // namespace

TEST_CASE("Raw Winograd conv2d follows weights changed in place and keeps nothing", "[blocks][conv]") {
  namespace cpu = db::ops::cpu;
  db::Rng rng(17);
  auto x = Tensor<float, 4>::from_shape({1, 16, 9, 10});
  auto w = Tensor<float, 4>::from_shape({24, 16, 3, 3});
  auto bias = Tensor<float, 1>::from_shape({24});
  for (auto& v : x) v = float(rng.normal());
  for (auto& v : w) v = float(rng.normal() / 12.0);
  for (auto& v : bias) v = float(rng.normal());
  const std::size_t held = cpu::prepared_weight_bytes();
  auto check = [&](const char* what) {
    const Diff d = diff(cpu::conv2d(x, w, bias, 1, 1), conv3x3_direct(x, w, bias));
    INFO(what << ": max|err| = " << d.max_abs_err);
    REQUIRE(d.max_abs_err <= 1e-5 * std::max(1.0, d.max_abs_ref));
    REQUIRE(cpu::prepared_weight_bytes() == held);  // a raw call prepares for itself only
  };
  check("first call");
  check("second call");
  // In place, same pointer and shape: one value, then the last one, then a swap of two kernels.
  w.data()[5] += 0.25f;
  check("one weight changed");
  w.data()[w.size() - 1] = -w.data()[w.size() - 1] - 0.5f;
  check("last weight changed");
  std::swap_ranges(w.data(), w.data() + 9, w.data() + 9);
  check("two kernels swapped");
}

TEST_CASE("content_hash changes with any single value, its position and the length", "[blocks][conv]") {
  // 1000 values: not a multiple of the 64 hash lanes; 300037: over 1 MiB, hashed in 16 runs on
  // the pool, with a remainder in the last run.
  for (std::size_t n : {std::size_t(1000), std::size_t(300037)}) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(i % 7) * 0.5f;
    const auto h0 = db::ops::cpu::content_hash(v.data(), v.size() * sizeof(float));
    for (std::size_t i : {std::size_t(0), std::size_t(63), std::size_t(64), std::size_t(500), n / 16, n / 2 + 1,
                          n - 1}) {
      const float old = v[i];
      v[i] = std::nextafter(old, 10.0f);  // the smallest possible change
      REQUIRE(db::ops::cpu::content_hash(v.data(), v.size() * sizeof(float)) != h0);
      v[i] = old;
    }
    REQUIRE(db::ops::cpu::content_hash(v.data(), v.size() * sizeof(float)) == h0);
    REQUIRE(db::ops::cpu::content_hash(v.data(), (v.size() - 1) * sizeof(float)) != h0);
    if (n > 1000) {  // two different values swapped between runs: an order-blind fold would miss it
      REQUIRE(v[2] != v[n - 2]);
      std::swap(v[2], v[n - 2]);
      REQUIRE(db::ops::cpu::content_hash(v.data(), v.size() * sizeof(float)) != h0);
      std::swap(v[2], v[n - 2]);
    }
  }
}

TEST_CASE("packed GEMM matches the definition at every edge shape, overwriting and accumulating",
          "[blocks][gemm]") {
  namespace pk = db::ops::cpu::packed;
  db::Rng rng(9);
  // M, N not multiples of the register block (rows kPanelRows, columns block_cols), K = 0 and 1,
  // K past block_k (split into passes), strides wider than the rows.
  const int Ms[] = {1, pk::kPanelRows - 1, pk::kPanelRows, 2 * pk::kPanelRows + 3};
  // N = block_cols - 2 makes ldb = N + 2 exactly one block wide (B read in place).
  const int Ns[] = {1, pk::block_cols<float>() - 2, pk::block_cols<float>() - 1, pk::block_cols<float>(),
                    3 * pk::block_cols<float>() + 5};
  for (int M : Ms)
    for (int N : Ns)
      for (int K : {0, 1, 7, 64, 600})  // 600: three passes over K (block_k)
        for (bool acc : {false, true}) {
          const int lda = K + 3, ldb = N + 2, ldc = N + 1;
          std::vector<float> A(std::size_t(M) * lda), B(std::size_t(std::max(K, 1)) * ldb), C(std::size_t(M) * ldc);
          for (auto& v : A) v = float(rng.normal());
          for (auto& v : B) v = float(rng.normal());
          for (auto& v : C) v = float(rng.normal());
          std::vector<float> want = C;
          for (int m = 0; m < M; ++m)
            for (int n = 0; n < N; ++n) {
              double s = acc ? C[std::size_t(m) * ldc + n] : 0.0;
              for (int k = 0; k < K; ++k) s += double(A[std::size_t(m) * lda + k]) * B[std::size_t(k) * ldb + n];
              want[std::size_t(m) * ldc + n] = float(s);
            }
          std::vector<float> Ap(std::size_t(pk::packed_size(M, K)));
          pk::pack_a(M, K, A.data(), lda, Ap.data());
          // The same product with B pre-packed in column blocks (gemm_packed_b), and with A also
          // read in place, row-major (gemm_rows_packed_b).
          std::vector<float> Bp(std::size_t(pk::packed_b_size<float>(K, N))), C2 = C, C3 = C;
          pk::pack_b(K, N, B.data(), ldb, Bp.data());
          pk::gemm(M, N, K, Ap.data(), B.data(), ldb, C.data(), ldc, acc);
          pk::gemm_packed_b(M, N, K, Ap.data(), Bp.data(), C2.data(), ldc, acc);
          pk::gemm_rows_packed_b(M, N, K, A.data(), lda, Bp.data(), C3.data(), ldc, acc);
          double err = 0, err2 = 0, err3 = 0;
          for (std::size_t i = 0; i < C.size(); ++i) {
            err = std::max(err, double(std::abs(C[i] - want[i])));
            err2 = std::max(err2, double(std::abs(C2[i] - want[i])));
            err3 = std::max(err3, double(std::abs(C3[i] - want[i])));
          }
          INFO("M " << M << " N " << N << " K " << K << " accumulate " << acc);
          REQUIRE(err <= 1e-4);  // also: the padding columns (ldc > N) are left as they were
          REQUIRE(err2 <= 1e-4);
          REQUIRE(err3 <= 1e-4);
        }
}

// ==== block variants and the CPU kernels behind them ===========================================

namespace {

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
  const db::OriginConfig cfg = small_origin_config(8);
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
  const db::OriginConfig cfg = small_origin_config(8);
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

TEST_CASE("ResnetBlock2D divides by output_scale_factor, as diffusers does", "[blocks]") {
  // (input + h) / 3 and (input + h) * (1 / 3) differ in the last bit for some values: the block
  // must give exactly the division of the unscaled block's output (one pass: ops::add_div_).
  for (int cin : {8, 16}) {  // identity shortcut, and conv_shortcut
    db::ResnetBlock2D<> one(cin, 16, 32, 4, 1e-5, db::TimeEmbeddingNorm::Default, 1.0);
    db::ResnetBlock2D<> third(cin, 16, 32, 4, 1e-5, db::TimeEmbeddingNorm::Default, 3.0);
    db::init_parameters(one, 11);
    db::init_parameters(third, 11);
    const auto x = random4(2, std::size_t(cin), 5, 9, 3);
    Tensor<float, 2> temb = Tensor<float, 2>::from_shape({2, 32});
    for (std::size_t i = 0; i < temb.size(); ++i) temb.data()[i] = 0.1f * static_cast<float>(i % 7) - 0.3f;
    const auto expected = db::ops::divide(db::Cpu{}, one.forward(x, temb), 3.0f);
    const auto got = third.forward(x, temb);
    REQUIRE(diff(got, expected).max_abs_err == 0.0);
    const auto by_reciprocal = [&] {
      auto y = one.forward(x, temb);
      db::ops::mul_scalar_(db::Cpu{}, y, 1.0f / 3.0f);
      return y;
    }();
    REQUIRE(diff(by_reciprocal, expected).max_abs_err > 0.0);  // the check above can fail
  }
}
