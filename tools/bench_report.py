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

--torch-legacy FILES adds a second PyTorch baseline (bench_torch.py run under another torch,
e.g. 1.13.1 through build/torch-legacy/python): the U-Net table then has time and ratio columns
for both versions (labelled with the versions their JSON contexts name), the SGEMM rows list
every source, the attention table gets the legacy torch's naive (and linear) times, and
origin.png a third bar.

Half-precision attention cases (bench_attention's dtype axis, `self/naive_bf16/N:...`) are
compared with bench_torch.py's autocast runs of the same case (`torch/self/naive_bf16_autocast/
N:...`, `--dtypes f32 bf16 f16`); the plots show float32 only.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

from bench_names import autocast_name, compiled_name

SCALE = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def load(paths):
    """run_name -> {"ms": median real time, "gflops": ..., "row": that row}, plus the contexts.

    Within one file a name's time is its median aggregate when there is one, else the median
    of its rows. A name found in several files (the rounds of tools/bench.sh --rounds N, for
    diffblocks and for PyTorch alike) takes the fastest round: the one least disturbed by other
    load on a shared machine, picked the same way for every side."""
    rounds, contexts = defaultdict(list), []
    for p in paths:
        doc = json.loads(Path(p).read_text())
        contexts.append(doc.get("context", {}))
        agg, rows = {}, defaultdict(list)
        for r in doc["benchmarks"]:
            if r.get("error_occurred"):
                continue
            name = re.sub(r"/(real_time|min_time:[0-9.]+)", "", r["run_name"])
            if r["run_type"] == "aggregate":
                if r.get("aggregate_name") == "median":
                    agg[name] = r
            else:
                rows[name].append(r)
        for name in set(agg) | set(rows):
            if name in agg:
                r = agg[name]
                rounds[name].append((r["real_time"] * SCALE[r["time_unit"]], r))
            else:
                times = [r["real_time"] * SCALE[r["time_unit"]] for r in rows[name]]
                rounds[name].append((statistics.median(times), rows[name][-1]))
    out = {}
    for name, vals in rounds.items():
        ms, row = min(vals, key=lambda v: v[0])
        out[name] = {"ms": ms, "gflops": row.get("GFLOP/s"), "row": row, "rounds": len(vals)}
    return out, contexts


# The U-Net families of the table: bench_origin's float32 cases and their dtype axis.
FAMILIES = tuple(f + dt for f in ("origin_forward", "sampler_step", "diffuser_forward")
                 for dt in ("", "_bf16", "_f16"))


def torch_name(name):
    """bench_torch.py's name of diffblocks case `name`: diffblocks/origin_forward/T:512 ->
    torch/origin_forward/T:512, a half case's autocast run: diffblocks/origin_forward_bf16/T:512
    -> torch/origin_forward_bf16_autocast/T:512."""
    _, case, args = name.split("/", 2)
    base, dtype = split_dtype(case)
    return f"{autocast_name('torch/' + base, dtype or 'f32')}/{args}"


def ratio_rows(ours, torch, family):
    rows = []
    for name, r in sorted(ours.items(), key=lambda kv: natural(kv[0])):
        if not name.startswith(f"diffblocks/{family}/"):
            continue
        rows.append((name.split("/", 2)[2], r, torch.get(torch_name(name))))
    return rows


def split_dtype(variant):
    """('naive', 'bf16') for bench_attention's 'naive_bf16'; ('naive', None) for float32's 'naive'."""
    m = re.fullmatch(r"(.+)_(bf16|f16)", variant)
    return (m.group(1), m.group(2)) if m else (variant, None)


def torch_attention(src, name):
    """PyTorch's counterparts of bench_attention case `name` in `src` (bench_torch.py's names; a
    half case's are its autocast runs): (naive, sdpa) for softmax attention, (None, linear) for
    linear attention; None where src lacks one."""
    kind, variant, shape = name.split("/", 2)
    base, dtype = split_dtype(variant)

    def get(v):
        return src.get(f"torch/{kind}/{v if dtype is None else f'{v}_{dtype}_autocast'}/{shape}")
    return (None, get("linear")) if base == "linear" else (get("naive"), get("sdpa"))


def natural(s):
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", s)]


def torch_context(contexts):
    """The merged context of the files that name a torch version (bench_torch.py output)."""
    return {k: v for c in contexts if "torch_version" in c for k, v in c.items()}


def short_version(ctx):
    """'2.15.0' for torch_version '2.15.0+cu132'; '?' when unknown."""
    return str(ctx.get("torch_version", "?")).split("+")[0]


def torch_summary(ctx):
    return (f"torch {ctx.get('torch_version', '?')} "
            f"({ctx.get('torch_num_threads', '?')} threads, {ctx.get('torch_cpu_capability', '?')})")


def rounds_note(*sources):
    """A line saying how the U-Net times were picked when several rounds were run."""
    n = max([r.get("rounds", 1) for src in sources for r in src.values()] or [1])
    if n <= 1:
        return []
    return [f"U-Nets and SGEMM: {n} rounds, diffblocks and PyTorch alternating; each cell is the fastest "
            f"round's median (the least disturbed by other load).", ""]


def markdown(ours, torch, contexts, legacy=None, legacy_contexts=()):
    if legacy:
        return markdown_two(ours, torch, contexts, legacy, legacy_contexts)
    lines = []
    ctx = {k: v for c in contexts for k, v in c.items()}
    lines.append(f"Machine: {ctx.get('num_cpus', '?')} CPUs ({ctx.get('cpu', 'unknown CPU')}), "
                 f"diffblocks threads {ctx.get('diffblocks_threads', '?')}, torch {ctx.get('torch_version', '?')} "
                 f"({ctx.get('torch_num_threads', '?')} threads, {ctx.get('torch_cpu_capability', '?')}), "
                 f"{ctx.get('date', '')}".rstrip(", "))
    lines.append("")
    lines += rounds_note(ours, torch)
    best_gemm = max([r["gflops"] or 0 for n, r in {**ours, **torch}.items() if "/sgemm/" in n] or [0])
    lines.append("| case | diffblocks ms | torch ms | torch / diffblocks | diffblocks GFLOP/s | % of best SGEMM |")
    lines.append("|---|---|---|---|---|---|")
    for family in FAMILIES:
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
        tn, ts = torch_attention(torch, name)
        ms = [f"{t['ms']:.2f}" if t else "-" for t in (tn, ts)]
        lines.append(f"| {name} | {r['ms']:.2f} | {r['gflops'] or 0:.0f} | {' | '.join(ms)} |")
    return "\n".join(lines) + "\n"


def markdown_two(ours, torch, contexts, legacy, legacy_contexts):
    """markdown() with a second (legacy) torch baseline: both versions' times and ratios."""
    new_ctx, old_ctx = torch_context(contexts), torch_context(legacy_contexts)
    new_v, old_v = short_version(new_ctx), short_version(old_ctx)
    ctx = {k: v for c in contexts for k, v in c.items()}
    lines = [f"Machine: {ctx.get('num_cpus', '?')} CPUs ({ctx.get('cpu', 'unknown CPU')}), "
             f"diffblocks threads {ctx.get('diffblocks_threads', '?')}, {torch_summary(old_ctx)} and "
             f"{torch_summary(new_ctx)}, {ctx.get('date', '')}".rstrip(", "), ""]
    lines += rounds_note(ours, torch, legacy)
    sources = [("diffblocks", ours), (f"torch {old_v}", legacy), (f"torch {new_v}", torch)]
    best_gemm = max([r["gflops"] or 0 for _, src in sources for n, r in src.items() if "/sgemm/" in n] or [0])

    def cell(t, r):
        return (f"{t['ms']:.1f}", f"**{t['ms'] / r['ms']:.2f}x**") if t else ("-", "-")

    lines.append(f"| case | diffblocks ms | torch {old_v} ms | torch {old_v} / diffblocks | torch {new_v} ms | "
                 f"torch {new_v} / diffblocks | diffblocks GFLOP/s | % of best SGEMM |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for family in FAMILIES:
        for case, r, t in ratio_rows(ours, torch, family):
            old = legacy.get(torch_name(f"diffblocks/{family}/{case}"))
            g = r["gflops"]
            pct = f"{100 * g / best_gemm:.0f} %" if g and best_gemm else "-"
            gs = f"{g:.0f}" if g else "-"
            lines.append(f"| {family}/{case} | {r['ms']:.1f} | {' | '.join(cell(old, r))} | "
                         f"{' | '.join(cell(t, r))} | {gs} | {pct} |")
    # SGEMM: one row per source and size, its time in that source's column.
    for col, (label, src) in enumerate(sources):
        for name in sorted((n for n in src if "/sgemm/" in n), key=natural):
            r = src[name]
            case = name if label == "diffblocks" else f"{label}/{name.split('/', 1)[1]}"
            cells = ["", "", "", "", ""]
            cells[2 * col - 1 if col else 0] = f"{r['ms']:.1f}"
            pct = f"{100 * r['gflops'] / best_gemm:.0f} %" if r["gflops"] and best_gemm else "-"
            lines.append(f"| {case} | {' | '.join(cells)} | {r['gflops'] or 0:.0f} | {pct} |")
    lines.append("")
    lines.append("Attention (4 heads, batch 1; torch: naive = matmul-softmax-matmul, sdpa = "
                 f"F.scaled_dot_product_attention, which torch {old_v} lacks):")
    lines.append("")
    lines.append(f"| case | ms | GFLOP/s | torch {new_v} naive ms | torch {new_v} sdpa ms (linear: torch linear) | "
                 f"torch {old_v} naive ms (linear: torch linear) |")
    lines.append("|---|---|---|---|---|---|")
    for name, r in sorted(ours.items(), key=lambda kv: natural(kv[0])):
        if not (name.startswith("self/") or name.startswith("cross/")):
            continue
        tn, ts = torch_attention(torch, name)
        # The legacy column: its naive time for softmax attention (torch 1.13 has no sdpa), its
        # linear time for linear attention (the second of torch_attention's pair).
        legacy_naive, legacy_second = torch_attention(legacy, name)
        old = legacy_second if split_dtype(name.split("/")[1])[0] == "linear" else legacy_naive
        ms = [f"{t['ms']:.2f}" if t else "-" for t in (tn, ts, old)]
        lines.append(f"| {name} | {r['ms']:.2f} | {r['gflops'] or 0:.0f} | {' | '.join(ms)} |")
    return "\n".join(lines) + "\n"


def plots(ours, torch, outdir: Path, legacy=None, bar_labels=("PyTorch eager", None)):
    """bar_labels: origin.png's labels for torch and (with legacy) the legacy torch."""
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
        if legacy:  # three bars: diffblocks, legacy torch, torch; each torch bar labelled with its ratio
            olds = [legacy.get(f"torch/origin_forward/{c}") for c in labels]
            w = 0.27
            ax.bar([x - w for x in xs], [r["ms"] for _, r, _ in rows], width=w, label="diffblocks")
            for dx, ts, label in ((0.0, olds, bar_labels[1]), (w, [t for _, _, t in rows], bar_labels[0])):
                ax.bar([x + dx for x in xs], [t["ms"] if t else 0 for t in ts], width=w, label=label)
                for x, (_, r, _), t in zip(xs, rows, ts):
                    if t:
                        ax.annotate(f"{t['ms'] / r['ms']:.2f}x", (x + dx, t["ms"]), ha="center", va="bottom",
                                    fontsize=7)
            top = max(max(r["ms"], t["ms"] if t else 0, o["ms"] if o else 0) for (_, r, t), o in zip(rows, olds))
        else:
            ax.bar([x - 0.2 for x in xs], [r["ms"] for _, r, _ in rows], width=0.4, label="diffblocks")
            ax.bar([x + 0.2 for x in xs], [t["ms"] if t else 0 for _, _, t in rows], width=0.4, label=bar_labels[0])
            for x, (_, r, t) in zip(xs, rows):
                if t:
                    ax.annotate(f"{t['ms'] / r['ms']:.2f}x", (x, max(r["ms"], t["ms"])), ha="center", va="bottom")
            top = max(max(r["ms"], t["ms"] if t else 0) for _, r, t in rows)
        ax.set_xticks(list(xs), labels)
        ax.set_yscale("log")
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


DOCS_BEGIN = "<!-- BEGIN GENERATED by tools/bench_report.py --docs: edit the script, not this table -->"
DOCS_END = "<!-- END GENERATED by tools/bench_report.py --docs -->"
# Per-round ratios spreading by more than this (largest / smallest) mark a case as disturbed.
NOISY_SPAN = 1.25
# The cases of the published table (docs/performance.md): float32, batch 1.
DOCS_CASES = (("origin_forward", "Origin (Grad-TTS estimator) forward"),
              ("diffuser_forward", "Diffuser (TTS-sized UNet2DConditionModel) forward"))


def round_times(path):
    """run_name -> median ms of one JSON file (one round), as load() reads a single file."""
    times, _ = load([path])
    return {n: r["ms"] for n, r in times.items()}


def spread(vals, fmt):
    vals = sorted(vals)
    med = statistics.median(vals)
    return f"{fmt.format(med)} ({fmt.format(vals[0])}–{fmt.format(vals[-1])})" if len(vals) > 1 else fmt.format(med)


def docs_markers(section=""):
    """The generated section's first and last lines; `section` (e.g. "threads 2") tells several
    generated tables of one file apart."""
    if not section:
        return DOCS_BEGIN, DOCS_END
    return (DOCS_BEGIN.replace("--docs", f"--docs ({section})"), DOCS_END.replace("--docs", f"--docs ({section})"))


def docs_table(ours_paths, torch_paths, command, section=""):
    """The README-ready performance table from one run of tools/bench_ratios.sh: round i is
    ours_paths[i] (bench_origin) beside torch_paths[i] (bench_torch.py), run one after the other;
    each cell is the median over the rounds (range in brackets), the ratio column the median of
    the per-round ratios (PyTorch / diffblocks, > 1: diffblocks is faster)."""
    if len(ours_paths) != len(torch_paths) or not ours_paths:
        raise SystemExit("bench_report.py --docs: give as many --ours files as --torch files (one per round)")
    ours_r = [round_times(p) for p in ours_paths]
    torch_r = [round_times(p) for p in torch_paths]
    ctx = {}
    for p in list(reversed(ours_paths)) + list(reversed(torch_paths)):  # the first round's date
        ctx.update(json.loads(Path(p).read_text()).get("context", {}))
    loads = [json.loads(Path(p).read_text()).get("context", {}).get("load_avg") for p in ours_paths]
    loads = [l[0] for l in loads if l]
    load_text = (f" 1-minute load average at the rounds' starts: {min(loads):.1f}-{max(loads):.1f} "
                 f"on {ctx.get('num_cpus', '?')} CPUs." if loads else "")
    flags = ctx.get("cpu_flags", {})
    flag_text = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in flags.items()) or "flags unknown"
    begin, end = docs_markers(section)
    names = sorted({n for r in ours_r for n in r}, key=natural)
    compiled = any(compiled_name(torch_name(n)) in t for t in torch_r for n in names)
    dtypes = sorted({split_dtype(n.split("/")[1])[1] or "f32" for n in names}, key=lambda d: d != "f32")
    lines = [begin, "",
             f"Machine: {ctx.get('cpu_model', ctx.get('cpu', '?'))}, {ctx.get('num_cpus', '?')} CPUs "
             f"({flag_text}); diffblocks {ctx.get('diffblocks_threads', '?')} threads, "
             f"{torch_summary(ctx)}, diffusers {ctx.get('diffusers_version', '?')}, "
             f"{ctx.get('grad_mode', 'torch.no_grad()')}, allocator {str(ctx.get('malloc', '?')).split(' ')[0]}; "
             f"{' and '.join(dtypes)}, batch 1"
             + (" (a half row's PyTorch runs the float32 model under torch.autocast, as its users do)"
                if dtypes != ["f32"] else "")
             + (f"; compiled: {ctx['torch_compile']}" if compiled and ctx.get("torch_compile") else "")
             + f". Measured {ctx.get('date', '?')}, {len(ours_paths)} rounds alternating diffblocks and PyTorch "
             f"in one session.{load_text}", ""]
    if ctx.get("half_dtypes") and dtypes != ["f32"]:
        lines += [f"diffblocks' kernels: {ctx['half_dtypes']}.", ""]
    header = "| case | diffblocks ms | PyTorch eager ms | PyTorch / diffblocks | ratio spread |"
    rule = "|---|---|---|---|---|"
    if compiled:
        header += " PyTorch compiled ms | PyTorch compiled / diffblocks | ratio spread |"
        rule += "---|---|---|"
    lines += [header, rule]
    noisy = []

    def columns(name, torch_case, what):
        """The time, ratio and spread cells of one PyTorch side (empty cells if it is missing)."""
        pairs = [(o[name], t[torch_case]) for o, t in zip(ours_r, torch_r) if name in o and torch_case in t]
        if not pairs:
            return None, " - | - | - |"
        ratios = [t / o for o, t in pairs]
        span = max(ratios) / min(ratios)
        flag = "" if span <= NOISY_SPAN else " ⚠"
        if flag:
            noisy.append(what)
        return pairs, (f" {spread([t for _, t in pairs], '{:.1f}')} | **{spread(ratios, '{:.2f}')}x** | "
                       f"{span:.2f}x{flag} |")

    for family, label in DOCS_CASES:
        for name in names:
            base, dtype = split_dtype(name.split("/")[1])
            if base != family:
                continue
            shape = name.split("/", 2)[2].replace(":", " = ")
            row = f"{label}, {shape}" + (f", {dtype} (PyTorch: {dtype} autocast)" if dtype else "")
            pairs, eager = columns(name, torch_name(name), row)
            if pairs is None:
                continue
            line = f"| {row} | {spread([o for o, _ in pairs], '{:.1f}')} |" + eager
            if compiled:
                line += columns(name, compiled_name(torch_name(name)), row + ", compiled")[1]
            lines.append(line)
    own = []  # a half row against diffblocks' own float32, same rounds
    for name in names:
        base, dtype = split_dtype(name.split("/")[1])
        if not dtype or base not in dict(DOCS_CASES):
            continue
        shape = name.split("/", 2)[2]
        f32 = f"diffblocks/{base}/{shape}"
        pairs = [(o[f32], o[name]) for o in ours_r if f32 in o and name in o]
        if pairs:
            own.append(f"{dict(DOCS_CASES)[base].split(' (')[0]} {shape.replace(':', ' = ')} {dtype}: "
                       f"{spread([a / b for a, b in pairs], '{:.2f}')}x")
    if own:
        lines += ["", "diffblocks' float32 / its half type (> 1: the half model is faster), per-round median "
                  "(range): " + "; ".join(own) + "."]
    lines += ["", "Cells: median over the rounds (range); the ratio is the median of the per-round ratios, its "
              "spread the largest over the smallest of them. Each round's time is the median of its repetitions."]
    if noisy:
        lines += ["", f"⚠ **Not a clean measurement** for {'; '.join(noisy)}: the per-round ratios spread by more "
                  f"than {NOISY_SPAN:.2f}x, so other load disturbed at least one side; do not quote these ratios, "
                  "rerun on an idle machine."]
    lines += ["", "Reproduce with:", "",
              "```sh", command, "```", "", end]
    return "\n".join(lines)


def write_docs(path, table, section=""):
    begin, end = docs_markers(section)
    text = path.read_text() if path.exists() else f"{begin}\n{end}\n"
    b, e = text.find(begin), text.find(end)
    if b < 0 or e < b:
        raise SystemExit(f"bench_report.py: {path} has no generated section ({begin!r} ... {end!r})")
    path.write_text(text[:b] + table + text[e + len(end):])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ours", nargs="+", type=Path, required=True, help="diffblocks benchmark JSON files")
    ap.add_argument("--torch", nargs="*", type=Path, default=[], help="bench_torch.py JSON files")
    ap.add_argument("--torch-legacy", nargs="*", type=Path, default=[],
                    help="bench_torch.py JSON files of a second (older) torch, e.g. 1.13.1")
    ap.add_argument("--markdown", type=Path, help="also write the table here")
    ap.add_argument("--plots", type=Path, help="directory for the PNG plots")
    ap.add_argument("--docs", type=Path, help="write the README-ready U-Net table (per-round ratios: --ours and "
                    "--torch list the rounds in the same order) into this file's generated section")
    ap.add_argument("--command", default="tools/bench_ratios.sh",
                    help="--docs: the command that produced the JSON, quoted in the table")
    ap.add_argument("--section", default="", help="--docs: which generated section of FILE (its markers "
                    "name it, e.g. 'threads 2'); default: the unnamed one")
    args = ap.parse_args()
    if args.docs:
        table = docs_table(args.ours, args.torch, args.command, args.section)
        write_docs(args.docs, table, args.section)
        print(table)
        print(f"wrote {args.docs}")
        return
    ours, c1 = load(args.ours)
    torch, c2 = load(args.torch)
    legacy, c3 = load(args.torch_legacy)
    md = markdown(ours, torch, c1 + c2, legacy, c3)
    print(md)
    if args.markdown:
        args.markdown.write_text(md)
    if args.plots:
        if legacy:
            labels = (f"PyTorch {short_version(torch_context(c2))} eager",
                      f"PyTorch {short_version(torch_context(c3))} eager")
            plots(ours, torch, args.plots, legacy, labels)
        else:
            plots(ours, torch, args.plots)
        print(f"plots in {args.plots}")


if __name__ == "__main__":
    main()
