// The kernel source in the order its parts use each other, included once per copy by
// ops/cpu/kernels.hpp (see simd.inl's header). No include guard.

/// The instruction set of this copy of the kernels.
constexpr Isa kIsa = static_cast<Isa>(DIFFBLOCKS_KERNEL_ISA);

#include "diffblocks/ops/cpu/kernels/simd.inl"
#include "diffblocks/ops/cpu/kernels/half_io.inl"
#include "diffblocks/ops/cpu/kernels/gemm.inl"
#include "diffblocks/ops/cpu/kernels/hash.inl"
#include "diffblocks/ops/cpu/kernels/winograd.inl"
#include "diffblocks/ops/cpu/kernels/conv.inl"
#include "diffblocks/ops/cpu/kernels/elementwise.inl"
#include "diffblocks/ops/cpu/kernels/activation.inl"
#include "diffblocks/ops/cpu/kernels/norm.inl"
#include "diffblocks/ops/cpu/kernels/attention.inl"
#include "diffblocks/ops/cpu/kernels/linear.inl"
#include "diffblocks/ops/cpu/kernels/linear_attention.inl"
