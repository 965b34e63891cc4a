// Google Benchmark suite for the whole Origin U-Net (Grad-TTS GradLogPEstimator2d, dim 64,
// mults (1,2,4), 80 mels, batch 1, no speaker/emotion/prosody channels) and one Grad-TTS
// sampler step, at T = 128, 512 and 2048 frames (all valid, no padding).
//
// Counters: GFLOP/s from the closed-form MAC count of /work/shared/reference/gradtts.md
// (GFLOP = 2 * MACs; 17.17 GFLOP at T = 128), items_per_second = mel frames per second
// (divide by 86.13 for seconds of 22.05 kHz audio per second, per U-Net evaluation).
// tools/bench_torch.py runs the same model in PyTorch and names its results
// "torch/origin_forward/T:<T>" to line up with "diffblocks/origin_forward/T:<T>/real_time".
//
//   build/bin/bench_origin [--threads=N] [--benchmark_filter=REGEX] [--benchmark_repetitions=5] ...
#include <sys/resource.h>

#include <memory>
#include <type_traits>

#include "bench_common.hpp"

namespace {

namespace db = diffblocks;

/// The benchmarked model in type T (float, db::bf16, db::f16: the same random values, rounded),
/// built once: construction and the random fill of its 7.6 M parameters (30.5 MB in float32)
/// are not what we time.
template <class T = float>
db::GradLogPEstimator2d<T>& model() {
  static const std::unique_ptr<db::GradLogPEstimator2d<T>> m = [] {
    db::OriginConfig cfg;
    cfg.dim = 64;
    cfg.dim_mults = {1, 2, 4};
    cfg.n_feats = 80;
    auto p = std::make_unique<db::GradLogPEstimator2d<T>>(cfg);
    bench::randomize(*p);
    return p;
  }();
  return *m;
}

/// O(1) inputs for T frames in the model's type T: x, mu ~ N(0, 1), mask all ones, t = 0.5
/// (float32 in every type).
template <class T = float>
struct Inputs {
  db::Tensor<T, 3> x, mask, mu;
  db::Tensor<float, 1> t;
  explicit Inputs(std::size_t frames)
      : mask(db::ops::full<T, 3>(db::Cpu{}, {1, 1, frames}, T(1.0f))), t(db::ops::full<float, 1>(db::Cpu{}, {1}, 0.5f)) {
    db::Rng rng(11);
    auto xf = db::ops::empty<float, 3>(db::Cpu{}, {1, 80, frames}), muf = xf;
    bench::fill_normal(xf, rng, 1.0);
    bench::fill_normal(muf, rng, 1.0);
    x = db::ops::to_type<T>(db::Cpu{}, std::move(xf));
    mu = db::ops::to_type<T>(db::Cpu{}, std::move(muf));
  }
};

void set_counters(benchmark::State& state, std::int64_t frames) {
  bench::set_flops(state, 2 * bench::origin_macs(double(frames)));
  bench::set_items(state, double(frames));
}

/// The largest live activations of the layer-by-layer computation, in MB (dim 64, 80 mels,
/// batch 1, float32): the input and output of its largest layer, LinearAttention's to_qkv at
/// level 0 (64 -> 3 * 4 * 32 = 384 channels over 80 x T pixels). PyTorch holds more there (the
/// softmaxed k and the attention output as well: 704 channels); diffblocks' fused
/// LinearAttention (ops::linear_attention_block) never forms the qkv tensor at all.
double origin_live_activations_mb(double frames) { return 4.0 * (64 + 384) * 80 * frames * 1e-6; }

/// Peak resident set size of the process so far, in MB (Linux: kilobytes in ru_maxrss). Exact
/// for one benchmark when the run is filtered to it (--benchmark_filter='origin_forward/T:512$').
double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) * 1e-3;
}

