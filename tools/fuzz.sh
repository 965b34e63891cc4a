#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, AddressSanitizer + UndefinedBehaviorSanitizer) and runs
# each for a bounded time, starting from the committed seed corpus.
#
#   tools/fuzz.sh [SECONDS_PER_TARGET=30] [TARGET ...]     targets: safetensors config similarity_args
#
# New coverage goes to build-fuzz/corpus/TARGET (the committed seeds are only read). A crash,
# leak, sanitizer report, timeout or foreign exception stops the run with a non-zero status and
# leaves the input in build-fuzz/artifacts/TARGET/; copy it to tests/fuzz/regressions/TARGET/ so
# that every build replays it (tests/test_hardening.cpp) once it is fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(safetensors config similarity_args)

tools/setup_debian.sh --fuzz
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DDIFFBLOCKS_BUILD_FUZZERS=ON -DDIFFBLOCKS_BUILD_TESTS=OFF -DDIFFBLOCKS_BUILD_APPS=OFF -DDIFFBLOCKS_BUILD_EXAMPLES=OFF \
  -DDIFFBLOCKS_BUILD_BENCHMARKS=OFF -DDIFFBLOCKS_INSTALL=OFF -DDIFFBLOCKS_CUDA=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc 2>/dev/null || echo 2)" --target "${targets[@]/#/fuzz_}"

export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t" "build-fuzz/artifacts/$t"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  echo "fuzz_$t: ${seconds}s from tests/fuzz/corpus/$t"
  if ! "build-fuzz/bin/fuzz_$t" "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" "${dict[@]}" \
       -max_total_time="$seconds" -timeout=20 -rss_limit_mb=3072 -max_len=262144 -print_final_stats=1 \
       -artifact_prefix="build-fuzz/artifacts/$t/" 2> "build-fuzz/fuzz_$t.log"; then
    tail -n 60 "build-fuzz/fuzz_$t.log"
    echo "fuzz_$t: FAILED; the input is in build-fuzz/artifacts/$t/ (copy it to tests/fuzz/regressions/$t/)"
    status=1
  else
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE" "build-fuzz/fuzz_$t.log" | sed "s/^/fuzz_$t: /"
    echo "fuzz_$t: no crash in ${seconds}s"
  fi
done
exit $status
