// Google Benchmark of the half-precision GEMM (ops/cpu/gemm_half.hpp) against the f32 packed
// SGEMM it falls back on, one thread (the GEMMs are single-threaded per call), at the shapes the
// bf16 models will run:
//   conv   a Grad-TTS U-Net 3x3 convolution by im2col, C (Cout x H*W) = W (Cout x Cin*9) * columns,
//          Cin = Cout: 64 x 576 x 20480 (80 x 256 pixels), 128 x 1152 x 5120, 256 x 2304 x 1280
//   linear 512 tokens x 256 -> 256: C = x W^T
// Cases (the label names the path that ran):
//   f32            conv: packed::gemm of the copy in use, the weight packed once, B row-major;
//                  linear: packed::gemm_rows_packed_b, W^T packed once, the tokens in place
//   <path>         the same products in bf16 / f16: gemm_half_packed_a (B packed a column block
//                  at a time in the call) and gemm_half_rows
//   <path>/packed  conv: gemm_half_packed, B packed beforehand (what an im2col writing B's
//                  layout gives): the kernel alone
// Paths: bf16 on vdpbf16ps (where AVX512-BF16 is), bf16 and f16 widened on the copy in use.
//
//   build/bin/bench_gemm_half [--benchmark_filter=conv_64]
#include <functional>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "diffblocks/ops/cpu/gemm_half.hpp"

namespace {

namespace db = diffblocks;
namespace cpu = db::ops::cpu;

// The f32 packed GEMM of the copy in use (the public cpu::gemm packs A at every call).
std::ptrdiff_t f32_packed_size(int M, int K) { DIFFBLOCKS_CPU_RETURN_KERNEL(packed::packed_size(M, K)); }
void f32_pack_a(int M, int K, const float* A, float* dst) { DIFFBLOCKS_CPU_RETURN_KERNEL(packed::pack_a(M, K, A, K, dst)); }
void f32_gemm(int M, int N, int K, const float* Ap, const float* B, float* C) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(packed::gemm(M, N, K, Ap, B, N, C, N));
}
std::ptrdiff_t f32_packed_b_size(int K, int N) { DIFFBLOCKS_CPU_RETURN_KERNEL(packed::packed_b_size<float>(K, N)); }
void f32_pack_b_transposed(int K, int N, const float* Bt, float* dst) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(packed::pack_b_transposed(K, N, Bt, K, 0, K, dst));
}
void f32_gemm_rows(int M, int N, int K, const float* A, const float* Bp, float* C) {
  DIFFBLOCKS_CPU_RETURN_KERNEL(packed::gemm_rows_packed_b(M, N, K, A, K, Bp, C, N));
}

template <class T>
std::vector<T> random_values(std::size_t n, std::uint64_t seed) {
  db::Rng rng(seed);
  std::vector<T> v(n);
  for (auto& x : v) x = T(static_cast<float>(rng.normal()));
  return v;
}

struct Shape {
  const char* kind;  // "conv" or "linear"
  int M, N, K;
};
constexpr Shape kShapes[] = {{"conv", 64, 20480, 576},
                             {"conv", 128, 5120, 1152},
                             {"conv", 256, 1280, 2304},
                             {"linear", 512, 256, 256}};

void finish(benchmark::State& state, const Shape& s, const std::string& label) {
  bench::set_flops(state, 2.0 * s.M * s.N * s.K);
  state.SetLabel(label);
}

void time_f32(benchmark::State& state, Shape s) {
  const bool conv = std::string(s.kind) == "conv";
  const auto A = random_values<float>(std::size_t(s.M) * s.K, 1);
  const auto B = random_values<float>(std::size_t(s.K) * s.N, 2);  // conv: B; linear: W (N x K)
  std::vector<float> C(std::size_t(s.M) * s.N), packed(conv ? f32_packed_size(s.M, s.K) : f32_packed_b_size(s.K, s.N));
  if (conv)
    f32_pack_a(s.M, s.K, A.data(), packed.data());
  else
    f32_pack_b_transposed(s.K, s.N, B.data(), packed.data());
  for (auto _ : state) {
    if (conv)
      f32_gemm(s.M, s.N, s.K, packed.data(), B.data(), C.data());
    else
      f32_gemm_rows(s.M, s.N, s.K, A.data(), packed.data(), C.data());
    benchmark::DoNotOptimize(C.data());
  }
  finish(state, s, std::string("f32 packed SGEMM (") + cpu::isa_name() + ")");
}

