// The shared tests of every block, both U-Nets and the samplers (tests/parity/) with f16 models on
// the Cuda device, under the half-precision contract (within 2x the error of PyTorch's autocast
// on the same fixture case; tests/parity/device.hpp's require_close), as tests/test_half_f16.cpp
// runs them on the CPU. Times and sampler states stay float32; the float32-only cases
// (schedulers, forward diffusion) are left to the float32 TU (DBT_HALF). One nvcc translation
// unit per type: the parity headers are included once per TU. Without a GPU every case is
// reported as skipped ("SKIPPED: no CUDA device").
#define DBT_SCALAR ::diffblocks::f16
#define DBT_NAME_PREFIX "f16: "
#define DBT_SCALAR_NS scalar_f16
#define DBT_DEVICE_TAG "[cuda][half][f16]"
#define DBT_HALF 1
#include "cuda_helpers.hpp"
#include "../parity/blocks.hpp"
#include "../parity/diffuser.hpp"
#include "../parity/origin.hpp"
#include "../parity/sampler.hpp"
