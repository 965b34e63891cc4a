#pragma once
// Which copy of the CPU kernels runs (target.hpp): the fastest instruction set that this build
// compiled, the CPU has and the OS saves the registers of, read once with cpuid; the environment
// variable DIFFBLOCKS_CPU_ISA=generic|avx2|avx512 or set_isa() choose a lower one (to test the
// other copies, or to compare them).
//
//   Isa::Generic  the x86-64 baseline (SSE2); on other architectures the only one
//   Isa::Avx2     AVX2 + FMA + F16C (+ BMI1/2): Haswell, Zen 1 and later
//   Isa::Avx512   AVX-512 F, BW, DQ, VL (+ the above): Skylake-SP, Ice Lake, Sapphire Rapids, Zen 4
//
// cpu_features() also reports AVX512-BF16 (the bf16 GEMM's vdpbf16ps kernel runs where the avx512
// copy does and the CPU has it: avx512_bf16_supported), AVX512-FP16 and AMX (unused yet).
#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>

#include "diffblocks/core/error.hpp"
#include "diffblocks/ops/cpu/target.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace diffblocks {
namespace ops {
namespace cpu {

enum class Isa : int { Generic = 0, Avx2 = 1, Avx512 = 2 };
constexpr Isa kAllIsas[] = {Isa::Generic, Isa::Avx2, Isa::Avx512};

/// What the CPU offers. Each AVX flag is set only when the OS also saves the registers it
/// uses (XCR0: YMM state for AVX2/FMA/F16C, opmask + ZMM state for AVX-512, tile state for AMX).
struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false, bmi1 = false, bmi2 = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  // For the bf16/fp16 kernels to come. AMX also needs the process to ask Linux for the tile
  // state (arch_prctl ARCH_REQ_XCOMP_PERM) before its first use.
  bool avx512_bf16 = false, avx512_fp16 = false, amx_tile = false, amx_bf16 = false;
};

namespace detail {

#if defined(__x86_64__) || defined(__i386__)
/// XCR0: which register states the OS saves on a context switch.
inline std::uint64_t read_xcr0() {
  std::uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<std::uint64_t>(edx) << 32) | eax;
}

inline CpuFeatures detect_cpu_features() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1u, avx = (c >> 28) & 1u;
  if (!osxsave || !avx) return f;  // no AVX, or an OS that does not save its registers
  const std::uint64_t xcr0 = read_xcr0();
  const bool ymm = (xcr0 & 0x6) == 0x6;         // SSE + AVX state
  const bool zmm = (xcr0 & 0xe6) == 0xe6;       // + opmask, ZMM 0-15 upper halves, ZMM 16-31
  const bool tiles = (xcr0 & 0x60000) == 0x60000;  // XTILECFG + XTILEDATA
  if (!ymm) return f;
  f.fma = (c >> 12) & 1u;
  f.f16c = (c >> 29) & 1u;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const unsigned max_subleaf = a;
  f.bmi1 = (b >> 3) & 1u;
  f.bmi2 = (b >> 8) & 1u;
  f.avx2 = (b >> 5) & 1u;
  if (zmm) {
    f.avx512f = (b >> 16) & 1u;
    f.avx512dq = (b >> 17) & 1u;
    f.avx512bw = (b >> 30) & 1u;
    f.avx512vl = (b >> 31) & 1u;
    f.avx512_fp16 = (d >> 23) & 1u;
  }
  if (tiles) {
    f.amx_bf16 = (d >> 22) & 1u;
    f.amx_tile = (d >> 24) & 1u;
  }
  if (zmm && max_subleaf >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512_bf16 = (a >> 5) & 1u;
  }
  return f;
}
#else
inline CpuFeatures detect_cpu_features() { return {}; }
#endif

}  // namespace detail

/// The CPU's features, read once.
inline const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detail::detect_cpu_features();
  return f;
}

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512:
      return "avx512";
    case Isa::Avx2:
      return "avx2";
    case Isa::Generic:
      return "generic";
  }
  return "unknown";
}

/// Whether this build has a copy of the kernels for `isa` (all three with dispatch, one without).
constexpr bool isa_compiled(Isa isa) {
  return isa == Isa::Avx512 ? DIFFBLOCKS_CPU_HAS_AVX512
         : isa == Isa::Avx2 ? DIFFBLOCKS_CPU_HAS_AVX2
                            : isa == Isa::Generic && DIFFBLOCKS_CPU_HAS_GENERIC;
}

/// Whether the kernels for `isa` can run here: compiled, and every feature their target region
/// enables (target.hpp) is on this CPU. A one-copy build runs its copy: the compiler was told
/// the machine has it.
inline bool isa_supported(Isa isa) {
  if (!isa_compiled(isa)) return false;
  if (!DIFFBLOCKS_CPU_DISPATCH) return true;
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.f16c && f.bmi1 && f.bmi2;
  switch (isa) {
    case Isa::Avx512:
      return avx2 && f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl;
    case Isa::Avx2:
      return avx2;
    case Isa::Generic:
      return true;
  }
  return false;
}

