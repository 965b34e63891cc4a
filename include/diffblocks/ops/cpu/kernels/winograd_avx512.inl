// Kernel source of the AVX-512 copy only (kernels/winograd.inl includes it when
// DIFFBLOCKS_KERNEL_ISA == 2), inside namespace ops::cpu::avx512::winograd.
//
// Winograd's input and output transforms on 16 tiles at once in zmm registers: rows combined
// whole, then the columns of each tile split out with permutes, edges handled by masked loads
// and stores.
namespace zmm {
// GCC 12's unmasked forms of these intrinsics pass _mm512_undefined_*() as the merge source,
// which -Wall reports as "used uninitialized" in the user's code (GCC PR 105593); the
// full-mask forms with a defined source compile to the same instructions.
inline __m512 unpacklo(__m512 a, __m512 b) { return _mm512_mask_unpacklo_ps(a, 0xFFFF, a, b); }
inline __m512 unpackhi(__m512 a, __m512 b) { return _mm512_mask_unpackhi_ps(a, 0xFFFF, a, b); }
template <int I>
inline __m512 shuffle(__m512 a, __m512 b) {
  return _mm512_mask_shuffle_ps(a, 0xFFFF, a, b, I);
}
template <int I>
inline __m512 shuffle_f32x4(__m512 a, __m512 b) {
  return _mm512_mask_shuffle_f32x4(a, 0xFFFF, a, b, I);
}
/// Lanes I .. 15 of lo, then lanes 0 .. I - 1 of hi (valignd).
template <int I>
inline __m512 alignr(__m512 hi, __m512 lo) {
  const __m512i h = _mm512_castps_si512(hi), l = _mm512_castps_si512(lo);
  return _mm512_castsi512_ps(_mm512_mask_alignr_epi32(h, 0xFFFF, h, l, I));
}

/// o[0..5] = B^T (a0 .. a5), the 1-D input transform of F(4,3), on six vectors.
inline void input_1d(__m512 a0, __m512 a1, __m512 a2, __m512 a3, __m512 a4, __m512 a5, __m512* o) {
  const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
  const __m512 s12 = _mm512_add_ps(a1, a2), d12 = _mm512_sub_ps(a1, a2);
  const __m512 a4m2 = _mm512_sub_ps(a4, a2), a4m3 = _mm512_sub_ps(a4, a3), a4p3 = _mm512_add_ps(a4, a3);
  const __m512 d31 = _mm512_sub_ps(a3, a1);
  o[0] = _mm512_fmadd_ps(four, a0, _mm512_fnmadd_ps(five, a2, a4));
  o[1] = _mm512_fnmadd_ps(four, s12, a4p3);
  o[2] = _mm512_fmadd_ps(four, d12, a4m3);
  o[3] = _mm512_fmadd_ps(two, d31, a4m2);
  o[4] = _mm512_fnmadd_ps(two, d31, a4m2);
  o[5] = _mm512_fmadd_ps(four, a1, _mm512_fnmadd_ps(five, a3, a5));
}

/// The H pass of the input transform (x: float32, or a half type widened as it is loaded) for NV vectors of columns from 4 tx0 - 1 on: the six
/// input rows of tile row ty (zero outside the H x W plane; masked loads at its edges) combined
/// into h[i][0 .. 16 NV).
template <int NV, class In>
inline void input_rows_vec(const In* x, int H, int W, int ty, int tx0, float (*h)[16 * NV]) {
  const int c0 = kTile * tx0 - 1;
  for (int v = 0; v < NV; ++v) {
    const int c = c0 + 16 * v;
    // Lanes with 0 <= c + l < W.
    const int lo = std::clamp(-c, 0, 16), hi = std::clamp(W - c, 0, 16);
    const __mmask16 m = lo < hi ? static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u)) : 0;
    __m512 a[kAlpha];
    for (int j = 0; j < kAlpha; ++j) {
      const int iy = ty * kTile - 1 + j;
      // Masked-off lanes are not read, so the address may lie before the row or past it.
      a[j] = iy < 0 || iy >= H || !m ? _mm512_setzero_ps()
                                     : half_io::load16(x + static_cast<std::ptrdiff_t>(iy) * W + c, m);
    }
    __m512 o[kAlpha];
    input_1d(a[0], a[1], a[2], a[3], a[4], a[5], o);
    for (int i = 0; i < kAlpha; ++i) _mm512_store_ps(h[i] + 16 * v, o[i]);
  }
}

