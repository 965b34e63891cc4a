#!/usr/bin/env bash
# The README's test command (CI runs exactly this): set up a fresh Debian machine, then
#   1. build everything (Release) and run all tests (ctest), the hostile-input corpus included
#      (hostile_*, tests/hostile/),
#   2. the Python package: pip install . into a venv under build/, its wheel, pytest
#      (tools/test_python.sh),
#   3. each libFuzzer target (safetensors, config, similarity_args) for 30 s from the committed
#      seed corpus,
#   4. the whole test suite again under AddressSanitizer + UndefinedBehaviorSanitizer, the
#      hostile-input corpus included.
# `tools/test.sh --quick` runs stages 1 and 2 only.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    *) echo "test.sh: unknown option '$arg' (use --quick)" >&2; exit 2 ;;
  esac
done
if ((quick)); then tools/setup_debian.sh; else tools/setup_debian.sh --fuzz; fi
jobs=$(nproc 2>/dev/null || echo 2)
echo "== 1/4: Release build and tests"
# bench_cuda is left out: no GPU runs it here (its ops are compiled by the CUDA tests all the same).
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDIFFBLOCKS_BUILD_TESTS=ON -DDIFFBLOCKS_BUILD_APPS=ON -DDIFFBLOCKS_BUILD_EXAMPLES=ON \
  -DDIFFBLOCKS_BUILD_BENCHMARKS=ON -DDIFFBLOCKS_BUILD_CUDA_BENCHMARKS=OFF
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"
echo "== 2/4: Python package (pip install ., wheel, pytest)"
tools/test_python.sh  # 2 build jobs (one translation unit)
((quick)) && exit 0
echo "== 3/4: fuzzing, 30 s per target"
tools/fuzz.sh 30
echo "== 4/4: tests under AddressSanitizer + UndefinedBehaviorSanitizer"
tools/sanitize.sh
