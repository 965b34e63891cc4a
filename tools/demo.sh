#!/usr/bin/env bash
# The README's main job: set up a fresh Debian machine, build the CLI, and synthesise a mel with
# Grad-TTS reverse diffusion (10 steps) on the bundled demo decoder and input, printing the time
# of every step. Writes mel.safetensors (tensor "out", (1, 80, 172)) in the current directory.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/tools/setup_debian.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" --target diffblocks-cli -j "$(nproc 2>/dev/null || echo 2)"
"$root/build/bin/diffblocks" info --model "$root/examples/data/demo_model" | sed -n 1,4p  # reads it all: no SIGPIPE under pipefail
"$root/build/bin/diffblocks" sample --model "$root/examples/data/demo_model" \
  --inputs "$root/examples/data/demo_inputs.safetensors" --output mel.safetensors --steps "${STEPS:-10}" \
  --threads "$(nproc 2>/dev/null || echo 2)"
