#!/usr/bin/env bash
# Run HERE (a Debian machine with the project's packages) before a GPU session: stages what the
# GPU machine lacks into .gpu-deps/ (ignored by git), for the device tool's `carry`:
#   .gpu-deps/usr/...   xtensor, xtl, nlohmann/json, Catch2 v2 and Google Benchmark
#                       (headers, CMake package files, libbenchmark), for CMAKE_PREFIX_PATH
#   .gpu-deps/wheels/   diffusers 0.25.1 + huggingface_hub 0.25.2 (tools/bench_torch.py's
#                       Diffuser case; the GPU image has torch but not diffusers)
# ~20 MB. Then, on the GPU machine: tools/bench_cuda.sh --deps .gpu-deps
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup_debian.sh
dst=.gpu-deps
rm -rf "$dst"
mkdir -p "$dst/usr/include" "$dst/usr/share" "$dst/usr/lib/x86_64-linux-gnu/cmake" "$dst/usr/lib/cmake" "$dst/wheels"
cp -a /usr/include/xtensor /usr/include/xtl /usr/include/nlohmann /usr/include/catch2 \
      /usr/include/benchmark "$dst/usr/include/"
mkdir -p "$dst/usr/share/cmake"
cp -a /usr/share/cmake/xtl /usr/share/cmake/nlohmann_json "$dst/usr/share/cmake/"
cp -a /usr/lib/x86_64-linux-gnu/cmake/xtensor /usr/lib/x86_64-linux-gnu/cmake/benchmark "$dst/usr/lib/x86_64-linux-gnu/cmake/"
cp -a /usr/lib/cmake/Catch2 "$dst/usr/lib/cmake/"
cp -a /usr/lib/libCatch2WithMain.a "$dst/usr/lib/"
cp -a /usr/lib/x86_64-linux-gnu/libbenchmark.so* /usr/lib/x86_64-linux-gnu/libbenchmark_main.a "$dst/usr/lib/x86_64-linux-gnu/"
if python3 -m pip --version >/dev/null 2>&1; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation py \
    -d "$dst/wheels" diffusers==0.25.1 huggingface_hub==0.25.2 ||
    echo "cuda_deps.sh: could not download the diffusers wheels (the torch Diffuser case will be skipped)"
fi
du -sh "$dst"
echo "carry: [\".gpu-deps\"]; on the GPU machine: tools/bench_cuda.sh --deps .gpu-deps"
# The device tool sends at most 64 MiB (tracked files present in the working tree + carried
# paths). The repository alone is larger: the three 15 MB Origin fixtures (origin_a/b/c, which
# the CUDA tests skip when absent) and the 15 MB demo decoder can stay behind.
tree=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
deps=$(du -sb "$dst" | cut -f1)
total=$(((tree + deps) >> 20))
echo "would travel: $((tree >> 20)) MiB of tracked files + $((deps >> 20)) MiB of deps = $total MiB (limit 64)"
if ((total > 64)); then
  echo "to fit, leave the large fixtures out of the working tree for the run (restore afterwards):"
  echo "  git sparse-checkout set --no-cone '/*' '!/tests/fixtures/origin_[abc]/model.safetensors' '!/examples/data/demo_model/'"
  echo "  ... run ...;  git sparse-checkout disable"
fi
