#pragma once
// The Cuda device's variants for the op registry (tests/ops/variants.hpp has the CPU's and the
// rules): the convolution backends (the library's im2col + cuBLAS GEMM path, cuDNN) in float32
// and in TF32, whose 10-bit mantissa inputs give ~1e-3 relative error (PyTorch's allow_tf32),
// and the attention kernels the algorithm setting picks. Every variant is held to at least the
// accuracy contract (1e-4 of max(1, max|reference|)).
#include <memory>
#include <vector>

#include "../ops/variants.hpp"
#include "diffblocks/cuda.hpp"

namespace dbops {

template <>
struct Variants<db::Cuda> {
  static std::vector<Variant> list() {
    using B = db::cuda::ConvBackend;
    using M = db::cuda::MathMode;
    using db::ops::AttentionAlgorithm;
    struct ConvGuards {
      db::cuda::ConvBackendGuard backend;
      db::cuda::MathModeGuard math;
      ConvGuards(B b, M m) : backend(b), math(m) {}
    };
    auto conv = [](B b, M m) { return [b, m]() -> std::shared_ptr<void> { return std::make_shared<ConvGuards>(b, m); }; };
    auto cudnn = [] { return db::cuda::cudnn::available(); };
    auto attention = [](AttentionAlgorithm a) {
      // The Cuda device value carries its own attention choice (not the CPU's setting): the
      // variant makes a device with it the one in effect on this thread.
      return [a] { return std::shared_ptr<void>(std::make_shared<db::DeviceScope<db::Cuda>>(db::Cuda(a))); };
    };
    return {
        {"default", kAll, defaults, 1e-4},
        {"gemm", kConv, conv(B::Gemm, M::F32), 1e-4},
        {"cudnn", kConv, conv(B::Cudnn, M::F32), 1e-4, cudnn},
        {"gemm,tf32", kConv, conv(B::Gemm, M::TF32), 5e-3},
        {"cudnn,tf32", kConv, conv(B::Cudnn, M::TF32), 5e-3, cudnn},
        {"naive", kAttention, attention(AttentionAlgorithm::Naive), 1e-4},
        {"streaming", kAttention, attention(AttentionAlgorithm::Streaming), 1e-4},
    };
  }
};

}  // namespace dbops
