#!/usr/bin/env python3
"""Writes examples/data/demo_inputs.safetensors: the input of the README's main job.

One utterance of 172 frames (2 s of 22.05 kHz audio at hop 256, already a multiple of 4),
80 mel bins. mu is a smooth, phoneme-like piecewise-constant spectrogram (what Grad-TTS's
encoder produces after alignment), z = mu + noise / temperature as in GradTTS.forward.
Needs numpy and safetensors only.
"""
import argparse
import os

import numpy as np
from safetensors.numpy import save_file


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-o", "--output", default=os.path.join(os.path.dirname(__file__), "..", "examples", "data",
                                                           "demo_inputs.safetensors"))
    ap.add_argument("--frames", type=int, default=172)
    ap.add_argument("--n-feats", type=int, default=80)
    ap.add_argument("--temperature", type=float, default=1.5)
    args = ap.parse_args()

    rng = np.random.default_rng(2024)
    T, F = args.frames, args.n_feats
    # Phoneme segments of 5-15 frames, each with its own smooth spectral envelope.
    mu = np.zeros((1, F, T), np.float32)
    t = 0
    freqs = np.linspace(0, 1, F)
    while t < T:
        d = int(rng.integers(5, 16))
        centre, width = rng.uniform(0.1, 0.7), rng.uniform(0.05, 0.3)
        envelope = -1.0 + 1.5 * np.exp(-((freqs - centre) / width) ** 2) - 0.8 * freqs
        mu[0, :, t:t + d] = envelope[:, None]
        t += d
    z = mu + rng.standard_normal(mu.shape).astype(np.float32) / args.temperature
    mask = np.ones((1, 1, T), np.float32)
    save_file({"z": z.astype(np.float32), "mu": mu, "mask": mask}, args.output)
    os.chmod(args.output, 0o644)
    print(f"wrote {args.output}: z, mu (1, {F}, {T}), mask (1, 1, {T})")


if __name__ == "__main__":
    main()
