#pragma once
// The state of a CPU device: its thread pool, its algorithm choices and what blocks do with
// the data they derive from their weights. A `Cpu` device value (device.hpp) shares one
// context; `Cpu{}` outside any model is the process default context, which the old global
// setters (set_num_threads, ops::cpu::set_conv_algorithm, ops::set_attention_algorithm) set.
//
// Why a thread-local "context in effect": the kernels are compiled three times (one copy per
// instruction set, ops/cpu/kernels/) and call parallel_for from deep inside; passing the device
// down every kernel signature would change ~60 functions for no gain. Instead an op's entry
// point, which receives the device, installs its context for the duration of the call
// (DeviceScope), the pool's workers run with their own context installed, and parallel_for
// reads it. A model's forward installs the model's device the same way, so blocks (and user
// blocks snapped into a U-Net) that call `ops::name(D{}, ...)` get that device from `D{}`.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "diffblocks/core/thread_pool.hpp"

namespace diffblocks {
namespace ops {
/// Which softmax attention kernel runs (ops/cpu/attention.hpp).
enum class AttentionAlgorithm {
  Auto,       ///< streaming from 512 keys on, else naive
  Naive,      ///< full score rows per query tile (the reference)
  Streaming,  ///< online softmax over key blocks
};
namespace cpu {
/// How Conv2d computes 3x3 stride-1 padding-1 convolutions (every other shape uses im2col).
enum class ConvAlgorithm {
  Auto,    ///< Winograd F(4x4, 3x3) where it pays (>= 8 channels in and out), else im2col
  Im2col,  ///< always tiled im2col + GEMM: the exact reference, 4x the multiplications
};
}  // namespace cpu
}  // namespace ops

/// What blocks do with the data derived from their weights (Winograd-transformed kernels,
/// packed GEMM panels, transposed-convolution phases).
enum class WeightPreparation {
  Keep,     ///< made at a block's first run (or by prepare()), kept with the block until
            ///< invalidate_prepared() or a state-dict load
  PerCall,  ///< made at every call and dropped: nothing held, weights may change freely
  Auto,     ///< the default: Keep, except that a 3x3 convolution with 4 MiB or more of Winograd
            ///< planes (ops::cpu::kWinogradTapsFrom) keeps its weight's taps in the planes'
            ///< layout (1x the weight, not 4x) and makes the planes at every call, a few at a
            ///< time next to their GEMMs: the same results for 58 % fewer prepared bytes and
            ///< ~1.5 % of a forward (Origin U-Net, T = 512; ~4-7 % at T = 128). Weights edited
            ///< in place still need invalidate_prepared()
};

/// Which implementation runs the ops that have both.
enum class CpuOps {
  Fast,       ///< the CPU's own kernels (SIMD, fused) where it has them
  Reference,  ///< the device-generic implementations (ops/generic/ and beside the blocks): what
              ///< a new device inherits; slower, for checking them and the kernels against them
};

/// Settings of a new CPU context.
struct CpuOptions {
  int threads = 0;  ///< pool size, the calling thread included; 0 = hardware concurrency
  ops::cpu::ConvAlgorithm conv = ops::cpu::ConvAlgorithm::Auto;
  ops::AttentionAlgorithm attention = ops::AttentionAlgorithm::Auto;
  WeightPreparation weights = WeightPreparation::Auto;
  CpuOps ops = CpuOps::Fast;
};

/// What ran on a context, counted at the ops' entry points: proof that a setting took effect.
struct CpuCounters {
  std::atomic<std::uint64_t> winograd_convs{0}, im2col_convs{0};        ///< Conv2d calls per algorithm
  std::atomic<std::uint64_t> naive_attention{0}, streaming_attention{0};  ///< ops::attention calls
  std::atomic<std::uint64_t> weight_preparations{0};  ///< prepared forms made (Keep: once per block)
};

namespace detail {
inline int hardware_threads() {
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}
}  // namespace detail

class CpuContext;
namespace detail {
/// The context in effect on this thread (null: the process default).
inline thread_local CpuContext* current_cpu_context = nullptr;
}  // namespace detail

class CpuContext : public std::enable_shared_from_this<CpuContext> {
 public:
  explicit CpuContext(const CpuOptions& o = {})
      : pool_(o.threads > 0 ? o.threads : detail::hardware_threads(),
              [this] { detail::current_cpu_context = this; }),
        conv_(o.conv),
        attention_(o.attention),
        weights_(o.weights),
        ops_(o.ops) {}
  CpuContext(const CpuContext&) = delete;
  CpuContext& operator=(const CpuContext&) = delete;

  ThreadPool& pool() { return pool_; }
  int threads() const { return pool_.size(); }
  /// Resizes the pool (a call running on it finishes first).
  void set_threads(int n) {
    if (n != pool_.size()) pool_.resize(n);
  }
  /// Why the pool has fewer threads than last asked for ("" when it has them all).
  const std::string& thread_start_failure() const { return pool_.start_failure(); }

  ops::cpu::ConvAlgorithm conv_algorithm() const { return conv_.load(); }
  void set_conv_algorithm(ops::cpu::ConvAlgorithm a) { conv_.store(a); }
  ops::AttentionAlgorithm attention_algorithm() const { return attention_.load(); }
  void set_attention_algorithm(ops::AttentionAlgorithm a) { attention_.store(a); }
  WeightPreparation weight_preparation() const { return weights_.load(); }
  void set_weight_preparation(WeightPreparation w) { weights_.store(w); }
  CpuOps ops() const { return ops_.load(); }
  void set_ops(CpuOps o) { ops_.store(o); }

  CpuCounters& counters() { return counters_; }

 private:
  ThreadPool pool_;
  std::atomic<ops::cpu::ConvAlgorithm> conv_;
  std::atomic<ops::AttentionAlgorithm> attention_;
  std::atomic<WeightPreparation> weights_;
  std::atomic<CpuOps> ops_;
  CpuCounters counters_;
};

/// The process default context (hardware-concurrency threads, Auto algorithms and weights): what
/// `Cpu{}` is outside any model, and what the old global setters change. Immortal, like the
/// allocator's cache: tensors and pools in other static objects may outlive any static here.
inline const std::shared_ptr<CpuContext>& default_cpu_context() {
  static const auto* c = new std::shared_ptr<CpuContext>(std::make_shared<CpuContext>());
  return *c;
}

/// The context in effect on this thread: the one a DeviceScope installed (an op's device, a
/// model's forward, a pool worker's owner), else the process default.
inline CpuContext& current_cpu_context() {
  CpuContext* c = detail::current_cpu_context;
  return c ? *c : *default_cpu_context();
}

}  // namespace diffblocks
