#pragma once
// torch.nn.ConvTranspose2d (square kernel, no output_padding, dilation 1, groups 1).
// Weight layout is (in, out, k, k): transposed with respect to Conv2d, as in PyTorch.
// Keeps its weight's prepared form (every output phase packed) like Conv2d.
#include "diffblocks/blocks/common.hpp"

namespace diffblocks {

template <class T = float, class D = Cpu>
class ConvTranspose2d {
 public:
  using scalar_type = T;
  using device_type = D;
  Tensor<T, 4, D> weight;
  Tensor<T, 1, D> bias;

  ConvTranspose2d(int in_channels, int out_channels, int kernel_size, int stride = 1, int padding = 0,
                  bool has_bias = true)
      : in_(in_channels), out_(out_channels), k_(kernel_size), stride_(stride), padding_(padding) {
    detail::check_positive("ConvTranspose2d", "in_channels", in_channels);
    detail::check_positive("ConvTranspose2d", "out_channels", out_channels);
    detail::check_positive("ConvTranspose2d", "kernel_size", kernel_size);
    detail::check_positive("ConvTranspose2d", "stride", stride);
    if (padding < 0) throw ConfigError("ConvTranspose2d: padding must be >= 0");
    weight = ops::zeros<T, 4>(D{}, {std::size_t(in_channels), std::size_t(out_channels), std::size_t(kernel_size),
                                    std::size_t(kernel_size)});
    bias = ops::zeros<T, 1>(D{}, {has_bias ? std::size_t(out_channels) : 0});
  }

  DIFFBLOCKS_TAKES_EXACTLY(forward, Tensor<T, 4, D>)
  /// x (B, in, H, W) -> (B, out, (H-1)s - 2p + k, (W-1)s - 2p + k)
  Tensor<T, 4, D> forward(const Tensor<T, 4, D>& x) const {
    detail::check_dim("ConvTranspose2d", "input", x, 1, std::size_t(in_));
    return ops::conv_transpose2d(D{}, x, weight, bias, stride_, padding_, prepared_);
  }

  template <class V>
  void visit(V&& v, const std::string& p = "") {
    detail::offer_prepared(v, *this);
    v(p + "weight", weight);
    if (bias.size()) v(p + "bias", bias);
  }

  /// Makes the prepared form now (else at the first forward).
  void prepare() { ops::prepare_conv_transpose2d(D{}, weight, stride_, padding_, prepared_); }
  /// Drops the prepared form: the next forward prepares from `weight` as it is then.
  void invalidate_prepared() { prepared_.reset(); }
  std::size_t prepared_bytes() const { return prepared_.bytes(); }

 private:
  int in_, out_, k_, stride_, padding_;
  mutable ops::PreparedWeights<T, D> prepared_;
};

}  // namespace diffblocks
