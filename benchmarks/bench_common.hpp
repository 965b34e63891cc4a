#pragma once
// Shared by the benchmark binaries: thread-count selection, realistic random weights and
// inputs, FLOP / byte counters and a main() that accepts --threads=N.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <algorithm>
#include <iostream>
#include <string>
#include <type_traits>
#include <vector>

#include "diffblocks/diffblocks.hpp"

namespace bench {

namespace db = diffblocks;

// ---- inputs and weights --------------------------------------------------------------------

template <class Tn>
void fill_normal(Tn& t, db::Rng& rng, double stddev, double mean = 0.0) {
  for (auto& v : t) v = static_cast<float>(mean + stddev * rng.normal());
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// Writes host values into a parameter: a CPU tensor by copying (another device's benchmark
/// passes its own setter, e.g. assign_from_host for the Cuda device).
struct HostSetter {
  template <class Tn>
  void operator()(Tn& t, const std::vector<float>& v) const {
    std::copy(v.begin(), v.end(), t.begin());
  }
};

/// Small random parameters for a freshly constructed (all-zero) module, so the timed code sees
/// realistic numbers: N(0, 0.02) everywhere, GroupNorm gamma = 1 + N(0, 0.02), and Rezero's
/// g = 0.5 (PyTorch initialises it to 0, which would make the attention output vanish).
/// tools/bench_torch.py initialises the PyTorch model with the same rule.
template <class Module, class Set = HostSetter>
void randomize(Module& m, std::uint64_t seed = 1, Set set = {}) {
  db::Rng rng(seed);
  m.visit([&](const std::string& name, auto& t) {
    std::vector<float> v(t.size());
    const bool rezero = name == "g" || ends_with(name, ".g");
    const double mean = ends_with(name, "block.1.weight") ? 1.0 : 0.0;  // GroupNorm gamma inside a Grad-TTS Block
    for (auto& x : v) x = rezero ? 0.5f : static_cast<float>(mean + 0.02 * rng.normal());
    set(t, v);
  });
}

/// The TTS-sized Diffuser of the CPU-speed issue: block_out_channels (64, 128, 256), 2 layers per
/// block, cross-attention to a 16-token style sequence, emotion classes and an "image" prosody
/// vector. Must equal DIFFUSER_TTS_CONFIG in tools/bench_torch.py.
inline nlohmann::json diffuser_config() {
  return nlohmann::json::parse(R"({
    "_class_name": "UNet2DConditionModel", "in_channels": 2, "out_channels": 1,
    "block_out_channels": [64, 128, 256], "layers_per_block": 2,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_num_groups": 32, "cross_attention_dim": 64,
    "attention_head_dim": 4, "num_class_embeds": 5, "addition_embed_type": "image", "encoder_hid_dim": 64})");
}

/// The Diffuser's weights: N(0, 0.02), norm scales 1 + N(0, 0.02) (tools/bench_torch.py: the same rule).
template <class Module, class Set = HostSetter>
void randomize_diffuser(Module& m, std::uint64_t seed = 3, Set set = {}) {
  db::Rng rng(seed);
  m.visit([&](const std::string& name, auto& t) {
    const bool norm_scale = ends_with(name, "norm.weight") || ends_with(name, "norm1.weight") ||
                            ends_with(name, "norm2.weight") || ends_with(name, "norm3.weight");
    std::vector<float> v(t.size());
    for (auto& x : v) x = static_cast<float>((norm_scale ? 1.0 : 0.0) + 0.02 * rng.normal());
    set(t, v);
  });
}

/// (B, C, H, W) tensor of N(0, 1) values.
inline db::Tensor<float, 4> random_nchw(std::size_t c, std::size_t h, std::size_t w, std::uint64_t seed = 7) {
  db::Rng rng(seed);
  auto x = db::ops::empty<float, 4>(db::Cpu{}, {1, c, h, w});
  fill_normal(x, rng, 1.0);
  return x;
}

/// All-valid time mask (B, 1, 1, W): no padding, the common case at inference.
inline db::Tensor<float, 4> full_mask(std::size_t w) { return db::ops::full<float, 4>(db::Cpu{}, {1, 1, 1, w}, 1.0f); }

// ---- the dtype axis --------------------------------------------------------------------------

/// A scalar type as a value, for generic lambdas: `[](auto dt) { using S = typename decltype(dt)::type; }`.
template <class T>
struct Dtype {
  using type = T;
};

/// Calls f(Dtype<T>{}) for float32, bf16 and f16: each benchmark of the dtype axis is written once.
template <class F>
void for_each_dtype(F&& f) {
  f(Dtype<float>{});
  f(Dtype<db::bf16>{});
  f(Dtype<db::f16>{});
}

/// "f32", "bf16" or "f16".
template <class T>
const char* dtype_name() {
  static_assert(std::is_same<T, float>::value || db::is_half_v<T>, "float, db::bf16 or db::f16");
  if constexpr (std::is_same<T, float>::value) return "f32";
  else if constexpr (std::is_same<T, db::bf16>::value) return "bf16";
  else return "f16";
}

/// A benchmark's name in type T: the case's name itself in float32, `<case>_bf16` / `<case>_f16`
/// in half (bench_origin's diffblocks/origin_forward_bf16; tools/bench_torch.py names PyTorch's
/// autocast runs `<case>_<dtype>_autocast`).
template <class T>
std::string dtype_case(const std::string& case_name) {
  return std::is_same<T, float>::value ? case_name : case_name + "_" + dtype_name<T>();
}

/// The kernels a block or model of type T runs on, for the benchmark's label. A half model's hot
/// kernels read and write the half tensors with float32 arithmetic in the copy of the ISA in use
/// (ops/cpu/half_ops.hpp); Linear layers run on the half GEMM's path (gemm_half.hpp:
/// vdpbf16ps for bf16 on an AVX512-BF16 CPU), and so does bf16 softmax attention
/// (attention_bf16.hpp); the rest widens to the float32 kernels.
template <class T>
std::string dtype_label() {
  const std::string isa = db::ops::cpu::isa_name();
  if constexpr (std::is_same<T, float>::value) return "f32: float32 kernels (" + isa + ")";
  else {
    std::string attention = "float32 kernels";
    if constexpr (std::is_same<T, db::bf16>::value)
      if (db::ops::cpu::bf16_attention_native()) attention = "avx512_bf16 (vdpbf16ps)";
    return std::string(dtype_name<T>()) + ": float32 kernels (" + isa + ") reading and writing " + dtype_name<T>() +
           ", Linear on " + db::ops::cpu::half_gemm_path_name(db::ops::cpu::half_gemm_path<T>()) +
           ", softmax attention on " + attention;
  }
}

/// Registers a case in float32, bf16 and f16, named dtype_case<S>(head) + tail (the case's name,
/// then its arguments: "Conv2d/3x3/64-64/L0_bf16" + "", whose T follows; "self/naive_bf16" +
/// "/N:1024/dh:64"): run(state, dt) is the body for the
/// scalar type of the tag dt (Dtype<S>), the label names the kernels (dtype_label<S>()),
/// configure(benchmark) sets the arguments and the unit. Times are wall-clock (the pool).
template <class Run, class Configure>
void register_dtypes(const std::string& head, const std::string& tail, Run run, Configure configure) {
  for_each_dtype([&](auto dt) {
    using S = typename decltype(dt)::type;
    configure(benchmark::RegisterBenchmark((dtype_case<S>(head) + tail).c_str(),
                                           [run, dt](benchmark::State& s) {
                                             run(s, dt);
                                             s.SetLabel(dtype_label<S>());
                                           })
                  ->UseRealTime());
  });
}

/// x (float32) as a tensor of type T: the inputs of a half benchmark are the float32 ones rounded.
template <class T, class X>
auto as(X x) {
  return db::ops::to_type<T>(db::Cpu{}, std::move(x));
}

/// The largest relative error of rounding to T (the unit roundoff): 2^-24 for float32, 2^-8 for
/// bf16 (8 significant bits), 2^-11 for f16 (11).
template <class T>
constexpr double unit_roundoff() {
  if constexpr (std::is_same<T, float>::value) return 0x1p-24;
  else if constexpr (std::is_same<T, db::bf16>::value) return 0x1p-8;
  else return 0x1p-11;
}

// ---- counters ------------------------------------------------------------------------------

/// FLOPs = 2 * MACs per iteration. Reported as "GFLOP/s" (rate over real time, since the
/// benchmarks use UseRealTime) and "GFLOP" (per iteration, to check the count itself).
inline void set_flops(benchmark::State& state, double flops_per_iter) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP"] = benchmark::Counter(flops_per_iter * 1e-9);
}

