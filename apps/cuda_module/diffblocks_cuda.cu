// libdiffblocks_cuda.so: the runtime's CUDA backend (runtime/abi.h), opened by programs at run
// time (runtime/cuda_module.hpp) so that they link neither cudart nor cuBLAS themselves. The
// backend is the library's own DeviceBackend<Cuda>; this file only exports it. Built with hidden
// visibility: the module's copies of the header-only library never bind to the program's.
#include "diffblocks/cuda.hpp"
#include "diffblocks/runtime/device_backend.hpp"

#define DIFFBLOCKS_MODULE_EXPORT extern "C" __attribute__((visibility("default")))

DIFFBLOCKS_MODULE_EXPORT std::uint32_t diffblocks_backend_abi(void) { return DIFFBLOCKS_BACKEND_ABI; }

DIFFBLOCKS_MODULE_EXPORT const diffblocks_backend* diffblocks_backend_get(void) {
  return diffblocks::runtime::DeviceBackend<diffblocks::Cuda>::table();
}
