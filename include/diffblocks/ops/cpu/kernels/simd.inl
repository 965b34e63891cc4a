// Kernel source, compiled once per instruction set: ops/cpu/kernels.hpp includes it inside
// namespace ops::cpu::<isa> with DIFFBLOCKS_KERNEL_ISA = 0 (generic), 1 (avx2) or 2 (avx512).
// No include guard and no #include of its own (kernels.hpp includes what it needs first).
//
// The few SIMD primitives the hand-written kernels need, on GCC/clang vector types of the copy's
// width (64 bytes on AVX-512, 32 on AVX2, 16 on the baseline). Arithmetic operators come from
// the vector extension; what it lacks (fused multiply-add that does not depend on
// -ffp-contract, max, a fast exp2) is here, so the kernels read the same on every width.
namespace simd {

#if DIFFBLOCKS_KERNEL_ISA == 2
constexpr int kBytes = 64;
#elif DIFFBLOCKS_KERNEL_ISA == 1
constexpr int kBytes = 32;
#else
constexpr int kBytes = 16;
#endif
constexpr int kFloats = kBytes / static_cast<int>(sizeof(float));

typedef float vf __attribute__((vector_size(kBytes)));
typedef double vd __attribute__((vector_size(kBytes)));
typedef unsigned vu __attribute__((vector_size(kBytes)));  // bit patterns (shifts wrap)

/// The vector of T (float or double) and its lane count.
template <class T>
struct Vec;
template <>
struct Vec<float> {
  using type = vf;
};
template <>
struct Vec<double> {
  using type = vd;
};
template <class T>
using vec = typename Vec<T>::type;
template <class T>
constexpr int lanes() {
  return kBytes / static_cast<int>(sizeof(T));
}

template <class V = vf>
inline V load(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <class V>
inline void store(void* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

/// A load that stays in a register. In a register-blocked kernel each loaded vector feeds
/// several FMAs; GCC otherwise folds the load into every one of them as a memory operand (12
/// loads instead of 3 per step of a 4 x 3 block), and the kernel becomes load-bound (measured:
/// 55 % instead of ~85 % of the FMA peak). The empty asm makes the value opaque, so it is
/// loaded once.
template <class V = vf>
inline V load_reg(const void* p) {
  V v = load<V>(p);
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+v"(v));
#endif
  return v;
}

/// x in every lane: one broadcast (`vf{} + x` would add +0.0 first, which the compiler may not
/// drop because of signed zeros, and costs a register holding the zero).
inline vf splat(float x) {
#if DIFFBLOCKS_KERNEL_ISA == 2
  return _mm512_set1_ps(x);
#elif DIFFBLOCKS_KERNEL_ISA == 1
  return _mm256_set1_ps(x);
#elif defined(__SSE2__)
  return _mm_set1_ps(x);
#else
  return vf{} + x;
#endif
}
inline vd splat(double x) {
#if DIFFBLOCKS_KERNEL_ISA == 2
  return _mm512_set1_pd(x);
#elif DIFFBLOCKS_KERNEL_ISA == 1
  return _mm256_set1_pd(x);
#elif defined(__SSE2__)
  return _mm_set1_pd(x);
#else
  return vd{} + x;
#endif
}
inline vu splat_bits(unsigned x) { return vu{} + x; }

/// a * b + c, fused where the copy has FMA whatever -ffp-contract says (a consumer compiling
/// with -std=c++17 gets -ffp-contract=off from GCC, which would split every product).
inline vf fmadd(vf a, vf b, vf c) {
#if DIFFBLOCKS_KERNEL_ISA == 2
  return _mm512_fmadd_ps(a, b, c);
#elif DIFFBLOCKS_KERNEL_ISA == 1
  return _mm256_fmadd_ps(a, b, c);
#elif defined(__FMA__)
  return _mm_fmadd_ps(a, b, c);
#else
  return a * b + c;
#endif
}
inline vd fmadd(vd a, vd b, vd c) {
#if DIFFBLOCKS_KERNEL_ISA == 2
  return _mm512_fmadd_pd(a, b, c);
#elif DIFFBLOCKS_KERNEL_ISA == 1
  return _mm256_fmadd_pd(a, b, c);
#elif defined(__FMA__)
  return _mm_fmadd_pd(a, b, c);
#else
  return a * b + c;
#endif
}

/// Folds the lanes of v with op (associative) in log2(kFloats) steps of swapping halves, then
/// quarters, ... (a lane-by-lane loop compiles to kFloats dependent scalar operations: it was a
/// tenth of a 128-wide LayerNorm). Shuffles only: GCC 12's _mm512_reduce_*_ps and the unmasked
/// 256-bit extracts merge into an undefined vector, which -Wall then reports in the caller's
/// code (GCC PR 105593).
template <class Op>
inline float fold(vf v, Op op) {
#if DIFFBLOCKS_KERNEL_ISA == 2
  v = op(v, _mm512_mask_shuffle_f32x4(v, 0xFFFF, v, v, 0x4E));  // 256-bit halves
  v = op(v, _mm512_mask_shuffle_f32x4(v, 0xFFFF, v, v, 0xB1));  // 128-bit quarters
  v = op(v, _mm512_mask_shuffle_ps(v, 0xFFFF, v, v, 0x4E));
  v = op(v, _mm512_mask_shuffle_ps(v, 0xFFFF, v, v, 0xB1));
#elif DIFFBLOCKS_KERNEL_ISA == 1
  v = op(v, _mm256_permute2f128_ps(v, v, 1));
  v = op(v, _mm256_shuffle_ps(v, v, 0x4E));
  v = op(v, _mm256_shuffle_ps(v, v, 0xB1));
#elif defined(__SSE2__)
  v = op(v, _mm_shuffle_ps(v, v, 0x4E));
  v = op(v, _mm_shuffle_ps(v, v, 0xB1));
#else
  float s = v[0];
  for (int l = 1; l < kFloats; ++l) s = op(vf{} + s, vf{} + v[l])[0];
  return s;
#endif
  return v[0];
}

inline vf max(vf a, vf b) { return a > b ? a : b; }

/// The sum and the maximum of a vector's lanes.
inline float reduce_add(vf v) {
  return fold(v, [&](vf a, vf b) { return a + b; });
}
inline float reduce_max(vf v) {
  return fold(v, [&](vf a, vf b) { return max(a, b); });
}

/// 2^x with x clamped to [-125, 127] (relative error < 1e-7; NaN stays NaN): below -125 it
/// returns 2^-125 instead of underflowing, above 127 2^127 instead of inf (the result's exponent
/// is built by integer addition). Callers use it where those ends do not matter: softmax weights
/// relative to the row maximum (where 1e-38 and 0 are the same), activations that saturate.
///
/// x = n + f with n = round(x) (the 1.5 * 2^23 trick, exact for |x| < 2^22) and |f| <= 1/2;
/// 2^f by a degree-6 polynomial (a relative least-squares fit, 9.7e-8 evaluated in float);
/// 2^n added to the exponent bits.
inline vf exp2(vf x) {
  const vf lo = splat(-125.0f), hi = splat(127.0f), magic = splat(12582912.0f);  // 1.5 * 2^23
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  const vf t = x + magic;
  const vf f = x - (t - magic);
  vf p = splat(1.535336196e-04f);
  p = fmadd(p, f, splat(1.339887502e-03f));
  p = fmadd(p, f, splat(9.618436918e-03f));
  p = fmadd(p, f, splat(5.550332367e-02f));
  p = fmadd(p, f, splat(2.402264774e-01f));
  p = fmadd(p, f, splat(6.931471825e-01f));
  p = fmadd(p, f, splat(1.0f));
  return (vf)((vu)p + ((vu)t << 23));  // t's low mantissa bits hold n
}

/// e^x on exp2 (same clamping: e^-86.6 .. e^88.0). Relative error ~1e-7 + |x| 6e-8: rounding
/// x log2(e) to float costs that much in the exponent.
inline vf exp(vf x) { return exp2(x * splat(1.4426950408889634f)); }

/// 1 / x from the hardware estimate and one Newton step (relative error ~1e-7 on AVX-512's
/// 14-bit estimate, ~2e-7 on AVX2's and SSE's 12-bit one); an exact division elsewhere.
inline vf reciprocal(vf x) {
#if DIFFBLOCKS_KERNEL_ISA == 2
  // The full-mask form: GCC 12's _mm512_rcp14_ps merges into _mm512_undefined_ps(), which
  // -Wall reports as used uninitialized in the caller's code (GCC PR 105593).
  const vf r = _mm512_mask_rcp14_ps(x, 0xFFFF, x);
#elif DIFFBLOCKS_KERNEL_ISA == 1
  const vf r = _mm256_rcp_ps(x);
#elif defined(__SSE2__)
  const vf r = _mm_rcp_ps(x);
#else
  return splat(1.0f) / x;
#endif
#if DIFFBLOCKS_KERNEL_ISA >= 1 || defined(__SSE2__)
  return r * (splat(2.0f) - x * r);
#endif
}

/// |x| and the sign bit of x.
inline vf abs(vf x) { return (vf)((vu)x & splat_bits(0x7fffffffu)); }

/// erf(x), Abramowitz & Stegun 7.1.26 on |x| (absolute error < 1e-6 evaluated in float with
/// the approximate reciprocal), the sign put back: 1 - t (a1 + t (a2 + ... a5 t)) e^(-x^2),
/// t = 1 / (1 + p |x|). |x| is capped at 10 (erf = 1 in float), so +-inf gives +-1.
inline vf erf(vf x) {
  vf ax = abs(x);
  ax = ax > splat(10.0f) ? splat(10.0f) : ax;
  const vf t = reciprocal(splat(1.0f) + splat(0.3275911f) * ax);
  vf q = splat(1.061405429f);
  q = fmadd(q, t, splat(-1.453152027f));
  q = fmadd(q, t, splat(1.421413741f));
  q = fmadd(q, t, splat(-0.284496736f));
  q = fmadd(q, t, splat(0.254829592f));
  const vf y = splat(1.0f) - q * t * exp(-(ax * ax));
  return (vf)((vu)y | ((vu)x & splat_bits(0x80000000u)));
}

/// Applies `f` (vf -> vf) to n contiguous floats in place; the tail goes through a padded
/// vector, so f sees whole vectors only.
template <class F>
inline void transform(float* p, std::ptrdiff_t n, F&& f) {
  std::ptrdiff_t i = 0;
  for (; i + kFloats <= n; i += kFloats) store(p + i, f(load(p + i)));
  if (i < n) {
    float tail[kFloats] = {};
    std::memcpy(tail, p + i, sizeof(float) * static_cast<std::size_t>(n - i));
    store(tail, f(load(tail)));
    std::memcpy(p + i, tail, sizeof(float) * static_cast<std::size_t>(n - i));
  }
}

/// The sum of n contiguous floats, in 4 vector accumulators (4 x kFloats partial sums: a short
/// dependency chain, and the rounding error of a chunk of a few thousand values stays ~1e-7
/// relative).
inline float sum(const float* p, std::ptrdiff_t n) {
  vf a0{}, a1{}, a2{}, a3{};
  std::ptrdiff_t i = 0;
  for (; i + 4 * kFloats <= n; i += 4 * kFloats) {
    a0 += load(p + i);
    a1 += load(p + i + kFloats);
    a2 += load(p + i + 2 * kFloats);
    a3 += load(p + i + 3 * kFloats);
  }
  for (; i + kFloats <= n; i += kFloats) a0 += load(p + i);
  float s = reduce_add((a0 + a1) + (a2 + a3));
  for (; i < n; ++i) s += p[i];
  return s;
}

/// sum (p[i] - c)^2 over n contiguous floats, accumulated like sum().
inline float sum_sq_dev(const float* p, std::ptrdiff_t n, float c) {
  const vf vc = splat(c);
  vf a0{}, a1{}, a2{}, a3{};
  std::ptrdiff_t i = 0;
  for (; i + 4 * kFloats <= n; i += 4 * kFloats) {
    const vf d0 = load(p + i) - vc, d1 = load(p + i + kFloats) - vc;
    const vf d2 = load(p + i + 2 * kFloats) - vc, d3 = load(p + i + 3 * kFloats) - vc;
    a0 = fmadd(d0, d0, a0);
    a1 = fmadd(d1, d1, a1);
    a2 = fmadd(d2, d2, a2);
    a3 = fmadd(d3, d3, a3);
  }
  for (; i + kFloats <= n; i += kFloats) {
    const vf d = load(p + i) - vc;
    a0 = fmadd(d, d, a0);
  }
  float s = reduce_add((a0 + a1) + (a2 + a3));
  for (; i < n; ++i) s += (p[i] - c) * (p[i] - c);
  return s;
}

/// The maximum of n > 0 contiguous floats.
inline float max(const float* p, std::ptrdiff_t n) {
  std::ptrdiff_t i = 0;
  float m = p[0];
  if (n >= kFloats) {
    vf v = load(p);
    for (i = kFloats; i + kFloats <= n; i += kFloats) v = max(v, load(p + i));
    m = reduce_max(v);
  }
  for (; i < n; ++i) m = m > p[i] ? m : p[i];
  return m;
}

}  // namespace simd
