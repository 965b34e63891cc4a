// Google Benchmark suite for the Cuda device (one H100/H200-class GPU, float32; TF32 only where named).
//
// Timing: every case is timed on the GPU with CUDA events around the work (manual time), one
// iteration per measurement, after an untimed warm-up; what a case enqueues is all it does (no
// host copies, except where a case synchronises by design, e.g. find_non_finite or a U-Net
// forward that checks its inputs for NaN).
// Counters (rates over the GPU time): GB/s = compulsory traffic (inputs read and outputs written
// once), TFLOP/s = 2 x multiply-adds; `roofline` in the table of tools/bench_cuda.sh compares GB/s
// with d2d_copy's.
//
// Cases:
//   d2d_copy/MiB:<n>                     cudaMemcpyAsync device to device: the bandwidth roofline
//                                        (GB/s counts the bytes read plus written)
//   sgemm/N:<n>                          cublasSgemm N x N x N: the float32 GEMM roofline
//   ops/<op>[<variant>]/<shape>          every op of the test registry (tests/ops/op_cases.hpp) at
//                                        Origin batch-16, T = 512 and Diffuser shapes, under every
//                                        variant of tests/cuda/variants.hpp that can change it
//   blocks/<block>/<shape>               Grad-TTS ResnetBlock and LinearAttention, diffusers
//                                        ResnetBlock2D and Transformer2DModel
//   attention/self/<naive|streaming|tiled>/N:<tokens>/dh:<d>    4 heads, batch 1, 64 .. 16k tokens
//   attention/cross/<naive|streaming|tiled>/N:<content>/S:16/dh:64
//   origin_forward/B:<b>/T:<t>           Origin U-Net (dim 64, mults (1,2,4), 80 mels); _tf32: MathMode::TF32;
//                                        _bf16: the bf16 model
//   origin_sample/steps:10/B:1/T:512     a whole 10-step ODE sampling (upload, steps, download),
//                                        steps 2.. replayed as a CUDA graph; _eager: op by op
//   diffuser_forward/B:<b>/T:<t>         the TTS-sized Diffuser of bench_origin (benchmarks/README)
//
//   build/bin/bench_cuda [--benchmark_filter=REGEX] [--benchmark_out=cuda.json --benchmark_out_format=json]
//   ncu --profile-from-start off ... build/bin/bench_cuda --profile origin_forward/B:16[/tf32]
#include <cublas_v2.h>
#include <cuda_profiler_api.h>

#include <map>
#include <memory>
#include <string>

#include "../tests/cuda/variants.hpp"
#include "bench_common.hpp"
#include "bench_registry.hpp"

namespace {

namespace db = diffblocks;
using db::Cuda;
template <std::size_t N>
using DT = db::Tensor<float, N, Cuda>;

/// GPU time of f() with CUDA events on the current stream, in seconds.
class EventTimer {
 public:
  template <class F>
  double time(F&& f) {
    start_.record(db::cuda::stream());
    f();
    stop_.record(db::cuda::stream());
    stop_.synchronize();
    return stop_.seconds_since(start_);
  }

