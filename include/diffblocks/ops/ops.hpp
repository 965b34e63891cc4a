#pragma once
// Every device's ops. Block, U-Net and sampler code calls `ops::name(D{}, ...)` with a qualified
// name, which C++ looks up where the template is *defined*: each device's overloads must be
// declared before any block header. So the block headers include this file, which brings the
// CPU ops and, in a translation unit compiled by nvcc (__CUDACC__), the Cuda device's
// (diffblocks/cuda.hpp). Define DIFFBLOCKS_NO_CUDA to keep a .cu file CPU-only.
#include "diffblocks/ops/cpu/attention.hpp"
#include "diffblocks/ops/cpu/fused.hpp"
#include "diffblocks/ops/cpu/ops.hpp"
#include "diffblocks/ops/cpu/scheduler_ops.hpp"
#include "diffblocks/ops/cpu/sequence_ops.hpp"

#if defined(__CUDACC__) && !defined(DIFFBLOCKS_NO_CUDA)
#include "diffblocks/cuda.hpp"
#endif
