#!/usr/bin/env python3
"""PyTorch eager baseline for benchmarks/bench_origin.cpp.

Times the reference Origin U-Net (tools/reference/gradtts_reference.py: Grad-TTS
GradLogPEstimator2d, dim 64, mults (1,2,4), 80 mels, batch 1, n_spks 1) in float32 eager mode
under torch.no_grad(), with the same weight rule and inputs as the C++ benchmark. For every T:
a few warm-up runs, then the median of N timed runs.

Prints a table and writes Google Benchmark JSON ("torch/origin_forward/T:<T>", real_time in
ms) so the results sit next to `bench_origin --benchmark_out=...`. With --compare OURS.json
(bench_origin's JSON output) it also prints diffblocks vs torch side by side.

    python tools/bench_torch.py --frames 128 512 --threads 2 --json torch.json \
        --compare origin.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
from gradtts_reference import GradLogPEstimator2d, Rezero  # noqa: E402


def origin_macs(frames: int) -> int:
    """Closed-form MAC count of the Origin U-Net at batch 1 (shared/reference/gradtts.md,
    "Speed and FLOPs"): per level-0/1/2 pixel, plus the time MLPs. Same as bench_common.hpp."""
    return 198_976 * 80 * frames + 1_015_808 * 20 * frames + 6_168_576 * 5 * frames + 147_456


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int) -> None:
    """The C++ benchmark's rule (bench::randomize): N(0, 0.02) everywhere, GroupNorm gamma
    1 + N(0, 0.02), Rezero g = 0.5. The values differ from the C++ ones (other RNG); only their
    scale matters for timing."""
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    for m in model.modules():
        if isinstance(m, torch.nn.GroupNorm):
            m.weight.add_(1.0)
        elif isinstance(m, Rezero):
            m.g.fill_(0.5)


def time_forward(model, frames: int, warmup: int, repeats: int, seed: int):
    """Returns per-run (wall seconds, this thread's CPU seconds) for `repeats` timed runs."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 80, frames, generator=gen)
    mu = torch.randn(1, 80, frames, generator=gen)
    mask = torch.ones(1, 1, frames)
    t = torch.full((1,), 0.5)
    runs = []
    with torch.no_grad():
        for _ in range(warmup):
            model(x, mask, mu, t)
        for _ in range(repeats):
            w0, c0 = time.perf_counter(), time.thread_time()
            model(x, mask, mu, t)
            runs.append((time.perf_counter() - w0, time.thread_time() - c0))
    return runs


def benchmark_entry(index: int, frames: int, runs) -> dict:
    """One result in Google Benchmark's JSON schema (times in ms, like bench_origin)."""
    wall = [w for w, _ in runs]
    med = statistics.median(wall)
    gflop = 2 * origin_macs(frames) / 1e9
    name = f"torch/origin_forward/T:{frames}"
    return {
        "name": name,
        "family_index": 0,
        "per_family_instance_index": index,
        "run_name": name,
        "run_type": "iteration",
        "repetitions": 1,
        "repetition_index": 0,
        "threads": 1,
        "iterations": len(runs),
        "real_time": med * 1e3,                                   # median of the timed runs
        "cpu_time": statistics.median(c for _, c in runs) * 1e3,  # calling thread, as Google Benchmark
        "time_unit": "ms",
        "min_real_time": min(wall) * 1e3,
        "mean_real_time": statistics.fmean(wall) * 1e3,
        "GFLOP": gflop,
        "GFLOP/s": gflop / med,
        "items_per_second": frames / med,                          # mel frames per second
    }


def context(args) -> dict:
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host_name": socket.gethostname(),
        "executable": " ".join([sys.executable] + sys.argv),
        "num_cpus": os.cpu_count(),
        "library_build_type": "release",
        "cpu": platform.processor() or platform.machine(),
        "torch_version": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available()),
        "warmup": args.warmup,
        "repeats": args.repeats,
        "weights": "N(0, 0.02), GroupNorm gamma 1 + N(0, 0.02), Rezero g 0.5",
    }


def load_ours(path: Path) -> dict:
    """frames -> (ms, GFLOP/s) of diffblocks/origin_forward from bench_origin's JSON: the median
    aggregate when run with --benchmark_repetitions, else the median over the iteration rows."""
    rows = json.loads(path.read_text())["benchmarks"]
    by_frames: dict = {}
    for r in rows:
        if not r["run_name"].startswith("diffblocks/origin_forward/T:"):
            continue
        frames = int(r["run_name"].split("T:")[1].split("/")[0])
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[r["time_unit"]]
        by_frames.setdefault(frames, {"iteration": [], "median": None})
        entry = (r["real_time"] * scale, r.get("GFLOP/s"))
        if r["run_type"] == "aggregate":
            if r.get("aggregate_name") == "median":
                by_frames[frames]["median"] = entry
        else:
            by_frames[frames]["iteration"].append(entry)
    out = {}
    for frames, v in by_frames.items():
        if v["median"]:
            out[frames] = v["median"]
        elif v["iteration"]:
            ms = statistics.median(e[0] for e in v["iteration"])
            out[frames] = (ms, 2 * origin_macs(frames) / 1e9 / (ms / 1e3))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[128, 512, 2048], help="T values (multiples of 4)")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("DIFFBLOCKS_THREADS", 2)))
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per T; the median is reported")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write Google Benchmark JSON here")
    ap.add_argument("--compare", type=Path, help="bench_origin JSON output to compare with")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    model = GradLogPEstimator2d(64, dim_mults=(1, 2, 4), n_spks=1, n_feats=80).eval()
    randomize_(model, args.seed)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}; "
          f"{args.warmup} warm-ups, median of {args.repeats}")
    print(f"{'benchmark':<30} {'median ms':>10} {'min ms':>10} {'GFLOP':>8} {'GFLOP/s':>8}")
    entries = []
    for i, frames in enumerate(args.frames):
        e = benchmark_entry(i, frames, time_forward(model, frames, args.warmup, args.repeats, args.seed + 1))
        entries.append(e)
        print(f"{e['name']:<30} {e['real_time']:>10.1f} {e['min_real_time']:>10.1f} "
              f"{e['GFLOP']:>8.2f} {e['GFLOP/s']:>8.1f}", flush=True)

    if args.json:
        args.json.write_text(json.dumps({"context": context(args), "benchmarks": entries}, indent=2) + "\n")
        print(f"wrote {args.json}")

    if args.compare:
        ours = load_ours(args.compare)
        print(f"\n{'T':>6} {'diffblocks ms':>14} {'GFLOP/s':>8} {'torch ms':>10} {'GFLOP/s':>8} "
              f"{'torch/ours':>11}")
        for e in entries:
            frames = int(e["name"].split("T:")[1])
            if frames not in ours:
                print(f"{frames:>6} {'-':>14} {'-':>8} {e['real_time']:>10.1f} {e['GFLOP/s']:>8.1f} {'-':>11}")
                continue
            ms, gflops = ours[frames]
            print(f"{frames:>6} {ms:>14.1f} {gflops:>8.1f} {e['real_time']:>10.1f} {e['GFLOP/s']:>8.1f} "
                  f"{e['real_time'] / ms:>10.2f}x")
        print("torch/ours > 1: diffblocks is faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