 private:
  db::cuda::Event start_, stop_;
};

template <class F>
void run_timed(benchmark::State& state, F&& f, double bytes, double flops) {
  EventTimer timer;
  f();  // warm-up (cuBLAS heuristics, allocator blocks)
  db::cuda::synchronize();
  for (auto _ : state) state.SetIterationTime(timer.time(f));
  if (bytes > 0) state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (flops > 0)
    state.counters["TFLOP/s"] = benchmark::Counter(flops * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
}

benchmark::internal::Benchmark* reg(const std::string& name, std::function<void(benchmark::State&)> fn) {
  return benchmark::RegisterBenchmark(name.c_str(), [fn](benchmark::State& s) { fn(s); })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
}

/// Random N(0, 1) device tensor (generated on the GPU: the inputs of the large cases).
template <std::size_t N>
DT<N> device_randn(const std::array<std::size_t, N>& shape, std::uint64_t seed) {
  auto t = db::ops::empty<float, N>(Cuda{}, shape);
  db::Rng rng(seed);
  db::ops::randn_(Cuda{}, t, rng);
  return t;
}

/// bench::randomize's setter for device parameters: the values of the CPU benchmarks, uploaded.
struct DeviceSetter {
  template <class Tn>
  void operator()(Tn& t, const std::vector<float>& v) const {
    db::assign_from_host(Cuda{}, t, v.data());
  }
};

// ---- rooflines ---------------------------------------------------------------------------------

void register_rooflines() {
  for (std::size_t mib : {256, 1024})
    reg("d2d_copy/MiB:" + std::to_string(mib), [mib](benchmark::State& s) {
      const std::size_t n = mib << 18;  // floats
      auto a = db::ops::zeros<float, 1>(Cuda{}, {n});
      auto b = db::ops::empty<float, 1>(Cuda{}, {n});
      run_timed(s, [&] {
        DIFFBLOCKS_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), n * 4, cudaMemcpyDeviceToDevice, db::cuda::stream()));
      }, 2.0 * n * 4, 0);
    });
  for (int n : {2048, 8192})
    reg("sgemm/N:" + std::to_string(n), [n](benchmark::State& s) {
      const std::size_t nn = std::size_t(n) * n;
      auto a = device_randn<1>({nn}, 1), b = device_randn<1>({nn}, 2);
      auto c = db::ops::empty<float, 1>(Cuda{}, {nn});
      const float one = 1.0f, zero = 0.0f;
      run_timed(s, [&] {
        DIFFBLOCKS_CUDA_CHECK(cublasSgemm(db::cuda::blas(), CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.data(), n, b.data(),
                                          n, &zero, c.data(), n));
      }, 3.0 * nn * 4, 2.0 * n * double(n) * n);
    });
}

// ---- the op registry ----------------------------------------------------------------------------

void register_ops() {
  bench::register_op_cases<Cuda>(
      [](const std::string& name, std::function<void(benchmark::State&)> fn) { reg(name, std::move(fn))->MinTime(0.2); },
      [](benchmark::State& s, const dbops::OpRun<Cuda>& run, double bytes, double flops) {
        run_timed(s, [&] { run.launch(); }, bytes, flops);
      });
}

// ---- blocks -------------------------------------------------------------------------------------

void register_blocks() {
  struct Level {
    std::size_t C, H, W;
  };
  for (const Level& l : {Level{64, 80, 512}, Level{256, 20, 128}}) {
    const std::string shape = "B:16/C:" + std::to_string(l.C) + "/H:" + std::to_string(l.H) + "/W:" + std::to_string(l.W);
    const int C = static_cast<int>(l.C);
    reg("blocks/grad_tts_resnet_block/" + shape, [l, C](benchmark::State& s) {
      db::ResnetBlock<float, Cuda> dev(C, C, 64);
      bench::randomize(dev, 1, DeviceSetter{});
      const auto x = device_randn<4>({16, l.C, l.H, l.W}, 3), t = device_randn<4>({16, 64, 1, 1}, 4);
      const auto temb = db::ops::reshape<float, 2>(Cuda{}, t, {16, 64});
      const auto mask = db::ops::full<float, 4>(Cuda{}, {16, 1, 1, l.W}, 1.0f);
      const double flops = 2.0 * 16 * l.H * l.W * (2.0 * 9 * C * C);
      run_timed(s, [&] { benchmark::DoNotOptimize(dev.forward(x, mask, temb).data()); }, 2.0 * 16 * C * l.H * l.W * 4, flops);
    });
    reg("blocks/grad_tts_linear_attention/" + shape, [l, C](benchmark::State& s) {
      db::Residual<db::Rezero<db::LinearAttention<float, Cuda>>> dev(C);
      bench::randomize(dev, 1, DeviceSetter{});
      const auto x = device_randn<4>({16, l.C, l.H, l.W}, 5);
      run_timed(s, [&] { benchmark::DoNotOptimize(dev.forward(x).data()); }, 2.0 * 16 * C * l.H * l.W * 4,
                2.0 * 16 * bench::linear_attention_macs(C, double(l.H), double(l.W)));
    });
  }
  for (std::size_t C : {128, 256}) {
    const std::size_t H = C == 128 ? 40 : 20, W = C == 128 ? 256 : 128;
    const std::string shape = "B:1/C:" + std::to_string(C) + "/H:" + std::to_string(H) + "/W:" + std::to_string(W);
    const int c = static_cast<int>(C);
    reg("blocks/resnet_block2d/" + shape, [=](benchmark::State& s) {
      db::ResnetBlock2D<float, Cuda> dev(c, c, 256, 32);
      bench::randomize(dev, 1, DeviceSetter{});
      const auto x = device_randn<4>({1, C, H, W}, 6);
      const auto temb = db::ops::reshape<float, 2>(Cuda{}, device_randn<1>({256}, 7), {1, 256});
      run_timed(s, [&] { benchmark::DoNotOptimize(dev.forward(x, temb).data()); }, 2.0 * C * H * W * 4,
                2.0 * H * W * 2.0 * 9 * C * C);
    });
    reg("blocks/transformer2d/" + shape + "/S:16", [=](benchmark::State& s) {
      db::Transformer2DModel<float, Cuda> dev(4, c / 4, c, 1, 64, 32);
      bench::randomize(dev, 1, DeviceSetter{});
      const auto x = device_randn<4>({1, C, H, W}, 8);
      const auto enc = device_randn<3>({1, 16, 64}, 9);
      const double N = double(H) * W;
      const double flops = 2.0 * (N * N * 2 * C /* self */ + N * 16 * 2 * C /* cross */ + N * C * C * 8 /* projections */ +
                                  N * C * 4 * C * 3 /* GEGLU FF */);
      run_timed(s, [&] { benchmark::DoNotOptimize(dev.forward(x, enc).data()); }, 2.0 * C * H * W * 4, flops);
    });
  }
}

