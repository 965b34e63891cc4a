#!/usr/bin/env bash
# One GPU run of everything CUDA (made for a short lease of an H100/H200 machine; ~6-8 min):
#   1. configure + build the CUDA targets (diffblocks_cuda_tests, the CLI with --device cuda,
#      bench_cuda) with all cores,
#   2. the CUDA tests (every op against the CPU, blocks and both U-Nets against the PyTorch
#      fixtures, samplers, allocator, streams, CLI),
#   3. benchmarks/bench_cuda (GPU-event timing) and tools/bench_torch.py --device cuda,
#   4. the markdown report tools/bench_cuda_report.py.
# Every stage runs even if an earlier one failed; the exit status is the tests'.
#
#   tools/bench_cuda.sh [--deps DIR] [--prebuilt DIR] [--out DIR] [--quick] [--filter REGEX]
#                       [--no-torch] [--no-tests] [--jobs N]
#
#   --deps DIR      headers/libraries staged by tools/cuda_deps.sh (CMAKE_PREFIX_PATH=DIR/usr) and
#                   wheels (DIR/wheels: installed into a private site dir for the torch side)
#   --prebuilt DIR  skip the build: run DIR/bin/{diffblocks_cuda_tests,bench_cuda} made elsewhere
#                   (tools/cuda_prebuilt.sh stages them with libbenchmark into DIR/lib). The
#                   tests' fixture paths are absolute: the checkout must sit where it was built
#                   (the script links that path to this checkout when it is free).
#   --out DIR       where logs, JSON and report_cuda.md go (default build-gpu/bench; $OUT if set)
#   --quick         fewer benchmark cases (U-Nets, attention, rooflines; no op registry)
#   --filter REGEX  the bench_cuda cases to run (overrides --quick's choice)
#   --ncu CASE[,CASE..]  also profile one forward (bench_cuda --profile CASE, e.g. origin_forward/B:16)
#                   under Nsight Compute, kernel times only: prof.csv, summed by tools/cuda_profile.py
# Float32; TF32 only in the cases named tf32 (both sides); the bf16 Origin (origin_forward_bf16)
# against PyTorch's bf16 autocast and model.to(bfloat16), in the report's U-Net table. cuDNN: found in PyTorch's wheel
# (nvidia/cudnn/lib) when the loader does not find libcudnn.so.9 by itself.
set -uo pipefail
cd "$(dirname "$0")/.."
deps="" prebuilt="" out="${OUT:-build-gpu/bench}" quick=0 torch=1 tests=1 filter="" ncu_case="" jobs=$(nproc 2>/dev/null || echo 8)
while (($#)); do
  case "$1" in
    --deps) deps=$(realpath "$2"); shift ;;
    --prebuilt) prebuilt=$(realpath "$2"); shift ;;
    --out) out="$2"; shift ;;
    --quick) quick=1 ;;
    --filter) filter="$2"; shift ;;
    --ncu) ncu_case="$2"; shift ;;
    --no-torch) torch=0 ;;
    --no-tests) tests=0 ;;
    --jobs) jobs="$2"; shift ;;
    *) echo "bench_cuda.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
[ -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null && export PATH="/usr/local/cuda/bin:$PATH"
mkdir -p "$out"
out=$(realpath "$out")
log() { echo "== $(date +%T) $*"; }
t0=$(date +%s)

# At most 8 files come back from a device run: build.log, tests.log, bench_cuda.{txt,json},
# torch.log, torch_cuda.json, report_cuda.md.
log "device"
{ nvidia-smi -L; nvcc --version | tail -2; } 2>&1 | tee "$out/build.log" || true

# cuDNN (opened at run time by the library): the system's, else PyTorch's wheel copy.
if ! ldconfig -p 2>/dev/null | grep -q 'libcudnn.so.9'; then
  site=$(python3 -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))' 2>/dev/null)
  lib=$( [ -n "$site" ] && find "$site" -name 'libcudnn.so.9' 2>/dev/null | head -1)
  cudnn_dir=${lib:+$(dirname "$lib")}
  [ -n "$cudnn_dir" ] && export LD_LIBRARY_PATH="$cudnn_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "cuDNN from: ${cudnn_dir:-(not found)}" | tee -a "$out/build.log"
fi

