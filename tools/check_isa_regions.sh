#!/usr/bin/env bash
# Checks a binary built with default flags for AVX code outside the kernel copies that target
# regions compile for AVX2 / AVX-512 (namespaces ops::cpu::avx2 and ops::cpu::avx512, and
# ops::cpu::avx512_bf16, the bf16 GEMM's region; ops/cpu/target.hpp): any other function holding
# VEX/EVEX instructions (ymm/zmm registers, v-prefixed or mask-register instructions) would be
# baseline code compiled for AVX, which the linker may share with every caller and which would
# crash a CPU without AVX. The std::function wrappers of kernel lambdas name the kernel's
# namespace but are baseline code, so they count. Likewise AVX512-BF16 instructions belong to
# ops::cpu::avx512_bf16 alone: the avx512 copy also runs on AVX-512 CPUs without them.
#
#   tools/check_isa_regions.sh BINARY...     (ctest: isa_regions; objdump, or $OBJDUMP)
set -euo pipefail
status=0
for bin in "$@"; do
  bad=$("${OBJDUMP:-objdump}" -d -C --no-show-raw-insn "$bin" | awk '
    /^[0-9a-f]+ <.*>:$/ { name = $0; sub(/^[0-9a-f]+ </, "", name); sub(/>:$/, "", name); next }
    /\t(v[a-z0-9]+|k[a-z]+[bwdq])[ \t]/ || /%[yz]mm|%k[0-7]/ {
      if (name ~ /^std::_Function_handler/ || name !~ /ops::cpu::(avx2|avx512|avx512_bf16)::/) bad[name] = 1
      else kernels[name] = 1
    }
    /\tv(dpbf16ps|cvtne2?ps2bf16)[ \t]/ { if (name !~ /ops::cpu::avx512_bf16::/) bad[name] = 1 }
    END { for (n in bad) print n; print "#kernels " length(kernels) > "/dev/stderr" }' 2>/tmp/check_isa_regions.$$)
  kernels=$(sed -n 's/^#kernels //p' /tmp/check_isa_regions.$$); rm -f /tmp/check_isa_regions.$$
  if [[ -n "$bad" ]]; then
    echo "$bin: AVX instructions outside the avx2/avx512/avx512_bf16 kernel copies, in:"
    sed 's/^/  /' <<<"$bad" | head -20
    status=1
  elif [[ "$kernels" == 0 ]]; then
    echo "$bin: no AVX code at all: not a dispatching build (DIFFBLOCKS_CPU_DISPATCH=1, x86-64)?"
    status=1
  else
    echo "$bin: AVX code only in the kernel copies ($kernels functions)"
  fi
done
exit $status
