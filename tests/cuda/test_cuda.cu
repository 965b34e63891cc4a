// The Cuda device's tests, in one nvcc translation unit (each .cu file costs about a minute of
// CI build): the runtime pieces and every op against the CPU op (the registry of op_cases.hpp),
// then blocks, both U-Nets, the samplers and the CLI against the committed PyTorch / diffusers
// fixtures (the ones the CPU tests use).
//
// Runs without a GPU: the error mapping (CudaError names the call and CUDA's string), the
// allocator's size classes, Philox's known-answer vectors, what happens when no device is there
// (a CudaError, never a crash) and the CLI's "no CUDA device" error. Everything else needs a
// device and is reported as skipped ("SKIPPED: no CUDA device") without one.
#include <algorithm>
#include <cstdio>
#include <thread>

#include "../cli_helpers.hpp"
#include "cuda_helpers.hpp"
#include "op_cases.hpp"

using namespace dbt;
using db::Tensor;

// ==== runtime and ops ==============================================================================

TEST_CASE("CUDA and cuBLAS errors become CudaError naming the call", "[cuda][errors]") {
  using db::cuda::detail::check;
  REQUIRE_THROWS_AS(check(cudaErrorMemoryAllocation, "cudaMalloc(&p, n)", "x.hpp", 7), db::CudaError);
  REQUIRE_THROWS_AS(check(cudaErrorInvalidValue, "cudaMemcpy", "x.hpp", 7), db::Error);
  REQUIRE_THROWS_WITH(check(cudaErrorMemoryAllocation, "cudaMalloc(&p, n)", "/a/b/x.hpp", 7),
                      Catch::Contains("CUDA error in cudaMalloc(&p, n) (x.hpp:7)") && Catch::Contains("out of memory") &&
                          Catch::Contains("[cudaErrorMemoryAllocation]"));
  REQUIRE_THROWS_WITH(check(CUBLAS_STATUS_INVALID_VALUE, "cublasSgemm(h, ...)", "gemm.cuh", 3),
                      Catch::Contains("cuBLAS error in cublasSgemm(h, ...) (gemm.cuh:3)") &&
                          Catch::Contains("[CUBLAS_STATUS_INVALID_VALUE]"));
  REQUIRE_NOTHROW(check(cudaSuccess, "cudaFree", "x.hpp", 1));
  REQUIRE_NOTHROW(check(CUBLAS_STATUS_SUCCESS, "cublasCreate", "x.hpp", 1));
}

TEST_CASE("device allocator size classes", "[cuda][allocator]") {
  using db::cuda::memory::detail::size_class;
  REQUIRE(size_class(1) == 512);
  REQUIRE(size_class(512) == 512);
  REQUIRE(size_class(513) == 640);
  REQUIRE(size_class(1024) == 1024);
  REQUIRE(size_class(1025) == 1280);
  for (std::size_t b : {std::size_t(3000), std::size_t(1) << 20, (std::size_t(1) << 30) + 1, std::size_t(123456789)}) {
    REQUIRE(size_class(b) >= b);
    REQUIRE(size_class(b) <= b + b / 4 + 512);  // at most 25 % slack
    REQUIRE(size_class(size_class(b)) == size_class(b));
  }
}

