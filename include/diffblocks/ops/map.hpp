#pragma once
// The primitives every device supplies, on which the device-generic ops (ops/generic/, and the
// model-specific ops beside their blocks) are written once:
//
//   for_each_index(d, n, f)          f(i) for i in [0, n)
//   for_each_row(d, rows, cols, f)   f(r, c) for every (r, c); c runs fastest (rows of a
//                                    contiguous tensor, planes of an NCHW one)
//   copy_rows(d, dst, dst_pitch, src, src_pitch, width, rows)   a strided 2-D copy
//   zeros<T, N>(d, shape)            a tensor of zeros (memset / cudaMemsetAsync)
//
// `f` is a functor whose call operator is DIFFBLOCKS_HD (host and device), holding the raw
// pointers and scalars it needs: the CPU calls it from its pool, the Cuda device from a
// grid-stride kernel. A new device supplies these four and inherits every generic op; it then
// overrides the ops it can do faster (ops/cpu: SIMD kernels; ops/cuda: fused kernels).
//
// The fmath helpers below are the functions generic ops compute with, the same on both sides
// of a .cu file: the host's <cmath> (glibc), and on the device CUDA's float functions, or, for
// the transcendentals whose arguments reach ~1000 (the sinusoidal embeddings, the diffusion
// decay: `*_rn`), the double ones rounded once, which give glibc's correctly rounded float.
#include <cmath>

#include "diffblocks/core/half.hpp"  // DIFFBLOCKS_HD: host and device under nvcc (the half types use it too)

#include "diffblocks/ops/cpu/map.hpp"
#if defined(__CUDACC__) && !defined(DIFFBLOCKS_NO_CUDA)
#include "diffblocks/ops/cuda/map.cuh"
#endif

namespace diffblocks {
namespace ops {
namespace fmath {

#if defined(__CUDA_ARCH__)
DIFFBLOCKS_HD inline float exp(float x) { return ::expf(x); }
DIFFBLOCKS_HD inline float erf(float x) { return ::erff(x); }
DIFFBLOCKS_HD inline float sqrt(float x) { return ::sqrtf(x); }
DIFFBLOCKS_HD inline float floor(float x) { return ::floorf(x); }
DIFFBLOCKS_HD inline float exp_rn(float x) { return static_cast<float>(::exp(static_cast<double>(x))); }
DIFFBLOCKS_HD inline float sin_rn(float x) { return static_cast<float>(::sin(static_cast<double>(x))); }
DIFFBLOCKS_HD inline float cos_rn(float x) { return static_cast<float>(::cos(static_cast<double>(x))); }
DIFFBLOCKS_HD inline double exp(double x) { return ::exp(x); }
DIFFBLOCKS_HD inline double erf(double x) { return ::erf(x); }
DIFFBLOCKS_HD inline double sqrt(double x) { return ::sqrt(x); }
DIFFBLOCKS_HD inline double floor(double x) { return ::floor(x); }
DIFFBLOCKS_HD inline double exp_rn(double x) { return ::exp(x); }
DIFFBLOCKS_HD inline double sin_rn(double x) { return ::sin(x); }
DIFFBLOCKS_HD inline double cos_rn(double x) { return ::cos(x); }
#else
template <class T> DIFFBLOCKS_HD inline T exp(T x) { return std::exp(x); }
template <class T> DIFFBLOCKS_HD inline T erf(T x) { return std::erf(x); }
template <class T> DIFFBLOCKS_HD inline T sqrt(T x) { return std::sqrt(x); }
template <class T> DIFFBLOCKS_HD inline T floor(T x) { return std::floor(x); }
template <class T> DIFFBLOCKS_HD inline T exp_rn(T x) { return std::exp(x); }
template <class T> DIFFBLOCKS_HD inline T sin_rn(T x) { return std::sin(x); }
template <class T> DIFFBLOCKS_HD inline T cos_rn(T x) { return std::cos(x); }
#endif

}  // namespace fmath
}  // namespace ops
}  // namespace diffblocks
