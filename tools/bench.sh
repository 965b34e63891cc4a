#!/usr/bin/env bash
# The README's benchmark command: diffblocks and PyTorch eager on the same machine in one run,
# then the comparison table (build/bench/report.md) and plots (docs/bench/*.png).
#
#   tools/bench.sh [--quick] [--half] [--legacy] [--rounds N]
#     --quick   fewer repetitions and attention up to 4k tokens
#     --half    also the dtype axis: the Origin forward, sampler step and attention variants in
#               bf16 and f16 (bench_origin's <case>_bf16, bench_attention's <variant>_bf16), and
#               PyTorch's autocast runs of the same cases (bench_torch.py --dtypes f32 bf16 f16);
#               the Diffuser forward's dtype axis runs either way
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
quick=0 half=0 legacy_setup=0 rounds=1
while (($#)); do
  case "$1" in
    --quick) quick=1 ;;
    --half) half=1 ;;
    --legacy) legacy_setup=1 ;;
    --rounds)
      rounds=${2:-}
      [[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --rounds takes a positive count" >&2; exit 2; }
      shift ;;
    *) echo "bench.sh: unknown option '$1' (--quick, --half, --legacy, --rounds N)" >&2; exit 2 ;;
  esac
  shift
done
threads=${DIFFBLOCKS_THREADS:-2}
reps=5; max_tokens=16384; attn_shapes='.*'
if ((quick)); then reps=2; max_tokens=4096; attn_shapes='(.*(N|S):(64|256|1024|4096)/|N:(1280|10240)/S:16/)'; fi
# The dtype axis (--half): half cases are named <case>_bf16 / _f16, PyTorch's <case>_<dtype>_autocast.
dtypes=(f32) half_sfx=''
if ((half)); then dtypes=(f32 bf16 f16) half_sfx='(_bf16|_f16)?'; fi
origin_filter="origin_forward${half_sfx}/|sampler_step${half_sfx}/T:512|(ddpm|ddim|euler)_step|diffuser_forward|sgemm"
attn_filter="^(self|cross)/(linear|naive|streaming)${half_sfx}/${attn_shapes}"

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
  build/bin/bench_origin "${common[@]}" --benchmark_filter="$origin_filter" \
    --benchmark_out=build/bench/origin_r$r.json
  ours_json+=(build/bench/origin_r$r.json)
  .venv/bin/python tools/bench_torch.py --threads "$threads" --repeats "$reps" --frames 128 512 2048 \
    --suite origin diffuser sgemm --dtypes "${dtypes[@]}" --json build/bench/torch_r$r.json
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
  --dtypes "${dtypes[@]}" --json build/bench/torch_attention.json
if [ -n "$legacy_py" ]; then
  "$legacy_py" tools/bench_torch.py --threads "$threads" --repeats 2 --suite attention --max-tokens "$max_tokens" \
    --json build/bench/torch_legacy_attention.json
  legacy_json+=(build/bench/torch_legacy_attention.json)
fi
.venv/bin/python tools/bench_report.py --ours "${ours_json[@]}" build/bench/attention.json \
  --torch "${torch_json[@]}" build/bench/torch_attention.json \
  ${legacy_py:+--torch-legacy} "${legacy_json[@]}" --markdown build/bench/report.md --plots docs/bench
