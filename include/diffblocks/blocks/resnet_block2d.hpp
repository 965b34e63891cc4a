#pragma once
// diffusers ResnetBlock2D (pre-norm, SiLU, dropout 0), time_embedding_norm "default" or
// "ada_group":
//   default:   h = conv1(SiLU(norm1(x))) + time_emb_proj(SiLU(temb)); h = conv2(SiLU(norm2(h)))
//   ada_group: h = conv1(SiLU(AdaGN1(x, temb)));                     h = conv2(SiLU(AdaGN2(h, temb)))
//   out = ((conv_shortcut(x) if in != out else x) + h) / output_scale_factor
// state_dict: norm1.*, conv1.*, [time_emb_proj.*], norm2.*, conv2.*, [conv_shortcut.*]
#include <optional>
#include <string>

#include "diffblocks/blocks/ada_group_norm.hpp"
#include "diffblocks/blocks/conv2d.hpp"
#include "diffblocks/blocks/group_norm.hpp"
#include "diffblocks/blocks/linear.hpp"

namespace diffblocks {
namespace ops {
namespace generic {
namespace kernel {
template <class T>
struct AddDiv {
  T* a;
  const T* b;
  T s;
  DIFFBLOCKS_HD void operator()(std::size_t i) const { a[i] = (b[i] + a[i]) / s; }
};
}  // namespace kernel

/// a = (b + a) / s in one pass: the block's output (input_tensor + hidden_states) /
/// output_scale_factor, a division as torch does it.
template <class D, class X, OnDevice<D, X> = 0>
void add_div_(const D& d, X& a, const X& b, typename X::value_type s) {
  for_each_index(d, a.size(), kernel::AddDiv<typename X::value_type>{a.data(), b.data(), s});
}
}  // namespace generic
using generic::add_div_;

/// The CPU's: one vectorised pass (kernels/elementwise.inl), half tensors included (runs widened,
/// rounded once: the generic loop converted f16 one value at a time in software).
template <class T, std::size_t N>
void add_div_(const Cpu& d, Tensor<T, N, Cpu>& a, const Tensor<T, N, Cpu>& b, T s) {
  DIFFBLOCKS_CPU_FAST_PATH(d, generic::add_div_(d, a, b, s));
  DIFFBLOCKS_CPU_RETURN_KERNEL(
      add_div_(a.data(), b.data(), static_cast<std::ptrdiff_t>(a.size()), static_cast<compute_t<T>>(s)));
}
}  // namespace ops

enum class TimeEmbeddingNorm { Default, AdaGroup };

inline TimeEmbeddingNorm parse_time_embedding_norm(const std::string& s, const std::string& where) {
  if (s == "default") return TimeEmbeddingNorm::Default;
  if (s == "ada_group") return TimeEmbeddingNorm::AdaGroup;
  throw ConfigError(where + ": resnet_time_scale_shift \"" + s +
                    "\" is not supported (supported: \"default\", \"ada_group\")");
}

template <class T = float, class D = Cpu>
class ResnetBlock2D {
 public:
  using scalar_type = T;
  using device_type = D;
  // default path
  std::optional<GroupNorm<T, D>> norm1, norm2;
  std::optional<Linear<T, D>> time_emb_proj;
  // ada_group path
  std::optional<AdaGroupNorm<T, D>> ada_norm1, ada_norm2;
  Conv2d<T, D> conv1, conv2;
  std::optional<Conv2d<T, D>> conv_shortcut;

  ResnetBlock2D(int in_channels, int out_channels, int temb_channels, int groups = 32, double eps = 1e-5,
                TimeEmbeddingNorm mode = TimeEmbeddingNorm::Default, double output_scale_factor = 1.0)
      : conv1(in_channels, out_channels, 3, 1, 1), conv2(out_channels, out_channels, 3, 1, 1), mode_(mode),
        in_(in_channels), out_scale_(output_scale_factor) {
    if (mode == TimeEmbeddingNorm::Default) {
      norm1.emplace(groups, in_channels, eps);
      time_emb_proj.emplace(temb_channels, out_channels);
      norm2.emplace(groups, out_channels, eps);
    } else {
      ada_norm1.emplace(temb_channels, in_channels, groups, eps);
      ada_norm2.emplace(temb_channels, out_channels, groups, eps);
    }
    if (in_channels != out_channels) conv_shortcut.emplace(in_channels, out_channels, 1);
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 4, D>, Tensor<T, 2, D>)
  /// x (B, in, H, W), temb (B, temb_channels) -> (B, out, H, W)
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x, const Tensor<T, 2, D>& temb) const {
    detail::check_dim("ResnetBlock2D", "input", x, 1, std::size_t(in_));
    detail::check_dim("ResnetBlock2D", "temb", temb, 0, x.shape(0));
    // Norm + SiLU pairs are one op each (forward_silu: fused on the GPU, the same ops on the CPU).
    Tensor<T, 4, D> h = mode_ == TimeEmbeddingNorm::Default ? norm1->forward_silu(x) : ada_norm1->forward_silu(x, temb);
    h = conv1.forward(h);
    if (mode_ == TimeEmbeddingNorm::Default) {
      Tensor<T, 2, D> t = temb;
      ops::silu_(D{}, t);
      ops::add_channel_bias_(D{}, h, time_emb_proj->forward(t));
      h = norm2->forward_silu(h);
    } else {
      h = ada_norm2->forward_silu(h, temb);
    }
    h = conv2.forward(h);
    Tensor<T, 4, D> shortcut;
    if (conv_shortcut) shortcut = conv_shortcut->forward(x);
    const Tensor<T, 4, D>& input = conv_shortcut ? shortcut : x;
    if (out_scale_ != 1.0)
      ops::add_div_(D{}, h, input, static_cast<T>(out_scale_));
    else
      ops::add_(D{}, h, input);
    return h;
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    if (mode_ == TimeEmbeddingNorm::Default) {
      norm1->visit(v, p + "norm1.");
      conv1.visit(v, p + "conv1.");
      time_emb_proj->visit(v, p + "time_emb_proj.");
      norm2->visit(v, p + "norm2.");
    } else {
      ada_norm1->visit(v, p + "norm1.");
      conv1.visit(v, p + "conv1.");
      ada_norm2->visit(v, p + "norm2.");
    }
    conv2.visit(v, p + "conv2.");
    if (conv_shortcut) conv_shortcut->visit(v, p + "conv_shortcut.");
  }

 private:
  TimeEmbeddingNorm mode_;
  int in_;
  double out_scale_;
};

}  // namespace diffblocks
