// Kernel source, compiled once per instruction set (see simd.inl's header).
//
// The element-wise and layout ops that stream memory once (masks, residual adds, per-channel
// biases and scales, transposes): plain loops that the compiler vectorises at the copy's width.
// Memory-bound from DRAM, but a U-Net's activations are mostly L2-sized, where the width shows
// (SSE2 against AVX-512: up to a fifth of AdaGroupNorm).

/// f(begin, end) over [0, n) rows or values, on the pool when the work (n * per) passes 32 K values.
template <class F>
void stream(std::ptrdiff_t n, std::ptrdiff_t per, F&& body) {
  if (n * per < (1 << 15)) return body(std::ptrdiff_t{0}, n);
  parallel_for(n, body);
}

/// dst[b, c, h, w] = src[b, c, h, w] * mask[b, 0, 0, w] over rows of W values (src may be dst);
/// `shape` is the (B, C, H, W) of both.
template <class T, class Shape>
void apply_frame_mask(const T* src, T* dst, const Shape& shape, const T* mask) {
  const std::ptrdiff_t CH = static_cast<std::ptrdiff_t>(shape[1] * shape[2]), W = shape[3];
  const std::ptrdiff_t rows = static_cast<std::ptrdiff_t>(shape[0]) * CH;
  stream(rows, W, [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      const T* m = mask + (r / CH) * W;
      const T* in = src + r * W;
      T* out = dst + r * W;
      for (std::ptrdiff_t w = 0; w < W; ++w) out[w] = in[w] * m[w];
    }
  });
}

/// x[b, c, :, :] += bias[b, c] over BC planes of HW values.
template <class T>
void add_channel_bias_(T* x, std::ptrdiff_t BC, std::ptrdiff_t HW, const T* bias) {
  stream(BC, HW, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    for (std::ptrdiff_t i = i0; i < i1; ++i) {
      const T v = bias[i];
      T* p = x + i * HW;
      for (std::ptrdiff_t j = 0; j < HW; ++j) p[j] += v;
    }
  });
}

/// a[i] += b[i].
template <class T>
void add_(T* a, const T* b, std::ptrdiff_t n) {
  stream(n, 1, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    for (std::ptrdiff_t i = i0; i < i1; ++i) a[i] += b[i];
  });
}

/// x[i] = x[i] * s + t (t = 0: a scale).
template <class T>
void affine_(T* x, std::ptrdiff_t n, T s, T t) {
  stream(n, 1, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    for (std::ptrdiff_t i = i0; i < i1; ++i) x[i] = x[i] * s + t;
  });
}

/// x[b, c] = x[b, c] * (1 + ss[b, c]) + ss[b, C + c] over planes of HW values (AdaGroupNorm).
template <class T>
void scale_shift_(T* x, std::ptrdiff_t B, std::ptrdiff_t C, std::ptrdiff_t HW, const T* ss) {
  stream(B * C, HW, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    for (std::ptrdiff_t i = i0; i < i1; ++i) {
      const std::ptrdiff_t b = i / C, c = i % C;
      const T sc = T(1) + ss[b * 2 * C + c], sh = ss[b * 2 * C + C + c];
      T* p = x + i * HW;
      for (std::ptrdiff_t j = 0; j < HW; ++j) p[j] = p[j] * sc + sh;
    }
  });
}

/// dst (cols x rows) = src (rows x cols)^T, in 32 x 32 tiles (both sides touch whole cache
/// lines) shared out over the threads by tile rows.
template <class T>
void transpose(const T* src, T* dst, std::ptrdiff_t rows, std::ptrdiff_t cols) {
  constexpr std::ptrdiff_t kT = 32;
  auto tile_rows = [&](std::ptrdiff_t first, std::ptrdiff_t last) {
    for (std::ptrdiff_t r0 = first * kT; r0 < std::min(rows, last * kT); r0 += kT)
      for (std::ptrdiff_t c0 = 0; c0 < cols; c0 += kT) {
        const std::ptrdiff_t r1 = std::min(rows, r0 + kT), c1 = std::min(cols, c0 + kT);
        for (std::ptrdiff_t c = c0; c < c1; ++c)
          for (std::ptrdiff_t r = r0; r < r1; ++r) dst[c * rows + r] = src[r * cols + c];
      }
  };
  const std::ptrdiff_t tiles = (rows + kT - 1) / kT;
  if (rows * cols < (std::ptrdiff_t{1} << 15)) return tile_rows(0, tiles);
  parallel_for(tiles, tile_rows);
}

/// The loops of the CPU's device-generic ops (ops/cpu/map.hpp), in each copy so that the op's
/// functor, inlined here, is vectorised at the copy's width (baseline SSE2 would not use AVX).
template <class F>
void each_index(std::size_t first, std::size_t last, const F& f) {
  for (std::size_t i = first; i < last; ++i) f(i);
}
template <class F>
void each_row(std::size_t first, std::size_t last, std::size_t cols, const F& f) {
  for (std::size_t r = first; r < last; ++r)
    for (std::size_t c = 0; c < cols; ++c) f(r, c);
}
