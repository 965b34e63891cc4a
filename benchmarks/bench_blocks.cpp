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
// The dtype axis: every block runs in float32 (`Conv2d/3x3/64-64/L0/T:512`), bf16 and f16 (the
// block built in that type, its float32 random weights and inputs rounded:
// `Conv2d/3x3/64-64/L0_bf16/T:512`, `..._f16`: the suffix ends the case's name, before the
// arguments, as bench_origin's `origin_forward_bf16/T:512`; bench_common.hpp's dtype_case). Times
// stay float32, as in the models. GB/s counts the storage type's bytes. The label names the
// kernels that ran (dtype_label).
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

/// Registers a block benchmark at T = 128 and 512 in float32, bf16 and f16 (`<name>`,
/// `<name>_bf16`, `<name>_f16`). `run(state, T, dt)` does the setup and the loop for the scalar
/// type `typename decltype(dt)::type`.
template <class Fn>
void add(const std::string& name, Fn run) {
  bench::register_dtypes(
      name, "", [run](benchmark::State& s, auto dt) { run(s, s.range(0), dt); },
      [](benchmark::internal::Benchmark* b) { b->ArgName("T")->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond); });
}

/// The same for a once-per-forward block (no frame axis), timed in microseconds.
template <class Fn>
void add_once(const std::string& name, Fn run) {
  bench::register_dtypes(name, "", run, [](benchmark::internal::Benchmark* b) { b->Unit(benchmark::kMicrosecond); });
}

/// Times f() (returning a tensor) after one untimed warm-up call (first-touch page faults of
/// the output buffers would otherwise land in the first iteration).
template <class F>
void time_call(benchmark::State& state, F f) {
  benchmark::DoNotOptimize(f().data());
  for (auto _ : state) {
    auto y = f();
    benchmark::DoNotOptimize(y.data());
  }
}

/// Times `module.forward(x)`.
template <class Module, class X>
void time_forward(benchmark::State& state, const Module& module, const X& x) {
  time_call(state, [&] { return module.forward(x); });
}

/// (1, c, h, w) N(0, 1) values in type S.
template <class S>
db::Tensor<S, 4> random_nchw(std::size_t c, std::size_t h, std::size_t w) {
  return bench::as<S>(bench::random_nchw(c, h, w));
}

/// GB/s of an element-wise block over `elems` values in type S (each read once, written once).
template <class S>
void set_elementwise_bytes(benchmark::State& s, double elems) {
  bench::set_bytes(s, 2.0 * sizeof(S) * elems);
}

/// The scalar type of a dtype tag (bench::Dtype<S>) passed to a benchmark body.
template <class Tag>
using scalar_of = typename Tag::type;

/// Conv2d k x k, stride 1, padding k/2, cin -> cout at level `lvl`.
void add_conv(int cin, int cout, int k, int lvl) {
  const std::string name = "Conv2d/" + std::to_string(k) + "x" + std::to_string(k) + "/" + std::to_string(cin) + "-" +
                           std::to_string(cout) + "/L" + std::to_string(lvl);
  add(name, [=](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, lvl);
    db::Conv2d<S> conv(cin, cout, k, 1, k / 2);
    bench::randomize(conv);
    time_forward(s, conv, random_nchw<S>(cin, g.h, g.w));
    bench::set_flops(s, 2 * conv_macs(cin, cout, k, g.h, g.w));
    bench::set_items(s, double(g.h * g.w));
  });
}

