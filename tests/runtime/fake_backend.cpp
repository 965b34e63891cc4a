// Modules that are wrong on purpose, for the runtime's checks when it opens a CUDA backend
// (test_runtime.cpp, test_cli.cpp): FAKE_BACKEND_abi999 answers the ABI query with a number no
// program uses; FAKE_BACKEND_not_a_backend exports nothing the runtime looks for.
#include <cstdint>

#if defined(FAKE_BACKEND_abi999)
extern "C" __attribute__((visibility("default"))) std::uint32_t diffblocks_backend_abi(void) { return 999; }
#elif defined(FAKE_BACKEND_not_a_backend)
extern "C" __attribute__((visibility("default"))) int fake_backend_marker(void) { return 1; }
#else
#error "define FAKE_BACKEND_abi999 or FAKE_BACKEND_not_a_backend"
#endif
