#!/usr/bin/env bash
# The README's main job: set up a fresh Debian machine, build the CLI, and synthesise a mel with
# Grad-TTS reverse diffusion (10 steps) on the bundled demo decoder and input, printing every
# step, the timings and the real-time factor. Writes mel.safetensors (tensor "out", (1, 80, 172))
# in the current directory.
#   STEPS=N               sampling steps (default 10)
#   DIFFBLOCKS_BUILD_DIR  the build tree to configure and use (default: build/ in the checkout;
#                         ctest's readme_demo runs the script on its own tree)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${DIFFBLOCKS_BUILD_DIR:-$root/build}"
"$root/tools/setup_debian.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target diffblocks-cli -j "$(nproc 2>/dev/null || echo 2)"
"$build/bin/diffblocks" info --model "$root/examples/data/demo_model" | sed -n 1,4p  # reads it all: no SIGPIPE under pipefail
"$build/bin/diffblocks" sample --model "$root/examples/data/demo_model" \
  --inputs "$root/examples/data/demo_inputs.safetensors" --output mel.safetensors --steps "${STEPS:-10}" \
  --threads "$(nproc 2>/dev/null || echo 2)"
