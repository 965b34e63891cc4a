#pragma once
// parallel_for and the thread-count settings, on the CPU context in effect (cpu_context.hpp):
// inside an op or a model's forward that is the device's own pool, elsewhere the process
// default's. A call made while that pool is busy (another thread's model on the same context,
// or a nested call from a worker) runs serially instead of waiting, so concurrent models never
// deadlock.
#include <cstddef>
#include <functional>
#include <string>
#include <utility>

#include "diffblocks/core/cpu_context.hpp"
#include "diffblocks/core/thread_pool.hpp"

namespace diffblocks {

/// Sets the thread count of the process default context (what `Cpu{}` means outside a model);
/// a device made with `Cpu(CpuOptions{...})` keeps its own (`Cpu::context().set_threads`).
inline void set_num_threads(int n) { default_cpu_context()->set_threads(n); }
/// Threads of the context in effect on this thread (outside any model: the process default's).
inline int get_num_threads() { return current_cpu_context().threads(); }
/// Why the default context's pool has fewer threads than last asked for ("" when it has them all).
inline std::string thread_start_failure() { return default_cpu_context()->thread_start_failure(); }

/// f(begin, end) over contiguous pieces of [0, n); pieces run concurrently on the pool of the
/// context in effect.
template <class F>
void parallel_for(std::ptrdiff_t n, F&& f) {
  const std::function<void(std::ptrdiff_t, std::ptrdiff_t)> fn = std::forward<F>(f);
  current_cpu_context().pool().run(n, fn);
}

}  // namespace diffblocks
