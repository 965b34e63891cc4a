// The Cuda device's float32 tests and its half-precision unit checks, in one nvcc translation
// unit (each .cu file costs about a minute of CI build; the bf16 / f16 parity bodies are in
// test_cuda_bf16.cu and test_cuda_f16.cu). The shared test bodies of tests/parity/ run here for the Cuda device exactly as the
// CPU test binary runs them for the CPU: every op of the registry (tests/ops/op_cases.hpp)
// under every variant of tests/cuda/variants.hpp against its plain reference, then blocks, both
// U-Nets, the samplers and schedulers against the committed PyTorch / diffusers fixtures. Here
// too: the CUDA-only checks (runtime pieces, allocator, streams, CUDA graphs, bit-identity,
// the device's InputErrors against the CPU's) and the CLI.
//
// Runs without a GPU: the error mapping (CudaError names the call and CUDA's string), the
// allocator's size classes, Philox's known-answer vectors, the math-mode switch, what happens when no device is there
// (a CudaError, never a crash) and the CLI's "no CUDA device" error. Everything else needs a
// device and is reported as skipped ("SKIPPED: no CUDA device") without one.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
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

// ---- half precision (bf16 / f16) and the math mode ------------------------------------------------

namespace {
template <class H>
std::uint16_t half_bits_of(float f) {
  return std::is_same<H, db::bf16>::value ? db::float_to_bf16_bits(f) : db::float_to_f16_bits(f);
}
template <class H>
float half_value_of(std::uint16_t b) {
  return std::is_same<H, db::bf16>::value ? db::bf16_bits_to_float(b) : db::f16_bits_to_float(b);
}
inline std::uint32_t bits_of(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
inline float float_of(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

template <class H>
void check_device_casts() {
  // Widening: every 16-bit pattern (NaNs with their payloads included) to the host's float bits.
  auto all = db::Tensor<H, 1>::from_shape({65536});
  for (std::uint32_t b = 0; b < 65536; ++b) all.data()[b] = H::from_bits(static_cast<std::uint16_t>(b));
  const auto wide = db::cuda::download(db::ops::cast<float>(Cuda{}, db::cuda::upload(all)));
  REQUIRE(wide.size() == 65536);
  std::size_t bad = 0;
  for (std::uint32_t b = 0; b < 65536; ++b)
    if (bits_of(wide.data()[b]) != bits_of(half_value_of<H>(static_cast<std::uint16_t>(b))) && bad++ < 5)
      FAIL_CHECK("widening 0x" << std::hex << b << ": device 0x" << bits_of(wide.data()[b]) << ", host 0x"
                               << bits_of(half_value_of<H>(static_cast<std::uint16_t>(b))));
  REQUIRE(bad == 0);
  // Narrowing: 2^20 float32 patterns over every exponent (random low bits), the exact midpoints
  // between neighbouring halves (ties: round to even), their neighbours, and the specials.
  std::vector<float> in;
  db::Rng rng(16);
  for (std::uint32_t i = 0; i < (1u << 20); ++i)
    in.push_back(float_of((i << 12) ^ static_cast<std::uint32_t>(rng.next() & 0xfffu)));
  for (std::uint32_t b = 0; b < 65536; b += 3) {
    const float lo = half_value_of<H>(static_cast<std::uint16_t>(b)), hi = half_value_of<H>(static_cast<std::uint16_t>(b + 1));
    if (!std::isfinite(lo) || !std::isfinite(hi)) continue;
    const float mid = static_cast<float>((static_cast<double>(lo) + hi) / 2);
    in.push_back(mid);
    in.push_back(std::nextafter(mid, INFINITY));
    in.push_back(std::nextafter(mid, -INFINITY));
  }
  for (float f : {0.0f, -0.0f, INFINITY, -INFINITY, 65504.0f, 65519.99f, 65520.0f, -65520.0f, 1e-8f, 2.9802322e-8f,
                  5.9604645e-8f, 6.1035156e-5f, 3.3895314e38f, std::numeric_limits<float>::max(),
                  std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min()})
    in.push_back(f);
  for (std::uint32_t nan : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff812345u, 0x7fbfffffu, 0x7fffe000u})
    in.push_back(float_of(nan));
  auto host_in = db::Tensor<float, 1>::from_shape({in.size()});
  std::copy(in.begin(), in.end(), host_in.begin());
  const auto narrow = db::cuda::download(db::ops::cast<H>(Cuda{}, db::cuda::upload(host_in)));
  bad = 0;
  for (std::size_t i = 0; i < in.size(); ++i)
    if (narrow.data()[i].bits != half_bits_of<H>(in[i]) && bad++ < 5)
      FAIL_CHECK("narrowing 0x" << std::hex << bits_of(in[i]) << ": device 0x" << narrow.data()[i].bits << ", host 0x"
                                << half_bits_of<H>(in[i]));
  REQUIRE(bad == 0);
}

template <class H>
void check_half_linear() {
  // y = x W^T + b on cuBLAS GemmEx (half operands, float32 accumulation), rounded once: within
  // one half ulp of the exact value from the same half inputs, on odd sizes, with and without bias.
  const double ulp = std::is_same<H, db::bf16>::value ? std::ldexp(1.0, -7) : std::ldexp(1.0, -10);
  struct Case {
    std::size_t rows, in, out;
    bool bias;
  };
  for (const Case c : {Case{37, 70, 53, true}, Case{1, 5, 3, false}, Case{64, 256, 96, true}, Case{3, 0, 4, true}}) {
    INFO(c.rows << " x " << c.in << " -> " << c.out << (c.bias ? " with bias" : ""));
    db::Rng rng(c.rows + c.in);
    auto x = db::Tensor<H, 2>::from_shape({c.rows, c.in});
    auto w = db::Tensor<H, 2>::from_shape({c.out, c.in});
    auto b = db::Tensor<H, 1>::from_shape({c.bias ? c.out : 0});
    for (auto& v : x) v = H(static_cast<float>(rng.normal()));
    for (auto& v : w) v = H(static_cast<float>(rng.normal() * 0.1));
    for (auto& v : b) v = H(static_cast<float>(rng.normal()));
    const auto y = db::cuda::download(
        db::ops::linear(Cuda{}, db::cuda::upload(x), db::cuda::upload(w), db::cuda::upload(b)));
    REQUIRE(y.shape(0) == c.rows);
    REQUIRE(y.shape(1) == c.out);
    for (std::size_t r = 0; r < c.rows; ++r)
      for (std::size_t o = 0; o < c.out; ++o) {
        double exact = c.bias ? double(float(b(o))) : 0.0;
        for (std::size_t i = 0; i < c.in; ++i) exact += double(float(x(r, i))) * double(float(w(o, i)));
        INFO("at " << r << ", " << o << ": exact " << exact << ", got " << float(y(r, o)));
        REQUIRE(std::fabs(double(float(y(r, o))) - exact) <= ulp * std::fabs(exact) + 1e-6);
      }
  }
  // 1x1 stride-1 convolutions are the same half GEMM, batched over the items: conv2d, and
  // conv2d_add_ (out + conv, one rounding of the float32 sum).
  const std::size_t B = 3, Cin = 40, Cout = 24, Hh = 5, Ww = 13;
  db::Rng rng(77);
  auto x = db::Tensor<H, 4>::from_shape({B, Cin, Hh, Ww});
  auto w = db::Tensor<H, 4>::from_shape({Cout, Cin, 1, 1});
  auto b = db::Tensor<H, 1>::from_shape({Cout});
  auto o = db::Tensor<H, 4>::from_shape({B, Cout, Hh, Ww});
  for (auto& v : x) v = H(static_cast<float>(rng.normal()));
  for (auto& v : w) v = H(static_cast<float>(rng.normal() * 0.2));
  for (auto& v : b) v = H(static_cast<float>(rng.normal()));
  for (auto& v : o) v = H(static_cast<float>(rng.normal()));
  const auto y = db::cuda::download(db::ops::conv2d(Cuda{}, db::cuda::upload(x), db::cuda::upload(w), db::cuda::upload(b), 1, 0));
  auto od = db::cuda::upload(o);
  db::ops::conv2d_add_(Cuda{}, db::cuda::upload(x), db::cuda::upload(w), db::cuda::upload(b), 1, 0, od);
  const auto added = db::cuda::download(od);
  REQUIRE(y.shape() == o.shape());
  for (std::size_t n = 0; n < B; ++n)
    for (std::size_t co = 0; co < Cout; ++co)
      for (std::size_t i = 0; i < Hh; ++i)
        for (std::size_t j = 0; j < Ww; ++j) {
          double exact = float(b(co));
          for (std::size_t ci = 0; ci < Cin; ++ci) exact += double(float(w(co, ci, 0, 0))) * double(float(x(n, ci, i, j)));
          const double sum = exact + double(float(o(n, co, i, j)));
          INFO("conv 1x1 at " << n << ", " << co << ", " << i << ", " << j);
          REQUIRE(std::fabs(double(float(y(n, co, i, j))) - exact) <= ulp * std::fabs(exact) + 1e-6);
          REQUIRE(std::fabs(double(float(added(n, co, i, j))) - sum) <= ulp * std::fabs(sum) + 1e-6);
        }
}
template <class H>
db::Tensor<H, 4> random_half4(std::array<std::size_t, 4> shape, std::uint64_t seed, double scale) {
  db::Rng rng(seed);
  auto t = db::Tensor<H, 4>::from_shape(shape);
  for (auto& v : t) v = H(static_cast<float>(rng.normal() * scale));
  return t;
}

/// Conv2d / ConvTranspose2d of half tensors on the device against the exact sum of the same
/// half values (double), under the current convolution backend: within one half ulp.
template <class H>
void check_half_convs() {
  const double ulp = std::is_same<H, db::bf16>::value ? std::ldexp(1.0, -7) : std::ldexp(1.0, -10);
  auto near = [&](double got, double exact) { return std::fabs(got - exact) <= ulp * std::fabs(exact) + 1e-5; };
  struct Case {
    std::size_t B, Cin, Cout, Hi, Wi;
    int k, stride, padding;
  };
  for (const Case c : {Case{2, 5, 7, 9, 13, 3, 1, 1}, Case{3, 8, 4, 10, 7, 3, 2, 1}, Case{1, 3, 6, 6, 6, 1, 1, 0}}) {
    INFO("conv " << c.Cin << " -> " << c.Cout << ", k " << c.k << " s " << c.stride << " p " << c.padding);
    const auto x = random_half4<H>({c.B, c.Cin, c.Hi, c.Wi}, 1 + c.Cin, 1.0);
    const auto w = random_half4<H>({c.Cout, c.Cin, std::size_t(c.k), std::size_t(c.k)}, 2 + c.Cin, 0.3);
    const auto bias4 = random_half4<H>({1, 1, 1, c.Cout}, 3, 1.0);
    auto bias = db::Tensor<H, 1>::from_shape({c.Cout});
    std::copy(bias4.begin(), bias4.end(), bias.begin());
    const std::size_t Ho = (c.Hi + 2 * c.padding - c.k) / c.stride + 1, Wo = (c.Wi + 2 * c.padding - c.k) / c.stride + 1;
    const auto o = random_half4<H>({c.B, c.Cout, Ho, Wo}, 4, 1.0);
    const auto y = db::cuda::download(
        db::ops::conv2d(Cuda{}, db::cuda::upload(x), db::cuda::upload(w), db::cuda::upload(bias), c.stride, c.padding));
    auto od = db::cuda::upload(o);
    db::ops::conv2d_add_(Cuda{}, db::cuda::upload(x), db::cuda::upload(w), db::cuda::upload(bias), c.stride, c.padding, od);
    const auto added = db::cuda::download(od);
    REQUIRE(y.shape() == o.shape());
    for (std::size_t n = 0; n < c.B; ++n)
      for (std::size_t co = 0; co < c.Cout; ++co)
        for (std::size_t oy = 0; oy < Ho; ++oy)
          for (std::size_t ox = 0; ox < Wo; ++ox) {
            double e = float(bias(co));
            for (std::size_t ci = 0; ci < c.Cin; ++ci)
              for (int ky = 0; ky < c.k; ++ky)
                for (int kx = 0; kx < c.k; ++kx) {
                  const long iy = long(oy) * c.stride - c.padding + ky, ix = long(ox) * c.stride - c.padding + kx;
                  if (iy < 0 || ix < 0 || iy >= long(c.Hi) || ix >= long(c.Wi)) continue;
                  e += double(float(w(co, ci, ky, kx))) * double(float(x(n, ci, iy, ix)));
                }
            INFO("at " << n << ", " << co << ", " << oy << ", " << ox << ": exact " << e);
            REQUIRE(near(float(y(n, co, oy, ox)), e));
            REQUIRE(near(float(added(n, co, oy, ox)), e + double(float(o(n, co, oy, ox)))));
          }
  }
  // ConvTranspose2d 4x4 stride 2 padding 1 (the U-Nets' upsampling), w (Cin, Cout, k, k).
  const std::size_t B = 2, Cin = 6, Cout = 5, Hh = 5, Ww = 7;
  const int k = 4, s = 2, p = 1;
  const auto x = random_half4<H>({B, Cin, Hh, Ww}, 11, 1.0);
  const auto w = random_half4<H>({Cin, Cout, std::size_t(k), std::size_t(k)}, 12, 0.3);
  auto bias = db::Tensor<H, 1>::from_shape({Cout});
  for (std::size_t i = 0; i < Cout; ++i) bias(i) = H(0.25f * float(i) - 0.5f);
  const auto y = db::cuda::download(
      db::ops::conv_transpose2d(Cuda{}, db::cuda::upload(x), db::cuda::upload(w), db::cuda::upload(bias), s, p));
  const std::size_t Ho = (Hh - 1) * s - 2 * p + k, Wo = (Ww - 1) * s - 2 * p + k;
  REQUIRE(y.shape(2) == Ho);
  REQUIRE(y.shape(3) == Wo);
  std::vector<double> e(B * Cout * Ho * Wo, 0.0);
  for (std::size_t n = 0; n < B; ++n)
    for (std::size_t co = 0; co < Cout; ++co)
      for (std::size_t i = 0; i < Ho * Wo; ++i) e[(n * Cout + co) * Ho * Wo + i] = float(bias(co));
  for (std::size_t n = 0; n < B; ++n)
    for (std::size_t ci = 0; ci < Cin; ++ci)
      for (std::size_t iy = 0; iy < Hh; ++iy)
        for (std::size_t ix = 0; ix < Ww; ++ix)
          for (std::size_t co = 0; co < Cout; ++co)
            for (int ky = 0; ky < k; ++ky)
              for (int kx = 0; kx < k; ++kx) {
                const long oy = long(iy) * s - p + ky, ox = long(ix) * s - p + kx;
                if (oy < 0 || ox < 0 || oy >= long(Ho) || ox >= long(Wo)) continue;
                e[((n * Cout + co) * Ho + oy) * Wo + ox] += double(float(x(n, ci, iy, ix))) * double(float(w(ci, co, ky, kx)));
              }
  for (std::size_t i = 0; i < e.size(); ++i) {
    INFO("conv_transpose2d at flat " << i << ": exact " << e[i] << ", got " << float(y.data()[i]));
    REQUIRE(near(float(y.data()[i]), e[i]));
  }
}
}  // namespace

TEST_CASE("half casts on the device give core/half.hpp's bits", "[cuda][half][cast]") {
  DBT_REQUIRE_GPU();
  SECTION("bf16") { check_device_casts<db::bf16>(); }
  SECTION("f16") { check_device_casts<db::f16>(); }
}

TEST_CASE("half device tensors: transfers, loading, non-finite search, transposes", "[cuda][half][tensor]") {
  DBT_REQUIRE_GPU();
  auto h = db::Tensor<db::bf16, 3>::from_shape({2, 3, 5});
  for (std::size_t i = 0; i < h.size(); ++i) h.data()[i] = db::bf16(0.37f * float(i) - 4.0f);
  const db::Tensor<db::bf16, 3, Cuda> d = db::cuda::upload(h);
  const auto back = db::cuda::download(d);
  for (std::size_t i = 0; i < h.size(); ++i) REQUIRE(back.data()[i].bits == h.data()[i].bits);
  // copy_to_host widens exactly; assign_from_host from float32 rounds to nearest even on the host.
  const std::vector<float> wide = db::copy_to_host(Cuda{}, d);
  for (std::size_t i = 0; i < h.size(); ++i) REQUIRE(wide[i] == float(h.data()[i]));
  std::vector<float> values(h.size());
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = 1.0f + float(i) / 1024.0f;
  db::Tensor<db::f16, 3, Cuda> f({2, 3, 5});
  db::assign_from_host(Cuda{}, f, values.data());
  const auto fh = db::cuda::download(f);
  for (std::size_t i = 0; i < values.size(); ++i) REQUIRE(fh.data()[i].bits == db::float_to_f16_bits(values[i]));
  // find_non_finite reads half values (an f16 infinity at flat index 17).
  REQUIRE(db::ops::find_non_finite(Cuda{}, f) == -1);
  auto with_inf = fh;
  with_inf.data()[17] = db::f16::from_bits(0x7c00);
  with_inf.data()[23] = db::f16::from_bits(0x7e00);
  REQUIRE(db::ops::find_non_finite(Cuda{}, db::cuda::upload(with_inf)) == 17);
  // The NCHW <-> token transposes move the bits.
  auto m = db::Tensor<db::bf16, 4>::from_shape({2, 33, 3, 11});
  for (std::size_t i = 0; i < m.size(); ++i) m.data()[i] = db::bf16::from_bits(static_cast<std::uint16_t>(i * 7 + 1));
  const auto tok = db::cuda::download(db::ops::nchw_to_tokens(Cuda{}, db::cuda::upload(m)));
  const auto tok_cpu = db::ops::nchw_to_tokens(db::Cpu{}, m);
  REQUIRE(tok.shape() == tok_cpu.shape());
  for (std::size_t i = 0; i < tok.size(); ++i) REQUIRE(tok.data()[i].bits == tok_cpu.data()[i].bits);
  const auto again = db::cuda::download(db::ops::tokens_to_nchw(Cuda{}, db::cuda::upload(tok), 3, 11));
  for (std::size_t i = 0; i < m.size(); ++i) REQUIRE(again.data()[i].bits == m.data()[i].bits);
}

TEST_CASE("half Linear and 1x1 Conv2d on cuBLAS GemmEx: float32 accumulation, one rounding", "[cuda][half][gemm]") {
  DBT_REQUIRE_GPU();
  SECTION("bf16") { check_half_linear<db::bf16>(); }
  SECTION("f16") { check_half_linear<db::f16>(); }
}

TEST_CASE("half convolutions: the half GEMM path and widened cuDNN, float32 accumulation, one rounding",
          "[cuda][half][conv]") {
  DBT_REQUIRE_GPU();
  db::cuda::MathModeGuard f32(db::cuda::MathMode::F32);
  for (auto backend : {db::cuda::ConvBackend::Gemm, db::cuda::ConvBackend::Auto}) {
    db::cuda::ConvBackendGuard guard(backend);
    SECTION(std::string("bf16, ") + db::cuda::conv_backend_name(backend)) { check_half_convs<db::bf16>(); }
    SECTION(std::string("f16, ") + db::cuda::conv_backend_name(backend)) { check_half_convs<db::f16>(); }
  }
}

TEST_CASE("TF32 math mode: off by default, a guard turns it on for the library's cuBLAS handle", "[cuda][tf32]") {
  using db::cuda::MathMode;
  // Without DIFFBLOCKS_CUDA_TF32=1 in the environment the process starts float32-exact.
  const char* env = std::getenv("DIFFBLOCKS_CUDA_TF32");
  if (!(env && std::string(env) == "1")) REQUIRE(db::cuda::math_mode() == MathMode::F32);
  {
    db::cuda::MathModeGuard f32(MathMode::F32);
    REQUIRE(db::cuda::math_mode() == MathMode::F32);
    {
      db::cuda::MathModeGuard tf32(MathMode::TF32);
      REQUIRE(db::cuda::math_mode() == MathMode::TF32);
      REQUIRE(std::string(db::cuda::math_mode_name(db::cuda::math_mode())) == "tf32");
    }
    REQUIRE(db::cuda::math_mode() == MathMode::F32);
  }
  DBT_REQUIRE_GPU();
  // The handle follows the mode; F32 keeps the 1e-4 contract on a long product, TF32 stays within
  // its ~1e-3 (its 10-bit mantissa inputs).
  const std::size_t R = 64, K = 2048, O = 48;
  const auto x = dbops::randn(std::array<std::size_t, 2>{R, K}, 3), w = dbops::randn(std::array<std::size_t, 2>{O, K}, 4);
  const auto b = dbops::randn(std::array<std::size_t, 1>{O}, 5);
  db::Tensor<double, 2> exact = db::Tensor<double, 2>::from_shape({R, O});
  double scale = 1.0;
  for (std::size_t r = 0; r < R; ++r)
    for (std::size_t o = 0; o < O; ++o) {
      double s = b(o);
      for (std::size_t k = 0; k < K; ++k) s += double(x(r, k)) * w(o, k);
      exact(r, o) = s;
      scale = std::max(scale, std::fabs(s));
    }
  auto max_err = [&](MathMode mode) {
    db::cuda::MathModeGuard g(mode);
    cublasMath_t m{};
    REQUIRE(cublasGetMathMode(db::cuda::blas(), &m) == CUBLAS_STATUS_SUCCESS);
    REQUIRE(m == (mode == MathMode::TF32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    const auto y = down(db::ops::linear(Cuda{}, up(x), up(w), up(b)));
    double e = 0;
    for (std::size_t i = 0; i < y.size(); ++i) e = std::max(e, std::fabs(double(y.data()[i]) - exact.data()[i]));
    return e / scale;
  };
  const double f32 = max_err(MathMode::F32), tf32 = max_err(MathMode::TF32);
  WARN("linear " << R << "x" << K << " -> " << O << ": max error / max(1, max|y|): f32 " << f32 << ", tf32 " << tf32);
  REQUIRE(f32 <= 1e-4);
  REQUIRE(tf32 <= 5e-3);
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
    require_cli_error(args + out + " --dtype bf16", "no CUDA device", out);
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
  SECTION("run --dtype bf16 / f16: half models on the GPU agree with the CPU's half runs") {
    for (const char* dtype : {"bf16", "f16"}) {
      INFO(dtype);
      const std::string a = tmp_path("cli_cuda_half_gpu.safetensors"), b = tmp_path("cli_cuda_half_cpu.safetensors");
      auto r = cli(args + a + " --dtype " + dtype);
      INFO(r.err);
      REQUIRE(r.status == 0);
      r = cli("run --device cpu --model " + fixture("origin_d") + " --inputs " + fixture("origin_d/inputs.safetensors") +
              " --output " + b + " --dtype " + dtype);
      REQUIRE(r.status == 0);
      const auto gpu = read_tensor<3>(db::SafeTensors::load(a), "out"), cpu = read_tensor<3>(db::SafeTensors::load(b), "out");
      REQUIRE(gpu.shape() == cpu.shape());
      // Two half runs with different summation orders: each within ~1 % (bf16) / 0.15 % (f16)
      // relative L2 of float32 on this fixture (docs/half_precision.md).
      double se = 0, sr = 0;
      for (std::size_t i = 0; i < gpu.size(); ++i) {
        REQUIRE(std::isfinite(gpu.data()[i]));
        se += (double(gpu.data()[i]) - cpu.data()[i]) * (double(gpu.data()[i]) - cpu.data()[i]);
        sr += double(cpu.data()[i]) * cpu.data()[i];
      }
      REQUIRE(std::sqrt(se / sr) <= (std::string(dtype) == "bf16" ? 0.04 : 0.006));
    }
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
