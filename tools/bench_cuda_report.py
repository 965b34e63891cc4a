#!/usr/bin/env python3
"""Markdown report of a GPU run (tools/bench_cuda.sh): benchmarks/bench_cuda.cu's JSON, and
tools/bench_torch.py --device cuda's JSON beside it when there is one.

    python3 tools/bench_cuda_report.py build-gpu/bench/bench_cuda.json \\
        [--torch build-gpu/bench/torch_cuda.json] [--tests build-gpu/bench/tests.log] -o report_cuda.md

Tables: rooflines (device-to-device copy GB/s, SGEMM TFLOP/s), the U-Nets, attention variants,
blocks and every op (ms, GB/s with the share of the copy roofline, TFLOP/s with the share of
SGEMM), with torch's time and torch/diffblocks (> 1: diffblocks is faster) where torch has the
same case. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

SCALE = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def load(path: Path | None) -> tuple[dict, dict]:
    """name -> row (times in ms, the median aggregate when repetitions were run), and the context."""
    if not path or not path.exists():
        return {}, {}
    doc = json.loads(path.read_text())
    rows: dict = {}
    for r in doc.get("benchmarks", []):
        if r.get("run_type") == "aggregate" and r.get("aggregate_name") != "median":
            continue
        if "error_occurred" in r and r["error_occurred"]:
            continue
        name = r.get("run_name", r["name"])
        name = re.sub(r"/manual_time$", "", name)
        r = dict(r)
        r["ms"] = r["real_time"] * SCALE[r.get("time_unit", "ms")]
        if r.get("run_type") == "aggregate" or name not in rows:
            rows[name] = r
    return rows, doc.get("context", {})


def fmt(v, digits=3):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}g}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ours", type=Path)
    ap.add_argument("--torch", type=Path)
    ap.add_argument("--tests", type=Path, help="the CUDA test binary's output, for its summary line")
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()

    ours, ctx = load(args.ours)
    torch, tctx = load(args.torch)
    copy_gbs = max((r.get("GB/s", 0) for n, r in ours.items() if n.startswith("d2d_copy/")), default=0)
    sgemm_tf = max((r.get("TFLOP/s", 0) for n, r in ours.items() if n.startswith("sgemm/")), default=0)

    lines = ["# diffblocks on CUDA", ""]
    lines.append(f"- device: {ctx.get('cuda_device', '?')}; {ctx.get('math', '')}")
    if tctx:
        lines.append(f"- torch {tctx.get('torch_version', '?')} (CUDA {tctx.get('torch_cuda', '?')}), TF32 {tctx.get('tf32', '?')}")
    else:
        lines.append("- torch: no results (tools/bench_torch.py --device cuda did not run)")
    lines.append(f"- rooflines measured in the same run: device-to-device copy {fmt(copy_gbs)} GB/s, "
                 f"SGEMM {fmt(sgemm_tf)} TFLOP/s")
    if args.tests and args.tests.exists():
        text = args.tests.read_text(errors="replace")
        summary = [ln for ln in text.splitlines() if ln.startswith(("test cases:", "All tests passed", "assertions:"))]
        failed = [ln for ln in text.splitlines() if ln.endswith("FAILED")]
        lines.append(f"- tests: {' / '.join(summary) if summary else 'no summary line (crashed?)'}")
        if failed:
            lines.append(f"- op cases over the accuracy contract: {len(failed)} (see the test log)")
    lines.append("")

    def torch_name(name: str) -> str | None:
        for cand in ("torch/" + name, "torch/" + name.replace("/streaming/", "/sdpa/")):
            if cand in torch:
                return cand
        return None

    def counterparts(name: str) -> list:
        """(how PyTorch ran it, its case) for each torch case a row of ours is compared with: a
        bf16 U-Net against the converted model (model.to(bfloat16)) and against the float32 model
        under bf16 autocast, as PyTorch users run it in half precision."""
        if "_bf16/" in name:
            pairs = [("model.to(bfloat16)", "torch/" + name),
                     ("bf16 autocast", "torch/" + name.replace("_bf16/", "_bf16_autocast/"))]
            return [(how, t) for how, t in pairs if t in torch]
        t = torch_name(name)
        return [("", t)] if t else []

    def table(title: str, prefixes: tuple, cols=("GB/s", "TFLOP/s"), with_torch=True):
        names = [n for n in ours if n.startswith(prefixes)]
        prefix = prefixes[0] if len(prefixes) == 1 and prefixes[0].endswith("/") else ""
        if not names:
            return
        head = ["case", "ms"] + list(cols)
        if copy_gbs and "GB/s" in cols:
            head.append("% copy")
        if sgemm_tf and "TFLOP/s" in cols:
            head.append("% SGEMM")
        if with_torch and torch:
            head += ["torch ms", "torch / ours"]
        lines.extend([f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)])
        for n in names:
            r = ours[n]
            row = [n[len(prefix):], fmt(r["ms"])]
            row += [fmt(r.get(c)) for c in cols]
            if copy_gbs and "GB/s" in cols:
                row.append(fmt(100 * r["GB/s"] / copy_gbs) if r.get("GB/s") else "-")
            if sgemm_tf and "TFLOP/s" in cols:
                row.append(fmt(100 * r["TFLOP/s"] / sgemm_tf) if r.get("TFLOP/s") else "-")
            if not (with_torch and torch):
                lines.append("| " + " | ".join(row) + " |")
                continue
            # One row per PyTorch counterpart (a bf16 U-Net has two), ours repeated.
            for how, t in counterparts(n) or [("", None)]:
                cells = list(row)
                if how:
                    cells[0] += f" (torch: {how})"
                cells += [fmt(torch[t]["ms"]), f"**{torch[t]['ms'] / r['ms']:.2f}x**"] if t else ["-", "-"]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")

    table("Rooflines", ("d2d_copy/", "sgemm/"), cols=("GB/s", "TFLOP/s"))
    table("U-Nets", ("origin_", "diffuser_"), cols=("TFLOP/s", "frames/s", "audio_s_per_s"))
    table("Attention", ("attention/",), cols=("TFLOP/s",))
    table("Blocks", ("blocks/",), cols=("GB/s", "TFLOP/s"))
    table("Ops (op registry, Perf shapes)", ("ops/",), cols=("GB/s", "TFLOP/s"), with_torch=False)
    if torch:
        matched = {t for o in ours for _, t in counterparts(o)}
        extra = [n for n in torch if n not in matched]
        if extra:
            lines += ["## torch cases without a diffblocks counterpart", "", "| case | ms |", "|---|---|"]
            lines += [f"| {n} | {fmt(torch[n]['ms'])} |" for n in extra]
            lines.append("")
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
