// Kernel source, compiled once per instruction set (see simd.inl's header).
//
// Winograd F(4x4, 3x3) convolution for the 3x3, stride-1, padding-1 convolutions that carry
// ~94 % of the Origin U-Net's FLOPs (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2015).
//
// Each 4x4 output tile is computed from a 6x6 input tile d and the 3x3 kernel g as
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A,
// so the 36 elementwise products of a tile, summed over input channels, become 36 independent
// GEMMs  M[k] (Cout x tiles) = U[k] (Cout x Cin) * V[k] (Cin x tiles): 36 MACs per 16 outputs
// instead of 144, i.e. 4x fewer multiplications than im2col + GEMM. U is transformed straight
// into packed::gemm's panel layout and V into its column blocks, so the GEMMs pack nothing.
// The transforms are vectorised over tiles: rows of a band of tiles are combined whole
// (contiguous), then the columns of each tile, after splitting the row into its four phases.
//
// Accuracy: the interpolation points 0, +-1, +-2, +-1/2 keep fp32 errors at a few 1e-6 relative
// (tested against im2col on every conv of the parity fixtures, which stay within 1e-4).
namespace winograd {

constexpr int kTile = 4;    // output tile side (m)
constexpr int kAlpha = 6;   // input tile side (m + r - 1)
constexpr int kPoints = 36; // kAlpha^2 products per tile

// The 1-D transforms run over whole rows of n values: six input rows to six (or four) output
// rows. The rows are separate __restrict parameters because with twelve streams of unknown
// aliasing compilers give up on their runtime overlap checks and leave the loop scalar (it was,
// and the transforms took a quarter of an Origin forward).

/// o_i[t] = (B^T e)_i[t] for the six input rows e0..e5 (B^T of F(4,3)).
template <class T>
inline void input_rows(std::ptrdiff_t n, const T* __restrict e0, const T* __restrict e1, const T* __restrict e2,
                       const T* __restrict e3, const T* __restrict e4, const T* __restrict e5, T* __restrict o0,
                       T* __restrict o1, T* __restrict o2, T* __restrict o3, T* __restrict o4, T* __restrict o5) {
  for (std::ptrdiff_t t = 0; t < n; ++t) {
    const T a0 = e0[t], a1 = e1[t], a2 = e2[t], a3 = e3[t], a4 = e4[t], a5 = e5[t];
    o0[t] = T(4) * a0 - T(5) * a2 + a4;
    o1[t] = -T(4) * (a1 + a2) + a3 + a4;
    o2[t] = T(4) * (a1 - a2) - a3 + a4;
    o3[t] = T(2) * (a3 - a1) - a2 + a4;
    o4[t] = T(2) * (a1 - a3) - a2 + a4;
    o5[t] = T(4) * a1 - T(5) * a3 + a5;
  }
}

/// o_r[t] = (A^T m)_r[t] for the six input rows m0..m5 (A^T of F(4,3)).
template <class T>
inline void output_rows(std::ptrdiff_t n, const T* __restrict m0, const T* __restrict m1, const T* __restrict m2,
                        const T* __restrict m3, const T* __restrict m4, const T* __restrict m5, T* __restrict o0,
                        T* __restrict o1, T* __restrict o2, T* __restrict o3) {
  for (std::ptrdiff_t t = 0; t < n; ++t) {
    const T a = m1[t] + m2[t], b = m1[t] - m2[t], c = m3[t] + m4[t], d = m3[t] - m4[t];
    o0[t] = m0[t] + a + c;
    o1[t] = b + T(2) * d;
    o2[t] = a + T(4) * c;
    o3[t] = b + T(8) * d + m5[t];
  }
}

/// U[k] = (G g G^T)[k] for every 3x3 kernel g = w[co][ci] (w as in PyTorch), each of the 36
/// planes U[k] (Cout x Cin) packed for packed::gemm (plane k at k * packed::packed_size).
/// Kernels are processed in runs that are contiguous in the packed layout (one panel of
/// kPanelRows output channels, kRunCin input channels), so every step is a contiguous,
/// vectorisable loop and the 36 planes are written in runs, not scattered.
template <class T>
std::ptrdiff_t transformed_size(int Cout, int Cin) {
  return kPoints * packed::packed_size(Cout, Cin);
}
/// The 9 taps of every kernel as 9 planes in the same packed layout (tap t at t * packed_size):
/// the weight itself, reordered, from which the planes of U are made without gathering.
template <class T>
std::ptrdiff_t taps_size(int Cout, int Cin) {
  return 9 * packed::packed_size(Cout, Cin);
}

/// The steps of the weight transform, on runs of kernels that are contiguous in the packed
/// layout (one panel of R output channels, kRunCin input channels). rows() and cols() are the
/// only arithmetic, shared by every way of making U (whole, kept; a row of points at a time, per
/// call), so that all give the same values.
template <class T>
struct WeightTransform {
  static constexpr int R = packed::kPanelRows, kRunCin = 8, kRun = R * kRunCin;
  static constexpr T G[6][3] = {{T(1) / 4, 0, 0},
                                {T(-1) / 6, T(-1) / 6, T(-1) / 6},
                                {T(-1) / 6, T(1) / 6, T(-1) / 6},
                                {T(1) / 24, T(1) / 12, T(1) / 6},
                                {T(1) / 24, T(-1) / 12, T(1) / 6},
                                {0, 0, 1}};
  /// g[tap * gs + j] = the 9 taps of the run's kernels (element j: ci = ci0 + j / R, co = p*R +
  /// j % R; zero for rows past Cout); returns the run's length n.
  static int gather(const T* w, int Cout, int Cin, int p, int ci0, T* g, std::ptrdiff_t gs) {
    const int n = std::min(kRunCin, Cin - ci0) * R;
    for (int j = 0; j < n; ++j) {
      const int co = p * R + j % R, ci = ci0 + j / R;
      for (int tap = 0; tap < 9; ++tap)  // rows past Cout (last panel) are zero
        g[tap * gs + j] = co < Cout ? w[(static_cast<std::ptrdiff_t>(co) * Cin + ci) * 9 + tap] : T(0);
    }
    return n;
  }
  /// gg_c = (G g)[i][c] for the n kernels whose taps are g[tap * gs + j].
  static void rows(int i, std::ptrdiff_t n, const T* __restrict g, std::ptrdiff_t gs, T* __restrict gg0,
                   T* __restrict gg1, T* __restrict gg2) {
    const T a = G[i][0], b = G[i][1], c = G[i][2];
    for (std::ptrdiff_t j = 0; j < n; ++j) gg0[j] = a * g[j] + b * g[3 * gs + j] + c * g[6 * gs + j];
    for (std::ptrdiff_t j = 0; j < n; ++j) gg1[j] = a * g[gs + j] + b * g[4 * gs + j] + c * g[7 * gs + j];
    for (std::ptrdiff_t j = 0; j < n; ++j) gg2[j] = a * g[2 * gs + j] + b * g[5 * gs + j] + c * g[8 * gs + j];
  }
  /// U[i * 6 + k] = sum_c gg_c G[k][c].
  static void cols(int k, std::ptrdiff_t n, const T* __restrict gg0, const T* __restrict gg1,
                   const T* __restrict gg2, T* __restrict dst) {
    const T a = G[k][0], b = G[k][1], c = G[k][2];
    for (std::ptrdiff_t j = 0; j < n; ++j) dst[j] = gg0[j] * a + gg1[j] * b + gg2[j] * c;
  }
  /// cols() for points k and k + 1 in one pass over gg (each value as cols() makes it).
  static void cols2(int k, std::ptrdiff_t n, const T* __restrict gg0, const T* __restrict gg1,
                    const T* __restrict gg2, T* __restrict dst, T* __restrict dst1) {
    const T a = G[k][0], b = G[k][1], c = G[k][2], a1 = G[k + 1][0], b1 = G[k + 1][1], c1 = G[k + 1][2];
    for (std::ptrdiff_t j = 0; j < n; ++j) {
      dst[j] = gg0[j] * a + gg1[j] * b + gg2[j] * c;
      dst1[j] = gg0[j] * a1 + gg1[j] * b1 + gg2[j] * c1;
    }
  }
  template <class F>
  static void for_runs(int Cout, int Cin, F&& f) {  // f(p, ci0, at): every run, threads taking runs
    const int panels = (Cout + R - 1) / R, cin_runs = (Cin + kRunCin - 1) / kRunCin;
    parallel_for(static_cast<std::ptrdiff_t>(panels) * cin_runs, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
      for (std::ptrdiff_t run = first; run < last; ++run) {
        const int p = static_cast<int>(run / cin_runs), ci0 = static_cast<int>(run % cin_runs) * kRunCin;
        f(p, ci0, (static_cast<std::ptrdiff_t>(p) * Cin + ci0) * R);  // at = packed_index(p*R, ci0)
      }
    });
  }
};

