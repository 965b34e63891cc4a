// Kernel source, compiled once per instruction set (see simd.inl's header).
//
// Loads and stores of float32 values from and to a kernel's storage type S (float, bf16 or
// f16): what lets a kernel read a half tensor and write one with no float32 copy of either.
// load_row / store_row run in vectors on the AVX2 and AVX-512 copies (bf16: a shift and integer
// rounding; f16: F16C), element by element on the baseline copy.
// Rounding is core/half.hpp's, bit for bit (round to nearest even, NaN made quiet; f16 by
// F16C, whose rounding is the same); tests/test_isa.cpp checks every copy.
namespace half_io {

/// v as S (the scalar path: the baseline copy and the tails).
template <class S, class V>
inline S store_value(V v) {
  return S(v);
}

#if DIFFBLOCKS_KERNEL_ISA == 2
// GCC 12 warns on the unmasked conversions' undefined merge operand: the all-ones maskz forms
// compile to the same instructions.
constexpr __mmask16 kAll = 0xFFFF;

/// bf16 bits of v's lanes (round to nearest even; NaN: its top half, made quiet).
inline __m256i bf16_bits16(__m512 v) {
  const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7fff), quiet = _mm512_set1_epi32(0x40);
  const __m512i b = _mm512_castps_si512(v), hi = _mm512_maskz_srli_epi32(kAll, b, 16);
  __m512i r = _mm512_maskz_srli_epi32(kAll, _mm512_add_epi32(_mm512_add_epi32(b, half), _mm512_and_si512(hi, one)), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_or_si512(hi, quiet));
  return _mm512_maskz_cvtepi32_epi16(kAll, r);
}

/// 16 values from p as float32; the lanes outside m are zero and not read (p may then point
/// outside the tensor).
template <class S>
inline __m512 load16(const S* p, __mmask16 m = kAll) {
  if constexpr (std::is_same<S, float>::value) {
    return _mm512_maskz_loadu_ps(m, p);
  } else {
    const __m256i h = _mm256_maskz_loadu_epi16(m, p);
    if constexpr (std::is_same<S, bf16>::value)
      return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(kAll, _mm512_maskz_cvtepu16_epi32(kAll, h), 16));
    else
      return _mm512_maskz_cvtph_ps(kAll, h);
  }
}

/// The lanes of v in m to p, rounded to S.
template <class S>
inline void store16(S* p, __m512 v, __mmask16 m = kAll) {
  if constexpr (std::is_same<S, float>::value) {
    _mm512_mask_storeu_ps(p, m, v);
  } else if constexpr (std::is_same<S, bf16>::value) {
    _mm256_mask_storeu_epi16(p, m, bf16_bits16(v));
  } else {
    _mm256_mask_storeu_epi16(p, m, _mm512_maskz_cvtps_ph(kAll, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
}
#endif

/// d[0, n) = s[0, n) as float32.
template <class S>
inline void load_row(const S* s, float* d, std::ptrdiff_t n) {
  std::ptrdiff_t i = 0;
#if DIFFBLOCKS_KERNEL_ISA == 2
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, load16(s + i));
  if (i < n) {
    const auto m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(d + i, m, load16(s + i, m));
  }
#else
#if DIFFBLOCKS_KERNEL_ISA == 1
  if constexpr (std::is_same<S, bf16>::value) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i),
                          _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))), 16));
  } else if constexpr (std::is_same<S, f16>::value) {
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
  }
#endif
  for (; i < n; ++i) d[i] = static_cast<float>(s[i]);
#endif
}
/// d[0, n) = s[0, n) rounded to S.
template <class S>
inline void store_row(const float* s, S* d, std::ptrdiff_t n) {
  std::ptrdiff_t i = 0;
#if DIFFBLOCKS_KERNEL_ISA == 2
  for (; i + 16 <= n; i += 16) store16(d + i, _mm512_loadu_ps(s + i));
  if (i < n) {
    const auto m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    store16(d + i, _mm512_maskz_loadu_ps(m, s + i), m);
  }
#else
#if DIFFBLOCKS_KERNEL_ISA == 1
  if constexpr (std::is_same<S, bf16>::value) {
    const __m256i one = _mm256_set1_epi32(1), half = _mm256_set1_epi32(0x7fff), quiet = _mm256_set1_epi32(0x40);
    for (; i + 8 <= n; i += 8) {
      const __m256 v = _mm256_loadu_ps(s + i);
      const __m256i b = _mm256_castps_si256(v), hi = _mm256_srli_epi32(b, 16);
      __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(b, half), _mm256_and_si256(hi, one)), 16);
      r = _mm256_blendv_epi8(r, _mm256_or_si256(hi, quiet), _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
      // Every lane is below 2^16: the unsigned-saturating pack keeps it as it is.
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                       _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
    }
  } else if constexpr (std::is_same<S, f16>::value) {
    for (; i + 8 <= n; i += 8)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                       _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
#endif
  for (; i < n; ++i) d[i] = store_value<S>(s[i]);
#endif
}

}  // namespace half_io
