// Kernel source, compiled once per instruction set (see simd.inl's header).
//
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
/// a plain memcpy at stride 1). xc may be stored in a half type In: its values are widened to T
/// as they are copied (exactly), so a half convolution's patches are its float32 ones.
template <class T, class In = T>
void gather_patch_row(const In* xc, int H, int W, const PatchGrid& g, int dy, int dx, std::ptrdiff_t j0,
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
      const In* row = xc + iy * W;
      const std::ptrdiff_t a = std::clamp(lo, ox0, ox1), b = std::clamp(hi, ox0, ox1);
      std::fill(d, d + (a - ox0), T(0));
      if (s == 1) {
        if constexpr (std::is_same<In, T>::value)
          std::copy(row + a + dx, row + b + dx, d + (a - ox0));
        else
          half_io::load_row(row + a + dx, d + (a - ox0), b - a);
      } else if (s == 2) {  // a constant stride: compilers de-interleave with vector permutes
        for (std::ptrdiff_t ox = a; ox < b; ++ox) d[ox - ox0] = static_cast<T>(row[2 * ox + dx]);
      } else {
        for (std::ptrdiff_t ox = a; ox < b; ++ox) d[ox - ox0] = static_cast<T>(row[ox * s + dx]);
      }
      std::fill(d + (b - ox0), d + (ox1 - ox0), T(0));
    }
    j += ox1 - ox0;
  }
}

/// Columns per task of a patch GEMM over `ncols` grid points (per batch item) with K rows: the
/// column buffer stays around 256 KiB (in L2), at least 64 columns; but a small grid is cut
/// finer, into at least 4 tiles per thread of whole GEMM column blocks, so the threads share it
/// evenly (a 20 x 32 grid in 128-column tiles was 5 tiles for 2 threads).
template <class T>
std::ptrdiff_t patch_tile(std::ptrdiff_t ncols, int B, int K) {
  constexpr std::ptrdiff_t NC = packed::block_cols<T>();
  std::ptrdiff_t tile = std::max<std::ptrdiff_t>(64, (std::ptrdiff_t{1} << 16) / std::max(1, K));
  const std::ptrdiff_t even = (ncols * B + 4 * get_num_threads() - 1) / (4 * get_num_threads());
  tile = std::min(tile, std::max(NC, (even + NC - 1) / NC * NC));
  return std::max<std::ptrdiff_t>(1, std::min(tile, ncols));
}

/// col (K x nj, K = Cin * taps) = the patches of grid points j0 .. j0+nj-1 of one batch item xb
/// (Cin, H, W): row (ci, ty, tx) holds input channel ci at kernel tap (ty, tx). xb may be stored
/// in a half type In (widened as it is gathered).
template <class T, class In = T>
void gather_patches(const In* xb, int Cin, int H, int W, const PatchGrid& g, std::ptrdiff_t j0, std::ptrdiff_t nj,
                    T* col) {
  const int KY = static_cast<int>(g.off_y.size()), KX = static_cast<int>(g.off_x.size());
  const std::ptrdiff_t in_plane = static_cast<std::ptrdiff_t>(H) * W;
  for (int ci = 0; ci < Cin; ++ci)
    for (int ty = 0; ty < KY; ++ty)
      for (int tx = 0; tx < KX; ++tx)
        gather_patch_row(xb + ci * in_plane, H, W, g, g.off_y[ty], g.off_x[tx], j0, nj,
                         col + (static_cast<std::ptrdiff_t>(ci * KY + ty) * KX + tx) * nj);
}