/// transform_weights written to U (transformed_size(Cout, Cin) values).
template <class T>
void transform_weights_into(const T* w, int Cout, int Cin, T* U) {
  using WT = WeightTransform<T>;
  const std::ptrdiff_t packed = packed::packed_size(Cout, Cin);
  WT::for_runs(Cout, Cin, [&](int p, int ci0, std::ptrdiff_t at) {
    T g[9 * WT::kRun], gg[6][3][WT::kRun];
    const int n = WT::gather(w, Cout, Cin, p, ci0, g, WT::kRun);
    for (int i = 0; i < 6; ++i) WT::rows(i, n, g, WT::kRun, gg[i][0], gg[i][1], gg[i][2]);  // G g: kernel rows
    for (int i = 0; i < 6; ++i)  // (G g) G^T: combine columns
      for (int k = 0; k < 6; ++k) WT::cols(k, n, gg[i][0], gg[i][1], gg[i][2], U + (i * 6 + k) * packed + at);
  });
}
template <class T>
memory::WeightBuffer<T> transform_weights(const T* w, int Cout, int Cin) {
  memory::WeightBuffer<T> U(static_cast<std::size_t>(transformed_size<T>(Cout, Cin)));
  transform_weights_into(w, Cout, Cin, U.data());
  return U;
}