TEST_CASE("Philox4x32-10 matches Random123's known answers", "[cuda][random]") {
  using dbops::db::ops::cuda_detail::Philox4;
  using dbops::db::ops::cuda_detail::philox4x32_10;
  auto eq = [](Philox4 a, std::array<std::uint32_t, 4> b) {
    return a.v[0] == b[0] && a.v[1] == b[1] && a.v[2] == b[2] && a.v[3] == b[3];
  };
  REQUIRE(eq(philox4x32_10(Philox4{{0, 0, 0, 0}}, 0, 0), {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  REQUIRE(eq(philox4x32_10(Philox4{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu),
             {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  REQUIRE(eq(philox4x32_10(Philox4{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u),
             {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
  REQUIRE(dbops::db::ops::cuda_detail::uniform_open(0) > 0.0f);
  REQUIRE(dbops::db::ops::cuda_detail::uniform_open(0xffffffffu) < 1.0f);
}

TEST_CASE("row-major GEMMs map onto column-major cuBLAS calls correctly (host reference BLAS)", "[cuda][gemm]") {
  using db::ops::cuda_detail::BlasCall;
  using db::ops::cuda_detail::row_major_call;
  // Reference column-major batched SGEMM, as the BLAS standard defines it (beta = 0).
  auto blas = [](const BlasCall& c, int batch) {
    for (int b = 0; b < batch; ++b)
      for (int j = 0; j < c.n; ++j)
        for (int i = 0; i < c.m; ++i) {
          double acc = 0;
          for (int l = 0; l < c.k; ++l) {
            const float* A = c.A + b * c.strideA;
            const float* B = c.B + b * c.strideB;
            const float a = c.opA == CUBLAS_OP_N ? A[i + std::size_t(l) * c.lda] : A[l + std::size_t(i) * c.lda];
            const float bb = c.opB == CUBLAS_OP_N ? B[l + std::size_t(j) * c.ldb] : B[j + std::size_t(l) * c.ldb];
            acc += double(a) * bb;
          }
          c.C[b * c.strideC + i + std::size_t(j) * c.ldc] = float(acc);
        }
  };
  db::Rng rng(1);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (long long shared_a : {0, 1}) {
        const int M = 5, N = 7, K = 3, batch = 3;
        const int lda = (ta ? M : K) + 2, ldb = (tb ? K : N) + 1, ldc = N + 3;  // padded leading dimensions
        const long long sA = shared_a ? 0 : (ta ? K : M) * lda, sB = (tb ? N : K) * ldb, sC = M * ldc;
        std::vector<float> A(std::size_t((ta ? K : M) * lda * batch)), B(std::size_t((tb ? N : K) * ldb * batch)),
            C(std::size_t(sC * batch), 0.0f);
        for (auto& v : A) v = float(rng.normal());
        for (auto& v : B) v = float(rng.normal());
        blas(row_major_call(ta, tb, M, N, K, A.data(), lda, sA, B.data(), ldb, sB, C.data(), ldc, sC), batch);
        for (int b = 0; b < batch; ++b)
          for (int r = 0; r < M; ++r)
            for (int c = 0; c < N; ++c) {
              double want = 0;
              for (int l = 0; l < K; ++l) {
                const float a = ta ? A[b * sA + l * lda + r] : A[b * sA + r * lda + l];
                const float bb = tb ? B[b * sB + c * ldb + l] : B[b * sB + l * ldb + c];
                want += double(a) * bb;
              }
              INFO("transA " << ta << " transB " << tb << " shared A " << shared_a << " at " << b << "," << r << "," << c);
              REQUIRE(C[b * sC + r * ldc + c] == Approx(want).margin(1e-5));
            }
      }
}

TEST_CASE("without a device: a CudaError naming the reason, never a crash", "[cuda][errors]") {
  if (db::cuda::available()) return;  // the GPU case is covered by every other test
  REQUIRE(db::cuda::device_count() == 0);
  REQUIRE_FALSE(db::cuda::device_unavailable_reason().empty());
  REQUIRE_THROWS_AS(db::cuda::require_device(), db::CudaError);
  REQUIRE_THROWS_WITH(db::cuda::require_device(), Catch::StartsWith("no CUDA device: "));
  REQUIRE_THROWS_AS((db::ops::zeros<float, 1>(Cuda{}, {16})), db::CudaError);
  // Empty tensors need no device.
  const db::Tensor<float, 3, Cuda> empty;
  REQUIRE(empty.size() == 0);
  REQUIRE(db::tensor_shape(empty) == db::Shape{0, 0, 0});
}

// ---- with a device ------------------------------------------------------------------------------

TEST_CASE("every CUDA op agrees with the CPU op (registry, test shapes)", "[cuda][ops]") {
  DBT_REQUIRE_GPU();
  std::printf("# %s\n", db::cuda::device_description().c_str());
  std::printf("%-34s %-44s %11s %11s\n", "op", "params", "max|err|", "max|cpu|");
  std::printf("# cuDNN: %s\n", db::cuda::cudnn::status().c_str());
  int failures = 0, skipped = 0;
  const auto cases = dbops::op_cases(dbops::Size::Test);
  for (const auto& c : cases) {
    INFO(c.op << " " << c.params);
    if (c.runnable && !c.runnable()) {
      std::printf("%-34s %-44s %11s\n", c.op.c_str(), c.params.c_str(), "(skipped: cuDNN unavailable)");
      ++skipped;
      continue;
    }
    const dbops::OpRun run = c.make();
    const dbops::Out want = run.cpu(), got = run.cuda();
    REQUIRE(got.size() == want.size());
    double err = 0, ref = 0;
    bool sizes_ok = true;
    for (std::size_t o = 0; o < want.size(); ++o) {
      if (got[o].size() != want[o].size()) sizes_ok = false;
      for (std::size_t i = 0; sizes_ok && i < want[o].size(); ++i) {
        ref = std::max(ref, std::fabs(double(want[o][i])));
        const double e = std::fabs(double(got[o][i]) - double(want[o][i]));
        err = std::isnan(e) ? (std::isnan(want[o][i]) && std::isnan(got[o][i]) ? err : INFINITY) : std::max(err, e);
      }
    }
    const bool ok = sizes_ok && err <= c.tolerance * std::max(1.0, ref);
    std::printf("%-34s %-44s %11.3g %11.3g%s\n", c.op.c_str(), c.params.c_str(), err, ref, ok ? "" : "  FAILED");
    if (!ok) ++failures;
    CHECK(sizes_ok);
    CHECK(err <= c.tolerance * std::max(1.0, ref));
  }
  std::printf("%zu op cases, %d failed, %d skipped\n", cases.size(), failures, skipped);
  std::fflush(stdout);
}

TEST_CASE("randn_ on the device: standard normal, reproducible by seed", "[cuda][random]") {
  DBT_REQUIRE_GPU();
  auto x = db::ops::empty<float, 2>(Cuda{}, {1001, 999});
  db::Rng a(5), b(5), c(6);
  db::ops::randn_(Cuda{}, x, a);
  const auto h1 = down(x);
  db::ops::randn_(Cuda{}, x, b);
  const auto h2 = down(x);
  db::ops::randn_(Cuda{}, x, c);
  const auto h3 = down(x);
  REQUIRE(std::equal(h1.begin(), h1.end(), h2.begin()));
  REQUIRE(diff(h1, h3).max_abs_err > 1.0);
  double s = 0, s2 = 0, s4 = 0;
  for (float v : h1) {
    REQUIRE(std::isfinite(v));
    s += v;
    s2 += double(v) * v;
    s4 += double(v) * v * v * v;
  }
  const double n = static_cast<double>(h1.size());
  REQUIRE(std::fabs(s / n) < 0.005);
  REQUIRE(std::fabs(s2 / n - 1.0) < 0.01);
  REQUIRE(std::fabs(s4 / n - 3.0) < 0.05);  // kurtosis of a normal
  // A second call on the same generator continues the stream (another draw).
  db::ops::randn_(Cuda{}, x, a);
  REQUIRE(diff(down(x), h1).max_abs_err > 1.0);
}

TEST_CASE("device tensors: value semantics, transfers, empty shapes", "[cuda][tensor]") {
  DBT_REQUIRE_GPU();
  const auto h = dbops::randn(std::array<std::size_t, 3>{2, 3, 5}, 1);
  db::Tensor<float, 3, Cuda> d = up(h);
  REQUIRE(d.shape(0) == 2);
  REQUIRE(d.size() == 30);
  db::Tensor<float, 3, Cuda> copy = d;
  db::ops::mul_scalar_(Cuda{}, copy, 2.0f);
  const auto back = down(d), twice = down(copy);
  REQUIRE(std::equal(back.begin(), back.end(), h.begin()));
  for (std::size_t i = 0; i < h.size(); ++i) REQUIRE(twice.data()[i] == 2.0f * h.data()[i]);
  db::Tensor<float, 3, Cuda> moved = std::move(copy);
  REQUIRE(copy.size() == 0);
  REQUIRE(moved.size() == 30);
  const auto e = db::ops::zeros<float, 2>(Cuda{}, {0, 7});
  REQUIRE(e.size() == 0);
  REQUIRE(db::copy_to_host(Cuda{}, e).empty());
  REQUIRE(db::ops::find_non_finite(Cuda{}, e) == -1);
}

TEST_CASE("device allocator reuses blocks per stream and releases them", "[cuda][allocator]") {
  DBT_REQUIRE_GPU();
  namespace mem = db::cuda::memory;
  void* first = nullptr;
  {
    auto t = db::ops::empty<float, 1>(Cuda{}, {1000});
    first = t.data();
  }
  {
    auto t = db::ops::empty<float, 1>(Cuda{}, {1001});  // same size class: the same block again
    REQUIRE(t.data() == first);
  }
  const auto before = mem::stats();
  for (int i = 0; i < 10; ++i) auto t = db::ops::zeros<float, 2>(Cuda{}, {256, 1024});
  const auto after = mem::stats();
  REQUIRE(after.mallocs <= before.mallocs + 1);  // one new block, reused nine times
  REQUIRE(after.in_use == before.in_use);
  {
    db::cuda::Stream s;
    db::cuda::StreamGuard g(s);
    auto t = db::ops::empty<float, 1>(Cuda{}, {1000});
    REQUIRE(t.data() != first);  // another stream never gets the default stream's free blocks
  }
  REQUIRE(mem::release_cached_memory() > 0);
  REQUIRE(mem::stats().cached == 0);
  mem::reset_peak();
  { auto t = db::ops::empty<float, 1>(Cuda{}, {1 << 20}); }
  REQUIRE(mem::stats().peak_in_use >= (std::size_t(4) << 20));
}

TEST_CASE("device errors: out of memory and a bad cuBLAS call are CudaErrors", "[cuda][errors]") {
  DBT_REQUIRE_GPU();
  REQUIRE_THROWS_WITH((db::ops::empty<float, 1>(Cuda{}, {std::size_t(1) << 50})),
                      Catch::Contains("cudaMalloc") && Catch::Contains("out of memory"));
  // The failed allocation left nothing behind: the device still works.
  auto x = db::ops::full<float, 1>(Cuda{}, {4}, 1.5f);
  REQUIRE(db::ops::first_value(Cuda{}, x) == 1.5f);
  const float one = 1.0f;
  REQUIRE_THROWS_WITH(DIFFBLOCKS_CUDA_CHECK(cublasSgemm(db::cuda::blas(), CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, x.data(),
                                                        1 /* lda < m */, x.data(), 4, &one, x.data(), 4)),
                      Catch::Contains("cuBLAS error in cublasSgemm") && Catch::Contains("CUBLAS_STATUS_INVALID_VALUE"));
}

TEST_CASE("attention on the device: variants agree and follow the setting", "[cuda][attention]") {
  DBT_REQUIRE_GPU();
  const auto q = dbops::randn(std::array<std::size_t, 3>{2, 300, 128}, 1);
  const auto k = dbops::randn(std::array<std::size_t, 3>{2, 200, 128}, 2);
  const auto v = dbops::randn(std::array<std::size_t, 3>{2, 200, 128}, 3);
  const auto bias = db::ops::keep_mask_to_bias(Cpu{}, dbops::keep_mask(2, 200, {200, 17}));
  const auto dq = up(q), dk = up(k), dv = up(v);
  const auto dbias = up(bias);
  const float scale = 0.125f;
  const auto want = db::ops::attention_naive(Cpu{}, q, k, v, 4, scale, bias);
  require_close(down(db::ops::attention_naive(Cuda{}, dq, dk, dv, 4, scale, dbias)), want, "naive");
  require_close(down(db::ops::attention_streaming(Cuda{}, dq, dk, dv, 4, scale, dbias)), want, "streaming");
  for (auto a : {db::ops::AttentionAlgorithm::Naive, db::ops::AttentionAlgorithm::Streaming, db::ops::AttentionAlgorithm::Auto})
    require_close(down(db::ops::attention(Cuda(a), dq, dk, dv, 4, scale, dbias)), want, "setting");
}

TEST_CASE("ops on two streams from two threads give the single-stream bits", "[cuda][streams]") {
  DBT_REQUIRE_GPU();
  const auto x = dbops::randn(std::array<std::size_t, 4>{2, 16, 40, 64}, 9);
  const auto w = dbops::randn(std::array<std::size_t, 4>{16, 16, 3, 3}, 10, 0.1f);
  const auto b = dbops::randn(std::array<std::size_t, 1>{16}, 11);
  auto work = [&] {
    const auto dx = up(x), dw = up(w);
    const auto db_ = up(b);
    auto y = db::ops::conv2d(Cuda{}, dx, dw, db_, 1, 1);
    db::ops::group_norm_mish_mask_(Cuda{}, y, 8, db_, db_, 1e-5, up(dbops::frame_mask(2, 64, {64, 30})));
    return down(y);
  };
  const auto ref = work();
  std::vector<db::Tensor<float, 4>> results(2);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&, i] {
      db::cuda::Stream s;
      db::cuda::StreamGuard g(s);
      for (int rep = 0; rep < 3; ++rep) results[i] = work();
    });
  for (auto& t : threads) t.join();
  for (const auto& r : results) REQUIRE(std::equal(r.begin(), r.end(), ref.begin()));
}

// ==== blocks, U-Nets, samplers, CLI ==============================================================

namespace {

template <class M>
void load_cuda(const BlockFixture& f, M& m) {
  db::StateDict sd(f.st);
  db::load_state_dict<Cuda>(m, sd, false);
}

BlockFixture dblock(const std::string& name) { return BlockFixture(name, "diffusers/blocks"); }

template <std::size_t N>
void require_close_dev(const Tensor<float, N, Cuda>& got, const Tensor<float, N>& want, const std::string& what) {
  require_close(down(got), want, what);
}

}  // namespace

// ---- blocks ---------------------------------------------------------------------------------------

TEST_CASE("Grad-TTS blocks on CUDA match PyTorch", "[cuda][blocks]") {
  DBT_REQUIRE_GPU();
  for (const char* name : {"conv2d_3x3", "conv2d_3x3_s2", "conv2d_1x1", "conv2d_1x1_nobias"}) {
    BlockFixture f(name);
    db::Conv2d<float, Cuda> conv(f.cfg("in_channels"), f.cfg("out_channels"), f.cfg("kernel_size"), f.cfg("stride"),
                                 f.cfg("padding"), f.config.at("bias").get<bool>());
    load_cuda(f, conv);
    require_close_dev(conv.forward(up(f.input<4>("x"))), f.output<4>(), name);
  }
  {
    BlockFixture f("conv_transpose2d");
    db::ConvTranspose2d<float, Cuda> conv(f.cfg("in_channels"), f.cfg("out_channels"), f.cfg("kernel_size"),
                                          f.cfg("stride"), f.cfg("padding"));
    load_cuda(f, conv);
    require_close_dev(conv.forward(up(f.input<4>("x"))), f.output<4>(), "conv_transpose2d");
  }
  for (const char* name : {"group_norm", "group_norm_4"}) {
    BlockFixture f(name);
    db::GroupNorm<float, Cuda> gn(f.cfg("num_groups"), f.cfg("num_channels"), f.config.at("eps").get<double>(),
                                  f.config.at("affine").get<bool>());
    load_cuda(f, gn);
    require_close_dev(gn.forward(up(f.input<4>("x"))), f.output<4>(), name);
  }
  {
    BlockFixture f("block");
    db::Block<float, Cuda> block(f.cfg("dim"), f.cfg("dim_out"), f.cfg("groups"));
    load_cuda(f, block);
    require_close_dev(block.forward(up(f.input<4>("x")), up(f.input<4>("mask"))), f.output<4>(), "block");
  }
  for (const char* name : {"resnet_block", "resnet_block_same"}) {
    BlockFixture f(name);
    db::ResnetBlock<float, Cuda> rb(f.cfg("dim"), f.cfg("dim_out"), f.cfg("time_emb_dim"), f.cfg("groups"));
    load_cuda(f, rb);
    require_close_dev(rb.forward(up(f.input<4>("x")), up(f.input<4>("mask")), up(f.input<2>("t"))), f.output<4>(), name);
  }
  {
    BlockFixture f("linear_attention");
    db::LinearAttention<float, Cuda> attn(f.cfg("dim"), f.cfg("heads"), f.cfg("dim_head"));
    load_cuda(f, attn);
    require_close_dev(attn.forward(up(f.input<4>("x"))), f.output<4>(), "linear_attention");
  }
  {
    BlockFixture f("residual_rezero_linear_attention");
    db::Residual<db::Rezero<db::LinearAttention<float, Cuda>>> attn(f.cfg("dim"));
    load_cuda(f, attn);
    require_close_dev(attn.forward(up(f.input<4>("x"))), f.output<4>(), "residual_rezero_linear_attention");
  }
  {
    BlockFixture f("downsample");
    db::Downsample<float, Cuda> d(f.cfg("dim"));
    load_cuda(f, d);
    require_close_dev(d.forward(up(f.input<4>("x"))), f.output<4>(), "downsample");
    BlockFixture g("upsample");
    db::Upsample<float, Cuda> u(g.cfg("dim"));
    load_cuda(g, u);
    require_close_dev(u.forward(up(g.input<4>("x"))), g.output<4>(), "upsample");
  }
  for (const char* name : {"sinusoidal_pos_emb", "sinusoidal_pos_emb_scale1"}) {
    BlockFixture f(name);
    db::SinusoidalPosEmb<float, Cuda> emb(f.cfg("dim"));
    require_close_dev(emb.forward(up(f.input<1>("t")), f.config.at("scale").get<double>()), f.output<2>(), name);
  }
  {
    BlockFixture f("linear");
    db::Linear<float, Cuda> lin(f.cfg("in_features"), f.cfg("out_features"), f.config.at("bias").get<bool>());
    load_cuda(f, lin);
    require_close_dev(lin.forward(up(f.input<2>("x"))), f.output<2>(), "linear");
  }
}

TEST_CASE("diffusers blocks on CUDA match diffusers", "[cuda][blocks]") {
  DBT_REQUIRE_GPU();
  for (const char* name : {"resnet_block2d_default", "resnet_block2d_default_same", "resnet_block2d_ada_group",
                           "resnet_block2d_ada_group_same"}) {
    auto f = dblock(name);
    db::ResnetBlock2D<float, Cuda> rb(f.cfg("in_channels"), f.cfg("out_channels"), f.cfg("temb_channels"), f.cfg("groups"),
                                      f.config.at("eps").get<double>(),
                                      db::parse_time_embedding_norm(f.config.at("time_embedding_norm"), name),
                                      f.config.at("output_scale_factor").get<double>());
    load_cuda(f, rb);
    require_close_dev(rb.forward(up(f.input<4>("input_tensor")), up(f.input<2>("temb"))), f.output<4>(), name);
  }
  {
    auto f = dblock("ada_group_norm");
    db::AdaGroupNorm<float, Cuda> n(f.cfg("embedding_dim"), f.cfg("out_dim"), f.cfg("num_groups"), f.config.at("eps").get<double>());
    load_cuda(f, n);
    require_close_dev(n.forward(up(f.input<4>("x")), up(f.input<2>("emb"))), f.output<4>(), "ada_group_norm");
  }
  {
    auto f = dblock("layer_norm");
    db::LayerNorm<float, Cuda> ln(f.cfg("normalized_shape"), f.config.at("eps").get<double>());
    load_cuda(f, ln);
    require_close_dev(ln.forward(up(f.input<3>("x"))), f.output<3>(), "layer_norm");
  }
  for (const char* name : {"transformer2d", "transformer2d_linear", "transformer2d_2layers"}) {
    auto f = dblock(name);
    db::Transformer2DModel<float, Cuda> t(f.cfg("num_attention_heads"), f.cfg("attention_head_dim"), f.cfg("in_channels"),
                                          f.config.value("num_layers", 1), f.cfg("cross_attention_dim"),
                                          f.cfg("norm_num_groups"), f.config.value("use_linear_projection", false));
    load_cuda(f, t);
    require_close_dev(t.forward(up(f.input<4>("hidden_states")), up(f.input<3>("encoder_hidden_states"))), f.output<4>(), name);
  }
  {
    auto f = dblock("attention_cross_mask");
    db::CrossAttention<float, Cuda> a(f.cfg("query_dim"), f.cfg("cross_attention_dim"), f.cfg("heads"), f.cfg("dim_head"));
    load_cuda(f, a);
    require_close_dev(a.forward(up(f.input<3>("hidden_states")), up(f.input<3>("encoder_hidden_states")),
                                up(f.input<2>("encoder_attention_mask"))),
                      f.output<3>(), "attention_cross_mask");
  }
  {
    auto f = dblock("feed_forward_geglu");
    db::FeedForward<float, Cuda> ff(f.cfg("dim"));
    load_cuda(f, ff);
    require_close_dev(ff.forward(up(f.input<3>("hidden_states"))), f.output<3>(), "feed_forward_geglu");
  }
  for (const char* name : {"timesteps", "timesteps_odd"}) {
    auto f = dblock(name);
    db::Timesteps<float, Cuda> ts(f.cfg("num_channels"), f.config.at("flip_sin_to_cos").get<bool>(),
                                  f.config.at("downscale_freq_shift").get<double>());
    require_close_dev(ts.forward(up(f.input<1>("timesteps"))), f.output<2>(), name);
  }
  {
    auto f = dblock("upsample2d_size");
    db::Upsample2D<float, Cuda> u(f.cfg("channels"));
    load_cuda(f, u);
    const auto size = f.config.at("output_size");
    require_close_dev(u.forward(up(f.input<4>("hidden_states")), size[0].get<std::size_t>(), size[1].get<std::size_t>()),
                      f.output<4>(), "upsample2d_size");
  }
  {
    auto f = dblock("image_hint_time_embedding");
    db::ImageHintTimeEmbedding<float, Cuda> e(f.cfg("image_embed_dim"), f.cfg("time_embed_dim"));
    load_cuda(f, e);
    const auto [aug, hint] = e.forward(up(f.input<2>("image_embeds")), up(f.input<4>("hint")));
    require_close_dev(aug, f.output<2>(), "image_hint aug");
    require_close_dev(hint, f.output<4>("output.hint"), "image_hint hint");
  }
  {
    auto f = dblock("text_time_embedding");
    db::TextTimeEmbedding<float, Cuda> e(f.cfg("encoder_dim"), f.cfg("time_embed_dim"), f.cfg("num_heads"));
    load_cuda(f, e);
    require_close_dev(e.forward(up(f.input<3>("hidden_states"))), f.output<2>(), "text_time_embedding");
  }
}

TEST_CASE("blocks on CUDA reject bad inputs with the CPU's InputError", "[cuda][blocks][errors]") {
  DBT_REQUIRE_GPU();
  db::Conv2d<float, Cuda> conv(4, 8, 3, 1, 1);
  db::Conv2d<> conv_cpu(4, 8, 3, 1, 1);
  const auto x = Tensor<float, 4>::from_shape({1, 5, 6, 6});
  std::string cpu_msg;
  try {
    conv_cpu.forward(x);
  } catch (const db::InputError& e) {
    cpu_msg = e.what();
  }
  REQUIRE_FALSE(cpu_msg.empty());
  REQUIRE_THROWS_AS(conv.forward(up(x)), db::InputError);
  REQUIRE_THROWS_WITH(conv.forward(up(x)), cpu_msg);
  db::Block<float, Cuda> block(4, 8);
  REQUIRE_THROWS_AS(block.forward(up(Tensor<float, 4>::from_shape({1, 4, 3, 6})), up(Tensor<float, 4>::from_shape({1, 1, 1, 5}))),
                    db::InputError);
}

// ---- U-Nets -------------------------------------------------------------------------------------

namespace {

using OriginCase = dbt::OriginCase<Cuda>;

OriginCase load_cuda_case(const std::string& model_path, const std::string& inputs_path) {
  return load_origin_case<Cuda>(model_path, inputs_path);
}

Tensor<float, 3> run_origin(const OriginCase& c) {
  return down(c.model->forward(up(c.x), up(c.mask), up(c.mu), up(c.t), db::to_device(Cuda{}, c.cond)));
}

}  // namespace

TEST_CASE("Origin U-Net on CUDA reproduces PyTorch (fixtures a-e)", "[cuda][origin]") {
  DBT_REQUIRE_GPU();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"origin_a", "origin_a/inputs.safetensors"},     {"origin_b", "origin_b/inputs.safetensors"},
      {"origin_b", "origin_b/inputs_vec.safetensors"}, {"origin_c", "origin_c/inputs.safetensors"},
      {"origin_d", "origin_d/inputs.safetensors"},     {"origin_e.safetensors", "origin_e_inputs.safetensors"}};
  for (const auto& [model, inputs] : cases) {
    INFO(model << " " << inputs);
    const std::string weights = model.find(".safetensors") == std::string::npos ? model + "/model.safetensors" : model;
    if (!std::filesystem::exists(fixture(weights))) {  // a trimmed checkout (the 15 MB origin_a/b/c models)
      WARN("fixture " << model << " is missing: case skipped");
      continue;
    }
    auto c = load_cuda_case(fixture(model), fixture(inputs));
    const std::string expected = model == "origin_e.safetensors" ? fixture("origin_e_expected.safetensors")
                                                                 : fixture(model + "/expected.safetensors");
    const auto out = run_origin(c);
    require_close(out, read_tensor<3>(db::SafeTensors::load(expected), "out"), model);
    for (std::size_t b = 0; b < out.shape(0); ++b)
      for (std::size_t f = 0; f < out.shape(1); ++f)
        for (std::size_t w = 0; w < out.shape(2); ++w)
          if (c.mask(b, 0, w) == 0.0f) REQUIRE(out(b, f, w) == 0.0f);
  }
}

TEST_CASE("Origin on CUDA: inputs are checked as on the CPU; repeated forwards are bit-identical and allocate nothing",
          "[cuda][origin][allocator]") {
  DBT_REQUIRE_GPU();
  auto c = load_cuda_case(fixture("origin_d"), fixture("origin_d/inputs.safetensors"));
  const auto first = run_origin(c);
  const auto mallocs = db::cuda::memory::stats().mallocs;
  const auto second = run_origin(c);
  REQUIRE(db::cuda::memory::stats().mallocs == mallocs);
  REQUIRE(std::equal(first.begin(), first.end(), second.begin()));
  auto bad = c.mu;
  bad(1, 3, 5) = std::nanf("");
  REQUIRE_THROWS_WITH(c.model->forward(up(c.x), up(c.mask), up(bad), up(c.t)),
                      Catch::Contains("'mu'") && Catch::Contains("NaN") && Catch::Contains("flat index"));
  auto t3 = Tensor<float, 1>::from_shape({3});
  t3.fill(0.5f);
  REQUIRE_THROWS_AS(c.model->forward(up(c.x), up(c.mask), up(c.mu), up(t3)), db::InputError);
}

TEST_CASE("SoftmaxSelfAttention (the Origin's alternative attention) on CUDA agrees with the CPU", "[cuda][blocks][attention]") {
  DBT_REQUIRE_GPU();
  db::SoftmaxSelfAttention<> cpu(16);
  db::SoftmaxSelfAttention<float, Cuda> gpu(16);
  db::Rng rng(3);  // the same random parameters on both devices
  cpu.visit([&](const std::string&, auto& t) {
    for (auto& v : t) v = static_cast<float>(0.2 * rng.normal());
  });
  std::vector<std::vector<float>> values;
  cpu.visit([&](const std::string&, auto& t) { values.emplace_back(t.begin(), t.end()); });
  std::size_t i = 0;
  gpu.visit([&](const std::string&, auto& t) { db::assign_from_host(Cuda{}, t, values[i++].data()); });
  const auto x = dbops::randn(std::array<std::size_t, 4>{2, 16, 4, 24}, 4);
  const auto mask = dbops::frame_mask(2, 24, {24, 15});
  require_close(down(gpu.forward(up(x), up(mask))), cpu.forward(x, mask), "softmax self-attention, masked");
  require_close(down(gpu.forward(up(x))), cpu.forward(x), "softmax self-attention");
}

TEST_CASE("Diffuser U-Net on CUDA reproduces diffusers 0.25.1", "[cuda][diffuser]") {
  DBT_REQUIRE_GPU();
  for (const char* name : {"unet_ada_image", "unet_default", "unet_odd_frames", "unet_image_hint", "unet_text",
                           "unet_text_time", "unet_heads", "unet_only_cross"}) {
    INFO(name);
    const std::string dir = fixture(std::string("diffusers/") + name);
    auto model = db::load_diffuser<float, Cuda>(dir);
    const auto inputs = read_diffuser_inputs(db::SafeTensors::load(dir + "/inputs.safetensors"));
    const auto want = read_tensor<4>(db::SafeTensors::load(dir + "/expected.safetensors"), "out");
    require_close(down(model->forward(db::to_device(Cuda{}, inputs))), want, name);
  }
}

// ---- samplers ------------------------------------------------------------------------------------

namespace {
struct SampleCase : SampleFixture<Cuda> {
  Tensor<float, 3> sample(int steps, bool stochastic = false, std::uint64_t seed = 0) const {
    return down(db::reverse_diffusion(*model, up(z), up(mask), up(mu), options(steps, stochastic, seed)));
  }
};
}  // namespace

TEST_CASE("Grad-TTS reverse diffusion (ODE) on CUDA matches PyTorch for 1, 3 and 5 steps", "[cuda][sampler]") {
  DBT_REQUIRE_GPU();
  SampleCase c;
  const auto exp = db::SafeTensors::load(fixture("sample_ode/expected.safetensors"));
  require_close(c.sample(1), read_tensor<3>(exp, "out_steps_1"), "1 step");
  require_close(c.sample(3), read_tensor<3>(exp, "out_steps_3"), "3 steps");
  require_close(c.sample(5), read_tensor<3>(exp, "out"), "5 steps");
}

TEST_CASE("Grad-TTS ODE sampler on CUDA: the graph replay gives the eager loop's bits, progress and errors",
          "[cuda][sampler][graph]") {
  DBT_REQUIRE_GPU();
  SampleCase c;
  for (int steps : {1, 2, 5}) {
    INFO(steps << " steps");
    auto opt = c.options(steps, false, 0);
    opt.graph = false;
    const auto eager = down(db::reverse_diffusion(*c.model, up(c.z), up(c.mask), up(c.mu), opt));
    std::vector<std::pair<int, double>> seen;
    opt.graph = true;
    opt.progress = [&](int i, int n, double s) {
      REQUIRE(n == steps);
      seen.emplace_back(i, s);
    };
    const auto before = db::cuda::sampler_graph_launches();
    const auto graphed = down(db::reverse_diffusion(*c.model, up(c.z), up(c.mask), up(c.mu), opt));
    REQUIRE(db::cuda::sampler_graph_launches() - before == std::uint64_t(steps - 1));  // steps 2.. replayed
    REQUIRE(std::equal(graphed.begin(), graphed.end(), eager.begin()));
    REQUIRE(seen.size() == std::size_t(steps));
    for (int i = 0; i < steps; ++i) {
      REQUIRE(seen[std::size_t(i)].first == i + 1);
      REQUIRE(seen[std::size_t(i)].second > 0.0);
    }
  }
  // A diverging sample: the same step is named either way.
  for (auto& v : c.z) v *= 1000.0f;
  auto opt = c.options(20, false, 0);
  std::string eager_msg, graph_msg;
  for (bool graph : {false, true}) {
    opt.graph = graph;
    try {
      (void)db::reverse_diffusion(*c.model, up(c.z), up(c.mask), up(c.mu), opt);
    } catch (const db::Error& e) {
      (graph ? graph_msg : eager_msg) = e.what();
    }
  }
  REQUIRE_THAT(eager_msg, Catch::Contains("NaN/Inf at step"));
  REQUIRE(graph_msg == eager_msg);
}

TEST_CASE("Grad-TTS stochastic sampler on CUDA: reproducible by seed, padded frames zero", "[cuda][sampler]") {
  DBT_REQUIRE_GPU();
  SampleCase c;
  check_stochastic_sampler(c);
}

TEST_CASE("a diverging sampler on CUDA stops with the CPU's error", "[cuda][sampler][errors]") {
  DBT_REQUIRE_GPU();
  SampleCase c;
  for (auto& v : c.z) v *= 1000.0f;
  db::GradTTSSamplerOptions opt;
  opt.steps = 20;
  REQUIRE_THROWS_WITH(db::reverse_diffusion(*c.model, up(c.z), up(c.mask), up(c.mu), opt),
                      Catch::Contains("NaN/Inf at step") && Catch::Contains("diverges"));
}

TEST_CASE("forward_diffusion on CUDA matches Grad-TTS", "[cuda][sampler]") {
  DBT_REQUIRE_GPU();
  const auto f = db::SafeTensors::load(fixture("sample_ode/forward_diffusion.safetensors"));
  const auto cfg = nlohmann::json::parse(f.metadata().at("config"));
  const auto xt = db::forward_diffusion<Cuda>(up(read_tensor<3>(f, "x0")), up(read_tensor<3>(f, "mask")), up(read_tensor<3>(f, "mu")),
                                        up(read_tensor<1>(f, "t")), up(read_tensor<3>(f, "z")),
                                        cfg.at("beta_min").get<double>(), cfg.at("beta_max").get<double>());
  require_close_dev(xt, read_tensor<3>(f, "xt"), "forward_diffusion");
}

TEST_CASE("diffusers schedulers on CUDA match diffusers' recorded steps", "[cuda][scheduler]") {
  DBT_REQUIRE_GPU();
  for (const char* name : {"ddpm", "ddim", "euler_discrete"}) {
    INFO(name);
    const auto st = db::SafeTensors::load(fixture(std::string("diffusers/schedulers/") + name + ".safetensors"));
    const auto config = nlohmann::json::parse(st.metadata().at("config"));
    std::unique_ptr<db::Scheduler<float, Cuda>> s;
    const std::string n = name;
    if (n == "ddpm") s = std::make_unique<db::DDPMScheduler<float, Cuda>>();
    if (n == "ddim") s = std::make_unique<db::DDIMScheduler<float, Cuda>>();
    if (n == "euler_discrete") s = std::make_unique<db::EulerDiscreteScheduler<float, Cuda>>();
    s->set_timesteps(config.at("num_inference_steps").get<int>());
    db::Rng rng(0);
    for (int k : config.at("recorded_steps").get<std::vector<int>>()) {
      const std::string p = "step" + std::to_string(k) + ".";
      std::vector<float> tv(1);
      st.read_numeric(st.info(p + "timestep"), tv.data());
      const double t = tv[0];
      if (n == "euler_discrete")
        require_close_dev(s->scale_model_input(up(read_tensor<4>(st, p + "sample")), t), read_tensor<4>(st, p + "scaled_input"),
                          p + "scaled_input");
      const Tensor<float, 4, Cuda> noise = n == "ddpm" ? up(read_tensor<4>(st, p + "variance_noise")) : Tensor<float, 4, Cuda>{};
      require_close_dev(s->step(up(read_tensor<4>(st, p + "model_output")), t, up(read_tensor<4>(st, p + "sample")), rng,
                                n == "ddpm" ? &noise : nullptr),
                        read_tensor<4>(st, p + "prev_sample"), p + "prev_sample");
    }
  }
}

TEST_CASE("diffusers_sample on CUDA: DDIM and Euler reproduce the diffusers loop, DDPM is reproducible by seed",
          "[cuda][scheduler]") {
  DBT_REQUIRE_GPU();
  auto unet = db::load_diffuser<float, Cuda>(fixture("diffusers/unet_default"));
  db::DiffusersSamplingOptions opt;
  opt.steps = 4;
  auto inputs_of = [](const std::string& path) {  // sampling inputs: no timestep
    const auto in = db::SafeTensors::load(path);
    db::DiffuserInputs<float> d;
    d.sample = read_tensor<4>(in, "sample");
    d.timestep = Tensor<float, 1>::from_shape({1});
    d.encoder_hidden_states = read_tensor<3>(in, "encoder_hidden_states");
    d.class_labels = in.read_int("class_labels");
    return db::to_device(Cuda{}, d);
  };
  const std::string dir = fixture("diffusers/sampling/");
  {
    db::DDIMScheduler<float, Cuda> s;
    require_close(down(db::diffusers_sample(*unet, s, inputs_of(dir + "ddim_inputs.safetensors"), opt)),
                  read_tensor<4>(db::SafeTensors::load(dir + "ddim_expected.safetensors"), "out"), "ddim loop");
  }
  {
    db::EulerDiscreteScheduler<float, Cuda> s;
    require_close(down(db::diffusers_sample(*unet, s, inputs_of(dir + "euler_inputs.safetensors"), opt)),
                  read_tensor<4>(db::SafeTensors::load(dir + "euler_expected.safetensors"), "out"), "euler loop");
  }
  {
    db::DDPMScheduler<float, Cuda> s1, s2;
    opt.seed = 11;
    const auto a = down(db::diffusers_sample(*unet, s1, inputs_of(dir + "ddim_inputs.safetensors"), opt));
    const auto b = down(db::diffusers_sample(*unet, s2, inputs_of(dir + "ddim_inputs.safetensors"), opt));
    REQUIRE(std::equal(a.begin(), a.end(), b.begin()));
    for (float v : a) REQUIRE(std::isfinite(v));
  }
}

TEST_CASE("two models on two streams from two threads give the single-thread bits", "[cuda][streams][origin]") {
  DBT_REQUIRE_GPU();
  // origin_c (15 MB) may be left out of a trimmed checkout sent to a GPU machine: origin_d then.
  const std::string name = std::filesystem::exists(fixture("origin_c/model.safetensors")) ? "origin_c" : "origin_d";
  auto c = load_cuda_case(fixture(name), fixture(name + "/inputs.safetensors"));
  const auto ref = run_origin(c);
  std::vector<Tensor<float, 3>> outs(2);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&, i] {
      db::cuda::Stream s;
      db::cuda::StreamGuard g(s);
      for (int rep = 0; rep < 2; ++rep) outs[i] = run_origin(c);
    });
  for (auto& t : threads) t.join();
  for (const auto& o : outs) REQUIRE(std::equal(o.begin(), o.end(), ref.begin()));
}

// ---- CLI --------------------------------------------------------------------------------------

#ifdef DIFFBLOCKS_CLI
TEST_CASE("CLI --device cuda", "[cuda][cli]") {
  const std::string args = "run --device cuda --model " + fixture("origin_d") + " --inputs " +
                           fixture("origin_d/inputs.safetensors") + " --output ";
  if (!db::cuda::available()) {
    // Built with CUDA, no GPU: one line naming why, exit 1, nothing written.
    const std::string out = tmp_path("cli_cuda_nodevice.safetensors");
    require_cli_error(args + out, "no CUDA device", out);
    require_cli_error("sample --device cuda --model " + fixture("sample_ode") + " --inputs " +
                          fixture("sample_ode/inputs.safetensors") + " --steps 2 --output " + out,
                      "no CUDA device", out);
    return;
  }
  SECTION("run: Origin and Diffuser reproduce the fixtures") {
    const std::string out = tmp_path("cli_cuda_run.safetensors");
    auto r = cli(args + out);
    INFO(r.err);
    REQUIRE(r.status == 0);
    require_close(read_tensor<3>(db::SafeTensors::load(out), "out"),
                  read_tensor<3>(db::SafeTensors::load(fixture("origin_d/expected.safetensors")), "out"), "cli cuda origin");
    const std::string dir = fixture("diffusers/unet_text");
    r = cli("run --device cuda --model " + dir + " --inputs " + dir + "/inputs.safetensors --output " + out);
    INFO(r.err);
    REQUIRE(r.status == 0);
    require_close(read_tensor<4>(db::SafeTensors::load(out), "out"),
                  read_tensor<4>(db::SafeTensors::load(dir + "/expected.safetensors"), "out"), "cli cuda diffuser");
  }
  SECTION("sample: Grad-TTS ODE and DDIM agree with the CPU") {
    const std::string a = tmp_path("cli_cuda_sample_gpu.safetensors"), b = tmp_path("cli_cuda_sample_cpu.safetensors");
    const std::string base = "sample --model " + fixture("sample_ode") + " --inputs " + fixture("sample_ode/inputs.safetensors") +
                             " --steps 5 --output ";
    auto r = cli(base + a + " --device cuda");
    INFO(r.err);
    REQUIRE(r.status == 0);
    REQUIRE(r.err.find("step 5/5") != std::string::npos);
    require_close(read_tensor<3>(db::SafeTensors::load(a), "out"),
                  read_tensor<3>(db::SafeTensors::load(fixture("sample_ode/expected.safetensors")), "out"), "cli cuda sample");
    for (const char* sched : {"ddim", "euler"}) {
      const std::string in = fixture("diffusers/sampling/") + sched;
      r = cli("sample --device cuda --model " + fixture("diffusers/unet_default") + " --inputs " + in +
              "_inputs.safetensors --steps 4 --scheduler " + sched + " --output " + a);
      INFO(r.err);
      REQUIRE(r.status == 0);
      require_close(read_tensor<4>(db::SafeTensors::load(a), "out"),
                    read_tensor<4>(db::SafeTensors::load(in + "_expected.safetensors"), "out"), sched);
    }
    const std::string sde = "sample --model " + fixture("sample_ode") + " --inputs " + fixture("sample_ode/inputs.safetensors") +
                            " --steps 3 --stochastic --seed 4 --device cuda --output ";
    REQUIRE(cli(sde + a).status == 0);
    REQUIRE(cli(sde + b).status == 0);
    REQUIRE(db::SafeTensors::load(a).read_float("out") == db::SafeTensors::load(b).read_float("out"));
  }
}
#endif