/// out[b, co, dest(oy, ox)] = bias[co] + sum_{ci,ty,tx} W[co, (ci,ty,tx)] * x[b, ci, iy, ix]
/// (zero outside the input), W given packed (packed::pack_a). x: (B, Cin, H, W); out planes
/// are out_plane elements apart. x and out may be stored in a half type (In, Out): x is widened
/// as its patches are gathered (a 1x1 convolution then gathers too, instead of reading x in
/// place) and each result, float32 as for a float32 x, is rounded once as it is stored (on
/// `accumulate`, the sum with out's value); so neither has a float32 copy.
template <class T, class In = T, class Out = T>
void patch_gemm_packed(const In* x, int B, int Cin, int H, int W, const T* wpack, int Cout, const T* bias,
                       const PatchGrid& g, Out* out, std::ptrdiff_t out_plane, bool accumulate = false) {
  const int KY = static_cast<int>(g.off_y.size()), KX = static_cast<int>(g.off_x.size());
  const int K = Cin * KY * KX;
  const std::ptrdiff_t ncols = static_cast<std::ptrdiff_t>(g.out_h) * g.out_w;
  if (ncols == 0 || Cout == 0) return;
  const bool pointwise = std::is_same<In, T>::value && KY == 1 && KX == 1 && g.stride == 1 && g.off_y[0] == 0 &&
                         g.off_x[0] == 0 && g.out_h == H && g.out_w == W;
  const std::ptrdiff_t tile = patch_tile<T>(ncols, B, K);
  const std::ptrdiff_t tiles_per_item = (ncols + tile - 1) / tile;
  const std::ptrdiff_t in_plane = static_cast<std::ptrdiff_t>(H) * W;

  parallel_for(B * tiles_per_item, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    memory::Buffer<T> col, res;
    for (std::ptrdiff_t task = first; task < last; ++task) {
      const std::ptrdiff_t b = task / tiles_per_item;
      const std::ptrdiff_t j0 = (task % tiles_per_item) * tile;
      const std::ptrdiff_t nj = std::min(tile, ncols - j0);
      const In* xb = x + b * Cin * in_plane;
      Out* ob = out + b * Cout * out_plane;

      const T* bmat = nullptr;
      std::ptrdiff_t ldb = 0;
      if constexpr (std::is_same<In, T>::value) {
        if (pointwise) {  // 1x1 stride-1 conv: the input itself is the column matrix
          bmat = xb + j0;
          ldb = in_plane;
        }
      }
      if (!pointwise) {
        col.resize(static_cast<std::size_t>(K) * nj);
        gather_patches(xb, Cin, H, W, g, j0, nj, col.data());
        bmat = col.data();
        ldb = nj;
      }

      if (g.contiguous() && (std::is_same<Out, T>::value || !accumulate)) {
        if constexpr (std::is_same<Out, T>::value) {
          T* dst = ob + g.base + j0;
          packed::gemm<T>(Cout, static_cast<int>(nj), K, wpack, bmat, ldb, dst, out_plane, accumulate);
          if (bias)
            for (int co = 0; co < Cout; ++co)
              for (std::ptrdiff_t j = 0; j < nj; ++j) dst[co * out_plane + j] += bias[co];
        } else {  // a half out: each row plus bias, rounded as it is stored
          res.resize(static_cast<std::size_t>(Cout) * nj);
          packed::gemm<T>(Cout, static_cast<int>(nj), K, wpack, bmat, ldb, res.data(), nj);
          for (int co = 0; co < Cout; ++co) {
            T* r = res.data() + static_cast<std::ptrdiff_t>(co) * nj;
            if (bias)
              for (std::ptrdiff_t j = 0; j < nj; ++j) r[j] += bias[co];
            half_io::store_row(r, ob + co * out_plane + g.base + j0, nj);
          }
        }
      } else {
        res.resize(static_cast<std::size_t>(Cout) * nj);
        packed::gemm<T>(Cout, static_cast<int>(nj), K, wpack, bmat, ldb, res.data(), nj);
        for (int co = 0; co < Cout; ++co) {
          const T bv = bias ? bias[co] : T(0);
          std::ptrdiff_t oy = j0 / g.out_w, ox = j0 % g.out_w;
          for (std::ptrdiff_t j = 0; j < nj; ++j) {
            Out& o = ob[co * out_plane + g.base + oy * g.row_step + ox * g.col_step];
            o = half_io::store_value<Out>(accumulate ? static_cast<T>(o) + (res[co * nj + j] + bv) : res[co * nj + j] + bv);
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

/// patch_gemm_packed with W (Cout x K, row-major) packed here, once rather than by every tile.
template <class T>
void patch_gemm(const T* x, int B, int Cin, int H, int W, const T* wmat, int Cout, const T* bias,
                const PatchGrid& g, T* out, std::ptrdiff_t out_plane, bool accumulate = false) {
  const int K = Cin * static_cast<int>(g.off_y.size() * g.off_x.size());
  memory::Buffer<T> wpack(static_cast<std::size_t>(packed::packed_size(Cout, K)));
  packed::pack_a(Cout, K, wmat, K, wpack.data());
  patch_gemm_packed(x, B, Cin, H, W, wpack.data(), Cout, bias, g, out, out_plane, accumulate);
}

/// A conv2d weight (Cout x K row-major: Cout, Cin, KH, KW) packed for the patch GEMM.
template <class T>
memory::WeightBuffer<T> pack_conv_weight(const T* w, int Cout, int K) {
  memory::WeightBuffer<T> p(static_cast<std::size_t>(packed::packed_size(Cout, K)));
  packed::pack_a(Cout, K, w, K, p.data());
  return p;
}

/// The prepared form of a conv2d weight w (Cout, Cin, KH, KW) that conv2d(..., prepared) takes:
/// the 36 Winograd planes of a 3x3 kernel, or the packed GEMM panels.
template <class T>
memory::WeightBuffer<T> prepare_conv2d(const T* w, int Cout, int Cin, int KH, int KW, bool winograd) {
  return winograd ? winograd::transform_weights(w, Cout, Cin) : pack_conv_weight(w, Cout, Cin * KH * KW);
}
/// Values of prepare_conv2d's form.
template <class T>
std::ptrdiff_t prepared_conv2d_size(int Cout, int Cin, int KH, int KW, bool winograd) {
  return winograd ? winograd::transformed_size<T>(Cout, Cin) : packed::packed_size(Cout, Cin * KH * KW);
}
/// prepare_conv2d's form written to p (prepared_conv2d_size values): for a call's own scratch.
template <class T>
void prepare_conv2d_into(const T* w, int Cout, int Cin, int KH, int KW, bool winograd, T* p) {
  if (winograd)
    winograd::transform_weights_into(w, Cout, Cin, p);
  else
    packed::pack_a(Cout, Cin * KH * KW, w, Cin * KH * KW, p);
}

/// Conv2d (cross-correlation, zero padding). x (B,Cin,H,W), w (Cout,Cin,k,k), bias (Cout) or empty.
/// `winograd`: a 3x3 stride-1 padding-1 convolution runs as Winograd F(4x4, 3x3) (the entry point
/// decides, by the device's conv algorithm). `prepared`: w's prepare_conv2d form for that choice
/// (for Winograd it may be null: then the transform is made from w for this call; or, with
/// `taps`, the weight's winograd::pack_taps_into form, from which the planes are made).
/// Here the weight is given by its dimensions and values (w: Cout x Cin x KH x KW, read only by
/// a Winograd call without `prepared`), the bias as Cout values or null.
/// x may be stored in a half type S, and the result is then stored in S: the Winograd transforms
/// and the patch gathering widen x as they read it and the results are rounded once as they are
/// written, so neither has a float32 copy; the weight's form and the bias are T, as are all the
/// products (the result is the float32 convolution's, rounded once).
template <class T, class S = T>
Tensor<S, 4, Cpu> conv2d_shaped(const Tensor<S, 4, Cpu>& x, int Cout, int KH, int KW, const T* w, const T* bias,
                                int stride, int padding, bool winograd, const T* prepared, bool taps = false) {
  const int B = static_cast<int>(x.shape(0)), Cin = static_cast<int>(x.shape(1));
  const int H = static_cast<int>(x.shape(2)), W = static_cast<int>(x.shape(3));
  const int Ho = (H + 2 * padding - KH) / stride + 1, Wo = (W + 2 * padding - KW) / stride + 1;
  auto out = Tensor<S, 4, Cpu>::from_shape({static_cast<std::size_t>(B), static_cast<std::size_t>(Cout),
                                            static_cast<std::size_t>(std::max(Ho, 0)), static_cast<std::size_t>(std::max(Wo, 0))});
  if (Ho <= 0 || Wo <= 0) return out;
  if (winograd) {
    winograd::conv3x3<T, S, S>(x.data(), B, Cin, H, W, taps ? nullptr : prepared, Cout, bias, out.data(), w,
                               taps ? prepared : nullptr);
    return out;
  }
  PatchGrid g;
  g.out_h = Ho;
  g.out_w = Wo;
  g.stride = stride;
  for (int k = 0; k < KH; ++k) g.off_y.push_back(k - padding);
  for (int k = 0; k < KW; ++k) g.off_x.push_back(k - padding);
  g.row_step = Wo;
  patch_gemm_packed<T>(x.data(), B, Cin, H, W, prepared, Cout, bias, g, out.data(), static_cast<std::ptrdiff_t>(Ho) * Wo);
  return out;
}
template <class T>
Tensor<T, 4, Cpu> conv2d(const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias,
                         int stride, int padding, bool winograd, const T* prepared, bool taps = false) {
  return conv2d_shaped<T>(x, static_cast<int>(w.shape(0)), static_cast<int>(w.shape(2)), static_cast<int>(w.shape(3)),
                          w.data(), bias.size() ? bias.data() : nullptr, stride, padding, winograd, prepared, taps);
}

/// The grid of a 1x1 stride-1 convolution over an H x W plane: the plane itself.
inline PatchGrid pointwise_grid(int H, int W) {
  PatchGrid g;
  g.out_h = H;
  g.out_w = W;
  g.off_y = {0};
  g.off_x = {0};
  g.row_step = W;
  return g;
}

/// out (B, Cout, H, W) = or += w (Cout x Cin, row-major) * x (B, Cin, H, W) + bias (or null):
/// a 1x1 stride-1 convolution on raw pointers, the input read in place as the GEMM's right side.
template <class T>
void pointwise_conv(const T* x, int B, int Cin, int H, int W, const T* w, int Cout, const T* bias, T* out,
                    bool accumulate) {
  patch_gemm<T>(x, B, Cin, H, W, w, Cout, bias, pointwise_grid(H, W), out, static_cast<std::ptrdiff_t>(H) * W,
                accumulate);
}

/// out += Conv2d(x) for a 1x1 stride-1 convolution, accumulated by the GEMM itself (no temporary,
/// no separate add pass); out (B, Cout, H, W). ResnetBlock's res_conv residual.
/// `prepared`: w's packed form (prepare_conv2d, not Winograd).
template <class T>
void conv1x1_add_(const Tensor<T, 4, Cpu>& x, const Tensor<T, 4, Cpu>& w, const Tensor<T, 1, Cpu>& bias,
                  Tensor<T, 4, Cpu>& out, const T* prepared) {
  const int B = static_cast<int>(x.shape(0)), Cin = static_cast<int>(x.shape(1));
  const int H = static_cast<int>(x.shape(2)), W = static_cast<int>(x.shape(3)), Cout = static_cast<int>(w.shape(0));
  patch_gemm_packed<T>(x.data(), B, Cin, H, W, prepared, Cout, bias.size() ? bias.data() : nullptr,
                       pointwise_grid(H, W), out.data(), static_cast<std::ptrdiff_t>(H) * W, /*accumulate=*/true);
}

/// y (Cout x n) += w x (Cin x n) + bias: a 1x1 convolution on n pixels laid out contiguously per
/// channel (a chunk of a plane), `prepared` w's packed form.
template <class T>
void conv1x1_accumulate(const T* x, int Cin, int n, const T* prepared, int Cout, const T* bias, T* y) {
  patch_gemm_packed<T>(x, 1, Cin, 1, n, prepared, Cout, bias, pointwise_grid(1, n), y, n, /*accumulate=*/true);
}

/// Kernel taps k of a transposed convolution's output phase r (stride s): those with
/// (r + padding - k) divisible by s.
inline std::vector<int> transpose_taps(int r, int K, int s, int padding) {
  std::vector<int> ks;
  for (int k = 0; k < K; ++k)
    if (((r + padding - k) % s + s) % s == 0) ks.push_back(k);
  return ks;
}

/// Offsets of every phase (ry, rx), ry and rx in [0, s), in the prepared form of a transposed
/// convolution's weight, and its total size (the last entry).
inline std::vector<std::ptrdiff_t> transpose_offsets(int Cin, int Cout, int KH, int KW, int s, int padding) {
  std::vector<std::ptrdiff_t> at(static_cast<std::size_t>(s) * s + 1, 0);
  for (int ry = 0; ry < s; ++ry)
    for (int rx = 0; rx < s; ++rx) {
      const int K = Cin * static_cast<int>(transpose_taps(ry, KH, s, padding).size() *
                                           transpose_taps(rx, KW, s, padding).size());
      at[static_cast<std::size_t>(ry) * s + rx + 1] = at[static_cast<std::size_t>(ry) * s + rx] + packed::packed_size(Cout, K);
    }
  return at;
}

/// The prepared form of a ConvTranspose2d weight w (Cin, Cout, KH, KW): for each phase, its
/// weight matrix [co, (ci, ty, tx)] = w[ci, co, ky[ty], kx[tx]] packed straight from w, all
/// phases one after another (transpose_offsets).
template <class T>
std::ptrdiff_t prepared_conv_transpose2d_size(int Cin, int Cout, int KH, int KW, int s, int padding) {
  return transpose_offsets(Cin, Cout, KH, KW, s, padding).back();
}
/// prepare_conv_transpose2d's form written to p (prepared_conv_transpose2d_size values).
template <class T>
void prepare_conv_transpose2d_into(const T* w, int Cin, int Cout, int KH, int KW, int s, int padding, T* p) {
  const auto at = transpose_offsets(Cin, Cout, KH, KW, s, padding);
  std::fill(p, p + at.back(), T(0));
  parallel_for(static_cast<std::ptrdiff_t>(s) * s * Cin, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    for (std::ptrdiff_t job = first; job < last; ++job) {
      const int phase = static_cast<int>(job / Cin), ci = static_cast<int>(job % Cin);
      const auto ky = transpose_taps(phase / s, KH, s, padding), kx = transpose_taps(phase % s, KW, s, padding);
      const int nky = static_cast<int>(ky.size()), nkx = static_cast<int>(kx.size()), K = Cin * nky * nkx;
      for (int co = 0; co < Cout; ++co) {
        const T* wk = w + (static_cast<std::ptrdiff_t>(ci) * Cout + co) * KH * KW;
        for (int ty = 0; ty < nky; ++ty)
          for (int tx = 0; tx < nkx; ++tx)
            p[at[phase] + packed::packed_index(co, (ci * nky + ty) * nkx + tx, K)] = wk[ky[ty] * KW + kx[tx]];
      }
    }
  });
}
template <class T>
memory::WeightBuffer<T> prepare_conv_transpose2d(const T* w, int Cin, int Cout, int KH, int KW, int s, int padding) {
  memory::WeightBuffer<T> p(static_cast<std::size_t>(prepared_conv_transpose2d_size<T>(Cin, Cout, KH, KW, s, padding)));
  prepare_conv_transpose2d_into(w, Cin, Cout, KH, KW, s, padding, p.data());
  return p;
}

/// ConvTranspose2d (no output_padding, dilation 1). x (B,Cin,H,W); the weight (Cin,Cout,KH,KW) as
/// in PyTorch, given by Cout, KH, KW and its prepare_conv_transpose2d form `prepared`; bias: Cout
/// values or null. Output (H-1)*s - 2p + k. x may be stored in a half type S, and the result is
/// then stored in S (widened as gathered, each output rounded once as it is written: the float32
/// result rounded, with no float32 copy of either).
template <class T, class S = T>
Tensor<S, 4, Cpu> conv_transpose2d(const Tensor<S, 4, Cpu>& x, int Cout, int KH, int KW, const T* bp, int stride,
                                   int padding, const T* prepared) {
  const int B = static_cast<int>(x.shape(0)), Cin = static_cast<int>(x.shape(1));
  const int H = static_cast<int>(x.shape(2)), W = static_cast<int>(x.shape(3));
  const int Ho = (H - 1) * stride - 2 * padding + KH, Wo = (W - 1) * stride - 2 * padding + KW;
  auto out = Tensor<S, 4, Cpu>::from_shape({static_cast<std::size_t>(B), static_cast<std::size_t>(Cout),
                                            static_cast<std::size_t>(std::max(Ho, 0)), static_cast<std::size_t>(std::max(Wo, 0))});
  if (Ho <= 0 || Wo <= 0) return out;
  const int s = stride;
  const std::ptrdiff_t out_plane = static_cast<std::ptrdiff_t>(Ho) * Wo, in_plane = static_cast<std::ptrdiff_t>(H) * W;

  // One ordinary convolution per output phase (ry, rx): its taps are the kernel rows k with
  // (r + padding - k) divisible by s, and the input row of output row r + s*j is then
  // j + (r + padding - k)/s. Its packed weight matrix is at transpose_offsets' place in the
  // prepared form.
  struct Phase {
    PatchGrid g;
    std::vector<int> ky, kx;
    int K = 0;
    const T* wpack = nullptr;
  };
  const auto at = transpose_offsets(Cin, Cout, KH, KW, s, padding);
  const int py = std::min(s, Ho), px = std::min(s, Wo);
  std::vector<Phase> phases(static_cast<std::size_t>(py) * px);
  bool uniform = Ho % s == 0 && Wo % s == 0;  // every phase has the same Ho/s x Wo/s grid
  for (int ry = 0; ry < py; ++ry)
    for (int rx = 0; rx < px; ++rx) {
      Phase& ph = phases[static_cast<std::size_t>(ry) * px + rx];
      ph.ky = transpose_taps(ry, KH, s, padding);
      ph.kx = transpose_taps(rx, KW, s, padding);
      PatchGrid& g = ph.g;
      g.out_h = (Ho - ry + s - 1) / s;
      g.out_w = (Wo - rx + s - 1) / s;
      g.stride = 1;
      for (int k : ph.ky) g.off_y.push_back((ry + padding - k) / s);
      for (int k : ph.kx) g.off_x.push_back((rx + padding - k) / s);
      g.base = static_cast<std::ptrdiff_t>(ry) * Wo + rx;
      g.row_step = static_cast<std::ptrdiff_t>(s) * Wo;
      g.col_step = s;
      ph.K = Cin * static_cast<int>(ph.ky.size() * ph.kx.size());
      uniform = uniform && ph.K > 0;
      ph.wpack = prepared + at[static_cast<std::size_t>(ry) * s + rx];
    }

  if (!uniform) {  // phases of different sizes (or without taps): one patch GEMM each
    for (const Phase& ph : phases) {
      if (ph.K == 0) {  // a phase no tap reaches holds the bias only
        const PatchGrid& g = ph.g;
        for (int b = 0; b < B; ++b)
          for (int co = 0; co < Cout; ++co)
            for (int oy = 0; oy < g.out_h; ++oy)
              for (int ox = 0; ox < g.out_w; ++ox)
                out.data()[(static_cast<std::ptrdiff_t>(b) * Cout + co) * out_plane + g.base + oy * g.row_step +
                           ox * g.col_step] = half_io::store_value<S>(bp ? bp[co] : T(0));
        continue;
      }
      patch_gemm_packed<T>(x.data(), B, Cin, H, W, ph.wpack, Cout, bp, ph.g, out.data(), out_plane);
    }
    return out;
  }

  // Same grid for every phase (Upsample's k = 4, s = 2, p = 1): a task takes one output row
  // phase ry and a tile of grid points, computes all s column phases of it and interleaves them,
  // so output rows are written whole and contiguous, with one pass over the pool for the lot.
  const int gw = Wo / s;
  const std::ptrdiff_t ncols = static_cast<std::ptrdiff_t>(Ho / s) * gw;
  int kmax = 0;
  for (const Phase& ph : phases) kmax = std::max(kmax, ph.K);
  const std::ptrdiff_t tile = patch_tile<T>(ncols, B * s, kmax), tiles = (ncols + tile - 1) / tile;
  parallel_for(static_cast<std::ptrdiff_t>(B) * s * tiles, [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    memory::Buffer<T> col, res(static_cast<std::size_t>(s) * Cout * tile), row;
    if constexpr (!std::is_same<S, T>::value) row.resize(static_cast<std::size_t>(s) * gw);
    for (std::ptrdiff_t task = first; task < last; ++task) {
      const std::ptrdiff_t b = task / (s * tiles);
      const int ry = static_cast<int>(task / tiles % s);
      const std::ptrdiff_t j0 = task % tiles * tile, nj = std::min(tile, ncols - j0);
      const S* xb = x.data() + b * Cin * in_plane;
      for (int rx = 0; rx < s; ++rx) {  // res[rx] (Cout x nj): column phase rx of the tile
        const Phase& ph = phases[static_cast<std::size_t>(ry) * s + rx];
        col.resize(static_cast<std::size_t>(ph.K) * nj);
        gather_patches(xb, Cin, H, W, ph.g, j0, nj, col.data());
        packed::gemm<T>(Cout, static_cast<int>(nj), ph.K, ph.wpack, col.data(), nj,
                        res.data() + static_cast<std::ptrdiff_t>(rx) * Cout * nj, nj);
      }
      for (int co = 0; co < Cout; ++co) {
        const T bv = bp ? bp[co] : T(0);
        S* oc = out.data() + (b * Cout + co) * out_plane;
        for (std::ptrdiff_t j = j0; j < j0 + nj;) {  // one grid row (or part of one) at a time
          const std::ptrdiff_t oy = j / gw, ox0 = j % gw, n = std::min<std::ptrdiff_t>(gw - ox0, j0 + nj - j);
          S* const dst = oc + (oy * s + ry) * Wo + ox0 * s;
          // A half out: the row interleaved in float32 scratch, then rounded as it is stored.
          T* orow;
          if constexpr (std::is_same<S, T>::value)
            orow = dst;
          else
            orow = row.data();
          const T* r = res.data() + co * nj + (j - j0);
          if (s == 2) {  // a constant stride: a vectorised interleave
            const T* r1 = r + Cout * nj;
            for (std::ptrdiff_t i = 0; i < n; ++i) {
              orow[2 * i] = r[i] + bv;
              orow[2 * i + 1] = r1[i] + bv;
            }
          } else {
            for (std::ptrdiff_t i = 0; i < n; ++i)
              for (int rx = 0; rx < s; ++rx) orow[s * i + rx] = r[rx * Cout * nj + i] + bv;
          }
          if constexpr (!std::is_same<S, T>::value) half_io::store_row(orow, dst, s * n);
          j += n;
        }
      }
    }
  });
  return out;
}

