#pragma once
// torch.nn.Conv2d (square kernel, zero padding, dilation 1, groups 1). Weight (out, in, k, k).
// Keeps its weight's prepared form (Winograd-transformed or GEMM-packed, ops/cpu/prepared.hpp),
// made at the first forward: edit `weight` afterwards and call invalidate_prepared() (or
// db::invalidate_prepared(model)), or the old form stays in use; loading a state dict does it.
#include "diffblocks/blocks/common.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class Conv2d {
 public:
  using scalar_type = T;
  using device_type = D;
  Tensor<T, 4, D> weight;
  Tensor<T, 1, D> bias;  // empty when bias=false

  Conv2d(int in_channels, int out_channels, int kernel_size, int stride = 1, int padding = 0, bool has_bias = true)
      : in_(in_channels), out_(out_channels), k_(kernel_size), stride_(stride), padding_(padding) {
    detail::check_positive("Conv2d", "in_channels", in_channels);
    detail::check_positive("Conv2d", "out_channels", out_channels);
    detail::check_positive("Conv2d", "kernel_size", kernel_size);
    detail::check_positive("Conv2d", "stride", stride);
    if (padding < 0) throw ConfigError("Conv2d: padding must be >= 0");
    weight = ops::zeros<T, 4>(D{}, {std::size_t(out_channels), std::size_t(in_channels), std::size_t(kernel_size),
                                    std::size_t(kernel_size)});
    bias = ops::zeros<T, 1>(D{}, {has_bias ? std::size_t(out_channels) : 0});
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 4, D>)
  /// x (B, in, H, W) -> (B, out, (H+2p-k)/s+1, (W+2p-k)/s+1)
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const {
    detail::check_dim("Conv2d", "input", x, 1, std::size_t(in_));
    if (x.shape(2) + 2 * std::size_t(padding_) < std::size_t(k_) || x.shape(3) + 2 * std::size_t(padding_) < std::size_t(k_))
      throw InputError("Conv2d: input " + shape_str(tensor_shape(x)) + " is smaller than the kernel " +
                       std::to_string(k_) + " with padding " + std::to_string(padding_));
    return ops::conv2d(D{}, x, weight, bias, stride_, padding_, prepared_);
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward_add_, Tensor<T, 4, D>, Tensor<T, 4, D>)
  /// out += forward(x), out shaped like forward(x)'s result: a residual add fused into the
  /// convolution (ResnetBlock's res_conv).
  void forward_add_(const Tensor<T, 4, D>& x, Tensor<T, 4, D>& out) const {
    detail::check_dim("Conv2d", "input", x, 1, std::size_t(in_));
    const std::size_t pad = 2 * std::size_t(padding_), k = std::size_t(k_), s = std::size_t(stride_);
    if (x.shape(2) + pad < k || x.shape(3) + pad < k || out.shape(0) != x.shape(0) ||
        out.shape(1) != std::size_t(out_) || out.shape(2) != (x.shape(2) + pad - k) / s + 1 ||
        out.shape(3) != (x.shape(3) + pad - k) / s + 1)
      throw InputError("Conv2d: cannot add the convolution of " + shape_str(tensor_shape(x)) + " into " +
                       shape_str(tensor_shape(out)));
    ops::conv2d_add_(D{}, x, weight, bias, stride_, padding_, out, prepared_);
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    detail::offer_prepared(v, *this);
    v(p + "weight", weight);
    if (bias.size()) v(p + "bias", bias);
  }

  /// Makes the prepared form now, for the device in effect (else at the first forward).
  void prepare() { ops::prepare_conv2d(D{}, weight, stride_, padding_, prepared_); }
  /// Drops the prepared form: the next forward prepares from `weight` as it is then.
  void invalidate_prepared() { prepared_.reset(); }
  std::size_t prepared_bytes() const { return prepared_.bytes(); }

  int in_channels() const { return in_; }
  int out_channels() const { return out_; }
  int kernel_size() const { return k_; }
  int stride() const { return stride_; }
  int padding() const { return padding_; }

 private:
  int in_, out_, k_, stride_, padding_;
  mutable ops::PreparedWeights<T, D> prepared_;
};

}  // namespace diffblocks