/// ResnetBlock(cin, cout, time_emb_dim 64) at level `lvl`; res_conv (1x1) when cin != cout.
void add_resnet(int cin, int cout, int lvl) {
  const std::string name =
      "ResnetBlock/" + std::to_string(cin) + "-" + std::to_string(cout) + "/L" + std::to_string(lvl);
  add(name, [=](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, lvl);
    db::ResnetBlock<S> block(cin, cout, 64);
    bench::randomize(block);
    const auto x = random_nchw<S>(cin, g.h, g.w);
    const auto mask = bench::as<S>(bench::full_mask(g.w));
    db::Tensor<float, 2> tembf = db::ops::empty<float, 2>(db::Cpu{}, {1, 64});
    db::Rng rng(3);
    bench::fill_normal(tembf, rng, 1.0);
    const auto temb = bench::as<S>(std::move(tembf));
    time_call(s, [&] { return block.forward(x, mask, temb); });
    const double macs = conv_macs(cin, cout, 3, g.h, g.w) + conv_macs(cout, cout, 3, g.h, g.w) +
                        (cin != cout ? conv_macs(cin, cout, 1, g.h, g.w) : 0.0) + 64.0 * cout;
    bench::set_flops(s, 2 * macs);
    bench::set_items(s, double(g.h * g.w));
  });
}

// ---- diffusers blocks, at the TTS-sized Diffuser's shapes -------------------------------------

constexpr int kStyleTokens = 16, kStyleDim = 64, kHeads = 4, kTembDim = 256;

/// (1, N, C) tokens of N(0, 1) values in type S.
template <class S>
db::Tensor<S, 3> random_tokens(std::size_t n, std::size_t c, std::uint64_t seed = 8) {
  db::Rng rng(seed);
  auto x = db::ops::empty<float, 3>(db::Cpu{}, {1, n, c});
  bench::fill_normal(x, rng, 1.0);
  return bench::as<S>(std::move(x));
}

/// (rows, C) N(0, 1) values in type S.
template <class S>
db::Tensor<S, 2> random_rows(std::size_t rows, std::size_t c, std::uint64_t seed = 9) {
  db::Rng rng(seed);
  auto x = db::ops::empty<float, 2>(db::Cpu{}, {rows, c});
  bench::fill_normal(x, rng, 1.0);
  return bench::as<S>(std::move(x));
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

void add_resnet2d(int cin, int cout, int lvl, db::TimeEmbeddingNorm mode) {
  const bool ada = mode == db::TimeEmbeddingNorm::AdaGroup;
  const std::string name = std::string(ada ? "ResnetBlock2D-ada_group/" : "ResnetBlock2D/") + std::to_string(cin) +
                           "-" + std::to_string(cout) + "/L" + std::to_string(lvl);
  add(name, [=](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, lvl);
    db::ResnetBlock2D<S> block(cin, cout, kTembDim, 32, 1e-5, mode);
    bench::randomize(block);
    const auto x = random_nchw<S>(cin, g.h, g.w);
    const auto temb = random_rows<S>(1, kTembDim);
    time_call(s, [&] { return block.forward(x, temb); });
    const double norm_macs = ada ? double(kTembDim) * 2 * (cin + cout) : double(kTembDim) * cout;
    bench::set_flops(s, 2 * (conv_macs(cin, cout, 3, g.h, g.w) + conv_macs(cout, cout, 3, g.h, g.w) +
                             (cin != cout ? conv_macs(cin, cout, 1, g.h, g.w) : 0.0) + norm_macs));
    bench::set_items(s, double(g.h * g.w));
  });
}

/// An element-wise block over (1, c, H, W) at level `lvl` (a fresh, parameter-free module).
template <template <class...> class Block>
void add_elementwise_nchw(const std::string& name, int c, int lvl) {
  add(name, [=](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, lvl);
    Block<S> block;  // forward takes a copy, so the input stays the same every iteration
    time_forward(s, block, random_nchw<S>(c, g.h, g.w));
    set_elementwise_bytes<S>(s, double(c) * g.h * g.w);
    bench::set_items(s, double(g.h * g.w));
  });
}

