// The Cuda device's runtime pieces and every op against the CPU op.
//
// Runs without a GPU: the error mapping (CudaError names the call and CUDA's string), the
// allocator's size classes, Philox's known-answer vectors, and what happens when no device is
// there (a CudaError, never a crash). Everything else needs a device and is reported as skipped
// ("SKIPPED: no CUDA device") without one.
#include <algorithm>
#include <cstdio>
#include <thread>

#include "cuda_helpers.hpp"
#include "op_cases.hpp"

using namespace dbt;

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
  int failures = 0;
  const auto cases = dbops::op_cases(dbops::Size::Test);
  for (const auto& c : cases) {
    INFO(c.op << " " << c.params);
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
  std::printf("%zu op cases, %d failed\n", cases.size(), failures);
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
  for (auto a : {db::ops::AttentionAlgorithm::Naive, db::ops::AttentionAlgorithm::Streaming, db::ops::AttentionAlgorithm::Auto}) {
    db::ops::set_attention_algorithm(a);
    require_close(down(db::ops::attention(Cuda{}, dq, dk, dv, 4, scale, dbias)), want, "setting");
  }
  db::ops::set_attention_algorithm(db::ops::AttentionAlgorithm::Auto);
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
