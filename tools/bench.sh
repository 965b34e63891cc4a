#!/usr/bin/env bash
# The README's benchmark command: diffblocks and PyTorch eager on the same machine in one run,
# then the comparison table (build/bench/report.md) and plots (docs/bench/*.png).
#
#   tools/bench.sh [--quick]      --quick: fewer repetitions and attention up to 4k tokens
#
# Needs the Debian build packages (tools/setup_debian.sh) and a .venv with PyTorch and diffusers
# (created from tools/requirements.txt when missing). Run it on an otherwise idle machine: the
# numbers are wall-clock, and every ratio compares runs made minutes apart in this script.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
threads=${DIFFBLOCKS_THREADS:-2}
reps=5; max_tokens=16384; attn_filter='.*'
if ((quick)); then reps=2; max_tokens=4096; attn_filter='(N|S):(64|256|1024|4096)/|N:(1280|10240)/S:16/'; fi

tools/setup_debian.sh
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q -r tools/requirements.txt
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDIFFBLOCKS_BUILD_BENCHMARKS=ON >/dev/null
cmake --build build -j "$(nproc)" --target bench_origin bench_attention
mkdir -p build/bench
common=(--threads="$threads" --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true
        --benchmark_out_format=json)

echo "== U-Nets and SGEMM: diffblocks, then PyTorch"
build/bin/bench_origin "${common[@]}" --benchmark_filter='origin_forward/|sampler_step/T:512|(ddpm|ddim|euler)_step|diffuser_forward|sgemm' \
  --benchmark_out=build/bench/origin.json
.venv/bin/python tools/bench_torch.py --threads "$threads" --repeats "$reps" --frames 128 512 2048 \
  --suite origin diffuser sgemm --json build/bench/torch.json
echo "== attention variants: diffblocks, then PyTorch"
build/bin/bench_attention --threads="$threads" --benchmark_filter="$attn_filter" --benchmark_out_format=json \
  --benchmark_out=build/bench/attention.json
.venv/bin/python tools/bench_torch.py --threads "$threads" --repeats 2 --suite attention --max-tokens "$max_tokens" \
  --json build/bench/torch_attention.json
.venv/bin/python tools/bench_report.py --ours build/bench/origin.json build/bench/attention.json \
  --torch build/bench/torch.json build/bench/torch_attention.json --markdown build/bench/report.md --plots docs/bench