/// One forward pass of the score estimator in type T.
template <class T = float>
void origin_forward(benchmark::State& state) {
  auto& net = model<T>();
  const Inputs<T> in(std::size_t(state.range(0)));
  // Untimed warm-up (first-touch page faults of the activation buffers, like the PyTorch
  // script's warm-up runs), which also measures the memory one forward needs: the peak of large
  // (>= 64 KiB) buffers it holds at once, its output included.
  double peak_mb = 0;
  {
    const db::memory::PeakMemoryProbe probe;
    benchmark::DoNotOptimize(net.forward(in.x, in.mask, in.mu, in.t).data());
    peak_mb = double(probe.peak_bytes()) * 1e-6;
  }
  const bench::CpuTimer cpu;
  for (auto _ : state) {
    auto y = net.forward(in.x, in.mask, in.mu, in.t);
    benchmark::DoNotOptimize(y.data());
  }
  cpu.report(state);
  set_counters(state, state.range(0));
  state.counters["peak_MB"] = peak_mb;
  // Compared with the activations that must be live at once (the CPU-speed bar: peak <= 1.5x).
  state.counters["live_activations_MB"] = origin_live_activations_mb(double(state.range(0)));
  // Held apart from activations: the blocks' prepared weights (Winograd-transformed or packed;
  // ops/cpu/prepared.hpp), against the model's own bytes (the bar: at most 5x).
  const double model_mb = double(db::parameter_count(net) * sizeof(T)) * 1e-6;
  state.counters["model_MB"] = model_mb;
  state.counters["prepared_MB"] = double(db::prepared_bytes(net)) * 1e-6;
  state.counters["prepared_ratio"] = double(db::prepared_bytes(net)) * 1e-6 / model_mb;
  // Freed blocks the caching allocator keeps for the next forward (part of the RSS).
  state.counters["cached_MB"] = double(db::memory::cached_bytes()) * 1e-6;
  state.counters["peak_RSS_MB"] = peak_rss_mb();
  state.SetLabel(bench::dtype_label<T>());
}

/// The same forward with every convolution on im2col + GEMM (no Winograd): the baseline the
/// Winograd path is measured against in the same run.
void origin_forward_im2col(benchmark::State& state) {
  db::ops::cpu::set_conv_algorithm(db::ops::cpu::ConvAlgorithm::Im2col);
  origin_forward<float>(state);
  db::ops::cpu::set_conv_algorithm(db::ops::cpu::ConvAlgorithm::Auto);
}

/// The same forward on a device with another WeightPreparation (the default is Auto).
void origin_forward_with(benchmark::State& state, db::WeightPreparation w) {
  auto& net = model<float>();
  const db::Cpu saved = net.device();
  db::CpuOptions o;
  o.threads = db::get_num_threads();
  o.weights = w;
  net.to(db::Cpu(o));
  db::invalidate_prepared(net);
  origin_forward<float>(state);
  db::invalidate_prepared(net);
  net.to(saved);
}
/// No prepared weights kept (WeightPreparation::PerCall: every convolution transforms or packs
/// its weight at each call): the low-memory mode.
void origin_forward_per_call(benchmark::State& state) { origin_forward_with(state, db::WeightPreparation::PerCall); }
/// Every prepared form kept (WeightPreparation::Keep: all 36 Winograd planes of every 3x3 kernel).
void origin_forward_keep(benchmark::State& state) { origin_forward_with(state, db::WeightPreparation::Keep); }

/// One Euler step of Grad-TTS reverse diffusion (ODE): a forward pass plus the update of x_t
/// (the state float32, the estimator in type T).
template <class T = float>
void sampler_step(benchmark::State& state) {
  const auto& net = model<T>();
  const Inputs<float> in(std::size_t(state.range(0)));
  db::GradTTSSamplerOptions opt;
  opt.steps = 1;
  benchmark::DoNotOptimize(db::reverse_diffusion(net, in.x, in.mask, in.mu, opt).data());
  for (auto _ : state) {
    auto y = db::reverse_diffusion(net, in.x, in.mask, in.mu, opt);
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, state.range(0));
  state.SetLabel(bench::dtype_label<T>());
}

/// Square SGEMM (N x N x N, row-major, ops::cpu::gemm: A packed per call, then the packed
/// kernel) split into column panels over the pool: the library's GEMM rate, measured in the same
/// run as the U-Net (the forward's GFLOP/s is compared against the best SGEMM of any source).
void sgemm(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  db::Rng rng(5);
  auto a = db::ops::empty<float, 2>(db::Cpu{}, {std::size_t(n), std::size_t(n)});
  auto b = a, c = a;
  bench::fill_normal(a, rng, 1.0);
  bench::fill_normal(b, rng, 1.0);
  const int panel = 256;
  auto run = [&] {
    db::parallel_for((n + panel - 1) / panel, [&](std::ptrdiff_t p0, std::ptrdiff_t p1) {
      const int j0 = static_cast<int>(p0) * panel, j1 = std::min(n, static_cast<int>(p1) * panel);
      db::ops::cpu::gemm<float>(n, j1 - j0, n, a.data(), n, b.data() + j0, n, c.data() + j0, n);
    });
  };
  run();
  for (auto _ : state) {
    run();
    benchmark::DoNotOptimize(c.data());
  }
  bench::set_flops(state, 2.0 * double(n) * n * n);
}