/// The taps form (taps_size(Cout, Cin) values) of w, written to `taps`.
template <class T>
void pack_taps_into(const T* w, int Cout, int Cin, T* taps) {
  using WT = WeightTransform<T>;
  const std::ptrdiff_t packed = packed::packed_size(Cout, Cin);
  WT::for_runs(Cout, Cin, [&](int p, int ci0, std::ptrdiff_t at) { WT::gather(w, Cout, Cin, p, ci0, taps + at, packed); });
}

/// U from the taps form (what transform_weights_into makes from w, the same values).
template <class T>
void transform_taps_into(const T* taps, int Cout, int Cin, T* U) {
  using WT = WeightTransform<T>;
  const std::ptrdiff_t packed = packed::packed_size(Cout, Cin);
  WT::for_runs(Cout, Cin, [&](int, int ci0, std::ptrdiff_t at) {
    T gg[6][3][WT::kRun];
    const int n = std::min(WT::kRunCin, Cin - ci0) * WT::R;
    for (int i = 0; i < 6; ++i) WT::rows(i, n, taps + at, packed, gg[i][0], gg[i][1], gg[i][2]);
    for (int i = 0; i < 6; ++i)
      for (int k = 0; k < 6; ++k) WT::cols(k, n, gg[i][0], gg[i][1], gg[i][2], U + (i * 6 + k) * packed + at);
  });
}

/// Geometry of the tiling of one H x W plane.
struct Tiling {
  int H, W, tiles_y, tiles_x;
  Tiling(int h, int w) : H(h), W(w), tiles_y((h + kTile - 1) / kTile), tiles_x((w + kTile - 1) / kTile) {}
};

/// Per-thread scratch of the input transform, sized and zeroed once for a tiling: the zero row
/// stands in for input rows outside the plane, and the transformed rows' padding columns are
/// never written by transform_input, so they stay zero across all the channels it is used for.
template <class T>
struct InputScratch {
  memory::Buffer<T> zero, rows, phase, wide;  // wide: six input rows as T, for a half input
  explicit InputScratch(const Tiling& tl) {
    const int wp = kTile * tl.tiles_x + 2;  // padded row: one zero column left, >= 1 right
    zero.assign(static_cast<std::size_t>(tl.W), T(0));
    rows.resize(static_cast<std::size_t>(kAlpha) * wp);
    phase.resize(static_cast<std::size_t>(kAlpha) * 4 * (tl.tiles_x + 1));
    for (int i = 0; i < kAlpha; ++i) {
      rows[static_cast<std::size_t>(i) * wp] = T(0);
      std::fill(rows.begin() + i * wp + 1 + tl.W, rows.begin() + (i + 1) * wp, T(0));
    }
  }
};

