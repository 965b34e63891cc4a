#!/usr/bin/env python3
"""Side-by-side report of diffblocks and PyTorch benchmark results (Google Benchmark JSON).

Reads the JSON of bench_origin, bench_attention (diffblocks) and tools/bench_torch.py (PyTorch,
same case names with "torch/" in front), then writes
  - a markdown table (stdout, and --markdown FILE): every U-Net case with the ratio
    torch time / diffblocks time (> 1: diffblocks is faster), the SGEMM rates, and the
    forward's GFLOP/s as a fraction of the best SGEMM rate measured in the same run;
  - PNG plots in --plots DIR: origin.png (U-Net forward times), attention_self.png and
    attention_cross.png (time vs sequence length, log-log, every variant).

    python tools/bench_report.py --ours build/bench/origin.json build/bench/attention.json \\
        --torch build/bench/torch.json --markdown build/bench/report.md --plots docs/bench
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

SCALE = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def load(paths):
    """run_name -> {"ms": median real time, "gflops": ..., "row": last row}, plus the contexts."""
    acc, contexts = defaultdict(list), []
    for p in paths:
        doc = json.loads(Path(p).read_text())
        contexts.append(doc.get("context", {}))
        for r in doc["benchmarks"]:
            if r.get("error_occurred"):
                continue
            name = re.sub(r"/(real_time|min_time:[0-9.]+)", "", r["run_name"])
            if r["run_type"] == "aggregate":
                if r.get("aggregate_name") != "median":
                    continue
                acc[name] = [r]  # a median aggregate wins over single iterations
                acc[name + "#agg"] = [True]
            elif not acc.get(name + "#agg"):
                acc[name].append(r)
    out = {}
    for name, rows in acc.items():
        if name.endswith("#agg"):
            continue
        ms = statistics.median(r["real_time"] * SCALE[r["time_unit"]] for r in rows)
        out[name] = {"ms": ms, "gflops": rows[-1].get("GFLOP/s"), "row": rows[-1]}
    return out, contexts


def ratio_rows(ours, torch, family):
    rows = []
    for name, r in sorted(ours.items(), key=lambda kv: natural(kv[0])):
        if not name.startswith(f"diffblocks/{family}/"):
            continue
        t = torch.get(name.replace("diffblocks/", "torch/", 1))
        rows.append((name.split("/", 2)[2], r, t))
    return rows


def natural(s):
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", s)]


def markdown(ours, torch, contexts):
    lines = []
    ctx = {k: v for c in contexts for k, v in c.items()}
    lines.append(f"Machine: {ctx.get('num_cpus', '?')} CPUs ({ctx.get('cpu', 'unknown CPU')}), "
                 f"diffblocks threads {ctx.get('diffblocks_threads', '?')}, torch {ctx.get('torch_version', '?')} "
                 f"({ctx.get('torch_num_threads', '?')} threads, {ctx.get('torch_cpu_capability', '?')}), "
                 f"{ctx.get('date', '')}".rstrip(", "))
    lines.append("")
    best_gemm = max([r["gflops"] or 0 for n, r in {**ours, **torch}.items() if "/sgemm/" in n] or [0])
    lines.append("| case | diffblocks ms | torch ms | torch / diffblocks | diffblocks GFLOP/s | % of best SGEMM |")
    lines.append("|---|---|---|---|---|---|")
    for family in ("origin_forward", "sampler_step", "diffuser_forward"):
        for case, r, t in ratio_rows(ours, torch, family):
            g = r["gflops"]
            pct = f"{100 * g / best_gemm:.0f} %" if g and best_gemm else "-"
            gs = f"{g:.0f}" if g else "-"
            ts, ratio = (f"{t['ms']:.1f}", f"**{t['ms'] / r['ms']:.2f}x**") if t else ("-", "-")
            lines.append(f"| {family}/{case} | {r['ms']:.1f} | {ts} | {ratio} | {gs} | {pct} |")
    for name in sorted((n for n in {**ours, **torch} if "/sgemm/" in n), key=natural):
        r = ours.get(name) or torch.get(name)
        lines.append(f"| {name} | {r['ms']:.1f} | | | {r['gflops']:.0f} | {100 * r['gflops'] / best_gemm:.0f} % |")
    lines.append("")
    lines.append("Attention (4 heads, batch 1; torch: naive = matmul-softmax-matmul, sdpa = "
                 "F.scaled_dot_product_attention):")
    lines.append("")
    lines.append("| case | ms | GFLOP/s | torch naive ms | torch sdpa ms (linear: torch linear) |")
    lines.append("|---|---|---|---|---|")
    for name, r in sorted(ours.items(), key=lambda kv: natural(kv[0])):
        if not (name.startswith("self/") or name.startswith("cross/")):
            continue
        kind, variant, shape = name.split("/", 2)
        tn = torch.get(f"torch/{kind}/naive/{shape}")
        ts = torch.get(f"torch/{kind}/sdpa/{shape}") if variant != "linear" else torch.get(f"torch/{name}")
        lines.append(f"| {name} | {r['ms']:.2f} | {r['gflops'] or 0:.0f} | "
                     f"{tn['ms']:.2f} | " if tn and variant != "linear" else f"| {name} | {r['ms']:.2f} | {r['gflops'] or 0:.0f} | - | ")
        lines[-1] += f"{ts['ms']:.2f} |" if ts else "- |"
    return "\n".join(lines) + "\n"


def plots(ours, torch, outdir: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    # U-Net forward times.
    rows = ratio_rows(ours, torch, "origin_forward")
    if rows:
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=150)
        labels = [c for c, _, _ in rows]
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [r["ms"] for _, r, _ in rows], width=0.4, label="diffblocks")
        ax.bar([x + 0.2 for x in xs], [t["ms"] if t else 0 for _, _, t in rows], width=0.4, label="PyTorch eager")
        for x, (_, r, t) in zip(xs, rows):
            if t:
                ax.annotate(f"{t['ms'] / r['ms']:.2f}x", (x, max(r["ms"], t["ms"])), ha="center", va="bottom")
        ax.set_xticks(list(xs), labels)
        ax.set_yscale("log")
        top = max(max(r["ms"], t["ms"] if t else 0) for _, r, t in rows)
        ax.set_ylim(top=top * 1.6)  # room for the ratio labels
        ax.set_ylabel("forward time (ms, log)")
        ax.set_title("Origin U-Net forward (dim 64, 80 mels, batch 1)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(outdir / "origin.png")
        plt.close(fig)

    def series(prefix, pattern, source):
        pts = []
        for name, r in source.items():
            m = re.fullmatch(pattern, name.removeprefix(prefix))
            if m:
                pts.append((int(m.group(1)), r["ms"]))
        return sorted(pts)

    for kind, pattern_tail, xlabel, title in (
            ("self", r"/N:(\d+)/dh:64", "tokens N (queries = keys)", "Self-attention, 4 heads x 64"),
            ("cross", r"/N:1024/S:(\d+)/dh:64", "style tokens S (1024 content queries)",
             "CrossAttention, 4 heads x 64")):
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=150)
        for variant, style in (("linear", "o-"), ("naive", "s-"), ("streaming", "^-")):
            pts = series("", f"{kind}/{variant}{pattern_tail}", ours)
            if pts:
                ax.plot(*zip(*pts), style, label=f"diffblocks {variant}")
        for variant, style in (("linear", "o--"), ("naive", "s--"), ("sdpa", "^--")):
            pts = series("torch/", f"{kind}/{variant}{pattern_tail}", torch)
            if pts:
                ax.plot(*zip(*pts), style, alpha=0.7, label=f"torch {variant}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("time (ms, log)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(outdir / f"attention_{kind}.png")
        plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ours", nargs="+", type=Path, required=True, help="diffblocks benchmark JSON files")
    ap.add_argument("--torch", nargs="*", type=Path, default=[], help="bench_torch.py JSON files")
    ap.add_argument("--markdown", type=Path, help="also write the table here")
    ap.add_argument("--plots", type=Path, help="directory for the PNG plots")
    args = ap.parse_args()
    ours, c1 = load(args.ours)
    torch, c2 = load(args.torch)
    md = markdown(ours, torch, c1 + c2)
    print(md)
    if args.markdown:
        args.markdown.write_text(md)
    if args.plots:
        plots(ours, torch, args.plots)
        print(f"plots in {args.plots}")


if __name__ == "__main__":
    main()