void register_diffusers() {
  add_resnet2d(64, 64, 0, db::TimeEmbeddingNorm::Default);     // down_blocks.0.resnets.*
  add_resnet2d(128, 128, 1, db::TimeEmbeddingNorm::AdaGroup);  // the "ada_group" variant, L1
  add_resnet2d(384, 128, 1, db::TimeEmbeddingNorm::Default);   // up_blocks.1.resnets.0: skip concat

  add("AdaGroupNorm/32x128/L1", [](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, 1);
    db::AdaGroupNorm<S> norm(kTembDim, 128, 32);
    bench::randomize(norm);
    const auto x = random_nchw<S>(128, g.h, g.w);
    const auto temb = random_rows<S>(1, kTembDim);
    time_call(s, [&] { return norm.forward(x, temb); });
    set_elementwise_bytes<S>(s, 128.0 * g.h * g.w);
    bench::set_items(s, double(g.h * g.w));
  });
  add_elementwise_nchw<db::SiLU>("SiLU/64/L0", 64, 0);
  add("GELU/512/L1", [](benchmark::State& s, std::int64_t T, auto dt) {  // FeedForward's inner width at L1
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, 1);
    db::GELU<S> gelu;
    const auto x = random_rows<S>(g.h * g.w, 512);
    time_call(s, [&] { return gelu.forward(x); });
    set_elementwise_bytes<S>(s, 512.0 * g.h * g.w);
    bench::set_items(s, double(g.h * g.w));
  });
  add("LayerNorm/128/L1", [](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, 1);
    db::LayerNorm<S> norm(128);
    const auto x = random_tokens<S>(g.h * g.w, 128);
    time_call(s, [&] { return norm.forward(x); });
    set_elementwise_bytes<S>(s, 128.0 * g.h * g.w);
    bench::set_items(s, double(g.h * g.w));
  });
  add("Linear/128-128/L1", [](benchmark::State& s, std::int64_t T, auto dt) {  // to_q / to_out on the tokens
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, 1);
    db::Linear<S> lin(128, 128);
    bench::randomize(lin);
    const auto x = random_rows<S>(g.h * g.w, 128);
    time_call(s, [&] { return lin.forward(x); });
    bench::set_flops(s, 2.0 * g.h * g.w * 128 * 128);
    bench::set_items(s, double(g.h * g.w));
  });
  add("FeedForward/128/L1", [](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, 1);
    db::FeedForward<S> ff(128);
    bench::randomize(ff);
    const auto x = random_tokens<S>(g.h * g.w, 128);
    time_call(s, [&] { return ff.forward(x); });
    bench::set_flops(s, 2 * feed_forward_macs(double(g.h * g.w), 128));
    bench::set_items(s, double(g.h * g.w));
  });
  add("Attention/self/128/L1", [](benchmark::State& s, std::int64_t T, auto dt) {  // attn1: 4 heads of 32
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, 1);
    db::Attention<S> attn(128, 0, kHeads, 128 / kHeads);
    bench::randomize(attn);
    const auto x = random_tokens<S>(g.h * g.w, 128);
    time_call(s, [&] { return attn.forward(x); });
    bench::set_flops(s, 2 * self_attention_macs(double(g.h * g.w), 128));
    bench::set_items(s, double(g.h * g.w));
  });
  add("CrossAttention/128-64/L1", [](benchmark::State& s, std::int64_t T, auto dt) {  // attn2: content -> style
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, 1);
    db::CrossAttention<S> attn(128, kStyleDim, kHeads, 128 / kHeads);
    bench::randomize(attn);
    const auto x = random_tokens<S>(g.h * g.w, 128);
    const auto style = random_tokens<S>(kStyleTokens, kStyleDim, 10);
    time_call(s, [&] { return attn.forward(x, style); });
    bench::set_flops(s, 2 * cross_attention_macs(double(g.h * g.w), 128, kStyleTokens, kStyleDim));
    bench::set_items(s, double(g.h * g.w));
  });
  add("BasicTransformerBlock/128/L1", [](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, 1);
    db::BasicTransformerBlock<S> block(128, kHeads, 128 / kHeads, kStyleDim);
    bench::randomize(block);
    const auto x = random_tokens<S>(g.h * g.w, 128);
    const auto style = random_tokens<S>(kStyleTokens, kStyleDim, 10);
    time_call(s, [&] { return block.forward(x, style); });
    bench::set_flops(s, 2 * transformer_block_macs(double(g.h * g.w), 128));
    bench::set_items(s, double(g.h * g.w));
  });
  add("Transformer2DModel/256/L2", [](benchmark::State& s, std::int64_t T, auto dt) {  // down_blocks.2.attentions.*
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, 2);
    db::Transformer2DModel<S> model(kHeads, 256 / kHeads, 256, 1, kStyleDim, 32);
    bench::randomize(model);
    const auto x = random_nchw<S>(256, g.h, g.w);
    const auto style = random_tokens<S>(kStyleTokens, kStyleDim, 10);
    time_call(s, [&] { return model.forward(x, style); });
    const double n = double(g.h * g.w);
    bench::set_flops(s, 2 * (transformer_block_macs(n, 256) + 2 * n * 256 * 256));  // + proj_in, proj_out
    bench::set_items(s, n);
  });
  add("Downsample2D/64/L0-L1", [](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level in = level(T, 0), out = level(T, 1);
    db::Downsample2D<S> down(64);
    bench::randomize(down);
    time_forward(s, down, random_nchw<S>(64, in.h, in.w));
    bench::set_flops(s, 2 * conv_macs(64, 64, 3, out.h, out.w));
    bench::set_items(s, double(out.h * out.w));
  });
  add("Upsample2D/256/L2-L1", [](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level in = level(T, 2), out = level(T, 1);
    db::Upsample2D<S> up(256);
    bench::randomize(up);
    time_forward(s, up, random_nchw<S>(256, in.h, in.w));
    bench::set_flops(s, 2 * conv_macs(256, 256, 3, out.h, out.w));
    bench::set_items(s, double(out.h * out.w));
  });
  // Timesteps(64) -> TimestepEmbedding(64, 256), once per forward: per-call overhead. The
  // timestep is float32 in every type (the models keep times float32).
  add_once("TimestepEmbedding/64-256", [](benchmark::State& s, auto dt) {
    using S = scalar_of<decltype(dt)>;
    db::Timesteps<S> proj(64, true, 0.0);
    db::TimestepEmbedding<S> emb(64, kTembDim);
    bench::randomize(emb);
    const auto t = db::ops::full<float, 1>(db::Cpu{}, {1}, 500.0f);
    time_call(s, [&] { return emb.forward(proj.forward(t)); });
    bench::set_flops(s, 2.0 * (64 * kTembDim + kTembDim * kTembDim));
    bench::set_items(s, 1.0);
  });
}