/// For memory-bound ops: the compulsory traffic (each input element read once, each output
/// element written once), in decimal GB/s.
inline void set_bytes(benchmark::State& state, double bytes_per_iter) {
  state.counters["GB/s"] = benchmark::Counter(bytes_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

/// CPU time of the whole process (every pool thread), for the "cpu_ms" counter.
inline double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

/// Times a benchmark loop's CPU work: construct before the loop, call `report` after it.
/// "cpu_ms" = process CPU milliseconds per iteration over all threads; on a shared machine,
/// cpu_ms / threads tells the speed of the code when wall time is inflated by other load
/// (it still includes the pool's short spin-waits).
class CpuTimer {
 public:
  CpuTimer() : start_(process_cpu_seconds()) {}
  void report(benchmark::State& state) const {
    const double it = double(std::max<benchmark::IterationCount>(state.iterations(), 1));
    state.counters["cpu_ms"] = (process_cpu_seconds() - start_) * 1e3 / it;
  }

 private:
  double start_;
};

inline void set_items(benchmark::State& state, double items_per_iter) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * items_per_iter));
}

// ---- FLOP formulas (MACs; multiply by 2 for FLOPs) ------------------------------------------

/// Conv2d: one MAC per output pixel, output channel, input channel and kernel tap.
inline double conv_macs(double cin, double cout, double k, double h_out, double w_out) {
  return cin * cout * k * k * h_out * w_out;
}
/// ConvTranspose2d: one MAC per input pixel, input channel, output channel and kernel tap.
inline double conv_transpose_macs(double cin, double cout, double k, double h_in, double w_in) {
  return cin * cout * k * k * h_in * w_in;
}
/// Grad-TTS LinearAttention(dim, heads 4, dim_head 32): to_qkv (dim -> 384), the two
/// per-head einsums (context = k v^T, out = context^T q: 2 * 4 * 32 * 32 per pixel) and
/// to_out (128 -> dim).
inline double linear_attention_macs(double dim, double h, double w) {
  return h * w * (dim * 384.0 + 2.0 * 4 * 32 * 32 + 128.0 * dim);
}
/// Origin U-Net (dim 64, mults (1,2,4), 80 mels, batch 1): the closed form of
/// /work/shared/reference/gradtts.md ("Speed and FLOPs") = 67,077,120 MACs per frame + 147,456
/// for the time MLPs (counted by PyTorch hooks there).
inline double origin_macs(double frames) {
  const double l0 = 80.0 * frames, l1 = 20.0 * frames, l2 = 5.0 * frames;  // pixels per level
  return 198976.0 * l0 + 1015808.0 * l1 + 6168576.0 * l2 + 147456.0;
}

