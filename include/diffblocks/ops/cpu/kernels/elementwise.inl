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

// Each op below also takes tensors stored in a half type S (its other operands in the compute
// type T = compute_t<S>): runs of kRun values are widened into the thread's scratch, computed
// in float32 and rounded once on the way back (half_io: vector conversions), so a half tensor
// costs neither a float32 copy nor a per-value software conversion (f16's was 20x the op).

/// f(v, len, off) over [0, n) of src in runs, v the run's values as float32 (src widened), the
/// result rounded into dst (src may be dst). For a half type S only.
template <class S, class F>
inline void float_runs(const S* src, S* dst, std::ptrdiff_t n, F&& f) {
  constexpr std::ptrdiff_t kRun = 512;
  alignas(64) float v[kRun];
  for (std::ptrdiff_t i = 0; i < n; i += kRun) {
    const std::ptrdiff_t len = std::min(kRun, n - i);
    half_io::load_row(src + i, v, len);
    f(v, len, i);
    half_io::store_row(v, dst + i, len);
  }
}

/// dst[b, c, h, w] = src[b, c, h, w] * mask[b, 0, 0, w] over rows of W values (src may be dst);
/// `shape` is the (B, C, H, W) of both.
template <class S, class Shape, class T = compute_t<S>>
void apply_frame_mask(const S* src, S* dst, const Shape& shape, const T* mask) {
  const std::ptrdiff_t CH = static_cast<std::ptrdiff_t>(shape[1] * shape[2]), W = shape[3];
  const std::ptrdiff_t rows = static_cast<std::ptrdiff_t>(shape[0]) * CH;
  stream(rows, W, [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      const T* m = mask + (r / CH) * W;
      const S* in = src + r * W;
      S* out = dst + r * W;
      if constexpr (is_half_v<S>)
        float_runs(in, out, W, [&](float* v, std::ptrdiff_t len, std::ptrdiff_t off) {
          for (std::ptrdiff_t w = 0; w < len; ++w) v[w] *= m[off + w];
        });
      else
        for (std::ptrdiff_t w = 0; w < W; ++w) out[w] = in[w] * m[w];
    }
  });
}

/// x[b, c, :, :] += bias[b, c] over BC planes of HW values.
template <class S, class T = compute_t<S>>
void add_channel_bias_(S* x, std::ptrdiff_t BC, std::ptrdiff_t HW, const T* bias) {
  stream(BC, HW, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    for (std::ptrdiff_t i = i0; i < i1; ++i) {
      const T v = bias[i];
      S* p = x + i * HW;
      if constexpr (is_half_v<S>)
        float_runs(p, p, HW, [&](float* r, std::ptrdiff_t len, std::ptrdiff_t) {
          for (std::ptrdiff_t j = 0; j < len; ++j) r[j] += v;
        });
      else
        for (std::ptrdiff_t j = 0; j < HW; ++j) p[j] += v;
    }
  });
}

/// a[i] += b[i] (a half a: the sum rounded once).
template <class S>
void add_(S* a, const S* b, std::ptrdiff_t n) {
  stream(n, 1, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    if constexpr (is_half_v<S>) {
      alignas(64) float bv[512];
      float_runs(a + i0, a + i0, i1 - i0, [&](float* v, std::ptrdiff_t len, std::ptrdiff_t off) {
        half_io::load_row(b + i0 + off, bv, len);
        for (std::ptrdiff_t i = 0; i < len; ++i) v[i] += bv[i];
      });
    } else {
      for (std::ptrdiff_t i = i0; i < i1; ++i) a[i] += b[i];
    }
  });
}

/// a[i] = (b[i] + a[i]) / s (ResnetBlock2D's output: torch's division, not a multiplication).
template <class S, class T = compute_t<S>>
void add_div_(S* a, const S* b, std::ptrdiff_t n, T s) {
  stream(n, 1, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    if constexpr (is_half_v<S>) {
      alignas(64) float bv[512];
      float_runs(a + i0, a + i0, i1 - i0, [&](float* v, std::ptrdiff_t len, std::ptrdiff_t off) {
        half_io::load_row(b + i0 + off, bv, len);
        for (std::ptrdiff_t i = 0; i < len; ++i) v[i] = (bv[i] + v[i]) / s;
      });
    } else {
      for (std::ptrdiff_t i = i0; i < i1; ++i) a[i] = (b[i] + a[i]) / s;
    }
  });
}

/// x[i] = x[i] * s + t (t = 0: a scale).
template <class S, class T = compute_t<S>>
void affine_(S* x, std::ptrdiff_t n, T s, T t) {
  stream(n, 1, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    if constexpr (is_half_v<S>)
      float_runs(x + i0, x + i0, i1 - i0, [&](float* v, std::ptrdiff_t len, std::ptrdiff_t) {
        for (std::ptrdiff_t i = 0; i < len; ++i) v[i] = v[i] * s + t;
      });
    else
      for (std::ptrdiff_t i = i0; i < i1; ++i) x[i] = x[i] * s + t;
  });
}

/// x[b, c] = x[b, c] * (1 + ss[b, c]) + ss[b, C + c] over planes of HW values (AdaGroupNorm).
template <class S, class T = compute_t<S>>
void scale_shift_(S* x, std::ptrdiff_t B, std::ptrdiff_t C, std::ptrdiff_t HW, const T* ss) {
  stream(B * C, HW, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    for (std::ptrdiff_t i = i0; i < i1; ++i) {
      const std::ptrdiff_t b = i / C, c = i % C;
      const T sc = T(1) + ss[b * 2 * C + c], sh = ss[b * 2 * C + C + c];
      S* p = x + i * HW;
      if constexpr (is_half_v<S>)
        float_runs(p, p, HW, [&](float* v, std::ptrdiff_t len, std::ptrdiff_t) {
          for (std::ptrdiff_t j = 0; j < len; ++j) v[j] = v[j] * sc + sh;
        });
      else
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

// ---- float32 <-> half conversions (ops::cast on the CPU; core/half.hpp defines the rounding) ----
//
// bf16 widens by a shift and narrows by integer round-to-nearest-even (NaN made quiet); f16 by
// F16C's vcvtph2ps / vcvtps2ph in the AVX2 and AVX-512 copies, whose rounding (nearest even,
// subnormals kept, from 65520 on infinity, NaN quiet with its payload's top bits) is exactly
// half.hpp's. The baseline copy and the tails use half.hpp's scalar functions.

/// d[i] = float(s[i]) for bf16 bits s.
inline void widen_bf16(const std::uint16_t* s, float* d, std::ptrdiff_t n) {
  stream(n, 1, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) { half_io::load_row(reinterpret_cast<const bf16*>(s) + i0, d + i0, i1 - i0); });
}
/// d[i] = bf16 bits of s[i], rounded to nearest even.
inline void narrow_bf16(const float* s, std::uint16_t* d, std::ptrdiff_t n) {
  stream(n, 1, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) { half_io::store_row(s + i0, reinterpret_cast<bf16*>(d) + i0, i1 - i0); });
}
/// d[i] = float(s[i]) for IEEE binary16 bits s.
inline void widen_f16(const std::uint16_t* s, float* d, std::ptrdiff_t n) {
  stream(n, 1, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) { half_io::load_row(reinterpret_cast<const f16*>(s) + i0, d + i0, i1 - i0); });
}
/// d[i] = binary16 bits of s[i], rounded to nearest even.
inline void narrow_f16(const float* s, std::uint16_t* d, std::ptrdiff_t n) {
  stream(n, 1, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) { half_io::store_row(s + i0, reinterpret_cast<f16*>(d) + i0, i1 - i0); });
}

