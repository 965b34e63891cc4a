#!/usr/bin/env bash
# What a project that uses diffblocks gets, against the project's own benchmark: builds
# benchmarks/consumer_speed (FetchContent of this checkout, Release, no -march or other flags of
# its own) and the project's bench_origin, times the Origin forward (dim 64, 80 mels, batch 1,
# 2 threads) with both, alternating, and prints both medians and their ratio (target: <= 1.10).
#
#   tools/consumer_speed.sh [--native] [--frames 512] [--rounds 3] [--build-dir DIR]
#
# The project's bench_origin comes from DIR (default build/, configured if it has no cache yet);
# --native uses build-native/, configured with DIFFBLOCKS_NATIVE=ON (the project's programs with
# -march=native): the consumer against a build for this very machine.
#
# Each round runs bench_origin (5 repetitions, median) and consumer_speed (10 runs, median);
# each side's fastest round counts (the least disturbed by other load). Run it on an otherwise
# idle machine. DIFFBLOCKS_CPU_ISA=generic|avx2 applies to both.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
frames=512 rounds=3 build="$root/build" native=OFF
while (($#)); do
  case "$1" in
    --native) native=ON build="$root/build-native" ;;
    --frames) frames=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --build-dir) build=$(realpath -m "$2"); shift ;;
    *) echo "consumer_speed.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
threads=2 work="$build/consumer_speed"

if [[ ! -f "$build/CMakeCache.txt" || $native == ON ]]; then
  cmake -S "$root" -B "$build" -DDIFFBLOCKS_BUILD_TESTS=OFF -DDIFFBLOCKS_BUILD_EXAMPLES=OFF -DDIFFBLOCKS_CUDA=OFF \
    -DDIFFBLOCKS_NATIVE=$native >/dev/null
fi
cmake --build "$build" --target bench_origin -j2 >/dev/null
cmake -S "$root/benchmarks/consumer_speed" -B "$work" -DCMAKE_BUILD_TYPE=Release \
  -DDIFFBLOCKS_SOURCE_DIR="$root" >/dev/null
cmake --build "$work" -j2 >/dev/null

best_bench="" best_consumer=""
min() { if [[ -z "$1" ]] || awk -v a="$2" -v b="$1" 'BEGIN { exit !(a < b) }'; then echo "$2"; else echo "$1"; fi; }
for ((r = 1; r <= rounds; ++r)); do
  # CSV: name,iterations,real_time,cpu_time,time_unit,...; the median row of 5 repetitions.
  bench=$("$build/bin/bench_origin" --threads=$threads --benchmark_filter="origin_forward/T:$frames/" \
    --benchmark_repetitions=5 --benchmark_report_aggregates_only=true --benchmark_format=csv 2>/dev/null |
    awk -F, '/_median"/ { t = $3; u = $5; gsub(/"/, "", u); print (u == "ms" ? t : u == "us" ? t / 1e3 : t / 1e6) }')
  line=$("$work/consumer_speed" --frames "$frames" --threads $threads --runs 10)
  consumer=$(sed -E 's/.*median ([0-9.]+) ms.*/\1/' <<<"$line")
  echo "round $r: bench_origin $bench ms, consumer_speed $consumer ms   ($line)"
  best_bench=$(min "$best_bench" "$bench")
  best_consumer=$(min "$best_consumer" "$consumer")
done
kernels=$(sed -E 's/.*threads, ([a-z0-9]+) kernels.*/\1/' <<<"$line")
printf 'Origin forward T=%s, batch 1, %s threads (%s kernels), best of %s rounds:\n' "$frames" "$threads" "$kernels" "$rounds"
printf '  project bench_origin (%s): %8.1f ms\n' "$(grep -E '^DIFFBLOCKS_NATIVE:' "$build/CMakeCache.txt" | sed 's/.*=/DIFFBLOCKS_NATIVE=/')" "$best_bench"
printf '  consumer, default flags:   %8.1f ms\n' "$best_consumer"
awk -v c="$best_consumer" -v b="$best_bench" 'BEGIN { printf "  consumer / project:        %8.3f\n", c / b }'
