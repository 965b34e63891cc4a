// Google Benchmark suite for every block at the shapes the two U-Nets run it at, for T = 128
// and 512 frames: the Grad-TTS blocks as in the Origin (dim 64, mults (1,2,4), 80 mels), the
// diffusers blocks as in the TTS-sized Diffuser of bench_origin (block_out_channels (64, 128,
// 256), 4 heads, 16 style tokens of 64 features). Batch 1.
//
// Levels: L0 = 80 x T, L1 = 40 x T/2, L2 = 20 x T/4 (H = mel bins, W = frames; NCHW, B = 1).
// Counters: items_per_second = output pixels (H*W) or tokens per second; GFLOP/s (2 * MACs,
// conv-, linear- and attention-like blocks) or GB/s (compulsory traffic, element-wise blocks).
// Element-wise work inside the composite blocks (norms, activations, masks) is not counted as
// FLOPs. A Diffuser level's tokens are its pixels, H*W (10 240 at L1 for T = 512).
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

// ---- diffusers blocks, at the TTS-sized Diffuser's shapes -------------------------------------

constexpr int kStyleTokens = 16, kStyleDim = 64, kHeads = 4, kTembDim = 256;

/// (1, N, C) tokens of N(0, 1) values.
db::Tensor<float, 3> random_tokens(std::size_t n, std::size_t c, std::uint64_t seed = 8) {
  db::Rng rng(seed);
  auto x = db::ops::empty<float, 3>(db::Cpu{}, {1, n, c});
  bench::fill_normal(x, rng, 1.0);
  return x;
}

db::Tensor<float, 2> random_rows(std::size_t rows, std::size_t c, std::uint64_t seed = 9) {
  db::Rng rng(seed);
  auto x = db::ops::empty<float, 2>(db::Cpu{}, {rows, c});
  bench::fill_normal(x, rng, 1.0);
  return x;
}

/// Self-attention MACs over n tokens of width c: q, k, v, out projections and the two products.
double self_attention_macs(double n, double c) { return 4 * n * c * c + 2 * n * n * c; }
/// Cross-attention MACs: q and out over n tokens, k and v over s style tokens of width sc.
double cross_attention_macs(double n, double c, double s, double sc) {
  return 2 * n * c * c + 2 * s * sc * c + 2 * n * s * c;
}
/// GEGLU FeedForward (mult 4): proj c -> 8c, out 4c -> c.
double feed_forward_macs(double n, double c) { return 12 * n * c * c; }
double transformer_block_macs(double n, double c) {
  return self_attention_macs(n, c) + cross_attention_macs(n, c, kStyleTokens, kStyleDim) + feed_forward_macs(n, c);
}

/// Times f() (returning a tensor) after one untimed warm-up call.
template <class F>
void time_call(benchmark::State& state, F f) {
  benchmark::DoNotOptimize(f().data());
  for (auto _ : state) {
    auto y = f();
    benchmark::DoNotOptimize(y.data());
  }
}

void add_resnet2d(int cin, int cout, int lvl, db::TimeEmbeddingNorm mode) {
  const bool ada = mode == db::TimeEmbeddingNorm::AdaGroup;
  const std::string name = std::string(ada ? "ResnetBlock2D-ada_group/" : "ResnetBlock2D/") + std::to_string(cin) +
                           "-" + std::to_string(cout) + "/L" + std::to_string(lvl);
  add(name, [=](benchmark::State& s, std::int64_t T) {
    const Level g = level(T, lvl);
    db::ResnetBlock2D<> block(cin, cout, kTembDim, 32, 1e-5, mode);
    bench::randomize(block);
    const auto x = bench::random_nchw(cin, g.h, g.w);
    const auto temb = random_rows(1, kTembDim);
    time_call(s, [&] { return block.forward(x, temb); });
    const double norm_macs = ada ? double(kTembDim) * 2 * (cin + cout) : double(kTembDim) * cout;
    bench::set_flops(s, 2 * (conv_macs(cin, cout, 3, g.h, g.w) + conv_macs(cout, cout, 3, g.h, g.w) +
                             (cin != cout ? conv_macs(cin, cout, 1, g.h, g.w) : 0.0) + norm_macs));
    bench::set_items(s, double(g.h * g.w));
  });
}

