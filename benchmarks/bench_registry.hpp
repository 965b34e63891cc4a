#pragma once
// Perf mode of the op registry (tests/ops/op_cases.hpp), shared by bench_ops.cpp (CPU) and
// bench_cuda.cu: every case at its Perf shapes x every timed variant of the device that may
// change it (tests/ops/variants.hpp, tests/cuda/variants.hpp), registered as
// "ops/<op>/<params>" (the default variant) or "ops/<op>[<variant>]/<params>". The test binaries
// validate the same cases and variants against their references (tests/ops/check.hpp), so what
// is timed here is what was validated there.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "../tests/ops/op_cases.hpp"
#include "../tests/ops/variants.hpp"

namespace bench {

/// Registers the registry's cases for device D. reg(name, fn) registers one benchmark (and may
/// set its timing); time(state, run, bytes, flops) runs the timed loop of an OpRun.
template <class D, class Reg, class Time>
void register_op_cases(Reg reg, Time time) {
  static const auto cases = dbops::op_cases<D>(dbops::Size::Perf);
  static const auto variants = dbops::Variants<D>::list();
  for (std::size_t i = 0; i < cases.size(); ++i)
    for (std::size_t vi = 0; vi < variants.size(); ++vi) {
      const dbops::Variant& v = variants[vi];
      if (!v.timed || (vi > 0 && !(v.paths & cases[i].paths)) || (v.available && !v.available())) continue;
      reg("ops/" + cases[i].op + (vi > 0 ? "[" + v.name + "]" : "") + "/" + cases[i].params, [i, vi, time](benchmark::State& s) {
        // One case's inputs live at a time: Google Benchmark calls a case's function several
        // times (to size the iteration count), and the next case starts with the previous freed.
        static std::size_t current = ~std::size_t(0);
        static std::unique_ptr<dbops::OpRun<D>> run;
        if (current != i) {
          run.reset();
          run = std::make_unique<dbops::OpRun<D>>(cases[i].make());
          current = i;
        }
        const auto guard = variants[vi].enter();
        time(s, *run, cases[i].bytes, cases[i].flops);
      });
    }
}

}  // namespace bench
