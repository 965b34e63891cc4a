#!/usr/bin/env bash
# Reproduces the README's per-phoneme similarity picture (docs/similarity_demo.{json,png}).
#
# The bundled demo decoder samples the bundled demo input (172 frames) with the ODE at 2, 5 and
# 10 steps and with the stochastic sampler at 10 steps; each is scored phoneme by phoneme against
# a 100-step ODE sample (the demo input has no clean target mel, and 100 steps is the converged
# ODE solution the fast settings approximate). The demo input's mu is piecewise constant, one
# spectral envelope per synthetic "phoneme" (tools/make_demo_inputs.py), so the durations are
# read off mu's segments; the 20 symbols are an ARPAbet sentence of 20 phonemes that labels them
# (the demo mels are synthetic, not speech). Needs a Python with numpy and matplotlib
# (Debian: python3-matplotlib); PYTHON=... picks one. Takes about a minute on 2 cores.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/tools/setup_debian.sh"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" --target diffblocks-cli -j "$(nproc 2>/dev/null || echo 2)"
py="${PYTHON:-/usr/bin/python3}"
cli="$root/build/bin/diffblocks"
model="$root/examples/data/demo_model"
inputs="$root/examples/data/demo_inputs.safetensors"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
threads="$(nproc 2>/dev/null || echo 2)"

for steps in 100 2 5 10; do
  "$cli" sample --model "$model" --inputs "$inputs" --output "$work/ode$steps.safetensors" --steps "$steps" \
    --threads "$threads" 2>&1 | tail -1
done
"$cli" sample --model "$model" --inputs "$inputs" --output "$work/sde10.safetensors" --steps 10 --stochastic \
  --seed 1 --threads "$threads" 2>&1 | tail -1

# Segment lengths of mu (1, 80, T): a new segment starts wherever a frame differs from the last.
"$py" - "$inputs" >"$work/durations.txt" <<'PY'
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
entry = json.loads(raw[8:8 + n])["mu"]
begin, end = entry["data_offsets"]
mu = np.frombuffer(raw[8 + n + begin:8 + n + end], np.float32).reshape(entry["shape"])[0]
starts = [0] + [t + 1 for t in np.nonzero(np.any(mu[:, 1:] != mu[:, :-1], axis=0))[0]] + [mu.shape[1]]
print("\n".join(str(d) for d in np.diff(starts)))
PY
phonemes="AH B ER CH K AH N UW S L IH D AA N DH AH P AA N D"  # "a birch canoe slid on the pond"
if [ "$(wc -l <"$work/durations.txt")" -ne "$(wc -w <<<"$phonemes")" ]; then
  echo "make_similarity_demo: the demo input has $(wc -l <"$work/durations.txt") segments, expected 20" >&2
  exit 1
fi

mkdir -p "$root/docs"
"$cli" similarity --reference "$work/ode100.safetensors" \
  --candidates "$work/ode2.safetensors,$work/ode5.safetensors,$work/ode10.safetensors,$work/sde10.safetensors" \
  --labels "ODE 2 steps,ODE 5 steps,ODE 10 steps,stochastic 10 steps" \
  --durations "$work/durations.txt" --phonemes "$phonemes" \
  --title "Per-phoneme similarity to a 100-step ODE sample" \
  --subtitle "bundled demo decoder and input (synthetic mels, 172 frames); cosine of each segment's mean spectrum" \
  --output "$work/similarity_demo.json"
# Temporary paths say nothing to a reader of the committed JSON: keep the file names only.
sed -e "s|$work/||g" "$work/similarity_demo.json" >"$root/docs/similarity_demo.json"
"$py" "$root/tools/plot_similarity.py" "$root/docs/similarity_demo.json" -o "$root/docs/similarity_demo.png"
