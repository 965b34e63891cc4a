#pragma once
// The variants of a device the op registry (op_cases.hpp) checks and times: each is a named
// guard (a process-wide setting switched on for as long as the returned handle lives) and the
// paths (op_cases.hpp: Path) whose results it may change. The first variant of a device is its
// default and runs every case; the others run the cases of their paths.
//
// Variants<Cpu>::list() is below; Variants<Cuda>::list() is in tests/cuda/variants.hpp. A new
// setting of either device (an instruction set, a kernel choice) is one line in its list.
#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "diffblocks/diffblocks.hpp"
#include "op_cases.hpp"

namespace dbops {

struct Variant {
  std::string name;
  unsigned paths = kAll;                         // the cases it runs (with the default: all)
  std::function<std::shared_ptr<void>()> enter;  // switches it on until the handle is released
  double tolerance = 0;               // the loosest bound it is held to, relative to max(1, max|reference|) (e.g. TF32)
  std::function<bool()> available{};  // empty: always; else whether this machine runs it
  bool timed = true;                  // false: tests only (bench_ops has --threads)
};

/// A handle that restores `get()`'s value when released, after `set(value)`.
template <class T>
std::shared_ptr<void> setting(T (*get)(), void (*set)(T), T value) {
  const T before = get();
  set(value);
  return std::shared_ptr<void>(nullptr, [set, before](void*) { set(before); });
}

/// The library's defaults: nothing switched.
inline std::shared_ptr<void> defaults() { return nullptr; }

/// The CPU's settings that pick another kernel for some shapes. The default (Auto: Winograd for
/// 3x3 convolutions with >= 8 channels, streaming attention from 512 keys) runs at the
/// process's thread count; the serial and a 3-thread schedule are variants of every op.
template <class D>
struct Variants;  // static std::vector<Variant> list(): D's variants, its default first

template <>
struct Variants<db::Cpu> {
  static std::vector<Variant> list() {
    namespace cpu = db::ops::cpu;
    using db::ops::AttentionAlgorithm;
    auto threads = [](int n) { return [n] { return setting<int>(db::get_num_threads, db::set_num_threads, n); }; };
    auto isa = [](cpu::Isa i) { return [i] { return setting<cpu::Isa>(cpu::isa, cpu::set_isa, i); }; };
    return {
        {"default", kAll, defaults},
        {"im2col", kConv, [] { return setting(cpu::conv_algorithm, cpu::set_conv_algorithm, cpu::ConvAlgorithm::Im2col); }},
        {"naive", kAttention,
         [] { return setting(db::ops::attention_algorithm, db::ops::set_attention_algorithm, AttentionAlgorithm::Naive); }},
        {"streaming", kAttention,
         [] { return setting(db::ops::attention_algorithm, db::ops::set_attention_algorithm, AttentionAlgorithm::Streaming); }},
        // The device-generic implementations (ops/generic/, beside the blocks) in place of the
        // CPU's fast paths: what a new device or dtype inherits, checked here on every case.
        {"reference-ops", kAll,
         [] {
           return setting<db::CpuOps>(+[] { return db::default_cpu_context()->ops(); },
                                      +[](db::CpuOps o) { db::default_cpu_context()->set_ops(o); }, db::CpuOps::Reference);
         },
         0, {}, false},
        {"threads:1", kAll, threads(1), 0, {}, false},
        {"threads:3", kAll, threads(3), 0, {}, false},
        // The lower instruction sets of the run-time dispatch (the default runs the best one).
        {"generic", kAll, isa(cpu::Isa::Generic), 0, [] { return cpu::best_isa() != cpu::Isa::Generic; }},
        {"avx2", kAll, isa(cpu::Isa::Avx2), 0,
         [] { return cpu::best_isa() != cpu::Isa::Avx2 && cpu::isa_supported(cpu::Isa::Avx2); }},
    };
  }
};

}  // namespace dbops