/// Where the input transform writes: V holds, for each of the 36 points k, the Cin x nt matrix
/// V[k] in packed::pack_b's layout (blocks of NC tiles, each Cin x NC), so that the GEMMs read
/// contiguous panels and copy nothing. Element (k, ci, t) is at
///   k * plane + (t / NC) * Cin * NC + ci * NC + t % NC.
template <class T>
struct PackedV {
  static constexpr int NC = packed::block_cols<T>();
  T* data;
  std::ptrdiff_t cin, plane;  // plane = v_plane(Cin, nt)
  T* at(int k, std::ptrdiff_t ci, std::ptrdiff_t t) const { return data + k * plane + (t / NC) * cin * NC + ci * NC + t % NC; }
};

#if DIFFBLOCKS_KERNEL_ISA == 2
#include "diffblocks/ops/cpu/kernels/winograd_avx512.inl"
#endif


/// Input transform of tile rows [ty0, ty1) of one channel plane x (H x W), channel ci, into V
/// (tile t = (ty - ty0) * tiles_x + tx); the columns past the band's last tile in V's last
/// block are zeroed. `sc` was made for the same tiling. x may be a half type (In): it is
/// widened to T as it is read.
template <class T, class In>
void transform_input(const In* x, const Tiling& tl, int ty0, int ty1, const PackedV<T>& V, std::ptrdiff_t ci,
                     InputScratch<T>& sc) {
  constexpr int NC = PackedV<T>::NC;
  const int nx = tl.tiles_x, W = tl.W, wp = kTile * nx + 2;
#if DIFFBLOCKS_KERNEL_ISA == 2
  if constexpr (std::is_same_v<T, float>) {
    if (nx % 8 == 0) {  // groups of 16 tiles in band order, two runs of 8 inside tile rows
      const std::ptrdiff_t plane = static_cast<std::ptrdiff_t>(tl.H) * W;
      const std::ptrdiff_t nt = static_cast<std::ptrdiff_t>(ty1 - ty0) * nx;
      for (std::ptrdiff_t t = 0; t < nt; t += 16) {
        const int tya = ty0 + static_cast<int>(t / nx), txa = static_cast<int>(t % nx);
        if (txa == 0) {
          // The four input rows the next tile row adds (at the band's end, the next channel's
          // first rows): rows this short are too short for the hardware prefetcher.
          const In* next = tya + 1 < ty1 ? x + static_cast<std::ptrdiff_t>(kTile * tya + 5) * W
                                            : x + plane + static_cast<std::ptrdiff_t>(std::max(0, kTile * ty0 - 1)) * W;
          for (std::ptrdiff_t off = 0; off < static_cast<std::ptrdiff_t>(kTile) * W; off += 16)
            __builtin_prefetch(next + off, 0, 3);
        }
        // The second run (past the band's last tile: the first again, its lanes zeroed).
        const std::ptrdiff_t tb = t + 8 < nt ? t + 8 : t;
        const int tyb = ty0 + static_cast<int>(tb / nx), txb = static_cast<int>(tb % nx);
        const __mmask16 keep = nt - t >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (nt - t)) - 1u);
        if (tyb == tya && txb == txa + 8)
          zmm::input_tiles16(x, tl.H, W, tya, txa, V.at(0, ci, t), V.plane, keep);
        else
          zmm::input_tiles8x2(x, tl.H, W, tya, txa, tyb, txb, V.at(0, ci, t), V.plane, keep);
      }
      static_assert(NC == 32, "a last block is half or wholly filled by the groups");
      const std::ptrdiff_t t16 = (nt + 15) / 16 * 16;
      if (t16 % NC)  // the last block half empty: zero its second half (a std::fill was 1.7 %)
        for (int k = 0; k < kPoints; ++k) _mm512_storeu_ps(V.at(k, ci, t16), _mm512_setzero_ps());
      return;
    }
  }
