#pragma once
// The Origin U-Net's conditioning planes, written once for every device (ops/map.hpp): the
// speaker / emotion vectors and the prosody features become whole input channels.
#include <cstddef>

#include "diffblocks/ops/generic/tensor_traits.hpp"
#include "diffblocks/ops/map.hpp"

namespace diffblocks {
namespace ops {
namespace generic {
namespace kernel {
/// d[b, c, h, w] = v[b, h] over rows (b, h) of W values.
template <class T>
struct RepeatTime {
  const T* v;
  T* d;
  std::size_t C, c, H, W;
  DIFFBLOCKS_HD void operator()(std::size_t bh, std::size_t w) const {
    const std::size_t b = bh / H, h = bh % H;
    d[((b * C + c) * H + h) * W + w] = v[bh];
  }
};
/// d[b, c, h, w] = s[b, i, w] over rows (b, h) of W values.
template <class T>
struct RepeatFreq {
  const T* s;
  T* d;
  std::size_t C, c, H, W, n, i;
  DIFFBLOCKS_HD void operator()(std::size_t bh, std::size_t w) const {
    const std::size_t b = bh / H, h = bh % H;
    d[((b * C + c) * H + h) * W + w] = s[(b * n + i) * W + w];
  }
};
}  // namespace kernel

/// dst[b, c, h, :] = v[b, h]: a per-row vector repeated over time (speaker / emotion planes).
template <class D, class X, class V, OnDevice<D, X> = 0>
void set_channel_repeat_time_(const D& d, X& dst, std::size_t c, const V& v) {
  const std::size_t H = dst.shape(2);
  for_each_row(d, dst.shape(0) * H, dst.shape(3),
               kernel::RepeatTime<typename X::value_type>{v.data(), dst.data(), dst.shape(1), c, H, dst.shape(3)});
}

/// dst[b, c, :, w] = src[b, i, w]: a frame-level feature repeated over the frequency axis.
template <class D, class X, class S, OnDevice<D, X> = 0>
void set_channel_repeat_freq_(const D& d, X& dst, std::size_t c, const S& src, std::size_t i) {
  const std::size_t H = dst.shape(2);
  for_each_row(d, dst.shape(0) * H, dst.shape(3),
               kernel::RepeatFreq<typename X::value_type>{src.data(), dst.data(), dst.shape(1), c, H, dst.shape(3),
                                                          src.shape(1), i});
}

}  // namespace generic

using generic::set_channel_repeat_freq_;
using generic::set_channel_repeat_time_;

}  // namespace ops
}  // namespace diffblocks
