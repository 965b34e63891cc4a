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
//
// The model type under test is dbt::Scalar (DBT_SCALAR: float unless the including header says
// bf16 / f16, as tests/test_half_*.cpp do): blocks and U-Nets are built as <Scalar, Dev>, dev(x)
// rounds a float32 host input to it, host(y) widens the result, and times and sampler states go
// through dev_f32(x) (float32 in every model type). require_close against a dbt::Reference (a
// fixture output that knows its case) checks the float32 contract, or, for a half Scalar, the
// half-precision one (within 2x PyTorch autocast's error, tests/fixtures/half_peer.safetensors).
// DBT_NAME_PREFIX starts every shared case's name ("" or "bf16: "); DBT_SCALAR_NS names the
// inline namespace of the type's helpers.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "../helpers.hpp"

#if !defined(DBT_DEVICE_TAG)
#error "include tests/parity/on_cpu.hpp or tests/cuda/cuda_helpers.hpp, not tests/parity/device.hpp"
#endif

#ifndef DBT_SCALAR
#define DBT_SCALAR float
#endif
#ifndef DBT_NAME_PREFIX
#define DBT_NAME_PREFIX ""
#endif
// The shared bodies' helpers depend on the model type, so each type's copies live in their own
// inline namespace: without it the float32 and bf16 test files would both define dbt::dev<X>
// (same name, different bodies) and the linker would keep one for both (heap corruption).
#ifndef DBT_SCALAR_NS
#define DBT_SCALAR_NS scalar_f32
#endif

namespace dbt {
inline namespace DBT_SCALAR_NS {

using Scalar = DBT_SCALAR;
/// Whether the model type under test is a half type (the half-precision contract applies).
constexpr bool half_mode = db::is_half_v<Scalar>;

/// x (a host float32 tensor, OriginConditioning or DiffuserInputs) on the device under test, in
/// the model type (times inside DiffuserInputs stay float32).
template <class X>
auto dev(const X& x) {
  if constexpr (!half_mode) return db::to_device(Dev{}, x);
  else if constexpr (db::ops::is_tensor_on<db::Cpu, X>::value) return db::ops::cast<Scalar>(Dev{}, db::to_device(Dev{}, x));
  else return db::cast_inputs<Scalar>(Dev{}, db::to_device(Dev{}, x));
}

/// x (a host float32 tensor) on the device under test in float32: times, sampler states.
template <class X>
auto dev_f32(const X& x) {
  return db::to_device(Dev{}, x);
}

/// y (a device tensor of any type) on the host, in float32.
template <class X>
auto host(const X& y) {
  auto h = db::to_device(db::Cpu{}, y);
  if constexpr (std::is_same<typename decltype(h)::value_type, float>::value) return h;
  else return db::ops::cast<float>(db::Cpu{}, h);
}

/// With DIFFBLOCKS_ACCURACY_REPORT=path set, appends one JSON line per float32 fixture
/// comparison to path: {"case": "origin_a/out", "what": ..., "device": ..., "max_abs_err": ...,
/// "max_abs_ref": ...}. tools/accuracy_report.py turns the file into docs/accuracy.md's tables
/// (the accuracy_table ctest checks the committed ones against it). Lines are appended, so the
/// file collects every test process's results; each line is written whole at once.
inline void report_accuracy(const std::string& key, const std::string& what, const Diff& d) {
  const char* path = std::getenv("DIFFBLOCKS_ACCURACY_REPORT");
  if (path == nullptr || *path == '\0') return;
  const nlohmann::json line = {{"case", key},
                               {"what", what},
                               {"device", device_description()},
                               {"max_abs_err", d.max_abs_err},
                               {"max_abs_ref", d.max_abs_ref}};
  std::ofstream(path, std::ios::app) << line.dump() + "\n" << std::flush;
}

/// The accuracy contract of the model type under test: float32's (helpers.hpp), or for a half
/// type, within 2x the error PyTorch's autocast makes on the same case (the peer; the larger of
/// autocast's and the half-storage peer's, see tools/reference/make_half_fixtures.py), in max
/// |error| and in relative L2 error.
using ::dbt::require_close;  // the float32 contract (helpers.hpp), beside the overload below

template <class A, std::size_t N>
void require_close(const A& got, const Reference<N>& want, const std::string& what) {
  if constexpr (!half_mode) {
    // Shapes compared as the containers' own arrays: comparing tensor_shape()'s vectors made
    // GCC 12 warn (-Wfree-nonheap-object, a false positive) in every TU instantiating this.
    const auto& gs = got.shape();
    const auto& ws = want.shape();
    if (gs.size() == ws.size() && std::equal(gs.begin(), gs.end(), ws.begin()))
      report_accuracy(want.key, what, diff(got, want));
    require_close(got, static_cast<const db::Tensor<float, N>&>(want), what);
  } else {
    REQUIRE(db::tensor_shape(got) == db::tensor_shape(want));
    static const db::SafeTensors peers = db::SafeTensors::load(fixture("half_peer.safetensors"));
    const std::string key = want.key + "/" + (std::is_same<Scalar, db::bf16>::value ? "bf16" : "f16");
    INFO(what << ": peer error " << key);
    REQUIRE(peers.contains(key));
    const auto peer = peers.read_float(key);  // autocast max abs, rel L2; storage peer max abs, rel L2
    REQUIRE(peer.size() == 4);
    REQUIRE(peer[2] > 0.0f);  // the storage peer always rounds: a zero means a broken fixture
    const double peer_max = std::max(peer[0], peer[2]), peer_rel = std::max(peer[1], peer[3]);
    double max_abs = 0, se = 0, sr = 0;
    auto g = got.begin();
    for (auto w = want.begin(); w != want.end(); ++w, ++g) {
      const double d = double(*g) - double(*w);
      max_abs = std::isnan(d) ? INFINITY : std::max(max_abs, std::fabs(d));
      se += d * d;
      sr += double(*w) * double(*w);
    }
    const double rel = sr > 0 ? std::sqrt(se / sr) : std::sqrt(se);
    INFO(key << ": max|err| " << max_abs << " (peer " << peer_max << "), rel L2 " << rel << " (peer " << peer_rel << ")");
    CHECK(max_abs <= 2.0 * peer_max);
    CHECK(rel <= 2.0 * peer_rel);
    CHECK(rel > 1e-5);  // a half-precision result, not the float32 one (which would pass trivially)
  }
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

}  // namespace DBT_SCALAR_NS
}  // namespace dbt

#define DBT_REQUIRE_DEVICE()            \
  do {                                  \
    if (!::dbt::device_ready()) return; \
  } while (0)

// Every shared header brings the device and the model type under test into its own scope.
namespace {
using dbt::Dev;
using dbt::Scalar;
}  // namespace
