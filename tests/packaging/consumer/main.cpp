// Includes one block header (not the umbrella: a light build), checks the version macros and
// runs GroupNorm on a case small enough to verify by hand; forward.cpp runs the U-Nets. With an
// installed CUDA module (the package then defines DIFFBLOCKS_CUDA_MODULE_DIR), the runtime must
// find and open it from here: a program outside the prefix, so only that directory leads to it.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include <diffblocks/blocks/group_norm.hpp>
#include <diffblocks/version.hpp>
#ifdef DIFFBLOCKS_CUDA_MODULE_DIR
#include <diffblocks/runtime/cuda_module.hpp>
#endif

static_assert(DIFFBLOCKS_VERSION_NUMBER ==
                  DIFFBLOCKS_VERSION_MAJOR * 10000 + DIFFBLOCKS_VERSION_MINOR * 100 + DIFFBLOCKS_VERSION_PATCH,
              "version number");
static_assert(diffblocks::version().minor == DIFFBLOCKS_VERSION_MINOR, "version()");

#ifdef CONSUMER_FORWARDS
std::string run_forwards();  // forward.cpp
#endif

int main() {
  if (std::strcmp(DIFFBLOCKS_VERSION, EXPECTED_VERSION) != 0 ||
      std::strcmp(diffblocks::version_string(), EXPECTED_VERSION) != 0) {
    std::fprintf(stderr, "version.hpp says %s, the build says %s\n", DIFFBLOCKS_VERSION, EXPECTED_VERSION);
    return 1;
  }
  // One group over [1, 2, 3, 4]: mean 2.5, biased variance 1.25.
  diffblocks::GroupNorm<> norm(1, 1);
  auto x = diffblocks::Tensor<float, 4>::from_shape({1, 1, 1, 4});
  for (int i = 0; i < 4; ++i) x(0, 0, 0, i) = float(i + 1);
  const auto y = norm.forward(x);
  for (int i = 0; i < 4; ++i) {
    const double want = (i + 1 - 2.5) / std::sqrt(1.25 + 1e-5);
    if (std::fabs(y(0, 0, 0, i) - want) > 1e-5) {
      std::fprintf(stderr, "GroupNorm: y[%d] = %g, expected %g\n", i, double(y(0, 0, 0, i)), want);
      return 1;
    }
  }
#ifdef CONSUMER_FORWARDS
  const std::string forwards = run_forwards();
  std::printf("consumer (%s): %s\n", CONSUMER_MODE, forwards.c_str());
  if (forwards.find(" OK ") == std::string::npos) return 1;
#endif
#ifdef DIFFBLOCKS_CUDA_MODULE_DIR
  try {
    const auto& cuda = diffblocks::runtime::cuda_backend();  // opened and checked, not run: no GPU needed
    std::printf("CUDA module in %s: the '%s' backend of diffblocks %s\n", DIFFBLOCKS_CUDA_MODULE_DIR, cuda.device,
                cuda.library_version);
  } catch (const diffblocks::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
#endif
  std::printf("consumer (%s): diffblocks %s, GroupNorm OK\n", CONSUMER_MODE, DIFFBLOCKS_VERSION);
  return 0;
}
