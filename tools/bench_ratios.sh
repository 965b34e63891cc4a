#!/usr/bin/env bash
# The published speed ratios (docs/performance.md, the README's Performance table): diffblocks
# against PyTorch eager on the same machine, float32, batch 1: the Origin forward at every T and
# the Diffuser forward (T = 512). N rounds in one session, alternating bench_origin and
# tools/bench_torch.py (diffusers' own UNet2DConditionModel; the Origin through the transcription
# that tools/bench_torch.py --check-upstream checks against upstream Grad-TTS); then
# tools/bench_report.py --docs writes the table from exactly these JSON files (median and range
# over the rounds, the ratio as the median of the per-round ratios) into FILE's generated section
# for this thread count (markers "... --docs (threads N) ...").
#
#   tools/bench_ratios.sh [--threads N] [--rounds N] [--frames "128 512 2048"] [--reps R] [--docs FILE]
#                         [--dtypes "f32 bf16"] [--compile] [--section NAME]
#
# --dtypes adds diffblocks' half models (bench_origin's <case>_bf16 / _f16) beside PyTorch's
# float32 model under torch.autocast; --compile adds PyTorch under torch.compile (inductor) as a
# second baseline column. --section names the generated section (default "threads N").
#
# Needs build/bin/bench_origin (cmake -DDIFFBLOCKS_BUILD_BENCHMARKS=ON, Release) and a Python with
# torch and diffusers 0.25.1 ($PYTHON, else .venv/bin/python). Threads: --threads, else
# $DIFFBLOCKS_THREADS, else 2 (both sides).
set -euo pipefail
cd "$(dirname "$0")/.."
invocation="tools/bench_ratios.sh$(printf ' %q' "$@")"
rounds=5 frames="128 512" reps=3 docs=docs/performance.md threads=${DIFFBLOCKS_THREADS:-2} dtypes=f32 compile=() section=
while (($#)); do
  case "$1" in
    --threads) threads=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --frames) frames=$2; shift ;;
    --reps) reps=$2; shift ;;
    --docs) docs=$2; shift ;;
    --dtypes) dtypes=$2; shift ;;
    --compile) compile=(--compile) ;;
    --section) section=$2; shift ;;
    *) echo "bench_ratios.sh: unknown option '$1' (--threads N, --rounds N, --frames \"T...\", --reps R, --docs FILE, --dtypes \"f32 bf16\", --compile, --section NAME)" >&2; exit 2 ;;
  esac
  shift
done
py=${PYTHON:-.venv/bin/python}
[ -x build/bin/bench_origin ] || { echo "bench_ratios.sh: build/bin/bench_origin is missing (see the header)" >&2; exit 1; }
out=build/bench/ratios
rm -rf "$out" && mkdir -p "$out"
alt=$(echo "$frames" | tr ' ' '|')
# bench_origin's dtype suffixes: "" for f32, _bf16, _f16.
for d in $dtypes; do
  case "$d" in f32 | bf16 | f16) ;; *) echo "bench_ratios.sh: --dtypes takes f32, bf16, f16 (got '$d')" >&2; exit 2 ;; esac
done
sfx=$(for d in $dtypes; do [ "$d" = f32 ] && echo "" || echo "_$d"; done | paste -sd'|')
section=${section:-threads $threads}
ours=() theirs=()
for ((r = 1; r <= rounds; r++)); do
  echo "== round $r of $rounds: diffblocks, then PyTorch"
  build/bin/bench_origin --threads="$threads" --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
    --benchmark_filter="^diffblocks/(origin_forward($sfx)/T:($alt)|diffuser_forward($sfx)/T:512)/" \
    --benchmark_out_format=json --benchmark_out="$out/origin_r$r.json"
  "$py" tools/bench_torch.py --threads "$threads" --repeats "$reps" --frames $frames --suite origin diffuser \
    --dtypes $dtypes "${compile[@]}" --json "$out/torch_r$r.json"
  ours+=("$out/origin_r$r.json") theirs+=("$out/torch_r$r.json")
done
"$py" tools/bench_report.py --ours "${ours[@]}" --torch "${theirs[@]}" --docs "$docs" --section "$section" \
  --command "$invocation"
