// One block at a time, on your own tensors: GroupNorm on a mel-like feature map, and
// CrossAttention from a content stream to a padded style sequence. Parameters are set by their
// PyTorch state_dict names, the way a checkpoint loader (or a user porting weights) does.
// Each block includes only its own header. Usage: blocks (no arguments); exits 1 if a check fails.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "diffblocks/blocks/cross_attention.hpp"
#include "diffblocks/blocks/group_norm.hpp"

namespace db = diffblocks;

template <class Tn>
static void print_row(const char* what, const Tn& t, std::size_t n) {
  std::printf("  %s:", what);
  for (std::size_t i = 0; i < n; ++i) std::printf(" %+.4f", double(t.data()[i]));
  std::printf("\n");
}

static bool fail(const char* what) {
  std::fprintf(stderr, "check failed: %s\n", what);
  return false;
}

// GroupNorm(4 groups, 8 channels) on (B=1, C=8, H=4 mel bins, W=6 frames).
static bool group_norm() {
  db::GroupNorm<> norm(4, 8);
  // Members are named like the state_dict ("weight", "bias"); the visitor lists them by name.
  norm.visit([](const std::string& name, db::Tensor<float, 1>& p) {
    for (std::size_t c = 0; c < p.size(); ++c) p(c) = name == "weight" ? 1.f + 0.25f * float(c) : 0.1f * float(c);
  });
  auto x = db::Tensor<float, 4>::from_shape({1, 8, 4, 6});
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = std::sin(0.37f * float(i)) * float(1 + i % 5);
  const auto y = norm.forward(x);
  std::printf("GroupNorm(4, 8): x %s -> y %s\n", db::shape_str(db::tensor_shape(x)).c_str(),
              db::shape_str(db::tensor_shape(y)).c_str());
  print_row("y[0, 0, 0, :4]", y, 4);

  // Undo the affine: every group of 2 channels x 24 pixels has mean 0 and variance ~1.
  for (std::size_t g = 0; g < 4; ++g) {
    double s = 0, s2 = 0;
    for (std::size_t c = 2 * g; c < 2 * g + 2; ++c)
      for (std::size_t i = 0; i < 24; ++i) {
        const double v = (y.data()[c * 24 + i] - norm.bias(c)) / norm.weight(c);
        s += v;
        s2 += v * v;
      }
    if (std::fabs(s / 48) > 1e-5 || std::fabs(s2 / 48 - 1) > 1e-3) return fail("GroupNorm group statistics");
  }
  return true;
}

// CrossAttention: content (B=2, N=6 frames, C=8) queries a style sequence (B=2, S=5, D=12);
// item 1's style has only 3 real tokens, the rest is padding.
static bool cross_attention() {
  db::CrossAttention<> attn(/*content_dim=*/8, /*style_dim=*/12, /*heads=*/2, /*dim_head=*/4);
  std::size_t k = 0;
  attn.visit([&](const std::string& name, auto& p) {  // to_q.weight, to_k.weight, to_v.weight, to_out.0.*
    std::printf("  parameter %-16s %s\n", name.c_str(), db::shape_str(db::tensor_shape(p)).c_str());
    for (auto& v : p) v = 0.3f * std::cos(0.91f * float(k++));
  });
  auto content = db::Tensor<float, 3>::from_shape({2, 6, 8});
  auto style = db::Tensor<float, 3>::from_shape({2, 5, 12});
  for (std::size_t i = 0; i < content.size(); ++i) content.data()[i] = std::sin(0.5f * float(i));
  for (std::size_t i = 0; i < style.size(); ++i) style.data()[i] = std::cos(0.23f * float(i));
  auto keep = db::Tensor<float, 2>::from_shape({2, 5});  // 1 = real style token, 0 = padding
  for (std::size_t s = 0; s < 5; ++s) keep(0, s) = 1.f, keep(1, s) = s < 3 ? 1.f : 0.f;

  const auto out = attn.forward(content, style, keep);
  std::printf("CrossAttention(8, 12, 2 heads x 4): content %s, style %s -> %s\n",
              db::shape_str(db::tensor_shape(content)).c_str(), db::shape_str(db::tensor_shape(style)).c_str(),
              db::shape_str(db::tensor_shape(out)).c_str());
  print_row("out[0, 0, :4]", out, 4);

  // The padding mask at work: whatever sits in item 1's padded style tokens, its output is the same.
  auto noisy = style;
  for (std::size_t s = 3; s < 5; ++s)
    for (std::size_t d = 0; d < 12; ++d) noisy(1, s, d) = 100.f;
  const auto out2 = attn.forward(content, noisy, keep);
  double moved = 0;
  for (std::size_t i = 0; i < out.size(); ++i)
    moved = std::max(moved, double(std::fabs(out.data()[i] - out2.data()[i])));
  std::printf("  max change from editing padded style tokens: %g\n", moved);
  if (moved != 0) return fail("padded style tokens changed the output");
  return out.shape(0) == 2 && out.shape(1) == 6 && out.shape(2) == 8 ? true : fail("output shape");
}

int main() try {
  if (!group_norm() || !cross_attention()) return 1;
  std::printf("blocks: OK\n");
  return 0;
} catch (const db::Error& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
