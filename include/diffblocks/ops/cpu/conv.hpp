#pragma once
// Convolutions on the CPU as tiled im2col + GEMM.
//
// Both Conv2d and ConvTranspose2d reduce to one primitive, `patch_gemm`: every output position
// (oy, ox) of a grid reads input pixel (oy*stride + off_y[ty], ox*stride + off_x[tx]) for each
// kernel tap (ty, tx); the patches of a tile of output positions are gathered into a small
// column buffer (cache-sized, per thread) and multiplied by the weight matrix. Tiling keeps the
// workspace bounded (a full im2col of a 2048-frame mel at 128 channels would be ~750 MB).
//
// ConvTranspose2d is computed as s*s ordinary convolutions, one per output phase (oy mod s,
// ox mod s): each phase only sees the kernel taps congruent to it, so no scatter-add (and no
// write conflict between threads) is needed.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <vector>

#include "diffblocks/core/device.hpp"
#include "diffblocks/core/parallel.hpp"
#include "diffblocks/ops/cpu/gemm.hpp"
#include "diffblocks/ops/cpu/winograd.hpp"

namespace diffblocks {
namespace ops {
namespace cpu {

/// Output grid of a patch GEMM and where its results land in the output plane.
struct PatchGrid {
  int out_h = 0, out_w = 0;    // grid size; GEMM columns = out_h * out_w
  int stride = 1;              // input step per grid step
  std::vector<int> off_y, off_x;  // input offset of each kernel tap
  // Destination of grid point (oy, ox): base + oy*row_step + ox*col_step in each output plane.
  std::ptrdiff_t base = 0, row_step = 0, col_step = 1;
  bool contiguous() const { return col_step == 1 && row_step == out_w; }
};

/// dst[j] = xc[iy, ix] (zero outside the H x W plane) for the grid points j0 .. j0+nj-1 of one
/// kernel tap, where iy = oy*stride + dy and ix = ox*stride + dx. Works one grid row at a time:
/// the in-bounds span of a row is found once, so the copy loop has no per-element test (and is
/// a plain memcpy at stride 1).
template <class T>
void gather_patch_row(const T* xc, int H, int W, const PatchGrid& g, int dy, int dx, std::ptrdiff_t j0,
                      std::ptrdiff_t nj, T* dst) {
  const std::ptrdiff_t s = g.stride, ow = g.out_w;
  // ox range with 0 <= ox*s + dx < W.
  const std::ptrdiff_t lo = dx >= 0 ? 0 : (-dx + s - 1) / s;
  const std::ptrdiff_t hi = W - dx <= 0 ? 0 : std::min<std::ptrdiff_t>(ow, (W - dx + s - 1) / s);
  for (std::ptrdiff_t j = j0, end = j0 + nj; j < end;) {
    const std::ptrdiff_t oy = j / ow, ox0 = j % ow, ox1 = std::min(ow, ox0 + (end - j));
    T* d = dst + (j - j0);
    const std::ptrdiff_t iy = oy * s + dy;
    if (iy < 0 || iy >= H || lo >= hi) {
      std::fill(d, d + (ox1 - ox0), T(0));
    } else {
      const T* row = xc + iy * W;
      const std::ptrdiff_t a = std::clamp(lo, ox0, ox1), b = std::clamp(hi, ox0, ox1);
      std::fill(d, d + (a - ox0), T(0));
      if (s == 1)
        std::copy(row + a + dx, row + b + dx, d + (a - ox0));
      else
        for (std::ptrdiff_t ox = a; ox < b; ++ox) d[ox - ox0] = row[ox * s + dx];
      std::fill(d + (b - ox0), d + (ox1 - ox0), T(0));
    }
    j += ox1 - ox0;
  }
}

/// out[b, co, dest(oy, ox)] = bias[co] + sum_{ci,ty,tx} wmat[co, (ci,ty,tx)] * x[b, ci, iy, ix]
/// (zero outside the input). x: (B, Cin, H, W); out planes are out_plane elements apart.
template <class T>
void patch_gemm(const T* x, int B, int Cin, int H, int W, const T* wmat, int Cout, const T* bias,
                const PatchGrid& g, T* out, std::ptrdiff_t out_plane, bool accumulate = false) {
  const int KY = static_cast<int>(g.off_y.size()), KX = static_cast<int>(g.off_x.size());
  const int K = Cin * KY * KX;
  const std::ptrdiff_t ncols = static_cast<std::ptrdiff_t>(g.out_h) * g.out_w;
  if (ncols == 0 || Cout == 0) return;
  const bool pointwise = KY == 1 && KX == 1 && g.stride == 1 && g.off_y[0] == 0 && g.off_x[0] == 0 &&
                         g.out_h == H && g.out_w == W;
  // Tile so that the column buffer stays around 256 KiB (in L2), at least 64 columns; but cut a
  // small grid finer, into at least 4 tiles per thread of whole GEMM column blocks, so the
  // threads share it evenly (a 20 x 32 grid in 128-column tiles was 5 tiles for 2 threads).
  constexpr std::ptrdiff_t NC = packed::block_cols<T>();
  std::ptrdiff_t tile = std::max<std::ptrdiff_t>(64, (std::ptrdiff_t{1} << 16) / std::max(1, K));
  const std::ptrdiff_t even = (ncols * B + 4 * get_num_threads() - 1) / (4 * get_num_threads());
  tile = std::min(tile, std::max(NC, (even + NC - 1) / NC * NC));
  tile = std::min(tile, ncols);
  const std::ptrdiff_t tiles_per_item = (ncols + tile - 1) / tile;
  const std::ptrdiff_t in_plane = static_cast<std::ptrdiff_t>(H) * W;
  // The weights are packed once here rather than by every tile's GEMM.
  memory::Buffer<T> wpack(static_cast<std::size_t>(packed::packed_size(Cout, K)));
  packed::pack_a(Cout, K, wmat, K, wpack.data());

  parallel_for(B * tiles_per_item, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    memory::Buffer<T> col, res;
    for (std::ptrdiff_t task = first; task < last; ++task) {
      const std::ptrdiff_t b = task / tiles_per_item;
      const std::ptrdiff_t j0 = (task % tiles_per_item) * tile;
      const std::ptrdiff_t nj = std::min(tile, ncols - j0);
      const T* xb = x + b * Cin * in_plane;
      T* ob = out + b * Cout * out_plane;

      const T* bmat;
      std::ptrdiff_t ldb;
      if (pointwise) {  // 1x1 stride-1 conv: the input itself is the column matrix
        bmat = xb + j0;
        ldb = in_plane;
      } else {
        col.resize(static_cast<std::size_t>(K) * nj);
        for (int ci = 0; ci < Cin; ++ci)
          for (int ty = 0; ty < KY; ++ty)
            for (int tx = 0; tx < KX; ++tx)
              gather_patch_row(xb + ci * in_plane, H, W, g, g.off_y[ty], g.off_x[tx], j0, nj,
                               col.data() + (static_cast<std::ptrdiff_t>(ci * KY + ty) * KX + tx) * nj);
        bmat = col.data();
        ldb = nj;
      }

      if (g.contiguous()) {
        T* dst = ob + g.base + j0;
        packed::gemm<T>(Cout, static_cast<int>(nj), K, wpack.data(), bmat, ldb, dst, out_plane, accumulate);
        if (bias)
          for (int co = 0; co < Cout; ++co)
            for (std::ptrdiff_t j = 0; j < nj; ++j) dst[co * out_plane + j] += bias[co];
      } else {
        res.resize(static_cast<std::size_t>(Cout) * nj);
        packed::gemm<T>(Cout, static_cast<int>(nj), K, wpack.data(), bmat, ldb, res.data(), nj);
        for (int co = 0; co < Cout; ++co) {
          const T bv = bias ? bias[co] : T(0);
          std::ptrdiff_t oy = j0 / g.out_w, ox = j0 % g.out_w;
          for (std::ptrdiff_t j = 0; j < nj; ++j) {
            T& o = ob[co * out_plane + g.base + oy * g.row_step + ox * g.col_step];
            o = accumulate ? o + (res[co * nj + j] + bv) : res[co * nj + j] + bv;
            if (++ox == g.out_w) {
              ox = 0;
              ++oy;
            }
          }
        }
      }
    }
  });
}

/// How Conv2d computes 3x3 stride-1 padding-1 convolutions (every other shape uses im2col).
enum class ConvAlgorithm {
  Auto,    ///< Winograd F(4x4, 3x3) where it pays (>= 8 channels in and out), else im2col
  Im2col,  ///< always tiled im2col + GEMM: the exact reference, 4x the multiplications
};

namespace detail {
inline std::atomic<ConvAlgorithm>& conv_algorithm_setting() {
  static std::atomic<ConvAlgorithm> a{ConvAlgorithm::Auto};
  return a;
}
}  // namespace detail

/// Process-wide choice of convolution algorithm (thread-safe; read at each call).
inline void set_conv_algorithm(ConvAlgorithm a) { detail::conv_algorithm_setting().store(a); }
inline ConvAlgorithm conv_algorithm() { return detail::conv_algorithm_setting().load(); }

inline bool use_winograd(int Cin, int Cout, int KH, int KW, int stride, int padding) {
  return conv_algorithm() == ConvAlgorithm::Auto && KH == 3 && KW == 3 && stride == 1 && padding == 1 && Cin >= 8 &&
         Cout >= 8;
}

/// Conv2d (cross-correlation, zero padding). x (B,Cin,H,W), w (Cout,Cin,k,k), bias (Cout) or empty.
template <class T>
Tensor<T, 4, Cpu> conv2d(const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias,
                         int stride, int padding) {
  const int B = static_cast<int>(x.shape(0)), Cin = static_cast<int>(x.shape(1));
  const int H = static_cast<int>(x.shape(2)), W = static_cast<int>(x.shape(3));
  const int Cout = static_cast<int>(w.shape(0)), KH = static_cast<int>(w.shape(2)), KW = static_cast<int>(w.shape(3));
  const int Ho = (H + 2 * padding - KH) / stride + 1, Wo = (W + 2 * padding - KW) / stride + 1;
  Tensor<T, 4, Cpu> out = Tensor<T, 4, Cpu>::from_shape({static_cast<std::size_t>(B), static_cast<std::size_t>(Cout),
                                                         static_cast<std::size_t>(std::max(Ho, 0)),
                                                         static_cast<std::size_t>(std::max(Wo, 0))});
  if (Ho <= 0 || Wo <= 0) return out;
  if (use_winograd(Cin, Cout, KH, KW, stride, padding)) {
    winograd::conv3x3<T>(x.data(), B, Cin, H, W, w.data(), Cout, bias.size() ? bias.data() : nullptr, out.data());
    return out;
  }
  PatchGrid g;
  g.out_h = Ho;
  g.out_w = Wo;
  g.stride = stride;
  for (int k = 0; k < KH; ++k) g.off_y.push_back(k - padding);
  for (int k = 0; k < KW; ++k) g.off_x.push_back(k - padding);
  g.row_step = Wo;
  patch_gemm<T>(x.data(), B, Cin, H, W, w.data(), Cout, bias.size() ? bias.data() : nullptr, g, out.data(),
                static_cast<std::ptrdiff_t>(Ho) * Wo);
  return out;
}

/// out (B, Cout, H, W) = or += w (Cout x Cin, row-major) * x (B, Cin, H, W) + bias (or null):
/// a 1x1 stride-1 convolution on raw pointers, the input read in place as the GEMM's right side.
template <class T>
void pointwise_conv(const T* x, int B, int Cin, int H, int W, const T* w, int Cout, const T* bias, T* out,
                    bool accumulate) {
  PatchGrid g;
  g.out_h = H;
  g.out_w = W;
  g.off_y = {0};
  g.off_x = {0};
  g.row_step = W;
  patch_gemm<T>(x, B, Cin, H, W, w, Cout, bias, g, out, static_cast<std::ptrdiff_t>(H) * W, accumulate);
}

/// out += Conv2d(x) for a 1x1 stride-1 convolution, accumulated by the GEMM itself (no temporary,
/// no separate add pass); out (B, Cout, H, W). ResnetBlock's res_conv residual.
template <class T>
void conv1x1_add_(const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias,
                  Tensor<T, 4, Cpu>& out) {
  pointwise_conv<T>(x.data(), static_cast<int>(x.shape(0)), static_cast<int>(x.shape(1)), static_cast<int>(x.shape(2)),
                    static_cast<int>(x.shape(3)), w.data(), static_cast<int>(w.shape(0)),
                    bias.size() ? bias.data() : nullptr, out.data(), /*accumulate=*/true);
}

/// ConvTranspose2d (no output_padding, dilation 1). x (B,Cin,H,W), w (Cin,Cout,k,k) as in PyTorch.
/// Output (H-1)*s - 2p + k.
template <class T>
Tensor<T, 4, Cpu> conv_transpose2d(const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w,
                                   const Tensor<T, 1, Cpu>& bias, int stride, int padding) {
  const int B = static_cast<int>(x.shape(0)), Cin = static_cast<int>(x.shape(1));
  const int H = static_cast<int>(x.shape(2)), W = static_cast<int>(x.shape(3));
  const int Cout = static_cast<int>(w.shape(1)), KH = static_cast<int>(w.shape(2)), KW = static_cast<int>(w.shape(3));
  const int Ho = (H - 1) * stride - 2 * padding + KH, Wo = (W - 1) * stride - 2 * padding + KW;
  Tensor<T, 4, Cpu> out = Tensor<T, 4, Cpu>::from_shape({static_cast<std::size_t>(B), static_cast<std::size_t>(Cout),
                                                         static_cast<std::size_t>(std::max(Ho, 0)),
                                                         static_cast<std::size_t>(std::max(Wo, 0))});
  if (Ho <= 0 || Wo <= 0) return out;
  const std::ptrdiff_t out_plane = static_cast<std::ptrdiff_t>(Ho) * Wo;
  // Taps of one phase r: kernel rows k with (r + padding - k) divisible by s; the input row
  // of output row r + s*j is then j + (r + padding - k)/s.
  auto taps = [&](int r, int K) {
    std::vector<int> ks;
    for (int k = 0; k < K; ++k)
      if (((r + padding - k) % stride + stride) % stride == 0) ks.push_back(k);
    return ks;
  };
  memory::Buffer<T> wmat;
  for (int ry = 0; ry < std::min(stride, Ho); ++ry)
    for (int rx = 0; rx < std::min(stride, Wo); ++rx) {
      const std::vector<int> ky = taps(ry, KH), kx = taps(rx, KW);
      PatchGrid g;
      g.out_h = (Ho - ry + stride - 1) / stride;
      g.out_w = (Wo - rx + stride - 1) / stride;
      g.stride = 1;
      for (int k : ky) g.off_y.push_back((ry + padding - k) / stride);
      for (int k : kx) g.off_x.push_back((rx + padding - k) / stride);
      g.base = static_cast<std::ptrdiff_t>(ry) * Wo + rx;
      g.row_step = static_cast<std::ptrdiff_t>(stride) * Wo;
      g.col_step = stride;
      if (ky.empty() || kx.empty()) {  // a phase no tap reaches holds the bias only
        for (int b = 0; b < B; ++b)
          for (int co = 0; co < Cout; ++co)
            for (int oy = 0; oy < g.out_h; ++oy)
              for (int ox = 0; ox < g.out_w; ++ox)
                out.data()[(static_cast<std::ptrdiff_t>(b) * Cout + co) * out_plane + g.base + oy * g.row_step +
                           ox * g.col_step] = bias.size() ? bias(co) : T(0);
        continue;
      }
      // Weight matrix of the phase: [co, (ci, ty, tx)] = w[ci, co, ky[ty], kx[tx]].
      const std::size_t nk = ky.size() * kx.size();
      wmat.assign(static_cast<std::size_t>(Cout) * Cin * nk, T(0));
      for (int co = 0; co < Cout; ++co)
        for (int ci = 0; ci < Cin; ++ci)
          for (std::size_t ty = 0; ty < ky.size(); ++ty)
            for (std::size_t tx = 0; tx < kx.size(); ++tx)
              wmat[(static_cast<std::size_t>(co) * Cin + ci) * nk + ty * kx.size() + tx] =
                  w(ci, co, ky[ty], kx[tx]);
      patch_gemm<T>(x.data(), B, Cin, H, W, wmat.data(), Cout, bias.size() ? bias.data() : nullptr, g, out.data(),
                    out_plane);
    }
  return out;
}

}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