void register_diffusers() {
  add_resnet2d(64, 64, 0, db::TimeEmbeddingNorm::Default);     // down_blocks.0.resnets.*
  add_resnet2d(128, 128, 1, db::TimeEmbeddingNorm::AdaGroup);  // the "ada_group" variant, L1
  add_resnet2d(384, 128, 1, db::TimeEmbeddingNorm::Default);   // up_blocks.1.resnets.0: skip concat

  add("AdaGroupNorm/32x128/L1", [](benchmark::State& s, std::int64_t T) {
    const Level g = level(T, 1);
    db::AdaGroupNorm<> norm(kTembDim, 128, 32);
    bench::randomize(norm);
    const auto x = bench::random_nchw(128, g.h, g.w);
    const auto temb = random_rows(1, kTembDim);
    time_call(s, [&] { return norm.forward(x, temb); });
    bench::set_bytes(s, 2.0 * sizeof(float) * 128 * g.h * g.w);
    bench::set_items(s, double(g.h * g.w));
  });
  add("SiLU/64/L0", [](benchmark::State& s, std::int64_t T) {
    const Level g = level(T, 0);
    db::SiLU<> silu;  // forward takes a copy, so the input stays the same every iteration
    const auto x = bench::random_nchw(64, g.h, g.w);
    time_call(s, [&] { return silu.forward(x); });
    bench::set_bytes(s, 2.0 * sizeof(float) * 64 * g.h * g.w);
    bench::set_items(s, double(g.h * g.w));
  });
  add("GELU/512/L1", [](benchmark::State& s, std::int64_t T) {  // FeedForward's inner width at L1
    const Level g = level(T, 1);
    db::GELU<> gelu;
    const auto x = random_rows(g.h * g.w, 512);
    time_call(s, [&] { return gelu.forward(x); });
    bench::set_bytes(s, 2.0 * sizeof(float) * 512 * g.h * g.w);
    bench::set_items(s, double(g.h * g.w));
  });
  add("LayerNorm/128/L1", [](benchmark::State& s, std::int64_t T) {
    const Level g = level(T, 1);
    db::LayerNorm<> norm(128);
    const auto x = random_tokens(g.h * g.w, 128);
    time_call(s, [&] { return norm.forward(x); });
    bench::set_bytes(s, 2.0 * sizeof(float) * 128 * g.h * g.w);
    bench::set_items(s, double(g.h * g.w));
  });
  add("Linear/128-128/L1", [](benchmark::State& s, std::int64_t T) {  // to_q / to_out on the tokens
    const Level g = level(T, 1);
    db::Linear<> lin(128, 128);
    bench::randomize(lin);
    const auto x = random_rows(g.h * g.w, 128);
    time_call(s, [&] { return lin.forward(x); });
    bench::set_flops(s, 2.0 * g.h * g.w * 128 * 128);
    bench::set_items(s, double(g.h * g.w));
  });
  add("FeedForward/128/L1", [](benchmark::State& s, std::int64_t T) {
    const Level g = level(T, 1);
    db::FeedForward<> ff(128);
    bench::randomize(ff);
    const auto x = random_tokens(g.h * g.w, 128);
    time_call(s, [&] { return ff.forward(x); });
    bench::set_flops(s, 2 * feed_forward_macs(double(g.h * g.w), 128));
    bench::set_items(s, double(g.h * g.w));
  });
  add("Attention/self/128/L1", [](benchmark::State& s, std::int64_t T) {  // attn1: 4 heads of 32
    const Level g = level(T, 1);
    db::Attention<> attn(128, 0, kHeads, 128 / kHeads);
    bench::randomize(attn);
    const auto x = random_tokens(g.h * g.w, 128);
    time_call(s, [&] { return attn.forward(x); });
    bench::set_flops(s, 2 * self_attention_macs(double(g.h * g.w), 128));
    bench::set_items(s, double(g.h * g.w));
  });
  add("CrossAttention/128-64/L1", [](benchmark::State& s, std::int64_t T) {  // attn2: content -> style
    const Level g = level(T, 1);
    db::CrossAttention<> attn(128, kStyleDim, kHeads, 128 / kHeads);
    bench::randomize(attn);
    const auto x = random_tokens(g.h * g.w, 128);
    const auto style = random_tokens(kStyleTokens, kStyleDim, 10);
    time_call(s, [&] { return attn.forward(x, style); });
    bench::set_flops(s, 2 * cross_attention_macs(double(g.h * g.w), 128, kStyleTokens, kStyleDim));
    bench::set_items(s, double(g.h * g.w));
  });
  add("BasicTransformerBlock/128/L1", [](benchmark::State& s, std::int64_t T) {
    const Level g = level(T, 1);
    db::BasicTransformerBlock<> block(128, kHeads, 128 / kHeads, kStyleDim);
    bench::randomize(block);
    const auto x = random_tokens(g.h * g.w, 128);
    const auto style = random_tokens(kStyleTokens, kStyleDim, 10);
    time_call(s, [&] { return block.forward(x, style); });
    bench::set_flops(s, 2 * transformer_block_macs(double(g.h * g.w), 128));
    bench::set_items(s, double(g.h * g.w));
  });
  add("Transformer2DModel/256/L2", [](benchmark::State& s, std::int64_t T) {  // down_blocks.2.attentions.*
    const Level g = level(T, 2);
    db::Transformer2DModel<> model(kHeads, 256 / kHeads, 256, 1, kStyleDim, 32);
    bench::randomize(model);
    const auto x = bench::random_nchw(256, g.h, g.w);
    const auto style = random_tokens(kStyleTokens, kStyleDim, 10);
    time_call(s, [&] { return model.forward(x, style); });
    const double n = double(g.h * g.w);
    bench::set_flops(s, 2 * (transformer_block_macs(n, 256) + 2 * n * 256 * 256));  // + proj_in, proj_out
    bench::set_items(s, n);
  });
  add("Downsample2D/64/L0-L1", [](benchmark::State& s, std::int64_t T) {
    const Level in = level(T, 0), out = level(T, 1);
    db::Downsample2D<> down(64);
    bench::randomize(down);
    const auto x = bench::random_nchw(64, in.h, in.w);
    time_call(s, [&] { return down.forward(x); });
    bench::set_flops(s, 2 * conv_macs(64, 64, 3, out.h, out.w));
    bench::set_items(s, double(out.h * out.w));
  });
  add("Upsample2D/256/L2-L1", [](benchmark::State& s, std::int64_t T) {
    const Level in = level(T, 2), out = level(T, 1);
    db::Upsample2D<> up(256);
    bench::randomize(up);
    const auto x = bench::random_nchw(256, in.h, in.w);
    time_call(s, [&] { return up.forward(x); });
    bench::set_flops(s, 2 * conv_macs(256, 256, 3, out.h, out.w));
    bench::set_items(s, double(out.h * out.w));
  });
  // Timesteps(64) -> TimestepEmbedding(64, 256), once per forward: per-call overhead.
  benchmark::RegisterBenchmark("TimestepEmbedding/64-256", [](benchmark::State& s) {
    db::Timesteps<> proj(64, true, 0.0);
    db::TimestepEmbedding<> emb(64, kTembDim);
    bench::randomize(emb);
    const auto t = db::ops::full<float, 1>(db::Cpu{}, {1}, 500.0f);
    for (auto _ : s) {
      auto y = emb.forward(proj.forward(t));
      benchmark::DoNotOptimize(y.data());
    }
    bench::set_flops(s, 2.0 * (64 * kTembDim + kTembDim * kTembDim));
    bench::set_items(s, 1.0);
  })->Unit(benchmark::kMicrosecond)->UseRealTime();
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

  register_diffusers();

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
