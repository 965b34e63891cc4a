#pragma once
// Test mode of the op registry: every case of op_cases<D>(Size::Test) against its reference,
// under every variant of D that may change it (variants.hpp), one table row each. The Catch2
// case that calls it is tests/parity/ops.hpp (every device's test binary).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <string>
#include <type_traits>
#include <vector>

#include "op_cases.hpp"
#include "variants.hpp"

namespace dbops {

/// max|got - want| and max|want| over equal sizes (NaN where want has NaN must match).
struct Compare {
  bool same_shape = false;
  double err = 0, ref = 0;
};

inline Compare compare(const Result& got, const Result& want) {
  Compare c;
  c.same_shape = got.shape == want.shape && got.v.size() == want.v.size();
  if (!c.same_shape) return c;
  for (std::size_t i = 0; i < want.v.size(); ++i) {
    c.ref = std::max(c.ref, std::fabs(want.v[i]));
    const double e = std::fabs(got.v[i] - want.v[i]);
    if (std::isnan(e))
      c.err = std::isnan(want.v[i]) && std::isnan(got.v[i]) ? c.err : INFINITY;
    else
      c.err = std::max(c.err, e);
  }
  return c;
}

template <class D>
void check_registry(const std::string& device) {
  const std::vector<Variant> variants = Variants<D>::list();
  const auto cases = op_cases<D>(Size::Test);
  std::printf("# %s: %zu op cases x %zu variants (registry: tests/ops/op_cases.hpp)\n", device.c_str(), cases.size(),
              variants.size());
  std::printf("%-34s %-40s %-13s %10s %10s %10s\n", "op", "params", "variant", "max|err|", "max|ref|", "bound");
  int runs = 0, failures = 0, skipped = 0;
  for (const auto& c : cases) {
    if (c.cpu_reference && std::is_same<D, db::Cpu>::value) {
      std::printf("%-34s %-40s %-13s (the reference itself)\n", c.op.c_str(), c.params.c_str(), "-");
      continue;
    }
    const OpRun<D> run = c.make();
    Result want;
    bool have_reference = false;
    for (std::size_t vi = 0; vi < variants.size(); ++vi) {
      const Variant& v = variants[vi];
      if (vi > 0 && !(v.paths & c.paths)) continue;
      if (v.available && !v.available()) {
        std::printf("%-34s %-40s %-13s (not available here)\n", c.op.c_str(), c.params.c_str(), v.name.c_str());
        ++skipped;
        continue;
      }
      if (!have_reference) {
        want = run.reference();
        have_reference = true;
      }
      Result got;
      {
        const auto guard = v.enter();
        got = run.run();
      }
      const Compare cmp = compare(got, want);
      const double scale = std::max(1.0, cmp.ref);
      const double bound = std::max(c.tolerance * (c.absolute ? 1.0 : scale), v.tolerance * scale);
      const bool ok = cmp.same_shape && cmp.err <= bound;
      std::printf("%-34s %-40s %-13s %10.3g %10.3g %10.3g%s\n", c.op.c_str(), c.params.c_str(), v.name.c_str(), cmp.err, cmp.ref,
                  bound,
                  ok               ? ""
                  : cmp.same_shape ? "  FAILED"
                                   : "  FAILED (shape)");
      ++runs;
      if (!ok) ++failures;
      INFO(c.op << " " << c.params << " [" << v.name << "]: max|err| " << cmp.err << ", max|ref| " << cmp.ref << ", bound "
                << bound);
      CHECK(cmp.same_shape);
      CHECK(cmp.err <= bound);
    }
  }
  std::printf("# %s: %d runs of %zu op cases, %d failed, %d not available\n", device.c_str(), runs, cases.size(), failures,
              skipped);
  std::fflush(stdout);
}

}  // namespace dbops
