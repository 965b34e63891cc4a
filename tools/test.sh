#!/usr/bin/env bash
# The README's test command: set up a fresh Debian machine, build everything, run ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup_debian.sh
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDIFFBLOCKS_BUILD_TESTS=ON -DDIFFBLOCKS_BUILD_EXAMPLES=ON \
  -DDIFFBLOCKS_BUILD_BENCHMARKS=ON
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"