/// One forward of that Diffuser in type T at batch 1, 80 mels x T frames (sample = mel + speaker plane).
template <class T = float>
void diffuser_forward(benchmark::State& state) {
  static const std::unique_ptr<db::UNet2DConditionModel<T>> net = [] {
    auto p = std::make_unique<db::UNet2DConditionModel<T>>(db::DiffuserConfig::from_json(bench::diffuser_config()));
    bench::randomize_diffuser(*p);
    return p;
  }();
  const std::size_t frames = std::size_t(state.range(0));
  db::Rng rng(4);
  db::DiffuserInputs<float> in;
  in.sample = db::ops::empty<float, 4>(db::Cpu{}, {1, 2, 80, frames});
  bench::fill_normal(in.sample, rng, 1.0);
  in.timestep = db::ops::full<float, 1>(db::Cpu{}, {1}, 500.0f);
  in.encoder_hidden_states = db::ops::empty<float, 3>(db::Cpu{}, {1, 16, 64});
  bench::fill_normal(*in.encoder_hidden_states, rng, 1.0);
  in.class_labels = {2};
  in.image_embeds = db::ops::empty<float, 2>(db::Cpu{}, {1, 64});
  bench::fill_normal(*in.image_embeds, rng, 1.0);
  const auto inputs = db::cast_inputs<T>(db::Cpu{}, in);
  benchmark::DoNotOptimize(net->forward(inputs).data());
  const bench::CpuTimer cpu;
  for (auto _ : state) {
    auto y = net->forward(inputs);
    benchmark::DoNotOptimize(y.data());
  }
  cpu.report(state);
  bench::set_items(state, double(frames));
  state.SetLabel(bench::dtype_label<T>());
}

/// One diffusers scheduler step (DDPM with drawn noise, DDIM, Euler) on a (1, 1, 80, T) latent:
/// element-wise work, so the counter is GB/s of compulsory traffic (model output and sample
/// read, the new sample written; DDPM also writes and reads its noise).
template <class Scheduler>
void scheduler_step(benchmark::State& state) {
  const std::size_t frames = std::size_t(state.range(0));
  Scheduler scheduler;
  scheduler.set_timesteps(50);
  const double t = scheduler.timesteps()[10];
  db::Rng rng(6);
  auto sample = db::ops::empty<float, 4>(db::Cpu{}, {1, 1, 80, frames});
  auto eps = sample;
  bench::fill_normal(sample, rng, 1.0);
  bench::fill_normal(eps, rng, 1.0);
  for (auto _ : state) {
    auto y = scheduler.step(eps, t, sample, rng);
    benchmark::DoNotOptimize(y.data());
  }
  const bool stochastic = std::is_same_v<Scheduler, db::DDPMScheduler<>>;
  bench::set_bytes(state, 4.0 * 80 * double(frames) * (stochastic ? 5 : 3));
  bench::set_items(state, double(frames));
}

void register_all() {
  for (auto [name, fn] : {std::pair{"diffblocks/ddpm_step", &scheduler_step<db::DDPMScheduler<>>},
                          std::pair{"diffblocks/ddim_step", &scheduler_step<db::DDIMScheduler<>>},
                          std::pair{"diffblocks/euler_step", &scheduler_step<db::EulerDiscreteScheduler<>>}})
    benchmark::RegisterBenchmark(name, fn)->ArgName("T")->Arg(512)->Unit(benchmark::kMicrosecond)->UseRealTime();
  // The dtype axis: diffblocks/<case> is float32, <case>_bf16 / _f16 the same model in half
  // (tools/bench_torch.py --dtypes names PyTorch's autocast runs <case>_bf16_autocast).
  for (auto [name, fn] : {std::pair{"diffblocks/diffuser_forward", &diffuser_forward<float>},
                          std::pair{"diffblocks/diffuser_forward_bf16", &diffuser_forward<db::bf16>},
                          std::pair{"diffblocks/diffuser_forward_f16", &diffuser_forward<db::f16>}})
    benchmark::RegisterBenchmark(name, fn)->ArgName("T")->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("diffblocks/sgemm", sgemm)->ArgName("N")->Arg(1024)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();
  for (auto [name, fn] : {std::pair{"diffblocks/origin_forward", &origin_forward<float>},
                          std::pair{"diffblocks/origin_forward_bf16", &origin_forward<db::bf16>},
                          std::pair{"diffblocks/origin_forward_f16", &origin_forward<db::f16>},
                          std::pair{"diffblocks/origin_forward_im2col", &origin_forward_im2col},
                          std::pair{"diffblocks/origin_forward_per_call", &origin_forward_per_call},
                          std::pair{"diffblocks/origin_forward_keep", &origin_forward_keep},
                          std::pair{"diffblocks/sampler_step", &sampler_step<float>},
                          std::pair{"diffblocks/sampler_step_bf16", &sampler_step<db::bf16>}}) {
    benchmark::RegisterBenchmark(name, fn)
        ->ArgName("T")
        ->Arg(128)
        ->Arg(512)
        ->Arg(2048)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();  // the work runs on the diffblocks pool, not only on this thread
  }
}

}  // namespace

int main(int argc, char** argv) { return bench::run_main(argc, argv, register_all); }