bin=build-gpu/bin
if [ -n "$prebuilt" ]; then
  bin="$prebuilt/bin"
  export LD_LIBRARY_PATH="$prebuilt/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  [ -f "$prebuilt/source_dir" ] && src=$(cat "$prebuilt/source_dir") && [ "$src" != "$PWD" ] && [ ! -e "$src" ] &&
    mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src" && echo "linked $src -> $PWD (the tests' fixture paths)"
  # The CLI tests run <source_dir>/build/bin/diffblocks (which opens the CUDA module next to
  # it) and write under build/tests/tmp.
  [ -e build/bin/diffblocks ] || { mkdir -p build/bin && cp "$bin/diffblocks" "$bin/libdiffblocks_cuda.so" build/bin/; }
  mkdir -p build/tests/tmp
fi
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DDIFFBLOCKS_CUDA=ON -DDIFFBLOCKS_BUILD_TESTS=ON -DDIFFBLOCKS_BUILD_APPS=ON -DDIFFBLOCKS_BUILD_EXAMPLES=ON
            -DDIFFBLOCKS_BUILD_BENCHMARKS=ON -DDIFFBLOCKS_INSTALL=OFF)
if [ -n "$deps" ]; then
  cmake_args+=(-DCMAKE_PREFIX_PATH="$deps/usr")
  export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
command -v ninja >/dev/null && cmake_args+=(-G Ninja)
if [ -z "$prebuilt" ]; then
  log "configure + build (-j$jobs)"
  build_ok=1
  cmake -S . -B build-gpu "${cmake_args[@]}" >> "$out/build.log" 2>&1 || { build_ok=0; tail -30 "$out/build.log"; }
  if ((build_ok)); then
    cmake --build build-gpu -j "$jobs" --target diffblocks_cuda_tests diffblocks-cli bench_cuda >> "$out/build.log" 2>&1 ||
      { build_ok=0; grep -E "error|Error" "$out/build.log" | head -40; }
  fi
  log "built in $(($(date +%s) - t0)) s (ok=$build_ok)"
fi

status=0
if ((tests)); then
  status=1
  if [ -x $bin/diffblocks_cuda_tests ]; then
    log "CUDA tests"
    $bin/diffblocks_cuda_tests --durations yes > "$out/tests.log" 2>&1
    status=$?
    grep -E "FAILED|^test cases|^assertions|All tests passed|op cases|cuDNN" "$out/tests.log" | head -60
    log "tests exit $status"
  fi
fi

if [ -x $bin/bench_cuda ]; then
  log "bench_cuda"
  if [ -z "$filter" ]; then
    filter='.*'
    ((quick)) && filter='^(d2d_copy|sgemm|origin_|diffuser_|attention/self/.*/dh:64|blocks/)'
  fi
  $bin/bench_cuda --benchmark_filter="$filter" --benchmark_out="$out/bench_cuda.json" \
    --benchmark_out_format=json > "$out/bench_cuda.txt" 2>&1 || tail -20 "$out/bench_cuda.txt"
  grep -E "^(d2d_copy|sgemm|origin_|diffuser_|ops/conv)" "$out/bench_cuda.txt" | head -40
fi

if [ -n "$ncu_case" ] && [ -x $bin/bench_cuda ]; then
  ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
  if [ -n "$ncu" ]; then
    for c in ${ncu_case//,/ }; do  # several cases: comma-separated; prof.csv keeps the last
      log "ncu: one $c"
      "$ncu" --profile-from-start off --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
        $bin/bench_cuda --profile "$c" > "$out/prof.csv" 2>&1 || tail -5 "$out/prof.csv"
      python3 tools/cuda_profile.py "$out/prof.csv" --top 25
    done
  else
    echo "no ncu found: --ncu skipped"
  fi
fi

if ((torch)); then
  log "torch (--device cuda)"
  py=python3
  wheels="${deps:-$prebuilt}/wheels"
  if ls "$wheels"/*.whl >/dev/null 2>&1; then
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/dbsite \
      "$wheels"/*.whl > "$out/torch.log" 2>&1 && export PYTHONPATH=/tmp/dbsite${PYTHONPATH:+:$PYTHONPATH}
  fi
  PYTHONUNBUFFERED=1 $py tools/bench_torch.py --device cuda --warmup 3 --repeats 10 --json "$out/torch_cuda.json" \
    >> "$out/torch.log" 2>&1 || tail -20 "$out/torch.log"
fi

log "report"
python3 tools/bench_cuda_report.py "$out/bench_cuda.json" --torch "$out/torch_cuda.json" --tests "$out/tests.log" \
  -o "$out/report_cuda.md" && sed -n 1,40p "$out/report_cuda.md"
log "done in $(($(date +%s) - t0)) s; results in $out"
exit $status