/// Whether the kernels of the avx512bf16 region (target.hpp: the avx512 copy's features plus
/// AVX512-BF16) can run here: compiled, the avx512 copy can run and the CPU has AVX512-BF16 (a
/// one-copy build compiled them only if its flags enabled the feature). Callers also ask that
/// isa() is Isa::Avx512, so that DIFFBLOCKS_CPU_ISA and set_isa() turn them off with the copy.
inline bool avx512_bf16_supported() {
  if (!DIFFBLOCKS_CPU_HAS_AVX512_BF16 || !isa_supported(Isa::Avx512)) return false;
  return !DIFFBLOCKS_CPU_DISPATCH || cpu_features().avx512_bf16;
}

/// The fastest instruction set that can run here.
inline Isa best_isa() {
  Isa best = Isa::Generic;
  for (Isa i : kAllIsas)
    if (isa_supported(i)) best = i;
  return best;
}

/// "generic, avx2, avx512": the instruction sets that can run here (by `supported`), in order.
inline std::string supported_isa_names(bool (*supported)(Isa) = isa_supported) {
  std::string s;
  for (Isa i : kAllIsas)
    if (supported(i)) s += (s.empty() ? "" : ", ") + std::string(isa_name(i));
  return s;
}

namespace detail {

/// The choice made at first use: DIFFBLOCKS_CPU_ISA if set (and valid), else best_isa(). A bad
/// value is kept as an error that isa() throws until set_isa() makes a choice.
struct IsaChoice {
  std::atomic<int> active{static_cast<int>(Isa::Generic)};
  std::atomic<bool> failed{false};
  std::string error;
  IsaChoice();
};

/// The error for DIFFBLOCKS_CPU_ISA=value (case-insensitive), or "" if the value can be used
/// (`out` set to it); `supported` says what can run (isa_supported; tests pass their own).
inline std::string parse_isa_env(const std::string& value, Isa& out, bool (*supported)(Isa) = isa_supported) {
  std::string lower;
  for (char ch : value) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  for (Isa i : kAllIsas)
    if (lower == isa_name(i)) {
      if (!supported(i)) {
        const char* why = isa_compiled(i) ? "this CPU does not support it"
                                          : "this build has one copy of the kernels (DIFFBLOCKS_CPU_DISPATCH=0)";
        return "DIFFBLOCKS_CPU_ISA='" + value + "': " + why + "; supported here: " + supported_isa_names(supported);
      }
      out = i;
      return "";
    }
  return "DIFFBLOCKS_CPU_ISA='" + value + "' is not an instruction set; accepted: generic, avx2, avx512";
}

inline IsaChoice::IsaChoice() {
  Isa chosen = best_isa();
  const char* env = std::getenv("DIFFBLOCKS_CPU_ISA");
  if (env && *env) error = parse_isa_env(env, chosen);  // empty: as if unset
  active = static_cast<int>(chosen);
  failed = !error.empty();
}

inline IsaChoice& isa_choice() {
  static IsaChoice c;
  return c;
}

}  // namespace detail

/// The instruction set whose kernels run now (cheap: one load after the first call). Throws a
/// ConfigError naming DIFFBLOCKS_CPU_ISA, its value and the accepted or supported ones if that
/// variable is set to something unusable (until set_isa() chooses).
inline Isa isa() {
  detail::IsaChoice& c = detail::isa_choice();
  if (c.failed.load(std::memory_order_relaxed)) throw ConfigError(c.error);
  return static_cast<Isa>(c.active.load(std::memory_order_relaxed));
}

/// Runs the kernels of `isa` from now on, in every thread (ops already running finish on the
/// one they started with). Throws a ConfigError if it cannot run here (isa_supported).
inline void set_isa(Isa isa) {
  if (!isa_supported(isa))
    throw ConfigError(std::string("set_isa(") + isa_name(isa) + "): " +
                      (isa_compiled(isa) ? "this CPU does not support it" : "not compiled in this build") +
                      "; supported here: " + supported_isa_names());
  detail::IsaChoice& c = detail::isa_choice();
  c.active.store(static_cast<int>(isa));
  c.failed.store(false);
}

inline const char* isa_name() { return isa_name(isa()); }

/// One line for --version and logs, e.g. "avx512 (supported: generic, avx2, avx512; also
/// avx512_bf16)": the instruction set in use, those that could be, and the features the
/// half-precision kernels will use.
inline std::string isa_report() {
  std::string s = std::string(isa_name()) + " (supported: " + supported_isa_names();
  const CpuFeatures& f = cpu_features();
  std::string extra;
  for (const auto& [on, name] : {std::pair<bool, const char*>{f.avx512_bf16, "avx512_bf16"},
                                 {f.avx512_fp16, "avx512_fp16"},
                                 {f.amx_bf16, "amx_bf16"}})
    if (on) extra += (extra.empty() ? "" : ", ") + std::string(name);
  if (!extra.empty()) s += "; also " + extra;
  if (!DIFFBLOCKS_CPU_DISPATCH) s += "; one copy, DIFFBLOCKS_CPU_DISPATCH=0";
  return s + ")";
}

}  // namespace cpu
}  // namespace ops
}  // namespace diffblocks
