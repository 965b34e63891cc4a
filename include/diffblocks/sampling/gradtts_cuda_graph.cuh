#pragma once
// Grad-TTS reverse diffusion (the deterministic ODE sampler) on the Cuda device as a CUDA graph:
// one Euler step is captured once and replayed for every later step, so a step costs one graph
// launch instead of a few hundred kernel launches and four host synchronisations. At batch 1 a
// step's kernels are short enough that launching them, not running them, set the pace.
//
// How a step stays the same graph at every step: nothing that changes between steps is a kernel
// argument. The schedule (t_i and beta_i for every step) is uploaded once; a step counter lives
// on the device; the step's first kernel fills t from the schedule at the counter, its last
// kernel advances the counter. The sample's NaN/Inf check, on the host after every step in the
// eager sampler, becomes a device flag (the first step that produced a non-finite value), read
// once at the end; the error names the same step and t.
//
// Order: step 1 runs eagerly (it checks the inputs, makes the cuDNN plans and fills the private
// stream's allocator pool), then step 2's work is captured (relaxed mode: a buffer the pool lacks
// may still be cudaMalloc'ed) and the graph is launched for steps 2..N. The capture records
// the addresses of the step's temporaries: they come from a stream of the sampler's own, whose
// pool no other work touches, and stay reserved until the sampler returns. Should the capture
// fail, the remaining steps run eagerly (the same kernels: identical results).
//
// Results are bit-identical to reverse_diffusion's eager loop (same kernels and arguments).
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "diffblocks/core/cuda/allocator.hpp"
#include "diffblocks/ops/cuda/common.cuh"
#include "diffblocks/ops/cuda/elementwise.cuh"
#include "diffblocks/sampling/gradtts_ops.hpp"
#include "diffblocks/sampling/gradtts_schedule.hpp"

namespace diffblocks {

template <>
struct has_graph_sampler<Cuda> : std::true_type {};

namespace cuda {

namespace detail {
inline std::atomic<std::uint64_t>& sampler_graph_launch_count() {
  static std::atomic<std::uint64_t> n{0};
  return n;
}
}  // namespace detail

/// Graph replays of sampler steps in this process so far (diagnostics: a sampler that fell back
/// to eager steps adds none).
inline std::uint64_t sampler_graph_launches() { return detail::sampler_graph_launch_count().load(); }

/// An instantiated CUDA graph (owning; destroyed with the object).
class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  ~Graph() {
    if (exec_) (void)cudaGraphExecDestroy(exec_);
    if (graph_) (void)cudaGraphDestroy(graph_);
  }