// ---- attention variants ---------------------------------------------------------------------------

void register_attention() {
  constexpr int heads = 4;
  auto one = [](const std::string& variant, std::size_t nq, std::size_t nk, int dh) {
    return [=](benchmark::State& s) {
      const auto q = device_randn<3>({1, nq, std::size_t(heads * dh)}, 10);
      const auto k = device_randn<3>({1, nk, std::size_t(heads * dh)}, 11);
      const auto v = device_randn<3>({1, nk, std::size_t(heads * dh)}, 12);
      const DT<2> none;
      const float scale = 1.0f / std::sqrt(float(dh));
      const double flops = 2.0 * heads * double(nq) * double(nk) * 2 * dh;
      const double bytes = 4.0 * heads * dh * (2.0 * nq + 2.0 * nk);
      if (variant == "naive")
        run_timed(s, [&] { benchmark::DoNotOptimize(db::ops::attention_naive(Cuda{}, q, k, v, heads, scale, none).data()); },
                  bytes, flops);
      else if (variant == "tiled")
        run_timed(s, [&] { benchmark::DoNotOptimize(db::ops::attention_tiled(Cuda{}, q, k, v, heads, scale, none).data()); },
                  bytes, flops);
      else
        run_timed(s, [&] { benchmark::DoNotOptimize(db::ops::attention_streaming(Cuda{}, q, k, v, heads, scale, none).data()); },
                  bytes, flops);
      s.counters["score_MB"] = variant == "naive" ? 4.0 * heads * double(nq) * double(nk) * 1e-6 : 0.0;
    };
  };
  for (int dh : {32, 64})
    for (std::size_t n : {64, 256, 1024, 4096, 16384})
      for (const char* variant : {"naive", "streaming", "tiled"})
        reg(std::string("attention/self/") + variant + "/N:" + std::to_string(n) + "/dh:" + std::to_string(dh),
            one(variant, n, n, dh));
  for (std::size_t n : {1280, 10240, 40960})
    for (const char* variant : {"naive", "streaming", "tiled"})
      reg(std::string("attention/cross/") + variant + "/N:" + std::to_string(n) + "/S:16/dh:64", one(variant, n, 16, 64));
}

// ---- U-Nets ---------------------------------------------------------------------------------------

db::OriginConfig origin_config() {
  db::OriginConfig cfg;
  cfg.dim = 64;
  cfg.dim_mults = {1, 2, 4};
  cfg.n_feats = 80;
  return cfg;
}

