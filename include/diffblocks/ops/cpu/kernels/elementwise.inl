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

// ---- float32 <-> half conversions (ops::cast on the CPU; core/half.hpp defines the rounding) ----
//
// bf16 widens by a shift and narrows by integer round-to-nearest-even (NaN made quiet); f16 by
// F16C's vcvtph2ps / vcvtps2ph in the AVX2 and AVX-512 copies, whose rounding (nearest even,
// subnormals kept, from 65520 on infinity, NaN quiet with its payload's top bits) is exactly
// half.hpp's. The baseline copy and the tails use half.hpp's scalar functions.

/// d[i] = float(s[i]) for bf16 bits s.
inline void widen_bf16(const std::uint16_t* s, float* d, std::ptrdiff_t n) {
  stream(n, 1, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    std::ptrdiff_t i = i0;
#if DIFFBLOCKS_KERNEL_ISA == 2
    const __mmask16 all = 0xFFFF;  // the maskz forms: GCC 12 warns on the unmasked ones' undefined operand
    for (; i + 16 <= i1; i += 16)
      _mm512_storeu_si512(d + i, _mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))), 16));
#elif DIFFBLOCKS_KERNEL_ISA == 1
    for (; i + 8 <= i1; i += 8)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i),
                          _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))), 16));
#endif
    for (; i < i1; ++i) d[i] = bf16_bits_to_float(s[i]);
  });
}

/// d[i] = bf16 bits of s[i], rounded to nearest even.
inline void narrow_bf16(const float* s, std::uint16_t* d, std::ptrdiff_t n) {
  stream(n, 1, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    std::ptrdiff_t i = i0;
#if DIFFBLOCKS_KERNEL_ISA == 2
    const __mmask16 all = 0xFFFF;  // the maskz forms: GCC 12 warns on the unmasked ones' undefined operand
    const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff), quiet = _mm512_set1_epi32(0x40);
    for (; i + 16 <= i1; i += 16) {
      const __m512 v = _mm512_loadu_ps(s + i);
      const __m512i b = _mm512_castps_si512(v), hi = _mm512_maskz_srli_epi32(all, b, 16);
      __m512i r = _mm512_maskz_srli_epi32(all, _mm512_add_epi32(_mm512_add_epi32(b, half), _mm512_and_si512(hi, one)), 16);
      r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_or_si512(hi, quiet));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), _mm512_maskz_cvtepi32_epi16(all, r));
    }
#elif DIFFBLOCKS_KERNEL_ISA == 1
    const __m256i one = _mm256_set1_epi32(1), half = _mm256_set1_epi32(0x7fff), quiet = _mm256_set1_epi32(0x40);
    for (; i + 8 <= i1; i += 8) {
      const __m256 v = _mm256_loadu_ps(s + i);
      const __m256i b = _mm256_castps_si256(v), hi = _mm256_srli_epi32(b, 16);
      __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(b, half), _mm256_and_si256(hi, one)), 16);
      r = _mm256_blendv_epi8(r, _mm256_or_si256(hi, quiet), _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
      // Every lane is below 2^16: the unsigned-saturating pack keeps it as it is.
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                       _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
    }
#endif
    for (; i < i1; ++i) d[i] = float_to_bf16_bits(s[i]);
  });
}

/// d[i] = float(s[i]) for IEEE binary16 bits s.
inline void widen_f16(const std::uint16_t* s, float* d, std::ptrdiff_t n) {
  stream(n, 1, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    std::ptrdiff_t i = i0;
#if DIFFBLOCKS_KERNEL_ISA == 2
    const __mmask16 all = 0xFFFF;  // the maskz forms: GCC 12 warns on the unmasked ones' undefined operand
    for (; i + 16 <= i1; i += 16)
      _mm512_storeu_ps(d + i, _mm512_maskz_cvtph_ps(all, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))));
#elif DIFFBLOCKS_KERNEL_ISA == 1
    for (; i + 8 <= i1; i += 8) _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
#endif
    for (; i < i1; ++i) d[i] = f16_bits_to_float(s[i]);
  });
}

/// d[i] = binary16 bits of s[i], rounded to nearest even.
inline void narrow_f16(const float* s, std::uint16_t* d, std::ptrdiff_t n) {
  stream(n, 1, [&](std::ptrdiff_t i0, std::ptrdiff_t i1) {
    std::ptrdiff_t i = i0;
#if DIFFBLOCKS_KERNEL_ISA == 2
    const __mmask16 all = 0xFFFF;  // the maskz forms: GCC 12 warns on the unmasked ones' undefined operand
    for (; i + 16 <= i1; i += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i),
                          _mm512_maskz_cvtps_ph(all, _mm512_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#elif DIFFBLOCKS_KERNEL_ISA == 1
    for (; i + 8 <= i1; i += 8)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                       _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
    for (; i < i1; ++i) d[i] = float_to_f16_bits(s[i]);
  });
}
