#pragma once
// The shared test bodies (tests/parity/*.hpp) are written once against `dbt::Dev` and compiled
// into every device's test binary: the CPU binary includes them after on_cpu.hpp, the CUDA
// test TU after tests/cuda/cuda_helpers.hpp. That header defines, before including this one:
//   dbt::Dev                    the device (db::Cpu, db::Cuda)
//   dbt::device_ready()         false: the case is skipped (CUDA without a GPU: WARNs the line
//                               ctest's SKIP_REGULAR_EXPRESSION matches)
//   dbt::fixture_may_be_missing()  true where a trimmed checkout may lack the large fixtures
//   dbt::device_description()   a line naming the device (the op registry's table header)
//   DBT_DEVICE_TAG              a Catch2 tag every shared case gets ("" or "[cuda]")
// Inputs and outputs move with dev(x) (host -> Dev) and host(y) (Dev -> host); on the CPU both
// are copies, so the CPU runs exactly the code the other devices run.
#include <filesystem>
#include <string>

#include "../helpers.hpp"

#if !defined(DBT_DEVICE_TAG)
#error "include tests/parity/on_cpu.hpp or tests/cuda/cuda_helpers.hpp, not tests/parity/device.hpp"
#endif

namespace dbt {

/// x (a host tensor, OriginConditioning or DiffuserInputs) on the device under test.
template <class X>
auto dev(const X& x) {
  return db::to_device(Dev{}, x);
}

/// y (a device tensor) on the host.
template <class X>
auto host(const X& y) {
  return db::to_device(db::Cpu{}, y);
}

/// False (the case is skipped, with a WARN) when `path` is missing and this device's checkout
/// may be trimmed; on the CPU a missing fixture is a failure (the loading REQUIREs it).
inline bool fixture_present(const std::string& path) {
  if (std::filesystem::exists(path) || !fixture_may_be_missing()) return true;
  WARN("fixture " << path << " is missing (a trimmed checkout): case skipped");
  return false;
}

/// m's parameters (a CPU module) copied into d (the same module on Dev), in visit order.
template <class Host, class Device>
void copy_parameters(Host& m, Device& d) {
  std::vector<std::vector<float>> values;
  m.visit([&](const std::string&, auto& t) { values.push_back(db::copy_to_host(db::Cpu{}, t)); });
  std::size_t i = 0;
  d.visit([&](const std::string&, auto& t) {
    REQUIRE(i < values.size());
    REQUIRE(values[i].size() == t.size());
    db::assign_from_host(Dev{}, t, values[i++].data());
  });
  REQUIRE(i == values.size());
}

}  // namespace dbt

#define DBT_REQUIRE_DEVICE()            \
  do {                                  \
    if (!::dbt::device_ready()) return; \
  } while (0)

// Every shared header brings the device under test into its own scope.
namespace {
using dbt::Dev;
}  // namespace
