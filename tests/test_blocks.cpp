// Every Grad-TTS block against PyTorch fixtures (tools/reference/make_fixtures.py): non-default
// weights (GroupNorm affine != identity, Rezero g != 0) and masks with padded frames.
#include "helpers.hpp"

using namespace dbt;
using db::Tensor;

TEST_CASE("Conv2d matches torch.nn.Conv2d", "[blocks][conv]") {
  for (const char* name : {"conv2d_3x3", "conv2d_3x3_s2", "conv2d_1x1", "conv2d_1x1_nobias"}) {
    SECTION(name) {
      BlockFixture f(name);
      db::Conv2d<> conv(f.cfg("in_channels"), f.cfg("out_channels"), f.cfg("kernel_size"), f.cfg("stride"),
                        f.cfg("padding"), f.config.at("bias").get<bool>());
      f.load(conv);
      require_close(conv.forward(f.input<4>("x")), f.output<4>(), name);
    }
  }
}

TEST_CASE("ConvTranspose2d matches torch.nn.ConvTranspose2d", "[blocks][conv]") {
  BlockFixture f("conv_transpose2d");
  db::ConvTranspose2d<> conv(f.cfg("in_channels"), f.cfg("out_channels"), f.cfg("kernel_size"), f.cfg("stride"),
                             f.cfg("padding"));
  f.load(conv);
  require_close(conv.forward(f.input<4>("x")), f.output<4>(), "conv_transpose2d");
}

// ConvTranspose2d by its definition: every input pixel scatters its kernel into the output.
static Tensor<float, 4> conv_transpose_scatter(const Tensor<float, 4>& x, const db::ConvTranspose2d<>& conv, int s,
                                               int p, std::size_t Ho, std::size_t Wo) {
  const std::size_t B = x.shape(0), Cin = x.shape(1), H = x.shape(2), W = x.shape(3);
  const std::size_t Cout = conv.weight.shape(1), K = conv.weight.shape(2);
  auto ref = Tensor<float, 4>::from_shape({B, Cout, Ho, Wo});
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t co = 0; co < Cout; ++co)
      for (std::size_t i = 0; i < Ho * Wo; ++i) ref.data()[(b * Cout + co) * Ho * Wo + i] = conv.bias(co);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t ci = 0; ci < Cin; ++ci)
      for (std::size_t co = 0; co < Cout; ++co)
        for (std::size_t ih = 0; ih < H; ++ih)
          for (std::size_t iw = 0; iw < W; ++iw)
            for (std::size_t kh = 0; kh < K; ++kh)
              for (std::size_t kw = 0; kw < K; ++kw) {
                const long oh = long(s * ih + kh) - p, ow = long(s * iw + kw) - p;
                if (oh >= 0 && ow >= 0 && oh < long(Ho) && ow < long(Wo))
                  ref(b, co, std::size_t(oh), std::size_t(ow)) += x(b, ci, ih, iw) * conv.weight(ci, co, kh, kw);
              }
  return ref;
}

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
      require_close(y, conv_transpose_scatter(x, conv, c.s, c.p, Ho, Wo), c.what);
      // The packed phases are kept by the block: an edited weight is seen after invalidate_prepared().
      conv.weight(0, 0, 1, 1) += 1.0f;
      conv.invalidate_prepared();
      require_close(conv.forward(x), conv_transpose_scatter(x, conv, c.s, c.p, Ho, Wo), c.what);
    }
  }
}

TEST_CASE("Linear matches torch.nn.Linear", "[blocks]") {
  BlockFixture f("linear");
  db::Linear<> lin(f.cfg("in_features"), f.cfg("out_features"), f.config.at("bias").get<bool>());
  f.load(lin);
  require_close(lin.forward(f.input<2>("x")), f.output<2>(), "linear");
}

TEST_CASE("GroupNorm matches torch.nn.GroupNorm", "[blocks][norm]") {
  for (const char* name : {"group_norm", "group_norm_4"}) {
    SECTION(name) {
      BlockFixture f(name);
      db::GroupNorm<> gn(f.cfg("num_groups"), f.cfg("num_channels"), f.config.at("eps").get<double>(),
                         f.config.at("affine").get<bool>());
      f.load(gn);
      require_close(gn.forward(f.input<4>("x")), f.output<4>(), name);
    }
  }
}

