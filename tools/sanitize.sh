#!/usr/bin/env bash
# Builds the test binary, the CLI, the hostile-input corpus driver and the C API (libdiffblocks_c
# and its C test, tests/c_api/) with AddressSanitizer +
# UndefinedBehaviorSanitizer (-O1, every finding fatal; fresh scratch NaN-poisoned) and runs their
# ctest cases under them: every Catch2 case (the CLI's included), the hostile corpus (hostile_*,
# tests/hostile/: the RSS bound and timeout are relaxed for the Sanitize build type) and the demo
# job, and the parity suites on the generic kernel copy ("generic: ..."; the default runs the
# machine's fastest). The examples, packaging and plot tests only repeat library code the test
# binary covers, or drive CMake and Python, the compile-fail tests only compile, and the README's
# commands are the CLI's again, so they are left to the ordinary build, and so are
# the AVX2 copy's parity runs (its code paths are the generic copy's at another vector width).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup_debian.sh
jobs=$(nproc 2>/dev/null || echo 2)
# -g1: line tables and function names, all a sanitizer report needs (full -g made this build
# ~30 % slower for variable info nobody reads in CI).
flags="-O1 -g1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# Fresh scratch storage is NaN-filled, so a kernel reading memory it never wrote fails a parity test.
flags+=" -DDIFFBLOCKS_POISON_ALLOCATIONS"
# C too (the C API's test is a C program) and the shared library's link (libdiffblocks_c.so).
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Sanitize -DCMAKE_CXX_FLAGS_SANITIZE="$flags" \
  -DCMAKE_C_FLAGS_SANITIZE="$flags" -DCMAKE_EXE_LINKER_FLAGS_SANITIZE="-fsanitize=address,undefined" \
  -DCMAKE_SHARED_LINKER_FLAGS_SANITIZE="-fsanitize=address,undefined" -DDIFFBLOCKS_BUILD_C_API=ON \
  -DDIFFBLOCKS_BUILD_TESTS=ON -DDIFFBLOCKS_BUILD_APPS=ON -DDIFFBLOCKS_BUILD_EXAMPLES=ON -DDIFFBLOCKS_BUILD_BENCHMARKS=OFF \
  -DDIFFBLOCKS_INSTALL=OFF -DDIFFBLOCKS_CUDA=OFF >/dev/null
cmake --build build-sanitize -j "$jobs" --target diffblocks_tests diffblocks-cli diffblocks_hostile test_c_api
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-sanitize --output-on-failure -j "$jobs" -E "^(packaging_|similarity_plot|example_|compile_fail_|readme_|avx2: )"