/// Points i*6 .. i*6 + 5 of 16 tiles to dst[k * kstride], the lanes not in `keep` as zeros.
inline void store_points(__m512* o, int i, float* dst, std::ptrdiff_t kstride, __mmask16 keep) {
  if (keep != 0xFFFF)
    for (int k = 0; k < kAlpha; ++k) o[k] = _mm512_maskz_mov_ps(keep, o[k]);
  for (int k = 0; k < kAlpha; ++k) _mm512_storeu_ps(dst + (i * kAlpha + k) * kstride, o[k]);
}

/// The 2-D input transform of 16 tiles side by side, tiles tx0 .. tx0 + 15 of tile row ty of
/// one H x W plane (zero outside it): point k of tile tx0 + l goes to dst[k * kstride + l], or
/// zero for the lanes not in `keep`.
/// Rows first: the six input rows of the tile row (columns 4 tx0 - 1 .. 4 tx0 + 78, in five
/// vectors, masked at the plane's edges) are combined into six rows h[i]; then each h[i] is
/// split into its six column phases h[i][4 l + q] with vector permutes and combined across them.
/// The generic path ran the same arithmetic through memory in short rows (and, on narrow
/// planes, half-empty vectors): ~3x the time.
template <class In>
inline void input_tiles16(const In* x, int H, int W, int ty, int tx0, float* dst, std::ptrdiff_t kstride,
                          __mmask16 keep = 0xFFFF) {
  alignas(64) float h[kAlpha][5 * 16];
  input_rows_vec<5>(x, H, W, ty, tx0, h);
  // Lanes 0..7 of phase q take h[4l + q] from vectors 0:1, lanes 8..15 from vectors 2:3.
  const __m512i idx0 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
  const __m512i one = _mm512_set1_epi32(1);
  for (int i = 0; i < kAlpha; ++i) {
    const __m512 v0 = _mm512_load_ps(h[i]), v1 = _mm512_load_ps(h[i] + 16), v2 = _mm512_load_ps(h[i] + 32);
    const __m512 v3 = _mm512_load_ps(h[i] + 48), v4 = _mm512_load_ps(h[i] + 64);
    __m512 d[kAlpha];
    __m512i idx = idx0;
    for (int q = 0; q < 4; ++q) {
      d[q] = _mm512_mask_blend_ps(0xFF00, _mm512_permutex2var_ps(v0, idx, v1), _mm512_permutex2var_ps(v2, idx, v3));
      idx = _mm512_add_epi32(idx, one);
    }
    // Columns 4l + 4 and 4l + 5: phases 0 and 1 one tile on, the last lane from vector 4.
    d[4] = alignr<1>(v4, d[0]);
    d[5] = alignr<1>(alignr<1>(v4, v4), d[1]);
    __m512 o[kAlpha];
    input_1d(d[0], d[1], d[2], d[3], d[4], d[5], o);
    store_points(o, i, dst, kstride, keep);
  }
}
/// input_tiles16 for two runs of eight tiles that need not be neighbours (tiles txa .. txa + 7
/// of tile row tya in lanes 0..7, txb .. txb + 7 of row tyb in lanes 8..15): on a narrow plane
/// (8 tiles a row at the Origin's lowest level at T = 128) one group spans two tile rows.
template <class In>
inline void input_tiles8x2(const In* x, int H, int W, int tya, int txa, int tyb, int txb, float* dst,
                           std::ptrdiff_t kstride, __mmask16 keep = 0xFFFF) {
  alignas(64) float ha[kAlpha][48], hb[kAlpha][48];
  input_rows_vec<3>(x, H, W, tya, txa, ha);
  input_rows_vec<3>(x, H, W, tyb, txb, hb);
  const __m512i idx0 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
  // Columns 4l + 4 and 4l + 5: lanes one on, the last lane of each run from its third vector
  // (e holds lanes 0..3 of run a's third vector in lanes 0..3, of run b's in lanes 8..11).
  const __m512i idx4 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 16, 9, 10, 11, 12, 13, 14, 15, 24);
  const __m512i idx5 = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 17, 9, 10, 11, 12, 13, 14, 15, 25);
  const __m512i one = _mm512_set1_epi32(1);
  for (int i = 0; i < kAlpha; ++i) {
    const __m512 a0 = _mm512_load_ps(ha[i]), a1 = _mm512_load_ps(ha[i] + 16), a2 = _mm512_load_ps(ha[i] + 32);
    const __m512 b0 = _mm512_load_ps(hb[i]), b1 = _mm512_load_ps(hb[i] + 16), b2 = _mm512_load_ps(hb[i] + 32);
    __m512 d[kAlpha];
    __m512i idx = idx0;
    for (int q = 0; q < 4; ++q) {
      d[q] = _mm512_mask_blend_ps(0xFF00, _mm512_permutex2var_ps(a0, idx, a1), _mm512_permutex2var_ps(b0, idx, b1));
      idx = _mm512_add_epi32(idx, one);
    }
    const __m512 e = shuffle_f32x4<0x00>(a2, b2);
    d[4] = _mm512_permutex2var_ps(d[0], idx4, e);
    d[5] = _mm512_permutex2var_ps(d[1], idx5, e);
    __m512 o[kAlpha];
    input_1d(d[0], d[1], d[2], d[3], d[4], d[5], o);
    store_points(o, i, dst, kstride, keep);
  }
}
/// o[0..3] = A^T (m0 .. m5), the 1-D output transform of F(4,3), on six vectors.
inline void output_1d(__m512 m0, __m512 m1, __m512 m2, __m512 m3, __m512 m4, __m512 m5, __m512* o) {
  const __m512 a = _mm512_add_ps(m1, m2), b = _mm512_sub_ps(m1, m2), c = _mm512_add_ps(m3, m4);
  const __m512 d = _mm512_sub_ps(m3, m4);
  o[0] = _mm512_add_ps(_mm512_add_ps(m0, a), c);
  o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d, b);
  o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), c, a);
  o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d, b), m5);
}

