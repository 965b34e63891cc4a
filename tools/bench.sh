#!/usr/bin/env bash
# The README's benchmark command: diffblocks and PyTorch eager on the same machine in one run,
# then the comparison table (build/bench/report.md) and plots (docs/bench/*.png).
#
#   tools/bench.sh [--quick] [--legacy] [--rounds N]
#     --quick   fewer repetitions and attention up to 4k tokens
#     --rounds N  run the U-Net/SGEMM suites N times, alternating diffblocks and PyTorch, and
#               report each side's fastest round (the least disturbed by other load; default 1)
#     --legacy  first run tools/setup_torch_legacy.sh (root; a Debian bullseye chroot with
#               Python 3.9 + torch 1.13.1, the issue's reference version, ~3.6 GB), so that the
#               legacy baseline below runs
#
# Needs the Debian build packages (tools/setup_debian.sh) and a .venv with PyTorch and diffusers
# (created from tools/requirements.txt when missing). Second PyTorch baseline: when
# build/torch-legacy/python exists (written by tools/setup_torch_legacy.sh), or
# DIFFBLOCKS_TORCH_LEGACY names another python with torch and diffusers 0.25.1, the torch cases
# also run under it (build/bench/torch_legacy*.json) and the report shows both versions; under
# 1.13 the Diffuser forward alone takes minutes (naive attention, no SDPA). Run it on an
# otherwise idle machine: the numbers are wall-clock, and every ratio compares runs made minutes
# apart in this script.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0 legacy_setup=0 rounds=1
while (($#)); do
  case "$1" in
    --quick) quick=1 ;;
    --legacy) legacy_setup=1 ;;
    --rounds)
      rounds=${2:-}
      [[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --rounds takes a positive count" >&2; exit 2; }
      shift ;;
    *) echo "bench.sh: unknown option '$1' (--quick, --legacy, --rounds N)" >&2; exit 2 ;;
  esac
  shift
done
threads=${DIFFBLOCKS_THREADS:-2}
reps=5; max_tokens=16384; attn_filter='.*'
if ((quick)); then reps=2; max_tokens=4096; attn_filter='(N|S):(64|256|1024|4096)/|N:(1280|10240)/S:16/'; fi

tools/setup_debian.sh
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q -r tools/requirements.txt
fi
if ((legacy_setup)); then tools/setup_torch_legacy.sh; fi
legacy_py=${DIFFBLOCKS_TORCH_LEGACY:-}
if [ -z "$legacy_py" ] && [ -x build/torch-legacy/python ]; then legacy_py=build/torch-legacy/python; fi
legacy_json=()  # the legacy torch's JSON files, for bench_report.py --torch-legacy
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDIFFBLOCKS_BUILD_BENCHMARKS=ON >/dev/null
cmake --build build -j "$(nproc)" --target bench_origin bench_attention
mkdir -p build/bench
common=(--threads="$threads" --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true
        --benchmark_out_format=json)

ours_json=() torch_json=()
rm -f build/bench/origin*.json build/bench/torch.json build/bench/torch_r*.json build/bench/torch_legacy.json \
  build/bench/torch_legacy_r*.json
for ((r = 1; r <= rounds; r++)); do
  echo "== U-Nets and SGEMM, round $r of $rounds: diffblocks, then PyTorch"
  build/bin/bench_origin "${common[@]}" --benchmark_filter='origin_forward/|sampler_step/T:512|(ddpm|ddim|euler)_step|diffuser_forward|sgemm' \
    --benchmark_out=build/bench/origin_r$r.json
  ours_json+=(build/bench/origin_r$r.json)
  .venv/bin/python tools/bench_torch.py --threads "$threads" --repeats "$reps" --frames 128 512 2048 \
    --suite origin diffuser sgemm --json build/bench/torch_r$r.json
  torch_json+=(build/bench/torch_r$r.json)
  if [ -n "$legacy_py" ]; then
    echo "== U-Nets and SGEMM, round $r of $rounds: legacy PyTorch ($legacy_py)"
    "$legacy_py" tools/bench_torch.py --threads "$threads" --repeats "$reps" --frames 128 512 2048 \
      --suite origin diffuser sgemm --json build/bench/torch_legacy_r$r.json
    legacy_json+=(build/bench/torch_legacy_r$r.json)
  fi
done
echo "== attention variants: diffblocks, then PyTorch"
build/bin/bench_attention --threads="$threads" --benchmark_filter="$attn_filter" --benchmark_out_format=json \
  --benchmark_out=build/bench/attention.json
.venv/bin/python tools/bench_torch.py --threads "$threads" --repeats 2 --suite attention --max-tokens "$max_tokens" \
  --json build/bench/torch_attention.json
if [ -n "$legacy_py" ]; then
  "$legacy_py" tools/bench_torch.py --threads "$threads" --repeats 2 --suite attention --max-tokens "$max_tokens" \
    --json build/bench/torch_legacy_attention.json
  legacy_json+=(build/bench/torch_legacy_attention.json)
fi
.venv/bin/python tools/bench_report.py --ours "${ours_json[@]}" build/bench/attention.json \
  --torch "${torch_json[@]}" build/bench/torch_attention.json \
  ${legacy_py:+--torch-legacy} "${legacy_json[@]}" --markdown build/bench/report.md --plots docs/bench
