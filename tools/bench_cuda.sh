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
#   tools/bench_cuda.sh [--deps DIR] [--out DIR] [--quick] [--no-torch] [--jobs N]
#
#   --deps DIR   headers/libraries staged by tools/cuda_deps.sh (CMAKE_PREFIX_PATH=DIR/usr) and
#                wheels (DIR/wheels: installed into a private site dir for the torch side)
#   --out DIR    where logs, JSON and report_cuda.md go (default build-gpu/bench; $OUT if set)
#   --quick      fewer benchmark cases (U-Nets, attention, rooflines; no op registry)
# Float32 throughout, TF32 off on both sides (cuBLAS default math; torch allow_tf32 = False).
set -uo pipefail
cd "$(dirname "$0")/.."
deps="" out="${OUT:-build-gpu/bench}" quick=0 torch=1 jobs=$(nproc 2>/dev/null || echo 8)
while (($#)); do
  case "$1" in
    --deps) deps=$(realpath "$2"); shift ;;
    --out) out="$2"; shift ;;
    --quick) quick=1 ;;
    --no-torch) torch=0 ;;
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

cmake_args=(-DCMAKE_BUILD_TYPE=Release -DDIFFBLOCKS_CUDA=ON -DDIFFBLOCKS_BUILD_TESTS=ON -DDIFFBLOCKS_BUILD_EXAMPLES=ON
            -DDIFFBLOCKS_BUILD_BENCHMARKS=ON -DDIFFBLOCKS_INSTALL=OFF)
if [ -n "$deps" ]; then
  cmake_args+=(-DCMAKE_PREFIX_PATH="$deps/usr")
  export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
command -v ninja >/dev/null && cmake_args+=(-G Ninja)
log "configure + build (-j$jobs)"
build_ok=1
cmake -S . -B build-gpu "${cmake_args[@]}" >> "$out/build.log" 2>&1 || { build_ok=0; tail -30 "$out/build.log"; }
if ((build_ok)); then
  cmake --build build-gpu -j "$jobs" --target diffblocks_cuda_tests diffblocks-cli bench_cuda >> "$out/build.log" 2>&1 ||
    { build_ok=0; grep -E "error|Error" "$out/build.log" | head -40; }
fi
log "built in $(($(date +%s) - t0)) s (ok=$build_ok)"

status=1
if [ -x build-gpu/bin/diffblocks_cuda_tests ]; then
  log "CUDA tests"
  build-gpu/bin/diffblocks_cuda_tests --durations yes > "$out/tests.log" 2>&1
  status=$?
  grep -E "FAILED|^test cases|^assertions|All tests passed|op cases" "$out/tests.log" | head -60
  log "tests exit $status"
fi

if [ -x build-gpu/bin/bench_cuda ]; then
  log "bench_cuda"
  filter='.*'
  ((quick)) && filter='^(d2d_copy|sgemm|origin_|diffuser_|attention/self/.*/dh:64|blocks/)'
  build-gpu/bin/bench_cuda --benchmark_filter="$filter" --benchmark_out="$out/bench_cuda.json" \
    --benchmark_out_format=json > "$out/bench_cuda.txt" 2>&1 || tail -20 "$out/bench_cuda.txt"
  grep -E "^(d2d_copy|sgemm|origin_|diffuser_)" "$out/bench_cuda.txt" | head -20
fi

if ((torch)); then
  log "torch (--device cuda)"
  py=python3
  if [ -n "$deps" ] && ls "$deps"/wheels/*.whl >/dev/null 2>&1; then
    $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/dbsite \
      "$deps"/wheels/*.whl > "$out/torch.log" 2>&1 && export PYTHONPATH=/tmp/dbsite${PYTHONPATH:+:$PYTHONPATH}
  fi
  PYTHONUNBUFFERED=1 $py tools/bench_torch.py --device cuda --warmup 3 --repeats 10 --json "$out/torch_cuda.json" \
    >> "$out/torch.log" 2>&1 || tail -20 "$out/torch.log"
fi

log "report"
python3 tools/bench_cuda_report.py "$out/bench_cuda.json" --torch "$out/torch_cuda.json" --tests "$out/tests.log" \
  -o "$out/report_cuda.md" && sed -n 1,40p "$out/report_cuda.md"
log "done in $(($(date +%s) - t0)) s; results in $out"
exit $status
