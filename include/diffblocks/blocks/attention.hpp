#pragma once
// diffusers Attention with the plain AttnProcessor, and CrossAttention as a first-class block.
//
// Attention(query_dim, cross_attention_dim, heads, dim_head, bias):
//   q = to_q(x), k = to_k(ctx), v = to_v(ctx)   (ctx = x for self-attention)
//   heads are contiguous channel blocks; P = softmax(q k^T / sqrt(dim_head) + mask_bias)
//   out = to_out.0(P v)
// state_dict: to_q.*, to_k.*, to_v.*, to_out.0.* (to_q/k/v have no bias by default).

#include <optional>

#include "diffblocks/blocks/linear.hpp"

namespace diffblocks {
namespace ops {
namespace generic {
namespace kernel {
template <class T>
struct KeepToBias {
  const T* keep;
  T* bias;
  DIFFBLOCKS_HD void operator()(std::size_t i) const { bias[i] = (T(1) - keep[i]) * T(-10000.0); }
};
}  // namespace kernel

/// diffusers' attention-mask convention: keep-mask m (1 = attend) -> additive bias (1 - m) * -10000.
template <class D, class X, OnDevice<D, X> = 0>
X keep_mask_to_bias(const D& d, const X& keep) {
  auto y = X::from_shape(keep.shape());
  for_each_index(d, keep.size(), kernel::KeepToBias<typename X::value_type>{keep.data(), y.data()});
  return y;
}
}  // namespace generic
using generic::keep_mask_to_bias;
}  // namespace ops

template <class T = float, class D = Cpu>
class Attention {
 public:
  using scalar_type = T;
  using device_type = D;
  Linear<T, D> to_q, to_k, to_v, to_out;

  /// cross_attention_dim <= 0 means self-attention (keys/values from the query stream's width).
  Attention(int query_dim, int cross_attention_dim, int heads, int dim_head, bool bias = false, bool out_bias = true)
      : to_q(query_dim, heads * dim_head, bias),
        to_k(cross_attention_dim > 0 ? cross_attention_dim : query_dim, heads * dim_head, bias),
        to_v(cross_attention_dim > 0 ? cross_attention_dim : query_dim, heads * dim_head, bias),
        to_out(heads * dim_head, query_dim, out_bias), heads_(heads), dim_head_(dim_head) {
    detail::check_positive("Attention", "heads", heads);
    detail::check_positive("Attention", "dim_head", dim_head);
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 3, D>, Tensor<T, 3, D>, std::optional<Tensor<T, 2, D>>)
  /// Self-attention over x (B, N, query_dim).
  Tensor<T, 3, D> forward(const Tensor<T, 3, D>& x) const { return forward(x, x); }

  /// x (B, N, query_dim) attends to ctx (B, S, cross_dim). `mask_bias` (B, S) is added to the
  /// scores (diffusers turns a keep-mask m into (1 - m) * -10000); empty = none.
  Tensor<T, 3, D> forward(const Tensor<T, 3, D>& x, const Tensor<T, 3, D>& ctx,
                          const std::optional<Tensor<T, 2, D>>& mask_bias = std::nullopt) const {
    if (ctx.shape(0) != x.shape(0))
      throw InputError("Attention: context batch " + std::to_string(ctx.shape(0)) + " differs from the query batch " +
                       std::to_string(x.shape(0)));
    if (mask_bias && (mask_bias->shape(0) != ctx.shape(0) || mask_bias->shape(1) != ctx.shape(1)))
      throw InputError("Attention: mask has shape " + shape_str(tensor_shape(*mask_bias)) + ", expected [" +
                       std::to_string(ctx.shape(0)) + ", " + std::to_string(ctx.shape(1)) + "]");
    const Tensor<T, 2, D> none = ops::zeros<T, 2>(D{}, {0, 0});
    const compute_t<T> scale = static_cast<compute_t<T>>(1.0 / std::sqrt(static_cast<double>(dim_head_)));
    return to_out.forward(ops::attention(D{}, to_q.forward(x), to_k.forward(ctx), to_v.forward(ctx), heads_, scale,
                                         mask_bias ? *mask_bias : none));
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    to_q.visit(v, p + "to_q.");
    to_k.visit(v, p + "to_k.");
    to_v.visit(v, p + "to_v.");
    to_out.visit(v, p + "to_out.0.");
  }

  int heads() const { return heads_; }
  int dim_head() const { return dim_head_; }

 private:
  int heads_, dim_head_;
};

}  // namespace diffblocks