#endif
  const std::ptrdiff_t np = nx + 1;  // phase length
  T* rows = sc.rows.data();
  for (int ty = ty0; ty < ty1; ++ty) {
    // Along H, straight from the six input rows 4ty - 1 .. 4ty + 4 (zero outside the plane):
    // rows[i][1 + x] = sum_j B^T[i][j] x[4ty - 1 + j][x].
    const T* e[kAlpha];
    for (int j = 0; j < kAlpha; ++j) {
      const int iy = ty * kTile - 1 + j;
      if (iy < 0 || iy >= tl.H) {
        e[j] = sc.zero.data();
      } else if constexpr (std::is_same<In, T>::value) {
        e[j] = x + static_cast<std::ptrdiff_t>(iy) * W;
      } else {
        sc.wide.resize(static_cast<std::size_t>(kAlpha) * W);
        T* row = sc.wide.data() + static_cast<std::ptrdiff_t>(j) * W;
        const In* src = x + static_cast<std::ptrdiff_t>(iy) * W;
        for (int c = 0; c < W; ++c) row[c] = static_cast<T>(src[c]);
        e[j] = row;
      }
    }
    input_rows<T>(W, e[0], e[1], e[2], e[3], e[4], e[5], rows + 1, rows + wp + 1, rows + 2 * wp + 1,
                  rows + 3 * wp + 1, rows + 4 * wp + 1, rows + 5 * wp + 1);
    // Along W, per tile: split each transformed row into its phases x mod 4 so that tile t's six
    // columns 4t..4t+5 are phase[q][t] (q < 4) and phase[0|1][t + 1].
    const std::ptrdiff_t tile_base = static_cast<std::ptrdiff_t>(ty - ty0) * nx;
    // All six rows are split before any is read back: the reads of phases 0 and 1 one tile on
    // (p + 1) straddle two of the split's vector stores, which cannot be forwarded to a load
    // while still in flight; read at once, that stall was a quarter of the transform's time
    // (Sapphire Rapids), while five rows later the stores have reached the cache.
    for (int i = 0; i < kAlpha; ++i) {
      const T* r = rows + i * wp;
      T* ph = sc.phase.data() + static_cast<std::size_t>(i) * 4 * np;
      // A stride-4 de-interleave with no bounds test, which compilers turn into vector permutes;
      // the extra tile t = nx holds columns 4nx, 4nx + 1 (the last two of the padded row).
      for (int t = 0; t < nx; ++t)
        for (int q = 0; q < 4; ++q) ph[q * np + t] = r[kTile * t + q];
      ph[nx] = r[kTile * nx];
      ph[np + nx] = r[kTile * nx + 1];
      ph[2 * np + nx] = ph[3 * np + nx] = T(0);
    }
    for (int i = 0; i < kAlpha; ++i) {
      const T* ph = sc.phase.data() + static_cast<std::size_t>(i) * 4 * np;
      // The row's tiles in runs that stay inside one NC-tile block of V's packed layout.
      for (int tx = 0; tx < nx;) {
        const std::ptrdiff_t t = tile_base + tx;
        const int len = static_cast<int>(std::min<std::ptrdiff_t>(NC - t % NC, nx - tx));
        const T* p = ph + tx;
        input_rows<T>(len, p, p + np, p + 2 * np, p + 3 * np, p + 1, p + np + 1, V.at(i * kAlpha, ci, t),
                      V.at(i * kAlpha + 1, ci, t), V.at(i * kAlpha + 2, ci, t), V.at(i * kAlpha + 3, ci, t),
                      V.at(i * kAlpha + 4, ci, t), V.at(i * kAlpha + 5, ci, t));
        tx += len;
      }
    }
  }
  // The columns past the band's last tile in V's last block are zero (the GEMM computes them,
  // and drops them).
  const std::ptrdiff_t nt = static_cast<std::ptrdiff_t>(ty1 - ty0) * nx;
  if (nt % NC)
    for (int k = 0; k < kPoints; ++k) std::fill(V.at(k, ci, nt), V.at(k, ci, nt) + (NC - nt % NC), T(0));
}

