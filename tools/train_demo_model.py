#!/usr/bin/env python3
"""Trains the small demo decoder bundled in examples/data/demo_model.

The README's main job needs a decoder whose reverse diffusion is stable, which random weights
are not (the Euler ODE amplifies |x - mu| by ~140x over 10 steps unless the estimator returns
a score). This trains Grad-TTS's estimator (the real decoder size: dim 64, mults (1, 2, 4),
80 mels) for a few minutes on CPU with Grad-TTS's own loss, on synthetic "mels": mu is a
phoneme-like piecewise-constant spectrogram and the target x0 = mu + a smooth spectral detail.
The result is not a TTS model, but its score is good enough that sampling denoises z back to
a mel close to x0's distribution, which is what the demo shows.

    python tools/train_demo_model.py --minutes 8 --out examples/data/demo_model
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "reference"))
from gradtts_reference import Diffusion, GradLogPEstimator2d  # noqa: E402


def synthetic_batch(rng, batch, frames, n_feats):
    freqs = np.linspace(0, 1, n_feats)
    mu = np.zeros((batch, n_feats, frames), np.float32)
    x0 = np.zeros_like(mu)
    for b in range(batch):
        t = 0
        while t < frames:
            d = int(rng.integers(5, 16))
            centre, width = rng.uniform(0.1, 0.7), rng.uniform(0.05, 0.3)
            env = -1.0 + 1.5 * np.exp(-((freqs - centre) / width) ** 2) - 0.8 * freqs
            mu[b, :, t:t + d] = env[:, None]
            # detail: a few harmonics whose strength drifts within the phoneme
            harm = 0.3 * np.sin(2 * math.pi * freqs[:, None] * rng.uniform(4, 12) + rng.uniform(0, 6.3))
            drift = np.linspace(rng.uniform(0.5, 1), rng.uniform(0.5, 1), min(d, frames - t))[None, :]
            x0[b, :, t:t + d] = env[:, None] + harm * drift
            t += d
    return torch.from_numpy(x0), torch.from_numpy(mu)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="examples/data/demo_model")
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n_feats = 80
    config = {"_class_name": "GradLogPEstimator2d", "dim": args.dim, "dim_mults": [1, 2, 4], "groups": 8,
              "n_spks": 1, "spk_emb_dim": 64, "n_feats": n_feats, "pe_scale": 1000, "n_emos": 1,
              "emo_emb_dim": 64, "n_psd": 0, "beta_min": 0.05, "beta_max": 20.0}
    diff = Diffusion(n_feats, args.dim, n_spks=1, beta_min=0.05, beta_max=20.0, pe_scale=1000)
    est = diff.estimator
    opt = torch.optim.Adam(est.parameters(), lr=1e-3)
    mask = torch.ones(args.batch, 1, args.frames)
    start, step = time.time(), 0
    while time.time() - start < args.minutes * 60:
        x0, mu = synthetic_batch(rng, args.batch, args.frames, n_feats)
        t = torch.rand(args.batch).clamp(1e-5, 1 - 1e-5)
        xt, z = diff.forward_diffusion(x0, mask, mu, t)
        cum = 0.05 * t + 0.5 * (20.0 - 0.05) * t * t
        noise_est = est(xt, mask, mu, t) * torch.sqrt(1.0 - torch.exp(-cum))[:, None, None]
        loss = ((noise_est + z) ** 2).sum() / (mask.sum() * n_feats)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(est.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 20 == 0:
            print(f"step {step}: loss {loss.item():.4f} ({time.time() - start:.0f} s)", flush=True)

    est.eval()
    with torch.no_grad():  # check: 10-step ODE from z = mu + N/1.5 lands near the data
        x0, mu = synthetic_batch(rng, 2, 172, n_feats)
        m = torch.ones(2, 1, 172)
        z = mu + torch.randn_like(mu) / 1.5
        out = diff.reverse_diffusion(z, m, mu, 10)
        print(f"check: |out - x0| mean {float((out - x0).abs().mean()):.3f}, |z - x0| mean "
              f"{float((z - x0).abs().mean()):.3f}, max |out| {float(out.abs().max()):.2f}")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    state = {k: v.detach().to(torch.bfloat16).contiguous() for k, v in est.state_dict().items()}
    save_file(state, os.path.join(args.out, "model.safetensors"))
    print(f"wrote {args.out} after {step} steps")


if __name__ == "__main__":
    main()