  /// Captures what f() enqueues on `s` (which must be the current stream while f runs). Returns
  /// false, with the stream usable again and nothing captured, if f or the capture failed.
  template <class F>
  bool capture(cudaStream_t s, F&& f) {
    if (cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    bool ok = true;
    try {
      f();
    } catch (const std::exception&) {
      ok = false;
    }
    cudaGraph_t g = nullptr;
    const cudaError_t e = cudaStreamEndCapture(s, &g);
    if (e != cudaSuccess || !ok || !g) {
      (void)cudaGetLastError();
      if (g) (void)cudaGraphDestroy(g);
      return false;
    }
    graph_ = g;
    if (cudaGraphInstantiate(&exec_, graph_, 0) != cudaSuccess) {
      (void)cudaGetLastError();
      exec_ = nullptr;
      return false;
    }
    return true;
  }

  void launch(cudaStream_t s) const { DIFFBLOCKS_CUDA_CHECK(cudaGraphLaunch(exec_, s)); }

 private:
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

}  // namespace cuda

namespace ops {
namespace cuda_detail {

/// A step's (t, beta) in the device schedule.
using GradTTSStepF = ::diffblocks::detail::GradTTSStep<float>;

/// Step start: t[b] = schedule[counter].t for every batch item.
template <int = 0>
__global__ void gradtts_graph_begin_kernel(const int* counter, const GradTTSStepF* schedule, float* t, int B) {
  const float v = schedule[*counter].t;
  for (int b = threadIdx.x; b < B; b += blockDim.x) t[b] = v;
}

/// Step end: the counter moves on.
template <int = 0>
__global__ void gradtts_graph_end_kernel(int* counter) {
  ++*counter;
}

/// gradtts_step_'s ODE update with beta read from the schedule at the device counter; the first
/// step (from 1) that leaves a non-finite value is kept in *bad_step.
template <class T>
void gradtts_graph_step_(Tensor<T, 3, Cuda>& xt, const Tensor<T, 3, Cuda>& mu, const Tensor<T, 3, Cuda>& est,
                         const Tensor<T, 3, Cuda>& mask, const GradTTSStepF* schedule, const int* counter,
                         int* bad_step, T h) {
  const index_t F = xt.shape(1), W = xt.shape(2);
  T* xp = xt.data();
  const T *mp = mu.data(), *ep = est.data(), *mk = mask.data();
  for_each_plane(static_cast<index_t>(xt.shape(0)) * F, W, [=] __device__(index_t r, index_t w) {
    const index_t i = r * W + w;
    const T y = gradtts_ode_update(xp[i], mp[i], ep[i], mk[(r / F) * W + w], schedule[*counter].beta, h);
    xp[i] = y;
    if (!isfinite(y)) atomicCAS(bad_step, 0, *counter + 1);
  });
}

}  // namespace cuda_detail
}  // namespace ops

/// reverse_diffusion's ODE sampler on the Cuda device, as a replayed CUDA graph (see the file
/// comment). Called by reverse_diffusion (sampling/gradtts.hpp) after it checked the arguments.
/// (Options is GradTTSSamplerOptions, a template parameter only because this header comes first.)
template <class Model, class T, class Options>
Tensor<T, 3, Cuda> reverse_diffusion_graph(Cuda, const Model& model, const Tensor<T, 3, Cuda>& z,
                                           const Tensor<T, 3, Cuda>& mask, const Tensor<T, 3, Cuda>& mu,
                                           const Options& opt, const typename Model::Conditioning& cond) {
  static_assert(std::is_same<T, float>::value, "the Cuda device computes in float32");
  namespace cd = ops::cuda_detail;
  const auto& cfg = model.config();
  const std::size_t B = z.shape(0), F = z.shape(1), W = z.shape(2);
  const int steps = opt.steps;
  const T h = static_cast<T>(1.0 / steps);

  // The schedule: the eager loop's values (sampling/gradtts_schedule.hpp).
  std::vector<cd::GradTTSStepF> host(static_cast<std::size_t>(steps));
  for (int i = 0; i < steps; ++i)
    host[static_cast<std::size_t>(i)] = detail::gradtts_step_at<T>(i, steps, cfg.beta_min, cfg.beta_max);
  // Everything that outlives the step (and the result) on the caller's stream.
  const cudaStream_t caller = cuda::stream();
  Tensor<T, 3, Cuda> xt = z;
  ops::mul_mask3_(Cuda{}, xt, mask);
  Tensor<T, 1, Cuda> t({B});
  cuda::DeviceTensor<cd::GradTTSStepF, 1> schedule({static_cast<std::size_t>(steps)});
  cuda::DeviceTensor<int, 1> state({2});  // [0]: step counter, [1]: first step (from 1) with NaN/Inf, or 0
  DIFFBLOCKS_CUDA_CHECK(cudaMemcpyAsync(schedule.data(), host.data(), host.size() * sizeof(host[0]),
                                        cudaMemcpyHostToDevice, caller));
  DIFFBLOCKS_CUDA_CHECK(cudaMemsetAsync(state.data(), 0, 2 * sizeof(int), caller));
  int* counter = state.data();
  int* bad_step = state.data() + 1;

  cuda::Stream own;  // the step's temporaries: a pool no other work uses (see the file comment)
  cuda::Event ready;
  ready.record(caller);
  DIFFBLOCKS_CUDA_CHECK(cudaStreamWaitEvent(own.handle(), ready.get(), 0));
  std::vector<cuda::Event> done(static_cast<std::size_t>(steps));
  cuda::Event start;
  {
    cuda::StreamGuard guard(own);
    auto step = [&] {
      cd::launch("gradtts_graph_begin_kernel", cd::gradtts_graph_begin_kernel<>, dim3(1), dim3(128), 0,
                 static_cast<const int*>(counter), static_cast<const cd::GradTTSStepF*>(schedule.data()), t.data(),
                 static_cast<int>(B));
      const Tensor<T, 3, Cuda> est = model.forward(xt, mask, mu, t, cond);
      cd::gradtts_graph_step_(xt, mu, est, mask, schedule.data(), counter, bad_step, h);
      cd::launch("gradtts_graph_end_kernel", cd::gradtts_graph_end_kernel<>, dim3(1), dim3(1), 0, counter);
    };
    start.record(own.handle());
    step();
    done[0].record(own.handle());
    cuda::Graph graph;
    const bool graphed = steps > 1 && graph.capture(own.handle(), step);
    for (int i = 1; i < steps; ++i) {
      if (graphed) {
        graph.launch(own.handle());
        ++cuda::detail::sampler_graph_launch_count();
      } else {
        step();
      }
      done[static_cast<std::size_t>(i)].record(own.handle());
    }
    // Per-step times as the steps finish (all are enqueued already, so waiting costs nothing).
    for (int i = 0; i < steps; ++i) {
      done[static_cast<std::size_t>(i)].synchronize();
      const cuda::Event& before = i ? done[static_cast<std::size_t>(i) - 1] : start;
      if (opt.progress) opt.progress(i + 1, steps, done[static_cast<std::size_t>(i)].seconds_since(before));
    }
  }
  int flags[2] = {0, 0};
  DIFFBLOCKS_CUDA_CHECK(cudaMemcpyAsync(flags, state.data(), sizeof flags, cudaMemcpyDeviceToHost, own.handle()));
  own.synchronize();
  if (flags[1] > 0) throw detail::gradtts_diverged(flags[1], steps, host[static_cast<std::size_t>(flags[1] - 1)].t);
  return xt;
}

}  // namespace diffblocks
