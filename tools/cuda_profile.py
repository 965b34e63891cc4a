#!/usr/bin/env python3
"""Sums an ncu per-kernel CSV (one profiled forward) by kernel name: time, share, launches.

    ncu --profile-from-start off --clock-control none --metrics gpu__time_duration.sum --csv \
        --print-units base build/bin/bench_cuda --profile origin_forward/B:16 > prof.csv
    python3 tools/cuda_profile.py prof.csv [--top 30]
"""
import argparse
import csv
import collections
import io
import re
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    text = open(args.csv, encoding="utf-8", errors="replace").read()
    start = text.find('"ID"')
    if start < 0:
        print("no ncu CSV rows found", file=sys.stderr)
        return 1
    rows = list(csv.DictReader(io.StringIO(text[start:])))
    total = collections.Counter()
    count = collections.Counter()
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        name = re.sub(r"\(.*", "", r["Kernel Name"]).strip()
        name = re.sub(r"<.*", "", name)[:90]
        value = float(r["Metric Value"].replace(",", ""))
        unit = r.get("Metric Unit", "ns")
        ns = value * {"ns": 1.0, "nsecond": 1.0, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6}.get(unit, 1.0)
        total[name] += ns
        count[name] += 1
    all_ns = sum(total.values())
    print(f"{len(rows)} rows, {sum(count.values())} kernels, {all_ns / 1e6:.3f} ms of kernel time")
    print(f"{'ms':>9} {'share':>6} {'calls':>6}  kernel")
    for name, ns in total.most_common(args.top):
        print(f"{ns / 1e6:9.3f} {100 * ns / all_ns:5.1f}% {count[name]:6d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
