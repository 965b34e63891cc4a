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
#include <memory>

#include "bench_common.hpp"

namespace {

namespace db = diffblocks;

/// The benchmarked model, built once: construction and the random fill of its 7.6 M
/// parameters are not what we time.
const db::GradLogPEstimator2d<>& model() {
  static const std::unique_ptr<db::GradLogPEstimator2d<>> m = [] {
    db::OriginConfig cfg;
    cfg.dim = 64;
    cfg.dim_mults = {1, 2, 4};
    cfg.n_feats = 80;
    auto p = std::make_unique<db::GradLogPEstimator2d<>>(cfg);
    bench::randomize(*p);
    return p;
  }();
  return *m;
}

/// O(1) inputs for T frames: x, mu ~ N(0, 1), mask all ones, t = 0.5.
struct Inputs {
  db::Tensor<float, 3> x, mask, mu;
  db::Tensor<float, 1> t;
  explicit Inputs(std::size_t frames)
      : x(db::ops::empty<float, 3>(db::Cpu{}, {1, 80, frames})),
        mask(db::ops::full<float, 3>(db::Cpu{}, {1, 1, frames}, 1.0f)),
        mu(db::ops::empty<float, 3>(db::Cpu{}, {1, 80, frames})),
        t(db::ops::full<float, 1>(db::Cpu{}, {1}, 0.5f)) {
    db::Rng rng(11);
    bench::fill_normal(x, rng, 1.0);
    bench::fill_normal(mu, rng, 1.0);
  }
};

void set_counters(benchmark::State& state, std::int64_t frames) {
  bench::set_flops(state, 2 * bench::origin_macs(double(frames)));
  bench::set_items(state, double(frames));
}

/// One forward pass of the score estimator.
void origin_forward(benchmark::State& state) {
  const auto& net = model();
  const Inputs in(std::size_t(state.range(0)));
  // Untimed warm-up (first-touch page faults of the activation buffers), like the PyTorch
  // script's warm-up runs.
  benchmark::DoNotOptimize(net.forward(in.x, in.mask, in.mu, in.t).data());
  for (auto _ : state) {
    auto y = net.forward(in.x, in.mask, in.mu, in.t);
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, state.range(0));
}

/// The same forward with every convolution on im2col + GEMM (no Winograd): the baseline the
/// Winograd path is measured against in the same run.
void origin_forward_im2col(benchmark::State& state) {
  db::ops::cpu::set_conv_algorithm(db::ops::cpu::ConvAlgorithm::Im2col);
  origin_forward(state);
  db::ops::cpu::set_conv_algorithm(db::ops::cpu::ConvAlgorithm::Auto);
}

/// One Euler step of Grad-TTS reverse diffusion (ODE): a forward pass plus the update of x_t.
void sampler_step(benchmark::State& state) {
  const auto& net = model();
  const Inputs in(std::size_t(state.range(0)));
  db::GradTTSSamplerOptions opt;
  opt.steps = 1;
  benchmark::DoNotOptimize(db::reverse_diffusion(net, in.x, in.mask, in.mu, opt).data());
  for (auto _ : state) {
    auto y = db::reverse_diffusion(net, in.x, in.mask, in.mu, opt);
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, state.range(0));
}

void register_all() {
  for (auto [name, fn] : {std::pair{"diffblocks/origin_forward", &origin_forward},
                          std::pair{"diffblocks/origin_forward_im2col", &origin_forward_im2col},
                          std::pair{"diffblocks/sampler_step", &sampler_step}}) {
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