/// The Origin U-Net in type S with bench::randomize's weights (rounded to S), on the device
/// (built once).
template <class S = float>
const db::GradLogPEstimator2d<S, Cuda>& origin() {
  static const auto m = [] {
    auto dev = std::make_unique<db::GradLogPEstimator2d<S, Cuda>>(origin_config());
    bench::randomize(*dev, 1, DeviceSetter{});  // the CPU bench_origin's weights
    return dev;
  }();
  return *m;
}

/// Times one Origin forward in type S at batch B, T = 512: x, mu ~ N(0, 1) (the same values in
/// every type, rounded to S), mask all ones, t = 0.5 (float32 in every type).
template <class S>
void time_origin_forward(benchmark::State& s, std::size_t B) {
  const auto& net = origin<S>();
  const std::size_t T = 512;
  const auto x = db::ops::to_type<S>(Cuda{}, device_randn<3>({B, 80, T}, 13));
  const auto mu = db::ops::to_type<S>(Cuda{}, device_randn<3>({B, 80, T}, 14));
  const auto mask = db::ops::full<S, 3>(Cuda{}, {B, 1, T}, S(1.0f));
  const auto t = db::ops::full<float, 1>(Cuda{}, {B}, 0.5f);
  run_timed(s, [&] { benchmark::DoNotOptimize(net.forward(x, mask, mu, t).data()); }, 0,
            2.0 * double(B) * bench::origin_macs(double(T)));
  s.counters["frames/s"] = benchmark::Counter(double(B * T), benchmark::Counter::kIsIterationInvariantRate);
  s.counters["peak_MB"] = double(db::cuda::memory::stats().peak_in_use) * 1e-6;
}

void register_unets() {
  // "origin_forward": float32 (FMA only: the accuracy contract); "origin_forward_tf32": MathMode::TF32.
  for (const db::cuda::MathMode math : {db::cuda::MathMode::F32, db::cuda::MathMode::TF32})
    for (std::size_t B : {1, 16}) {
      const std::string name = math == db::cuda::MathMode::TF32 ? "origin_forward_tf32" : "origin_forward";
      reg(name + "/B:" + std::to_string(B) + "/T:512", [B, math](benchmark::State& s) {
        db::cuda::MathModeGuard mode(math);
        time_origin_forward<float>(s, B);
      })->MinTime(1.0);
    }
  // "origin_forward_bf16": the bf16 model (weights and activations bf16, float32 accumulation and
  // statistics, t float32); tools/bench_torch.py --device cuda times PyTorch's float32 model under
  // bf16 autocast (origin_forward_bf16_autocast) and the model converted, model.to(bfloat16)
  // (origin_forward_bf16), in the same run.
  for (std::size_t B : {1, 16})
    reg("origin_forward_bf16/B:" + std::to_string(B) + "/T:512",
        [B](benchmark::State& s) { time_origin_forward<db::bf16>(s, B); })->MinTime(1.0);
  // "origin_sample": the default sampler (steps 2.. replayed as a CUDA graph); "_eager": every
  // step launched op by op, as before graphs.
  for (const bool graph : {true, false})
    reg(std::string(graph ? "origin_sample" : "origin_sample_eager") + "/steps:10/B:1/T:512", [graph](benchmark::State& s) {
      const auto& net = origin();
      const std::size_t T = 512;
      const auto z = dbops::randn(std::array<std::size_t, 3>{1, 80, T}, 15), mu = dbops::randn(std::array<std::size_t, 3>{1, 80, T}, 16);
      const auto mask = db::ops::full<float, 3>(db::Cpu{}, {1, 1, T}, 1.0f);
      db::GradTTSSamplerOptions opt;
      opt.steps = 10;
      opt.graph = graph;
      run_timed(s, [&] {  // inputs uploaded once, every step on the GPU, the result downloaded once
        const auto mel = db::reverse_diffusion(net, db::cuda::upload(z), db::cuda::upload(mask), db::cuda::upload(mu), opt);
        benchmark::DoNotOptimize(db::cuda::download(mel).data());
      }, 0, 10 * 2.0 * bench::origin_macs(double(T)));
      // Real-time factor: seconds of 22.05 kHz audio (hop 256) per second of sampling.
      s.counters["audio_s_per_s"] = benchmark::Counter(T * 256.0 / 22050.0, benchmark::Counter::kIsIterationInvariantRate);
    })->MinTime(1.0);
  for (std::size_t B : {1, 16})
    reg("diffuser_forward/B:" + std::to_string(B) + "/T:512", [B](benchmark::State& s) {
      static const auto net = [] {
        auto dev = std::make_unique<db::UNet2DConditionModel<float, Cuda>>(db::DiffuserConfig::from_json(bench::diffuser_config()));
        bench::randomize_diffuser(*dev, 3, DeviceSetter{});
        return dev;
      }();
      const std::size_t T = 512;
      db::DiffuserInputs<float, Cuda> in;
      in.sample = device_randn<4>({B, 2, 80, T}, 17);
      in.timestep = db::ops::full<float, 1>(Cuda{}, {B}, 500.0f);
      in.encoder_hidden_states = device_randn<3>({B, 16, 64}, 18);
      in.image_embeds = device_randn<2>({B, 64}, 19);
      for (std::size_t b = 0; b < B; ++b) in.class_labels.push_back(static_cast<std::int64_t>(b % 5));
      run_timed(s, [&] { benchmark::DoNotOptimize(net->forward(in).data()); }, 0, 0);
      s.counters["frames/s"] = benchmark::Counter(double(B * T), benchmark::Counter::kIsIterationInvariantRate);
    })->MinTime(1.0);
}

