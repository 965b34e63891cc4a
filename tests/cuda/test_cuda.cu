// The Cuda device's tests, in one nvcc translation unit (each .cu file costs about a minute of
// CI build). The shared test bodies of tests/parity/ run here for the Cuda device exactly as the
// CPU test binary runs them for the CPU: every op of the registry (tests/ops/op_cases.hpp)
// under every variant of tests/cuda/variants.hpp against its plain reference, then blocks, both
// U-Nets, the samplers and schedulers against the committed PyTorch / diffusers fixtures. Here
// too: the CUDA-only checks (runtime pieces, allocator, streams, CUDA graphs, bit-identity,
// the device's InputErrors against the CPU's) and the CLI.
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
#include "variants.hpp"
#include "../ops/tensor_gen.hpp"
#include "../parity/ops.hpp"
#include "../parity/blocks.hpp"
#include "../parity/variants.hpp"
#include "../parity/origin.hpp"
#include "../parity/diffuser.hpp"
#include "../parity/sampler.hpp"

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

// ==== blocks, U-Nets, samplers, CLI (the fixtures: tests/parity/) ==================================

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

TEST_CASE("Origin on CUDA: inputs are checked as on the CPU, repeated forwards are bit-identical and allocate nothing",
          "[cuda][origin][allocator]") {
  DBT_REQUIRE_GPU();
  auto c = load_origin_case<Cuda>(fixture("origin_d"), fixture("origin_d/inputs.safetensors"));
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

// ---- samplers ------------------------------------------------------------------------------------

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

TEST_CASE("two models on two streams from two threads give the single-thread bits", "[cuda][streams][origin]") {
  DBT_REQUIRE_GPU();
  // origin_c (15 MB) may be left out of a trimmed checkout sent to a GPU machine: origin_d then.
  const std::string name = std::filesystem::exists(fixture("origin_c/model.safetensors")) ? "origin_c" : "origin_d";
  auto c = load_origin_case<Cuda>(fixture(name), fixture(name + "/inputs.safetensors"));
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

TEST_CASE("two models holding devices with streams of their own run concurrently with the solo bits",
          "[cuda][streams][origin][device]") {
  DBT_REQUIRE_GPU();
  const std::string name = std::filesystem::exists(fixture("origin_c/model.safetensors")) ? "origin_c" : "origin_d";
  auto a = load_origin_case<Cuda>(fixture(name), fixture(name + "/inputs.safetensors"));
  auto b = load_origin_case<Cuda>(fixture(name), fixture(name + "/inputs.safetensors"));
  const auto ref = run_origin(a);
  const Cuda da = Cuda::with_own_stream(), dbb = Cuda::with_own_stream(db::ops::AttentionAlgorithm::Naive);
  REQUIRE(da != dbb);
  REQUIRE(Cuda(da) == da);  // copies share the stream
  a.model->to(da);
  b.model->to(dbb);
  REQUIRE(a.model->device().stream->handle() != db::cuda::stream());
  {  // while a device is in effect its stream is the thread's current one, and then no longer
    const db::DeviceScope<Cuda> on(da);
    REQUIRE(db::cuda::stream() == da.stream->handle());
  }
  REQUIRE(db::cuda::stream() != da.stream->handle());
  // Inputs uploaded and outputs downloaded on the caller's stream: the scope joins the streams.
  std::vector<Tensor<float, 3>> outs(2);
  std::thread ta([&] { for (int rep = 0; rep < 3; ++rep) outs[0] = run_origin(a); });
  std::thread tb([&] { for (int rep = 0; rep < 3; ++rep) outs[1] = run_origin(b); });
  ta.join();
  tb.join();
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