TEST_CASE("Mish matches x * tanh(softplus(x)) including the softplus threshold", "[blocks]") {
  BlockFixture f("mish");
  db::Mish<> mish;
  const auto got = mish.forward(f.input<3>("x"));
  const auto want = f.output<3>();
  require_close(got, want, "mish");
  // Element-wise too: the inputs span |x| <= 30, so the max-scaled bound alone is loose near 0.
  for (std::size_t i = 0; i < want.size(); ++i)
    REQUIRE(std::fabs(got.data()[i] - want.data()[i]) <= 1e-6 * std::max(1.0f, std::fabs(want.data()[i])));
}

TEST_CASE("Block matches Grad-TTS Block with a padded mask", "[blocks]") {
  BlockFixture f("block");
  db::Block<> block(f.cfg("dim"), f.cfg("dim_out"), f.cfg("groups"));
  f.load(block);
  require_close(block.forward(f.input<4>("x"), f.input<4>("mask")), f.output<4>(), "block");
}

TEST_CASE("ResnetBlock matches Grad-TTS ResnetBlock", "[blocks]") {
  for (const char* name : {"resnet_block", "resnet_block_same"}) {
    SECTION(name) {
      BlockFixture f(name);
      db::ResnetBlock<> rb(f.cfg("dim"), f.cfg("dim_out"), f.cfg("time_emb_dim"), f.cfg("groups"));
      f.load(rb);
      REQUIRE(rb.res_conv.has_value() == (f.cfg("dim") != f.cfg("dim_out")));
      require_close(rb.forward(f.input<4>("x"), f.input<4>("mask"), f.input<2>("t")), f.output<4>(), name);
    }
  }
}

TEST_CASE("LinearAttention matches Grad-TTS LinearAttention", "[blocks][attention]") {
  BlockFixture f("linear_attention");
  db::LinearAttention<> attn(f.cfg("dim"), f.cfg("heads"), f.cfg("dim_head"));
  f.load(attn);
  require_close(attn.forward(f.input<4>("x")), f.output<4>(), "linear_attention");
}

TEST_CASE("Residual(Rezero(LinearAttention)) matches, with g != 0", "[blocks][attention]") {
  BlockFixture f("residual_rezero_linear_attention");
  db::Residual<db::Rezero<db::LinearAttention<>>> attn(f.cfg("dim"), f.cfg("heads"), f.cfg("dim_head"));
  f.load(attn);
  REQUIRE(attn.fn.g(0) != 0.0f);
  require_close(attn.forward(f.input<4>("x")), f.output<4>(), "residual_rezero_linear_attention");
}

TEST_CASE("Downsample and Upsample match Grad-TTS", "[blocks][conv]") {
  SECTION("downsample (odd sizes -> ceil)") {
    BlockFixture f("downsample");
    db::Downsample<> down(f.cfg("dim"));
    f.load(down);
    require_close(down.forward(f.input<4>("x")), f.output<4>(), "downsample");
  }
  SECTION("upsample") {
    BlockFixture f("upsample");
    db::Upsample<> up(f.cfg("dim"));
    f.load(up);
    require_close(up.forward(f.input<4>("x")), f.output<4>(), "upsample");
  }
}

