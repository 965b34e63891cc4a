#!/usr/bin/env bash
# Run HERE (the build machine, no GPU needed) after building the CUDA targets: stages what a GPU
# machine needs to run them into .gpu-prebuilt/ (ignored by git), for the device tool's `carry`:
#   bin/      diffblocks_cuda_tests, bench_cuda, diffblocks (the CLI) and libdiffblocks_cuda.so (the
#             CUDA module the CLI opens for --device cuda, found next to it), stripped
#   lib/      libbenchmark (the GPU image has no Google Benchmark)
#   wheels/   diffusers 0.25.1 + huggingface_hub 0.25.2 (tools/bench_torch.py's Diffuser case)
#   source_dir  this checkout's path: the tests' fixture and CLI paths are compiled in, so the
#             GPU side links that path to its copy of the checkout (tools/bench_cuda.sh does)
# Then, on the GPU machine: tools/bench_cuda.sh --prebuilt .gpu-prebuilt [--filter REGEX]
#
#   tools/cuda_prebuilt.sh [BUILD_DIR=build]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
dst=.gpu-prebuilt
for b in diffblocks_cuda_tests bench_cuda diffblocks libdiffblocks_cuda.so; do
  [ -x "$build/bin/$b" ] || { echo "cuda_prebuilt.sh: $build/bin/$b is missing (build the CUDA targets first)" >&2; exit 1; }
done
rm -rf "$dst"
mkdir -p "$dst/bin" "$dst/lib" "$dst/wheels"
for b in diffblocks_cuda_tests bench_cuda diffblocks libdiffblocks_cuda.so; do
  cp "$build/bin/$b" "$dst/bin/"
  strip --strip-unneeded "$dst/bin/$b"
done
# Google Benchmark under the soname bench_cuda asks for (Debian's is libbenchmark.so.1debian).
lib=$(ldd "$build/bin/bench_cuda" | awk '/libbenchmark/ {print $3; exit}')
[ -n "$lib" ] && cp -L "$lib" "$dst/lib/"
pwd > "$dst/source_dir"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation py \
  -d "$dst/wheels" diffusers==0.25.1 huggingface_hub==0.25.2 ||
  echo "cuda_prebuilt.sh: no diffusers wheels (the torch Diffuser case will be skipped)"
tree=$(git ls-files -z | while IFS= read -r -d '' f; do [ -f "$f" ] && stat -c %s "$f"; done | awk '{s += $1} END {print s + 0}')
staged=$(du -sb "$dst" | cut -f1)
echo "staged $((staged >> 20)) MiB in $dst; tracked files present: $((tree >> 20)) MiB (the device tool sends at most 64 MiB)"
