// Build the Origin U-Net from code (no checkpoint), run it with speaker, emotion and prosody
// conditioning, then snap different attention blocks in through the template parameter:
//   GradLogPEstimator2d<float, Cpu, LinearAttention>        Grad-TTS as published (the default)
//   GradLogPEstimator2d<float, Cpu, SoftmaxSelfAttention>   softmax attention that sees the mask
//   GradLogPEstimator2d<float, Cpu, WideSoftmax>            the same with 8 heads of 32 (defined below)
// Nothing else in the U-Net changes. Usage: origin_from_code (no arguments); exits 1 on failure.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "diffblocks/blocks/softmax_self_attention.hpp"
#include "diffblocks/core/init.hpp"
#include "diffblocks/unets/origin.hpp"
#include "diffblocks/version.hpp"

namespace db = diffblocks;
using db::Tensor;

// A block with other hyper-parameters is a one-line subclass: the U-Net constructs its attention
// blocks as Attention<T, D>(dim).
template <class T, class D>
struct WideSoftmax : db::SoftmaxSelfAttention<T, D> {
  explicit WideSoftmax(int dim) : db::SoftmaxSelfAttention<T, D>(dim, /*heads=*/8, /*dim_head=*/32) {}
};

struct Batch {
  Tensor<float, 3> x, mu, mask;
  Tensor<float, 1> t;
  db::OriginConditioning<float> cond;
};

// B = 2 utterances of 32 frames, the second padded after 26; inputs are smooth O(1) patterns.
static Batch make_batch(const db::OriginConfig& cfg) {
  const std::size_t B = 2, F = std::size_t(cfg.n_feats), T = 32;
  Batch b{Tensor<float, 3>::from_shape({B, F, T}), Tensor<float, 3>::from_shape({B, F, T}),
          Tensor<float, 3>::from_shape({B, 1, T}), Tensor<float, 1>::from_shape({B}), {}};
  for (std::size_t i = 0; i < b.x.size(); ++i) {
    b.x.data()[i] = std::sin(0.11f * float(i));
    b.mu.data()[i] = std::cos(0.05f * float(i));
  }
  for (std::size_t w = 0; w < T; ++w) b.mask(0, 0, w) = 1.f, b.mask(1, 0, w) = w < 26 ? 1.f : 0.f;
  b.t = {0.7f, 0.3f};
  b.cond.spk = Tensor<float, 2>::from_shape({B, std::size_t(cfg.spk_emb_dim)});  // speaker embeddings
  b.cond.emo = Tensor<float, 2>::from_shape({B, std::size_t(cfg.emo_emb_dim)});  // emotion embeddings
  b.cond.psd = Tensor<float, 3>::from_shape({B, std::size_t(cfg.n_psd), T});     // pitch, energy per frame
  for (std::size_t i = 0; i < b.cond.spk->size(); ++i) b.cond.spk->data()[i] = std::sin(1.3f * float(i));
  for (std::size_t i = 0; i < b.cond.emo->size(); ++i) b.cond.emo->data()[i] = std::cos(0.7f * float(i));
  for (std::size_t i = 0; i < b.cond.psd->size(); ++i) b.cond.psd->data()[i] = std::sin(0.2f * float(i));
  return b;
}

struct Stats {
  double mean = 0, max_abs = 0, padded_max_abs = 0;
  bool finite = true;
};

static Stats stats(const Tensor<float, 3>& y, const Tensor<float, 3>& mask) {
  Stats s;
  double n = 0;
  for (std::size_t b = 0; b < y.shape(0); ++b)
    for (std::size_t f = 0; f < y.shape(1); ++f)
      for (std::size_t w = 0; w < y.shape(2); ++w) {
        const double v = y(b, f, w);
        s.finite = s.finite && std::isfinite(v);
        if (mask(b, 0, w) == 0) {
          s.padded_max_abs = std::max(s.padded_max_abs, std::fabs(v));
          continue;
        }
        s.mean += v;
        s.max_abs = std::max(s.max_abs, std::fabs(v));
        n += 1;
      }
  s.mean /= n;
  return s;
}

// Builds the variant, fills its parameters deterministically, runs one forward pass.
template <template <class, class> class Attention>
static Tensor<float, 3> run(const char* name, const db::OriginConfig& cfg, const Batch& in) {
  db::GradLogPEstimator2d<float, db::Cpu, Attention> model(cfg);
  // No checkpoint: every parameter from a seeded generator, in state_dict order. bias_scale 0.5
  // also sets Rezero's g (0 in PyTorch's init, which would switch the attention layers off).
  db::init_parameters(model, /*seed=*/1, /*bias_scale=*/0.5);
  const auto y = model.forward(in.x, in.mask, in.mu, in.t, in.cond);
  const Stats s = stats(y, in.mask);
  std::printf("%-22s %8zu parameters, out %s, valid mean %+.4f max|.| %.4f, padded max|.| %g%s\n", name,
              db::parameter_count(model), db::shape_str(db::tensor_shape(y)).c_str(), s.mean, s.max_abs,
              s.padded_max_abs, model.attention_takes_mask ? " (attention sees the mask)" : "");
  if (!s.finite || s.padded_max_abs != 0 || s.max_abs == 0) throw db::Error(std::string(name) + ": bad output");
  return y;
}

static double max_diff(const Tensor<float, 3>& a, const Tensor<float, 3>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a.data()[i] - b.data()[i])));
  return m;
}

int main() try {
  std::printf("diffblocks %s\n", db::version_string());
  db::OriginConfig cfg;  // Grad-TTS's hyper-parameters by name, small enough to run in a blink
  cfg.dim = 16;
  cfg.dim_mults = {1, 2};
  cfg.n_feats = 16;
  cfg.n_spks = 4, cfg.spk_emb_dim = 8;  // speaker channel
  cfg.n_emos = 3, cfg.emo_emb_dim = 8;  // emotion channel
  cfg.n_psd = 2;                        // prosody channels
  const Batch in = make_batch(cfg);

  const auto linear = run<db::LinearAttention>("LinearAttention", cfg, in);
  const auto softmax = run<db::SoftmaxSelfAttention>("SoftmaxSelfAttention", cfg, in);
  const auto wide = run<WideSoftmax>("WideSoftmax (8 x 32)", cfg, in);
  std::printf("max |linear - softmax| = %.4f, max |softmax - wide| = %.4f\n", max_diff(linear, softmax),
              max_diff(softmax, wide));
  if (max_diff(linear, softmax) == 0 || max_diff(softmax, wide) == 0)
    throw db::Error("swapping the attention block did not change the output");
  std::printf("origin_from_code: OK\n");
  return 0;
} catch (const db::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
