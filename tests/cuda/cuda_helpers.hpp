#pragma once
// Shared by the CUDA test translation units (compiled by nvcc): the skip without a GPU, moving
// tensors between devices, and the Cuda device for the shared test bodies (tests/parity/*.hpp,
// see tests/parity/device.hpp).
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "../helpers.hpp"
#include "diffblocks/cuda.hpp"

namespace dbt {

using db::Cpu;
using db::Cuda;

/// True when a CUDA device can be used; otherwise WARNs the line ctest's SKIP_REGULAR_EXPRESSION
/// matches (tests/CMakeLists.txt), so the case is reported as skipped, not passed.
inline bool have_gpu() {
  if (db::cuda::available()) return true;
  WARN("SKIPPED: no CUDA device (" << db::cuda::device_unavailable_reason() << ")");
  return false;
}

#define DBT_REQUIRE_GPU() \
  do {                    \
    if (!::dbt::have_gpu()) return; \
  } while (0)

template <std::size_t N>
db::Tensor<float, N, Cuda> up(const db::Tensor<float, N>& x) {
  return db::cuda::upload(x);
}
template <std::size_t N>
db::Tensor<float, N> down(const db::Tensor<float, N, Cuda>& x) {
  return db::cuda::download(x);
}

inline std::optional<db::Tensor<float, 2, Cuda>> up(const std::optional<db::Tensor<float, 2>>& x) {
  if (!x) return std::nullopt;
  return db::cuda::upload(*x);
}

// ---- the device of the shared test bodies ----
using Dev = db::Cuda;
inline bool device_ready() { return have_gpu(); }
/// A checkout sent to a GPU machine may leave out the 15 MB origin_a/b/c models.
inline bool fixture_may_be_missing() { return true; }
inline std::string device_description() {
  return db::cuda::device_description() + "; cuDNN: " + db::cuda::cudnn::status();
}

}  // namespace dbt

#ifndef DBT_DEVICE_TAG  // the half-precision TUs (test_cuda_bf16.cu, test_cuda_f16.cu) set their own
#define DBT_DEVICE_TAG "[cuda]"
#endif
#include "../parity/device.hpp"
