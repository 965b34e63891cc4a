// The Grad-TTS blocks on the CPU: against PyTorch fixtures (the shared bodies of
// tests/parity/blocks.hpp, which every device's test binary runs), and the CPU-only pieces
// behind them (ConvTranspose2d's phases and weight cache, the Winograd weight cache, the hash it
// keys on, packed GEMM edges, threads). The convolution and linear kernels of every variant
// against their definitions: the op registry (tests/ops/op_cases.hpp, run by test_variants.cpp).
#include "ops/reference.hpp"
#include "parity/on_cpu.hpp"
#include "parity/blocks.hpp"

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
      // The packed phases are cached per weight content: an edited weight must be seen.
      conv.weight(0, 0, 1, 1) += 1.0f;
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

TEST_CASE("Winograd weight cache follows weights changed in place, and can be turned off", "[blocks][conv]") {
  namespace cpu = db::ops::cpu;
  db::Rng rng(17);
  auto x = Tensor<float, 4>::from_shape({1, 16, 9, 10});
  auto w = Tensor<float, 4>::from_shape({24, 16, 3, 3});
  auto bias = Tensor<float, 1>::from_shape({24});
  for (auto& v : x) v = float(rng.normal());
  for (auto& v : w) v = float(rng.normal() / 12.0);
  for (auto& v : bias) v = float(rng.normal());
  auto check = [&](const char* what) {
    const Diff d = diff(cpu::conv2d(x, w, bias, 1, 1), conv3x3_direct(x, w, bias));
    INFO(what << ": max|err| = " << d.max_abs_err);
    REQUIRE(d.max_abs_err <= 1e-5 * std::max(1.0, d.max_abs_ref));
  };
  const std::size_t limit = cpu::weight_cache_limit();
  REQUIRE(limit > 0);
  const std::size_t before = cpu::weight_cache_bytes();
  check("first call");
  REQUIRE(cpu::weight_cache_bytes() > before);  // the transformed kernels were kept
  check("cached");
  // In place, same pointer and shape: one value, then the last one, then a swap of two kernels.
  w.data()[5] += 0.25f;
  check("one weight changed");
  w.data()[w.size() - 1] = -w.data()[w.size() - 1] - 0.5f;
  check("last weight changed");
  std::swap_ranges(w.data(), w.data() + 9, w.data() + 9);
  check("two kernels swapped");
  cpu::set_weight_cache_limit(0);
  REQUIRE(cpu::weight_cache_bytes() == 0);
  w.data()[100] *= -2.0f;
  check("cache off");
  REQUIRE(cpu::weight_cache_bytes() == 0);
  cpu::set_weight_cache_limit(limit);
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