/// The 2-D output transform of 16 tiles side by side, tiles tx0 .. tx0 + 15 of tile row ty
/// (point k of tile tx0 + l at m[k * m_stride + l]; `valid` marks the tiles that exist), plus
/// bias, into the H x W plane out (float32, or a half type: rounded as it is stored). The four column phases of each output row are interleaved
/// with in-lane unpacks and 128-bit shuffles (a 4 x 16 transpose) and stored whole, masked at
/// the plane's right edge.
template <class Out>
inline void output_tiles16(const float* m, std::ptrdiff_t m_stride, __mmask16 valid, int H, int W, int ty, int tx0,
                           float bias, Out* out) {
  __m512 s[kAlpha][kTile];
  for (int i = 0; i < kAlpha; ++i) {
    __m512 v[kAlpha];
    for (int k = 0; k < kAlpha; ++k) v[k] = _mm512_maskz_loadu_ps(valid, m + (i * kAlpha + k) * m_stride);
    output_1d(v[0], v[1], v[2], v[3], v[4], v[5], s[i]);
  }
  __m512 y[kTile][kTile];  // y[r][c]: row r, column c of the 16 tiles
  for (int c = 0; c < kTile; ++c) {
    __m512 o[kTile];
    output_1d(s[0][c], s[1][c], s[2][c], s[3][c], s[4][c], s[5][c], o);
    for (int r = 0; r < kTile; ++r) y[r][c] = o[r];
  }
  const __m512 vb = _mm512_set1_ps(bias);
  for (int r = 0; r < kTile && ty * kTile + r < H; ++r) {
    // u_j lane group g = the 4 pixels of tile 4g + j; then o_g = tiles 4g .. 4g + 3.
    const __m512 t0 = unpacklo(y[r][0], y[r][1]), t1 = unpackhi(y[r][0], y[r][1]);
    const __m512 t2 = unpacklo(y[r][2], y[r][3]), t3 = unpackhi(y[r][2], y[r][3]);
    const __m512 u0 = shuffle<0x44>(t0, t2), u1 = shuffle<0xEE>(t0, t2);
    const __m512 u2 = shuffle<0x44>(t1, t3), u3 = shuffle<0xEE>(t1, t3);
    const __m512 v0 = shuffle_f32x4<0x44>(u0, u1), v1 = shuffle_f32x4<0x44>(u2, u3);
    const __m512 v2 = shuffle_f32x4<0xEE>(u0, u1), v3 = shuffle_f32x4<0xEE>(u2, u3);
    const __m512 o[4] = {shuffle_f32x4<0x88>(v0, v1), shuffle_f32x4<0xDD>(v0, v1),
                         shuffle_f32x4<0x88>(v2, v3), shuffle_f32x4<0xDD>(v2, v3)};
    Out* row = out + static_cast<std::ptrdiff_t>(ty * kTile + r) * W;
    for (int g = 0; g < 4; ++g) {
      const int col = kTile * tx0 + 16 * g, n = std::clamp(W - col, 0, 16);
      if (n > 0) half_io::store16(row + col, _mm512_add_ps(o[g], vb), static_cast<__mmask16>((1u << n) - 1u));
    }
  }
}
}  // namespace zmm
