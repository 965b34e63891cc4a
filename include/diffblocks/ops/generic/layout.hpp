#pragma once
// Layout ops written once for every device (see elementwise.hpp): concatenations, slices and
// channel writes are strided row copies (copy_rows: memcpy on the CPU, cudaMemcpy2DAsync on the
// Cuda device); the rest are functors over (row, column).
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "diffblocks/ops/generic/tensor_traits.hpp"
#include "diffblocks/ops/map.hpp"

namespace diffblocks {
namespace ops {
namespace generic {
namespace kernel {

/// d[r, t] = t < W ? s[r, t] : 0.
template <class T>
struct ResizeTime {
  const T* s;
  T* d;
  std::size_t W, F;
  DIFFBLOCKS_HD void operator()(std::size_t r, std::size_t t) const { d[r * F + t] = t < W ? s[r * W + t] : T(0); }
};

/// d[b, w] = s[b, stride * w].
template <class T>
struct EveryOther {
  const T* s;
  T* d;
  std::size_t W, Wo;
  DIFFBLOCKS_HD void operator()(std::size_t b, std::size_t w) const { d[b * Wo + w] = s[b * W + 2 * w]; }
};

/// d[b, j] = s[b, j % W].
template <class T>
struct TileRow {
  const T* s;
  T* d;
  std::size_t W, HW;
  DIFFBLOCKS_HD void operator()(std::size_t b, std::size_t j) const { d[b * HW + j] = s[b * W + j % W]; }
};

/// torch's nearest rule, src = min(floor(dst * (in / out)), in - 1) with the scale in float32,
/// over rows (plane, output row) of output columns.
template <class T>
struct Nearest {
  const T* s;
  T* d;
  std::size_t H, W, Ho, Wo;
  float sy, sx;
  DIFFBLOCKS_HD void operator()(std::size_t row, std::size_t c) const {
    const std::size_t p = row / Ho, r = row % Ho;
    std::size_t iy = static_cast<std::size_t>(fmath::floor(static_cast<float>(r) * sy));
    std::size_t ix = static_cast<std::size_t>(fmath::floor(static_cast<float>(c) * sx));
    iy = iy < H - 1 ? iy : H - 1;
    ix = ix < W - 1 ? ix : W - 1;
    d[row * Wo + c] = s[(p * H + iy) * W + ix];
  }
};

}  // namespace kernel

/// cat([a, b], dim=1).
template <class D, class X, OnDevice<D, X> = 0>
X concat_channels(const D& d, const X& a, const X& b) {
  const std::size_t B = a.shape(0), Ca = a.shape(1), Cb = b.shape(1), HW = a.shape(2) * a.shape(3);
  auto y = X::from_shape({B, Ca + Cb, a.shape(2), a.shape(3)});
  copy_rows(d, y.data(), (Ca + Cb) * HW, a.data(), Ca * HW, Ca * HW, B);
  copy_rows(d, y.data() + Ca * HW, (Ca + Cb) * HW, b.data(), Cb * HW, Cb * HW, B);
  return y;
}

/// x[:, c0:c1].
template <class D, class X, OnDevice<D, X> = 0>
X slice_channels(const D& d, const X& x, std::size_t c0, std::size_t c1) {
  const std::size_t B = x.shape(0), C = x.shape(1), HW = x.shape(2) * x.shape(3);
  auto y = X::from_shape({B, c1 - c0, x.shape(2), x.shape(3)});
  copy_rows(d, y.data(), (c1 - c0) * HW, x.data() + c0 * HW, C * HW, (c1 - c0) * HW, B);
  return y;
}

/// cat([a, b], dim=-1) for (B, Da) and (B, Db).
template <class D, class X, OnDevice<D, X> = 0>
X concat_cols(const D& d, const X& a, const X& b) {
  const std::size_t B = a.shape(0), Da = a.shape(1), Db = b.shape(1);
  auto y = X::from_shape({B, Da + Db});
  copy_rows(d, y.data(), Da + Db, a.data(), Da, Da, B);
  copy_rows(d, y.data() + Da, Da + Db, b.data(), Db, Db, B);
  return y;
}

/// x[:, 0, :] -> (B, C).
template <class D, class X, OnDevice<D, X> = 0>
Tensor<typename X::value_type, 2, D> first_token(const D& d, const X& x) {
  const std::size_t B = x.shape(0), N = x.shape(1), C = x.shape(2);
  auto y = Tensor<typename X::value_type, 2, D>::from_shape({B, C});
  copy_rows(d, y.data(), C, x.data(), N * C, C, B);
  return y;
}

/// dst[:, c] = src (B, H, W).
template <class D, class X, class S, OnDevice<D, X> = 0>
void set_channel_(const D& d, X& dst, std::size_t c, const S& src) {
  const std::size_t C = dst.shape(1), HW = dst.shape(2) * dst.shape(3);
  copy_rows(d, dst.data() + c * HW, C * HW, src.data(), HW, HW, dst.shape(0));
}

/// Same data, new shape (a copy; the sizes agree, the caller checks).
template <class T, std::size_t M, class D, class X, OnDevice<D, X> = 0>
Tensor<T, M, D> reshape(const D& d, const X& x, const std::array<std::size_t, M>& shape) {
  auto y = Tensor<T, M, D>::from_shape(shape);
  copy_rows(d, y.data(), 0, x.data(), 0, x.size(), 1);
  return y;
}

/// out[b] = table[ids[b]] (ids already range-checked; they stay on the host).
template <class D, class X, OnDevice<D, X> = 0>
X gather_rows(const D& d, const X& table, const std::vector<std::int64_t>& ids) {
  const std::size_t Dm = table.shape(1);
  auto y = X::from_shape({ids.size(), Dm});
  for (std::size_t b = 0; b < ids.size(); ++b)
    copy_rows(d, y.data() + b * Dm, Dm, table.data() + static_cast<std::size_t>(ids[b]) * Dm, Dm, Dm, 1);
  return y;
}

/// x (B, C, T) zero-padded or cropped along time to `frames`.
template <class D, class X, OnDevice<D, X> = 0>
X resize_time(const D& d, const X& x, std::size_t frames) {
  auto y = X::from_shape({x.shape(0), x.shape(1), frames});
  for_each_row(d, x.shape(0) * x.shape(1), frames,
               kernel::ResizeTime<typename X::value_type>{x.data(), y.data(), x.shape(2), frames});
  return y;
}

/// mask[..., ::2]: (B, 1, 1, W) -> (B, 1, 1, ceil(W / 2)), the next U-Net level's time mask.
template <class D, class X, OnDevice<D, X> = 0>
X subsample_time(const D& d, const X& mask) {
  const std::size_t B = mask.shape(0), W = mask.shape(3), Wo = (W + 1) / 2;
  auto y = X::from_shape({B, 1, 1, Wo});
  for_each_row(d, B, Wo, kernel::EveryOther<typename X::value_type>{mask.data(), y.data(), W, Wo});
  return y;
}

/// Frame mask (B, 1, 1, W) -> keep-mask (B, H*W) over nchw_to_tokens' tokens: token y*W + x
/// keeps mask[b, x] (every mel bin of a padded frame is padding).
template <class D, class X, OnDevice<D, X> = 0>
Tensor<typename X::value_type, 2, D> frame_mask_to_tokens(const D& d, const X& mask, std::size_t H) {
  const std::size_t B = mask.shape(0), W = mask.shape(3);
  auto y = Tensor<typename X::value_type, 2, D>::from_shape({B, H * W});
  for_each_row(d, B, H * W, kernel::TileRow<typename X::value_type>{mask.data(), y.data(), W, H * W});
  return y;
}

/// Nearest-neighbour resize of (B, C, H, W) to (Ho, Wo) with torch's rule (kernel::Nearest).
template <class D, class X, OnDevice<D, X> = 0>
X upsample_nearest(const D& d, const X& x, std::size_t Ho, std::size_t Wo) {
  const std::size_t B = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
  auto y = X::from_shape({B, C, Ho, Wo});
  if (!y.size()) return y;
  const float sy = static_cast<float>(H) / static_cast<float>(Ho), sx = static_cast<float>(W) / static_cast<float>(Wo);
  for_each_row(d, B * C * Ho, Wo, kernel::Nearest<typename X::value_type>{x.data(), y.data(), H, W, Ho, Wo, sy, sx});
  return y;
}

}  // namespace generic

using generic::concat_channels;
using generic::concat_cols;
using generic::first_token;
using generic::frame_mask_to_tokens;
using generic::gather_rows;
using generic::reshape;
using generic::resize_time;
using generic::set_channel_;
using generic::slice_channels;
using generic::subsample_time;
using generic::upsample_nearest;

}  // namespace ops
}  // namespace diffblocks
