#pragma once
// The few SIMD primitives the hand-written float32 kernels need, on GCC/clang vector types of
// the widest width the target has (AVX-512, AVX, else SSE). Arithmetic operators come from the
// vector extension; what it lacks (fused multiply-add that does not depend on -ffp-contract,
// max, a fast exp2) is here, so the kernels read the same on every width.
#include <cstddef>
#include <cstring>

#if defined(__FMA__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace diffblocks {
namespace ops {
namespace cpu {
namespace simd {

#if defined(__AVX512F__)
constexpr int kBytes = 64;
#elif defined(__AVX__)
constexpr int kBytes = 32;
#else
constexpr int kBytes = 16;
#endif
constexpr int kFloats = kBytes / static_cast<int>(sizeof(float));

typedef float vf __attribute__((vector_size(kBytes)));
typedef unsigned vu __attribute__((vector_size(kBytes)));  // bit patterns (shifts wrap)

inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof(vf));
  return v;
}
inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof(vf)); }
inline vf splat(float x) { return vf{} + x; }

/// a * b + c, fused where the target has FMA whatever -ffp-contract says (a consumer compiling
/// with -std=c++17 gets -ffp-contract=off from GCC, which would split every product).
inline vf fmadd(vf a, vf b, vf c) {
#if defined(__AVX512F__)
  return _mm512_fmadd_ps(a, b, c);
#elif defined(__FMA__) && defined(__AVX__)
  return _mm256_fmadd_ps(a, b, c);
#elif defined(__FMA__)
  return _mm_fmadd_ps(a, b, c);
#else
  return a * b + c;
#endif
}

inline vf max(vf a, vf b) { return a > b ? a : b; }

/// 2^x for x <= 0 (relative error < 1e-7; NaN stays NaN). Below -125 it returns 2^-125 instead
/// of underflowing (the result's exponent is built by integer addition): callers use it for
/// softmax weights relative to the row maximum, where 1e-38 and 0 are the same.
///
/// x = n + f with n = round(x) (the 1.5 * 2^23 trick, exact for |x| < 2^22) and |f| <= 1/2;
/// 2^f by a degree-6 polynomial (a relative least-squares fit, 9.7e-8 evaluated in float);
/// 2^n added to the exponent bits.
inline vf exp2_nonpositive(vf x) {
  const vf lo = splat(-125.0f), magic = splat(12582912.0f);  // 1.5 * 2^23
  x = x < lo ? lo : x;
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

}  // namespace simd
}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
