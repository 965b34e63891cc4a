// Google Benchmark suite for the Grad-TTS blocks at the shapes the Origin U-Net
// (dim 64, mults (1,2,4), 80 mels, batch 1) runs them at, for T = 128 and 512 frames.
//
// Levels: L0 = 80 x T, L1 = 40 x T/2, L2 = 20 x T/4 (H = mel bins, W = frames; NCHW, B = 1).
// Counters: items_per_second = output pixels (H*W) per second; GFLOP/s (2 * MACs, conv-like
// blocks) or GB/s (compulsory traffic, element-wise blocks). Element-wise work inside the
// composite blocks (GroupNorm, Mish, masks) is not counted as FLOPs.
//
//   build/bin/bench_blocks [--threads=N] [--benchmark_filter=REGEX] ...
#include <string>

#include "bench_common.hpp"

namespace {

namespace db = diffblocks;
using bench::conv_macs;

struct Level {
  std::size_t h, w;
};
/// Geometry of U-Net level i for T frames: 80 / 2^i mel rows, T / 2^i frames.
Level level(std::int64_t frames, int i) { return {std::size_t(80) >> i, std::size_t(frames) >> i}; }

/// Registers a block benchmark at T = 128 and 512. `run(state, T)` does the setup and the loop.
template <class Fn>
void add(const std::string& name, Fn run) {
  benchmark::RegisterBenchmark(name.c_str(), [run](benchmark::State& s) { run(s, s.range(0)); })
      ->ArgName("T")
      ->Arg(128)
      ->Arg(512)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();  // the work runs on the diffblocks pool, not only on this thread
}

/// Times `module.forward(x)`, after one untimed warm-up call (first-touch page faults of the
/// output buffers would otherwise land in the first iteration).
template <class Module>
void time_forward(benchmark::State& state, const Module& module, const db::Tensor<float, 4>& x) {
  benchmark::DoNotOptimize(module.forward(x).data());
  for (auto _ : state) {
    auto y = module.forward(x);
    benchmark::DoNotOptimize(y.data());
  }
}

template <class Module>
void time_forward_masked(benchmark::State& state, const Module& module, const db::Tensor<float, 4>& x,
                         const db::Tensor<float, 4>& mask) {
  benchmark::DoNotOptimize(module.forward(x, mask).data());
  for (auto _ : state) {
    auto y = module.forward(x, mask);
    benchmark::DoNotOptimize(y.data());
  }
}

/// Conv2d k x k, stride 1, padding k/2, cin -> cout at level `lvl`.
void add_conv(int cin, int cout, int k, int lvl) {
  const std::string name = "Conv2d/" + std::to_string(k) + "x" + std::to_string(k) + "/" + std::to_string(cin) + "-" +
                           std::to_string(cout) + "/L" + std::to_string(lvl);
  add(name, [=](benchmark::State& s, std::int64_t T) {
    const Level g = level(T, lvl);
    db::Conv2d<> conv(cin, cout, k, 1, k / 2);
    bench::randomize(conv);
    time_forward(s, conv, bench::random_nchw(cin, g.h, g.w));
    bench::set_flops(s, 2 * conv_macs(cin, cout, k, g.h, g.w));
    bench::set_items(s, double(g.h * g.w));
  });
}

/// ResnetBlock(cin, cout, time_emb_dim 64) at level `lvl`; res_conv (1x1) when cin != cout.
void add_resnet(int cin, int cout, int lvl) {
  const std::string name =
      "ResnetBlock/" + std::to_string(cin) + "-" + std::to_string(cout) + "/L" + std::to_string(lvl);
  add(name, [=](benchmark::State& s, std::int64_t T) {
    const Level g = level(T, lvl);
    db::ResnetBlock<> block(cin, cout, 64);
    bench::randomize(block);
    const auto x = bench::random_nchw(cin, g.h, g.w);
    const auto mask = bench::full_mask(g.w);
    db::Tensor<float, 2> temb = db::ops::empty<float, 2>(db::Cpu{}, {1, 64});
    db::Rng rng(3);
    bench::fill_normal(temb, rng, 1.0);
    benchmark::DoNotOptimize(block.forward(x, mask, temb).data());
    for (auto _ : s) {
      auto y = block.forward(x, mask, temb);
      benchmark::DoNotOptimize(y.data());
    }
    const double macs = conv_macs(cin, cout, 3, g.h, g.w) + conv_macs(cout, cout, 3, g.h, g.w) +
                        (cin != cout ? conv_macs(cin, cout, 1, g.h, g.w) : 0.0) + 64.0 * cout;
    bench::set_flops(s, 2 * macs);
    bench::set_items(s, double(g.h * g.w));
  });
}

void register_all() {
  // Convolutions: the 3x3 convs of the Blocks at each level (94 % of the U-Net's MACs).
  add_conv(64, 64, 3, 0);
  add_conv(128, 128, 3, 1);
  add_conv(256, 256, 3, 2);

  // ConvTranspose2d 4x4 stride 2 as in ups.0.3 (Upsample(128), L2 -> L1).
  add("ConvTranspose2d/4x4s2/128-128/L2-L1", [](benchmark::State& s, std::int64_t T) {
    const Level g = level(T, 2);
    db::ConvTranspose2d<> conv(128, 128, 4, 2, 1);
    bench::randomize(conv);
    time_forward(s, conv, bench::random_nchw(128, g.h, g.w));
    bench::set_flops(s, 2 * bench::conv_transpose_macs(128, 128, 4, g.h, g.w));
    bench::set_items(s, double(4 * g.h * g.w));
  });

  // Element-wise / reduction blocks: memory-bound, so GB/s (input read + output written once).
  add("GroupNorm/8x64/L0", [](benchmark::State& s, std::int64_t T) {
    const Level g = level(T, 0);
    db::GroupNorm<> norm(8, 64);  // gamma 1, beta 0: values do not change the work
    time_forward(s, norm, bench::random_nchw(64, g.h, g.w));
    bench::set_bytes(s, 2.0 * sizeof(float) * 64 * g.h * g.w);
    bench::set_items(s, double(g.h * g.w));
  });
  add("Mish/64/L0", [](benchmark::State& s, std::int64_t T) {
    const Level g = level(T, 0);
    db::Mish<> mish;  // forward takes a copy, so the input stays the same every iteration
    time_forward(s, mish, bench::random_nchw(64, g.h, g.w));
    bench::set_bytes(s, 2.0 * sizeof(float) * 64 * g.h * g.w);
    bench::set_items(s, double(g.h * g.w));
  });

  // Grad-TTS composite blocks.
  add("Block/64-64/L0", [](benchmark::State& s, std::int64_t T) {
    const Level g = level(T, 0);
    db::Block<> block(64, 64);
    bench::randomize(block);
    time_forward_masked(s, block, bench::random_nchw(64, g.h, g.w), bench::full_mask(g.w));
    bench::set_flops(s, 2 * conv_macs(64, 64, 3, g.h, g.w));
    bench::set_items(s, double(g.h * g.w));
  });
  add_resnet(64, 64, 0);    // downs.0.1
  add_resnet(512, 128, 2);  // ups.0.0: concat input, 1x1 res_conv, the largest per-pixel block

  add("LinearAttention/64/L0", [](benchmark::State& s, std::int64_t T) {
    const Level g = level(T, 0);
    db::LinearAttention<> attn(64);
    bench::randomize(attn);
    time_forward(s, attn, bench::random_nchw(64, g.h, g.w));
    bench::set_flops(s, 2 * bench::linear_attention_macs(64, g.h, g.w));
    bench::set_items(s, double(g.h * g.w));
  });
  // mid_attn as the U-Net holds it: Residual(Rezero(LinearAttention(256))) at L2.
  add("Residual<Rezero<LinearAttention>>/256/L2", [](benchmark::State& s, std::int64_t T) {
    const Level g = level(T, 2);
    db::Residual<db::Rezero<db::LinearAttention<>>> attn(256);
    bench::randomize(attn);
    time_forward(s, attn, bench::random_nchw(256, g.h, g.w));
    bench::set_flops(s, 2 * bench::linear_attention_macs(256, g.h, g.w));
    bench::set_items(s, double(g.h * g.w));
  });

  add("Downsample/64/L0-L1", [](benchmark::State& s, std::int64_t T) {
    const Level in = level(T, 0), out = level(T, 1);
    db::Downsample<> down(64);
    bench::randomize(down);
    time_forward(s, down, bench::random_nchw(64, in.h, in.w));
    bench::set_flops(s, 2 * conv_macs(64, 64, 3, out.h, out.w));
    bench::set_items(s, double(out.h * out.w));
  });
  add("Upsample/64/L1-L0", [](benchmark::State& s, std::int64_t T) {
    const Level in = level(T, 1), out = level(T, 0);
    db::Upsample<> up(64);
    bench::randomize(up);
    time_forward(s, up, bench::random_nchw(64, in.h, in.w));
    bench::set_flops(s, 2 * bench::conv_transpose_macs(64, 64, 4, in.h, in.w));
    bench::set_items(s, double(out.h * out.w));
  });

  // Time embedding: SinusoidalPosEmb(64) -> MishMLP(64, 256, 64), once per forward. Tiny; it
  // shows the fixed per-call overhead (allocation, thread-pool dispatch) rather than compute.
  benchmark::RegisterBenchmark("TimeEmbedding/64", [](benchmark::State& s) {
    db::SinusoidalPosEmb<> pos(64);
    db::MishMLP<> mlp(64, 256, 64);
    bench::randomize(mlp);
    const auto t = db::ops::full<float, 1>(db::Cpu{}, {1}, 0.5f);
    for (auto _ : s) {
      auto y = mlp.forward(pos.forward(t, 1000.0));
      benchmark::DoNotOptimize(y.data());
    }
    bench::set_flops(s, 2.0 * (64 * 256 + 256 * 64));
    bench::set_items(s, 1.0);
  })->Unit(benchmark::kMicrosecond)->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) { return bench::run_main(argc, argv, register_all); }