TEST_CASE("SinusoidalPosEmb matches Grad-TTS", "[blocks][embedding]") {
  for (const char* name : {"sinusoidal_pos_emb", "sinusoidal_pos_emb_scale1"}) {
    SECTION(name) {
      BlockFixture f(name);
      db::SinusoidalPosEmb<> emb(f.cfg("dim"));
      require_close(emb.forward(f.input<1>("t"), f.config.at("scale").get<double>()), f.output<2>(), name);
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
/// Direct 3x3 stride-1 padding-1 convolution in double: the plain definition, for checking the
/// fast algorithms.
Tensor<float, 4> conv3x3_direct(const Tensor<float, 4>& x, const Tensor<float, 4>& w, const Tensor<float, 1>& bias) {
  const std::size_t B = x.shape(0), Ci = x.shape(1), H = x.shape(2), W = x.shape(3), Co = w.shape(0);
  auto out = Tensor<float, 4>::from_shape({B, Co, H, W});
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t co = 0; co < Co; ++co)
      for (std::size_t y = 0; y < H; ++y)
        for (std::size_t xx = 0; xx < W; ++xx) {
          double acc = bias(co);
          for (std::size_t ci = 0; ci < Ci; ++ci)
            for (int ky = 0; ky < 3; ++ky)
              for (int kx = 0; kx < 3; ++kx) {
                const long iy = long(y) + ky - 1, ix = long(xx) + kx - 1;
                if (iy < 0 || ix < 0 || iy >= long(H) || ix >= long(W)) continue;
                acc += double(w(co, ci, ky, kx)) * x(b, ci, iy, ix);
              }
          out(b, co, y, xx) = float(acc);
        }
  return out;
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

TEST_CASE("linear matches x W^T + b for few rows and for threaded row blocks", "[blocks][gemm]") {
  db::Rng rng(21);
  // 37 outputs: whole packed column blocks of W^T plus a zero-padded one.
  for (std::size_t rows : {std::size_t(3), std::size_t(64), std::size_t(200)})  // Eigen path, one block, blocks + edge
    for (bool with_bias : {false, true}) {
      auto x = Tensor<float, 2>::from_shape({rows, 19});
      auto w = Tensor<float, 2>::from_shape({37, 19});
      auto b = Tensor<float, 1>::from_shape({with_bias ? std::size_t(37) : 0});
      for (auto& v : x) v = float(rng.normal());
      for (auto& v : w) v = float(rng.normal());
      for (auto& v : b) v = float(rng.normal());
      const auto y = db::ops::linear(db::Cpu{}, x, w, b);
      REQUIRE(db::tensor_shape(y) == db::Shape{static_cast<std::ptrdiff_t>(rows), 37});
      double err = 0;
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t o = 0; o < 37; ++o) {
          double s = with_bias ? b(o) : 0.0;
          for (std::size_t i = 0; i < 19; ++i) s += double(x(r, i)) * w(o, i);
          err = std::max(err, std::abs(s - double(y(r, o))));
        }
      INFO(rows << " rows, bias " << with_bias);
      REQUIRE(err <= 1e-4);
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

TEST_CASE("Winograd F(4x4,3x3) and im2col both match a direct 3x3 convolution", "[blocks][conv]") {
  struct Case {
    std::size_t b, ci, co, h, w;
  };
  // Sizes not divisible by the 4x4 tile, single rows/columns, and channel counts on both sides
  // of the Winograd threshold.
  const Case cases[] = {{1, 8, 8, 1, 1}, {2, 16, 24, 5, 7}, {1, 9, 12, 13, 3}, {1, 32, 16, 20, 67},
                        {1, 4, 8, 6, 6}, {2, 64, 32, 4, 4},  {1, 16, 8, 2, 130},
                        // Many bands of tile rows: the per-thread schedule (bands of 3 rows of 13
                        // tiles, a shorter last band, a part-filled block of GEMM columns).
                        {2, 96, 64, 66, 50},
                        // Tile rows a multiple of 8 tiles wide (the AVX-512 input transform): 8
                        // (groups spanning two tile rows, a half-filled last group), 8 with the
                        // last tile cut by the edge, 16, 24 (groups straddling rows) and 32 with
                        // per-thread bands.
                        {1, 24, 16, 20, 32}, {2, 16, 8, 9, 29}, {1, 16, 16, 12, 64}, {1, 8, 8, 7, 96},
                        {2, 16, 16, 80, 128}};
  // At least two threads, whatever the machine, so that the per-thread schedule is taken.
  const int threads = db::get_num_threads();
  db::set_num_threads(std::max(threads, 2));
  db::Rng rng(5);
  for (const Case& c : cases) {
    auto x = Tensor<float, 4>::from_shape({c.b, c.ci, c.h, c.w});
    auto w = Tensor<float, 4>::from_shape({c.co, c.ci, 3, 3});
    auto bias = Tensor<float, 1>::from_shape({c.co});
    for (auto& v : x) v = float(rng.normal());
    for (auto& v : w) v = float(rng.normal() / std::sqrt(9.0 * c.ci));
    for (auto& v : bias) v = float(rng.normal());
    const auto want = conv3x3_direct(x, w, bias);
    for (auto algo : {db::ops::cpu::ConvAlgorithm::Auto, db::ops::cpu::ConvAlgorithm::Im2col}) {
      db::ops::cpu::set_conv_algorithm(algo);
      const auto got = db::ops::cpu::conv2d(x, w, bias, 1, 1);
      db::ops::cpu::set_conv_algorithm(db::ops::cpu::ConvAlgorithm::Auto);
      const Diff d = diff(got, want);
      INFO("shape " << c.b << "x" << c.ci << "->" << c.co << " " << c.h << "x" << c.w << ", algorithm "
                    << int(algo) << ": max|err| = " << d.max_abs_err << ", max|ref| = " << d.max_abs_ref);
      REQUIRE(db::tensor_shape(got) == db::tensor_shape(want));
      REQUIRE(d.max_abs_err <= 1e-5 * std::max(1.0, d.max_abs_ref));
    }
  }
  db::set_num_threads(threads);
}
