// The shared tests of every block, both U-Nets and the samplers (tests/parity/) with bf16 models on
// the CPU, under the half-precision contract: within 2x the error of PyTorch's autocast on the
// same fixture case (tests/parity/device.hpp's require_close, tests/fixtures/half_peer.safetensors).
// Times and sampler states stay float32 (dbt::dev_f32); the float32-only cases (schedulers,
// forward diffusion) are left to the float32 binary (DBT_HALF).
#define DBT_SCALAR ::diffblocks::bf16
#define DBT_NAME_PREFIX "bf16: "
#define DBT_SCALAR_NS scalar_bf16
#define DBT_DEVICE_TAG "[half][bf16]"
#define DBT_HALF 1
#include "parity/on_cpu.hpp"
#include "parity/blocks.hpp"
#include "parity/diffuser.hpp"
#include "parity/origin.hpp"
#include "parity/sampler.hpp"