void register_all() {
  db::cuda::require_device();
  benchmark::AddCustomContext("cuda_device", db::cuda::device_description());
  benchmark::AddCustomContext("math", std::string("float32 (") + db::cuda::math_mode_name(db::cuda::math_mode()) +
                                          "; cases named tf32 or [..,tf32] use TF32 tensor cores)");
  benchmark::AddCustomContext("cudnn", db::cuda::cudnn::status());
  benchmark::AddCustomContext("conv_backend", db::cuda::conv_backend_name(db::cuda::conv_backend()));
  register_rooflines();
  register_ops();
  register_blocks();
  register_attention();
  register_unets();
}

}  // namespace

/// `bench_cuda --profile origin_forward/B:<b>` (tf32 with a third word): after a warm-up, one
/// forward between cudaProfilerStart/Stop, for `ncu --profile-from-start off` (a per-kernel
/// profile of exactly one forward; tools/cuda_profile.py sums it by kernel).
int profile_one(const std::string& what) {
  std::size_t B = 16;
  if (what.rfind("origin_forward/B:", 0) != 0) {
    std::fprintf(stderr, "bench_cuda --profile: unknown case '%s' (origin_forward/B:<b>)\n", what.c_str());
    return 2;
  }
  B = std::stoul(what.substr(17));
  const bool tf32 = what.find("tf32") != std::string::npos;
  db::cuda::MathModeGuard mode(tf32 ? db::cuda::MathMode::TF32 : db::cuda::MathMode::F32);
  const auto& net = origin();
  const std::size_t T = 512;
  const auto x = device_randn<3>({B, 80, T}, 13), mu = device_randn<3>({B, 80, T}, 14);
  const auto mask = db::ops::full<float, 3>(Cuda{}, {B, 1, T}, 1.0f);
  const auto t = db::ops::full<float, 1>(Cuda{}, {B}, 0.5f);
  for (int i = 0; i < 3; ++i) (void)net.forward(x, mask, mu, t);
  db::cuda::synchronize();
  DIFFBLOCKS_CUDA_CHECK(cudaProfilerStart());
  (void)net.forward(x, mask, mu, t);
  db::cuda::synchronize();
  DIFFBLOCKS_CUDA_CHECK(cudaProfilerStop());
  std::printf("profiled one %s forward (cuDNN: %s)\n", what.c_str(), db::cuda::cudnn::status().c_str());
  return 0;
}

int main(int argc, char** argv) {
  try {
    if (argc == 3 && std::string(argv[1]) == "--profile") return profile_one(argv[2]);
    return bench::run_main(argc, argv, register_all);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda: %s\n", e.what());
    return 1;
  }
}
