// Google Benchmark suite of the op registry on the CPU (tests/ops/op_cases.hpp, Perf shapes: an
// Origin forward at batch 1, T = 512, and the TTS Diffuser's token counts): every op under every
// CPU variant that can change it (default = Auto: Winograd / streaming where they apply;
// [im2col]; [naive] / [streaming] attention), each validated against its plain reference by the
// test binary (test_diffuser.cpp) before it is timed here.
//
//   build/bin/bench_ops [--threads=N] [--benchmark_filter='ops/conv2d']
//
// Counters: GFLOP/s and GFLOP (2 x multiply-adds, for the ops that compute), GB/s (compulsory
// traffic: inputs read and outputs written once). In-place ops get their inputs back between
// iterations, outside the timed region (an activation applied to its own output again and again
// would run into denormals).
#include "bench_common.hpp"
#include "bench_registry.hpp"

namespace {

void time_op(benchmark::State& state, const dbops::OpRun<diffblocks::Cpu>& run, double bytes, double flops) {
  run.launch();  // warm-up: the weight caches, the pool
  for (auto _ : state) {
    if (run.reset) {
      state.PauseTiming();
      run.reset();
      state.ResumeTiming();
    }
    run.launch();
  }
  if (flops > 0) bench::set_flops(state, flops);
  if (bytes > 0) bench::set_bytes(state, bytes);
}

void register_all() {
  bench::register_op_cases<diffblocks::Cpu>(
      [](const std::string& name, std::function<void(benchmark::State&)> fn) {
        benchmark::RegisterBenchmark(name.c_str(), [fn](benchmark::State& s) { fn(s); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond)
            ->MinTime(0.2);
      },
      time_op);
}

}  // namespace

int main(int argc, char** argv) { return bench::run_main(argc, argv, register_all); }