// ---- main ----------------------------------------------------------------------------------

/// Thread count: --threads=N (removed from argv before Google Benchmark sees it), else the
/// DIFFBLOCKS_THREADS environment variable, else 2.
inline int take_threads_arg(int& argc, char** argv) {
  int threads = 2;
  if (const char* env = std::getenv("DIFFBLOCKS_THREADS")) threads = std::atoi(env);
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0)
      threads = std::atoi(argv[i] + 10);
    else
      argv[out++] = argv[i];
  }
  argc = out;
  argv[argc] = nullptr;
  if (threads < 1) {
    std::cerr << "bench: the thread count must be >= 1 (--threads=N or DIFFBLOCKS_THREADS)\n";
    std::exit(1);
  }
  return threads;
}

/// main() of every benchmark binary: sets the diffblocks thread pool, records it in the JSON
/// context, registers the suite and runs it.
inline int run_main(int argc, char** argv, void (*register_all)()) {
  const int threads = take_threads_arg(argc, argv);
  db::set_num_threads(threads);
  benchmark::AddCustomContext("diffblocks_threads", std::to_string(db::get_num_threads()));
  // Which copy of the CPU kernels ran (ops/cpu/isa.hpp): DIFFBLOCKS_CPU_ISA changes it.
  benchmark::AddCustomContext("cpu_isa", db::ops::cpu::isa_report());
  // The dtype axis (<case>_bf16, <case>_f16): what the half runs' kernels are; each label says it too.
  benchmark::AddCustomContext("half_dtypes", dtype_label<db::bf16>() + "; " + dtype_label<db::f16>());
  benchmark::AddCustomContext("weights", "N(0, 0.02), GroupNorm gamma 1 + N(0, 0.02), Rezero g 0.5");
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace bench
