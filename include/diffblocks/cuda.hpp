#pragma once
// The CUDA device: include this (or <diffblocks/diffblocks.hpp>) from a .cu file compiled by
// nvcc with --extended-lambda (CMake: link diffblocks::cuda, which adds the flags, CUDA::cudart
// and CUDA::cublas). Every block and both U-Nets then run as Block<float, db::Cuda>:
//
//   auto model = db::load_origin<float, db::Cuda>("models/grad-tts");   // weights on the GPU
//   auto mel = db::reverse_diffusion(*model, db::cuda::upload(z), db::cuda::upload(mask),
//                                    db::cuda::upload(mu), opt);          // every step on the GPU
//   db::Tensor<float, 3> host = db::cuda::download(mel);
//
// Headers: core/cuda/ (errors, streams, the caching allocator, DeviceTensor and the Cuda policy)
// and ops/cuda/ (the primitives of the device-generic ops, map.cuh, and the Cuda device's own
// kernels: convolutions, GEMMs, attention, fused normalisations, transposes, randn_; half_ops.cuh:
// the same ops on bf16 / f16 tensors, float32 arithmetic). Convolutions run on cuDNN when it can be
// opened at run time (core/cuda/cudnn.hpp), else on the library's own im2col + cuBLAS path.
// The rest of the library stays CUDA-free: g++ never sees this file (diffblocks.hpp pulls it in
// only under __CUDACC__).
#if !defined(__CUDACC__)
#error "diffblocks/cuda.hpp holds CUDA kernels: include it from a .cu file compiled by nvcc (see docs/cuda.md)"
#endif

#define DIFFBLOCKS_HAS_CUDA 1

#include "diffblocks/core/cuda/runtime.hpp"
#include "diffblocks/core/cuda/allocator.hpp"
#include "diffblocks/core/cuda/tensor.hpp"
#include "diffblocks/core/cuda/cudnn.hpp"
#include "diffblocks/ops/cuda/common.cuh"
#include "diffblocks/ops/cuda/map.cuh"
#include "diffblocks/ops/cuda/elementwise.cuh"
#include "diffblocks/ops/cuda/norm.cuh"
#include "diffblocks/ops/cuda/gemm.cuh"
#include "diffblocks/ops/cuda/conv.cuh"
#include "diffblocks/ops/cuda/attention.cuh"
#include "diffblocks/ops/cuda/random.cuh"
#include "diffblocks/ops/cuda/half_ops.cuh"
#include "diffblocks/sampling/gradtts_cuda_graph.cuh"
