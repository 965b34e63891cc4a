#pragma once
// The device is a policy and a value: every block is `Block<T, Device = Cpu>` and calls ops as
// `ops::name(device, ...)`. A device type supplies its tensor container and overloads of the
// ops; a device value carries its state (the CPU's: a shared context with its thread pool and
// algorithm settings, cpu_context.hpp), as Eigen's Tensor devices do. Block code never changes
// between devices.
#include <array>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

#include <xtensor/xtensor.hpp>

#include "diffblocks/core/allocator.hpp"
#include "diffblocks/core/half.hpp"
#include "diffblocks/core/cpu_context.hpp"
#include "diffblocks/core/exact_arguments.hpp"
// The shape-only device: its ops::zeros/full/empty must be declared before any block template
// (blocks call ops:: by qualified name), so it comes with every device.
#include "diffblocks/core/meta.hpp"

namespace diffblocks {

/// Host CPU: xtensor containers (row-major, NCHW) whose storage comes from the caching
/// allocator, kernels compiled per instruction set and chosen at run time (ops/cpu/isa.hpp),
/// and a shared CpuContext: thread pool, conv and attention algorithms, weight preparation.
///
///   db::Cpu two(db::CpuOptions{2});                        // a context of its own, 2 threads
///   model.to(two);                                         // the model runs there from now on
///
/// `Cpu{}` is the device in effect on this thread: the process default context, except inside
/// a model's forward (or a DeviceScope), where it is that model's device. Copies share the
/// context; it lives as long as any copy (a model holding the device keeps it alive).
class Cpu {
 public:
  template <class T, std::size_t N>
  using tensor = xt::xtensor<T, N, xt::layout_type::row_major, memory::CachingAllocator<T>>;
  static constexpr const char* name = "cpu";

  Cpu() : context_(in_effect()) {}
  /// A new context with its own thread pool and settings.
  explicit Cpu(const CpuOptions& options) : context_(std::make_shared<CpuContext>(options)) {}
  explicit Cpu(std::shared_ptr<CpuContext> context) : context_(std::move(context)) {}
  /// The process default context, whatever is in effect on this thread.
  static Cpu process_default() { return Cpu(default_cpu_context()); }

  CpuContext& context() const { return context_ ? *context_ : *default_cpu_context(); }
  int threads() const { return context().threads(); }
  /// Two devices are the same when they share a context.
  bool operator==(const Cpu& o) const { return &context() == &o.context(); }
  bool operator!=(const Cpu& o) const { return !(*this == o); }

 private:
  static std::shared_ptr<CpuContext> in_effect() {
    CpuContext* c = detail::current_cpu_context;
    if (!c) return nullptr;
    auto owned = c->weak_from_this().lock();
    // A context not owned by a shared_ptr (made on the stack by hand) is referenced, not owned.
    return owned ? owned : std::shared_ptr<CpuContext>(std::shared_ptr<CpuContext>(), c);
  }
  std::shared_ptr<CpuContext> context_;  // null: the process default
};

/// While alive, device `d` is the one in effect on this thread (`D{}` returns it; the CPU's
/// parallel_for uses its pool). Ops' entry points and models' forwards open one; devices
/// without per-thread state need nothing.
template <class D>
class DeviceScope {
 public:
  explicit DeviceScope(const D&) {}
};
template <>
class DeviceScope<Cpu> {
 public:
  explicit DeviceScope(const Cpu& d) : saved_(detail::current_cpu_context) {
    detail::current_cpu_context = &d.context();
  }
  ~DeviceScope() { detail::current_cpu_context = saved_; }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  CpuContext* saved_;
};

/// Whether device D runs Grad-TTS's ODE sampler as a replayed graph (sampling/gradtts.hpp calls
/// reverse_diffusion_graph(D{}, ...) then; the Cuda device specialises it).
template <class D>
struct has_graph_sampler : std::false_type {};

/// The container a block stores and returns on device `D`.
template <class T, std::size_t N, class D = Cpu>
using Tensor = typename D::template tensor<T, N>;

/// Rows of a tensor of this shape seen as a matrix over its last axis (the ops that act on the
/// last axis of any rank, on every device): the product of the leading sizes.
template <std::size_t N>
std::size_t leading_rows(const std::array<std::size_t, N>& shape) {
  std::size_t rows = 1;
  for (std::size_t i = 0; i + 1 < N; ++i) rows *= shape[i];
  return rows;
}
/// The shape with its last size replaced.
template <std::size_t N>
std::array<std::size_t, N> with_last(std::array<std::size_t, N> shape, std::size_t last) {
  shape[N - 1] = last;
  return shape;
}

}  // namespace diffblocks