void register_all() {
  // Convolutions: the 3x3 convs of the Blocks at each level (94 % of the U-Net's MACs).
  add_conv(64, 64, 3, 0);
  add_conv(128, 128, 3, 1);
  add_conv(256, 256, 3, 2);

  // ConvTranspose2d 4x4 stride 2 as in ups.0.3 (Upsample(128), L2 -> L1).
  add("ConvTranspose2d/4x4s2/128-128/L2-L1", [](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, 2);
    db::ConvTranspose2d<S> conv(128, 128, 4, 2, 1);
    bench::randomize(conv);
    time_forward(s, conv, random_nchw<S>(128, g.h, g.w));
    bench::set_flops(s, 2 * bench::conv_transpose_macs(128, 128, 4, g.h, g.w));
    bench::set_items(s, double(4 * g.h * g.w));
  });

  // Element-wise / reduction blocks: memory-bound, so GB/s (input read + output written once).
  add("GroupNorm/8x64/L0", [](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, 0);
    db::GroupNorm<S> norm(8, 64);  // gamma 1, beta 0: values do not change the work
    time_forward(s, norm, random_nchw<S>(64, g.h, g.w));
    set_elementwise_bytes<S>(s, 64.0 * g.h * g.w);
    bench::set_items(s, double(g.h * g.w));
  });
  add_elementwise_nchw<db::Mish>("Mish/64/L0", 64, 0);

  // Grad-TTS composite blocks.
  add("Block/64-64/L0", [](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, 0);
    db::Block<S> block(64, 64);
    bench::randomize(block);
    const auto x = random_nchw<S>(64, g.h, g.w);
    const auto mask = bench::as<S>(bench::full_mask(g.w));
    time_call(s, [&] { return block.forward(x, mask); });
    bench::set_flops(s, 2 * conv_macs(64, 64, 3, g.h, g.w));
    bench::set_items(s, double(g.h * g.w));
  });
  add_resnet(64, 64, 0);    // downs.0.1
  add_resnet(512, 128, 2);  // ups.0.0: concat input, 1x1 res_conv, the largest per-pixel block

  add("LinearAttention/64/L0", [](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, 0);
    db::LinearAttention<S> attn(64);
    bench::randomize(attn);
    time_forward(s, attn, random_nchw<S>(64, g.h, g.w));
    bench::set_flops(s, 2 * bench::linear_attention_macs(64, g.h, g.w));
    bench::set_items(s, double(g.h * g.w));
  });
  // mid_attn as the U-Net holds it: Residual(Rezero(LinearAttention(256))) at L2.
  add("Residual<Rezero<LinearAttention>>/256/L2", [](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level g = level(T, 2);
    db::Residual<db::Rezero<db::LinearAttention<S>>> attn(256);
    bench::randomize(attn);
    time_forward(s, attn, random_nchw<S>(256, g.h, g.w));
    bench::set_flops(s, 2 * bench::linear_attention_macs(256, g.h, g.w));
    bench::set_items(s, double(g.h * g.w));
  });

  add("Downsample/64/L0-L1", [](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level in = level(T, 0), out = level(T, 1);
    db::Downsample<S> down(64);
    bench::randomize(down);
    time_forward(s, down, random_nchw<S>(64, in.h, in.w));
    bench::set_flops(s, 2 * conv_macs(64, 64, 3, out.h, out.w));
    bench::set_items(s, double(out.h * out.w));
  });
  add("Upsample/64/L1-L0", [](benchmark::State& s, std::int64_t T, auto dt) {
    using S = scalar_of<decltype(dt)>;
    const Level in = level(T, 1), out = level(T, 0);
    db::Upsample<S> up(64);
    bench::randomize(up);
    time_forward(s, up, random_nchw<S>(64, in.h, in.w));
    bench::set_flops(s, 2 * bench::conv_transpose_macs(64, 64, 4, in.h, in.w));
    bench::set_items(s, double(out.h * out.w));
  });

  register_diffusers();

  // Time embedding: SinusoidalPosEmb(64) -> MishMLP(64, 256, 64), once per forward. Tiny; it
  // shows the fixed per-call overhead (allocation, thread-pool dispatch) rather than compute.
  // t stays float32 in every type.
  add_once("TimeEmbedding/64", [](benchmark::State& s, auto dt) {
    using S = scalar_of<decltype(dt)>;
    db::SinusoidalPosEmb<S> pos(64);
    db::MishMLP<S> mlp(64, 256, 64);
    bench::randomize(mlp);
    const auto t = db::ops::full<float, 1>(db::Cpu{}, {1}, 0.5f);
    time_call(s, [&] { return mlp.forward(pos.forward(t, 1000.0)); });
    bench::set_flops(s, 2.0 * (64 * 256 + 256 * 64));
    bench::set_items(s, 1.0);
  });
}

}  // namespace

int main(int argc, char** argv) { return bench::run_main(argc, argv, register_all); }