/// Output transform of tile rows [ty0, ty1) of one output channel: M[k * m_stride + t] ->
/// out (H x W) + bias, rounded to Out as it is stored. `s`/`y` are per-thread scratch.
template <class T, class Out>
void transform_output(const T* M, std::ptrdiff_t m_stride, const Tiling& tl, int ty0, int ty1, T bias, Out* out,
                      memory::Buffer<T>& s, memory::Buffer<T>& y) {
  const int nx = tl.tiles_x;
#if DIFFBLOCKS_KERNEL_ISA == 2
  if constexpr (std::is_same_v<T, float>) {
    for (int ty = ty0; ty < ty1; ++ty)
      for (int tx0 = 0; tx0 < nx; tx0 += 16) {
        const int n = std::min(16, nx - tx0);
        zmm::output_tiles16(M + static_cast<std::ptrdiff_t>(ty - ty0) * nx + tx0, m_stride,
                               static_cast<__mmask16>((1u << n) - 1u), tl.H, tl.W, ty, tx0, bias, out);
      }
    return;
  }
#endif
  s.resize(static_cast<std::size_t>(kAlpha) * kTile * nx);
  y.resize(static_cast<std::size_t>(kTile) * kTile * nx);
  for (int ty = ty0; ty < ty1; ++ty) {
    const T* m = M + static_cast<std::ptrdiff_t>(ty - ty0) * nx;
    // Along W: s[i][c][t] = sum_k A^T[c][k] M[i*6 + k][t].
    for (int i = 0; i < kAlpha; ++i) {
      const T* mi = m + i * kAlpha * m_stride;
      T* si = s.data() + i * kTile * nx;
      output_rows<T>(nx, mi, mi + m_stride, mi + 2 * m_stride, mi + 3 * m_stride, mi + 4 * m_stride,
                     mi + 5 * m_stride, si, si + nx, si + 2 * nx, si + 3 * nx);
    }
    // Along H: y[r][c][t] = sum_i A^T[r][i] s[i][c][t].
    for (int c = 0; c < kTile; ++c) {
      const T* sc = s.data() + c * nx;
      const std::ptrdiff_t is = kTile * nx;  // from s[i][c] to s[i + 1][c]
      T* yc = y.data() + c * nx;
      output_rows<T>(nx, sc, sc + is, sc + 2 * is, sc + 3 * is, sc + 4 * is, sc + 5 * is, yc, yc + is, yc + 2 * is,
                     yc + 3 * is);
    }
    // Interleave the four column phases back into image rows, dropping the overhang.
    for (int r = 0; r < kTile; ++r) {
      const int oy = ty * kTile + r;
      if (oy >= tl.H) break;
      Out* row = out + static_cast<std::ptrdiff_t>(oy) * tl.W;
      const T* yr = y.data() + r * kTile * nx;
      const int full = tl.W / kTile;  // whole tiles: an unconditional (vectorisable) interleave
      for (int t = 0; t < full; ++t)
        for (int c = 0; c < kTile; ++c) row[kTile * t + c] = half_io::store_value<Out>(yr[c * nx + t] + bias);
      for (int ox = kTile * full; ox < tl.W; ++ox) row[ox] = half_io::store_value<Out>(yr[(ox % kTile) * nx + full] + bias);
    }
  }
}

/// Elements from one point's plane of V (or M) to the next: the packed Cin x nt matrix (Cout x
/// nt) plus one cache line. Plane sizes are mostly multiples of 4 KiB, and the transforms touch
/// all 36 planes at once (a group of tiles writes one vector to each, the output transform reads
/// six at a time): at such a stride every access falls into the same L1 set, which halved the
/// input transform's speed (measured on Sapphire Rapids: 8.3 against 4.3 ns a tile).
template <class T>
std::ptrdiff_t v_plane(int Cin, std::ptrdiff_t nt) {
  return packed::packed_b_size<T>(Cin, static_cast<int>(nt)) + 64 / static_cast<std::ptrdiff_t>(sizeof(T));
}
template <class T>
std::ptrdiff_t m_plane(int Cout, std::ptrdiff_t nt) {
  return static_cast<std::ptrdiff_t>(Cout) * nt + 64 / static_cast<std::ptrdiff_t>(sizeof(T));
}