template <class T>
void time_half(benchmark::State& state, Shape s, cpu::HalfGemmPath path, bool prepacked_b) {
  const bool conv = std::string(s.kind) == "conv";
  const cpu::HalfGemmLayout layout = cpu::half_gemm_layout<T>(path);
  const auto A = random_values<T>(std::size_t(s.M) * s.K, 1);
  const auto B = random_values<T>(std::size_t(s.K) * s.N, 2);  // conv: B; linear: W (N x K)
  std::vector<float> C(std::size_t(s.M) * s.N);
  std::vector<float> ap((layout.a_bytes(s.M, s.K) + 3) / 4), bp((layout.b_bytes(s.K, s.N) + 3) / 4);
  if (conv) {
    cpu::pack_half_a(layout, s.M, s.K, A.data(), s.K, ap.data());
    if (prepacked_b) cpu::pack_half_b(layout, s.K, s.N, B.data(), s.N, bp.data());
  } else {
    cpu::pack_half_b_transposed(layout, s.K, s.N, B.data(), s.K, bp.data());
  }
  for (auto _ : state) {
    if (!conv)
      cpu::gemm_half_rows(layout, s.M, s.N, s.K, A.data(), s.K, bp.data(), C.data(), s.N);
    else if (prepacked_b)
      cpu::gemm_half_packed<T>(layout, s.M, s.N, s.K, ap.data(), bp.data(), C.data(), s.N);
    else
      cpu::gemm_half_packed_a(layout, s.M, s.N, s.K, ap.data(), B.data(), s.N, C.data(), s.N);
    benchmark::DoNotOptimize(C.data());
  }
  finish(state, s, std::string(std::is_same<T, db::bf16>::value ? "bf16 " : "f16 ") + cpu::half_gemm_path_name(path) +
                       (prepacked_b ? ", B prepacked" : ""));
}

void add(const std::string& name, std::function<void(benchmark::State&)> fn) {
  benchmark::RegisterBenchmark(name.c_str(), [fn](benchmark::State& st) { fn(st); })
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond)
      ->MinTime(0.5);
}

void register_all() {
  const auto widen = static_cast<cpu::HalfGemmPath>(static_cast<int>(cpu::isa()));
  const bool pairs = cpu::half_gemm_path<db::bf16>() == cpu::HalfGemmPath::Avx512Bf16;
  for (const Shape& s : kShapes) {
    const std::string base = std::string("gemm_half/") + s.kind + "_" + std::to_string(s.M) + "x" + std::to_string(s.K) +
                             "x" + std::to_string(s.N) + "/";
    const bool conv = std::string(s.kind) == "conv";
    add(base + "f32", [s](benchmark::State& st) { time_f32(st, s); });
    if (pairs) {
      add(base + "bf16_vdpbf16ps", [s](benchmark::State& st) {
        time_half<db::bf16>(st, s, cpu::HalfGemmPath::Avx512Bf16, false);
      });
      if (conv)
        add(base + "bf16_vdpbf16ps/packed", [s](benchmark::State& st) {
          time_half<db::bf16>(st, s, cpu::HalfGemmPath::Avx512Bf16, true);
        });
    }
    add(base + "bf16_widen", [s, widen](benchmark::State& st) { time_half<db::bf16>(st, s, widen, false); });
    if (conv)
      add(base + "bf16_widen/packed", [s, widen](benchmark::State& st) { time_half<db::bf16>(st, s, widen, true); });
    add(base + "f16_widen", [s, widen](benchmark::State& st) { time_half<db::f16>(st, s, widen, false); });
  }
}

}  // namespace

int main(int argc, char** argv) { return bench::run_main(argc, argv, register_all); }