/// out (B, Cout, H, W) = conv3x3(x (B, Cin, H, W), w (Cout, Cin, 3, 3), stride 1, padding 1) + bias.
///
/// The tiles are processed in bands of whole tile rows, each band through three steps: input
/// transform (V, 36 x Cin x tiles), 36 GEMMs (M, 36 x Cout x tiles), output transform. Two
/// schedules:
///  - many bands (a long mel at the top levels): each thread takes whole bands and runs all
///    three steps on its own, with bands small enough (~1 MB of V and M) that what one step
///    writes the next reads from the thread's L2. The transforms move ~4x the bytes of x and
///    out, and through L3 they were half of a 64-channel convolution's time (Sapphire Rapids,
///    T = 512); there are no barriers between the steps either;
///  - few bands (the low levels, short mels): the threads share each step of one band (input
///    channels, then the 36 points, then output channels), bands of ~8 MB.
/// `U`: the weights' transform_weights (kept by the block that holds them; ops/cpu/conv.hpp), or
/// null: then made here for this call from `taps` (pack_taps_into, kept by the block) or else
/// from `w` (Cout, Cin, 3, 3). With one shared band (the low levels: the largest kernels, fewest
/// tiles) each thread makes the planes of its own points one row of G g at a time, next to their
/// GEMMs, in 5 planes of its own scratch: the 36 planes (4x the weight) are never written out
/// whole, and a GEMM reads its plane from L2. Otherwise U is made whole, into scratch.
/// x and out may be stored in a half type (In, Out: widened by the input transform as it reads,
/// rounded by the output transform as it writes), so a half model's convolution makes no float32
/// copy of either; everything between them is T.
template <class T, class In = T, class Out = T>
void conv3x3(const In* x, int B, int Cin, int H, int W, const T* U, int Cout, const T* bias, Out* out,
             const T* w = nullptr, const T* taps = nullptr) {
  if (B == 0 || Cin == 0 || Cout == 0 || H == 0 || W == 0) return;
  const std::ptrdiff_t u_plane = packed::packed_size(Cout, Cin);
  constexpr int NC = PackedV<T>::NC;
  const Tiling tl(H, W);
  const std::ptrdiff_t in_plane = static_cast<std::ptrdiff_t>(H) * W;

  // The three steps on tile rows [ty0, ty1) of batch item b, for input channels [c0, c1),
  // points [k0, k1), output channels [o0, o1); V and M laid out for that band.
  auto input_step = [&](int b, int ty0, int ty1, const PackedV<T>& pv, std::ptrdiff_t c0, std::ptrdiff_t c1,
                        InputScratch<T>& sc) {
    for (std::ptrdiff_t ci = c0; ci < c1; ++ci) transform_input(x + (b * Cin + ci) * in_plane, tl, ty0, ty1, pv, ci, sc);
  };
  auto gemm_step = [&](std::ptrdiff_t nt, const PackedV<T>& pv, T* M, std::ptrdiff_t k0, std::ptrdiff_t k1) {
    for (std::ptrdiff_t k = k0; k < k1; ++k)
      packed::gemm_packed_b<T>(Cout, static_cast<int>(nt), Cin, U + k * u_plane, pv.data + k * pv.plane,
                               M + k * m_plane<T>(Cout, nt), nt);
  };
  auto output_step = [&](int b, int ty0, int ty1, const T* M, std::ptrdiff_t o0, std::ptrdiff_t o1,
                         memory::Buffer<T>& s, memory::Buffer<T>& y) {
    const std::ptrdiff_t nt = static_cast<std::ptrdiff_t>(ty1 - ty0) * tl.tiles_x;
    for (std::ptrdiff_t co = o0; co < o1; ++co)
      transform_output(M + co * nt, m_plane<T>(Cout, nt), tl, ty0, ty1, bias ? bias[co] : T(0), out + (b * Cout + co) * in_plane,
                       s, y);
  };
  auto band_rows = [&](std::ptrdiff_t bytes_per_tile, std::ptrdiff_t budget) {
    return static_cast<int>(std::clamp<std::ptrdiff_t>(budget / bytes_per_tile / tl.tiles_x, 1, tl.tiles_y));
  };

  // Per-thread bands: ~1 MB of V + M, and at least one full block of NC tiles for the GEMMs.
  const std::ptrdiff_t per_tile = static_cast<std::ptrdiff_t>(kPoints) * sizeof(T) * (Cin + Cout);
  int own = band_rows(per_tile, std::ptrdiff_t{1} << 20);
  while (own < tl.tiles_y && static_cast<std::ptrdiff_t>(own) * tl.tiles_x < NC) ++own;
  const int own_bands = (tl.tiles_y + own - 1) / own;
  const bool own_schedule = B * own_bands >= 4 * get_num_threads() && get_num_threads() > 1;
  // Shared bands: the transformed input of a band (36 x Cin x tiles) stays around 8 MB
  // (L3-resident) however long the mel is, so memory does not grow with T.
  const int band = band_rows(static_cast<std::ptrdiff_t>(kPoints) * sizeof(T) * Cin, std::ptrdiff_t{8} << 20);
  const bool fused = !U && !own_schedule && B == 1 && band >= tl.tiles_y;
  memory::Buffer<T> made;
  if (!U && !fused) {  // the whole U for this call
    made.resize(static_cast<std::size_t>(kPoints * u_plane));
    if (taps)
      transform_taps_into(taps, Cout, Cin, made.data());
    else
      transform_weights_into(w, Cout, Cin, made.data());
    U = made.data();
  } else if (fused && !taps) {  // the taps for this call (the weight's size), then U a row at a time
    made.resize(static_cast<std::size_t>(9 * u_plane));
    pack_taps_into(w, Cout, Cin, made.data());
    taps = made.data();
  }
  if (own_schedule) {
    const std::ptrdiff_t max_tiles = static_cast<std::ptrdiff_t>(own) * tl.tiles_x;
    parallel_for(static_cast<std::ptrdiff_t>(B) * own_bands, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
      memory::Buffer<T> V(static_cast<std::size_t>(kPoints * v_plane<T>(Cin, max_tiles)));
      memory::Buffer<T> M(static_cast<std::size_t>(kPoints * m_plane<T>(Cout, max_tiles))), s, y;
      InputScratch<T> sc(tl);
      for (std::ptrdiff_t job = first; job < last; ++job) {
        const int b = static_cast<int>(job / own_bands), ty0 = static_cast<int>(job % own_bands) * own;
        const int ty1 = std::min(tl.tiles_y, ty0 + own);
        const std::ptrdiff_t nt = static_cast<std::ptrdiff_t>(ty1 - ty0) * tl.tiles_x;
        const PackedV<T> pv{V.data(), Cin, v_plane<T>(Cin, nt)};
        input_step(b, ty0, ty1, pv, 0, Cin, sc);
        gemm_step(nt, pv, M.data(), 0, kPoints);
        output_step(b, ty0, ty1, M.data(), 0, Cout, s, y);
      }
    });
    return;
  }

  const std::ptrdiff_t max_tiles = static_cast<std::ptrdiff_t>(band) * tl.tiles_x;
  memory::Buffer<T> V(static_cast<std::size_t>(kPoints * v_plane<T>(Cin, max_tiles)));
  memory::Buffer<T> M(static_cast<std::size_t>(kPoints * m_plane<T>(Cout, max_tiles)));
  for (int b = 0; b < B; ++b)
    for (int ty0 = 0; ty0 < tl.tiles_y; ty0 += band) {
      const int ty1 = std::min(tl.tiles_y, ty0 + band);
      const std::ptrdiff_t nt = static_cast<std::ptrdiff_t>(ty1 - ty0) * tl.tiles_x;
      const PackedV<T> pv{V.data(), Cin, v_plane<T>(Cin, nt)};
      parallel_for(Cin, [&](std::ptrdiff_t c0, std::ptrdiff_t c1) {
        InputScratch<T> sc(tl);
        input_step(b, ty0, ty1, pv, c0, c1, sc);
      });
      if (fused)
        parallel_for(kPoints, [&](std::ptrdiff_t k0, std::ptrdiff_t k1) {
          // A row of G g (3 planes), then two planes of U; a cache line apart (see v_plane).
          const std::ptrdiff_t gs = u_plane + 64 / static_cast<std::ptrdiff_t>(sizeof(T));
          memory::Buffer<T> gg(static_cast<std::size_t>(5 * gs));
          T *const g0 = gg.data(), *const g1 = g0 + gs, *const g2 = g1 + gs, *const u0 = g2 + gs, *const u1 = u0 + gs;
          int row = -1;
          for (std::ptrdiff_t k = k0; k < k1;) {
            const int i = static_cast<int>(k) / kAlpha, kk = static_cast<int>(k) % kAlpha;
            if (i != row)  // the taps' layout is U's: one pass over whole planes
              WeightTransform<T>::rows(row = i, u_plane, taps, u_plane, g0, g1, g2);
            const bool two = kk + 1 < kAlpha && k + 1 < k1;  // two points of the row per pass over gg
            if (two)
              WeightTransform<T>::cols2(kk, u_plane, g0, g1, g2, u0, u1);
            else
              WeightTransform<T>::cols(kk, u_plane, g0, g1, g2, u0);
            for (int q = 0; q <= int(two); ++q, ++k)
              packed::gemm_packed_b<T>(Cout, static_cast<int>(nt), Cin, q ? u1 : u0, pv.data + k * pv.plane,
                                       M.data() + k * m_plane<T>(Cout, nt), nt);
          }
        });
      else
        parallel_for(kPoints, [&](std::ptrdiff_t k0, std::ptrdiff_t k1) { gemm_step(nt, pv, M.data(), k0, k1); });
      parallel_for(Cout, [&](std::ptrdiff_t c0, std::ptrdiff_t c1) {
        memory::Buffer<T> s, y;
        output_step(b, ty0, ty1, M.data(), c0, c1, s, y);
      });
    }
}

}  // namespace winograd
