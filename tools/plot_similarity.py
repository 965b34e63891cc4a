#!/usr/bin/env python3
"""Plots the JSON written by `diffblocks similarity` (per-phoneme similarity to a reference mel).

    python3 tools/plot_similarity.py sim.json -o sim.png [--dpi 150] [--width INCHES]

One line per candidate (distinct colour, marker and dash, so it also reads in greyscale), x ticks
at the phonemes labelled with their symbols, title and subtitle from the JSON, a legend entry per
candidate with its mean. Long utterances stay readable: the figure widens with the phoneme count,
tick labels alternate between two rows once they would touch (and stand upright if even that is
too tight), and every other phoneme column is shaded so a point can be traced down to its symbol. Needs matplotlib (Debian: python3-matplotlib).
The output format follows the extension (.png, .pdf, .svg).
"""
import argparse
import json
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")  # files only; no display needed (CI, ssh)
import matplotlib.pyplot as plt  # noqa: E402

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
DASHES = ["-", "--", "-.", ":"]


def load(path):
    """The report, checked enough that a wrong file gives a clear message instead of a traceback."""
    with open(path, encoding="utf-8") as f:
        rep = json.load(f)
    if not isinstance(rep, dict) or rep.get("format") != "diffblocks-similarity":
        raise ValueError(f"{path}: not a 'diffblocks similarity' JSON file (no \"format\": \"diffblocks-similarity\")")
    n = len(rep["phonemes"])
    if n == 0 or not rep["candidates"]:
        raise ValueError(f"{path}: no phonemes or no candidates to plot")
    for c in rep["candidates"]:
        if len(c["scores"]) != n:
            raise ValueError(f"{path}: candidate '{c['label']}' has {len(c['scores'])} scores for {n} phonemes")
    return rep


def tick_layout(symbols, width):
    """Tick label font size and whether labels alternate between two rows / stand rotated: a
    label needs about 0.09 in per character at 8-10 pt plus a gap; below that they would touch."""
    n = len(symbols)
    size = 8 if n > 40 else 10
    spacing = (width - 1.6) / n  # inches per phoneme inside the axes
    need = 0.009 * size * max(len(s) for s in symbols) + 0.06
    stagger = spacing < need
    rotate = 2 * spacing < need  # even two rows collide (very long symbols or a very long utterance)
    return size, stagger and not rotate, rotate


def plot(rep, out, dpi=150, width=None):
    symbols = [p["symbol"] for p in rep["phonemes"]]
    n = len(symbols)
    x = list(range(n))
    # ~0.22 in per phoneme keeps 60+ phonemes legible; never narrower than a normal figure.
    width = width or min(max(7.0, 0.22 * n + 2.5), 60.0)
    size, stagger, rotate = tick_layout(symbols, width)
    fig, ax = plt.subplots(figsize=(width, 4.8), dpi=dpi)

    for i in range(0, n, 2):  # shade every other phoneme column
        ax.axvspan(i - 0.5, i + 0.5, color="0.94", zorder=0, lw=0)

    small = n > 40
    for k, c in enumerate(rep["candidates"]):
        ax.plot(x, c["scores"], color=COLOURS[k % len(COLOURS)], marker=MARKERS[k % len(MARKERS)],
                linestyle=DASHES[k % len(DASHES)], linewidth=1.3 if small else 1.6, markersize=4 if small else 6,
                markeredgecolor="white", markeredgewidth=0.6, zorder=3,
                label=f"{c['label']} (mean {c['mean']:.3g})")

    labels = [("\n" + s if stagger and i % 2 else s) for i, s in enumerate(symbols)]
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=size, rotation=90 if rotate else 0)
    ax.set_xlim(-0.6, n - 0.4)
    ax.grid(axis="y", color="0.8", linestyle="--", linewidth=0.7)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    better = "higher is better" if rep.get("higher_is_better", True) else "lower is better"
    ax.set_ylabel(f"{rep.get('metric_description', rep.get('metric', 'score'))}\n({better})", fontsize=10)
    ax.set_xlabel(f"phoneme ({n} phonemes, {rep.get('frames', '?')} frames)", fontsize=10)
    title = fig.suptitle(rep.get("title") or "Per-phoneme similarity", fontsize=14, fontweight="bold")
    if rep.get("subtitle"):  # wrapped to the axes' width (~13 characters per inch at 10 pt)
        sub = textwrap.fill(rep["subtitle"], width=max(40, int((width - 1.6) * 13)))
        ax.set_title(sub, fontsize=10, color="0.3", pad=8)
    fig.tight_layout()
    pos = ax.get_position()
    title.set_x((pos.x0 + pos.x1) / 2)  # centred over the plot like the subtitle, not the figure

    # The legend goes just under the x-axis label, wherever the tick rows put that label.
    fig.canvas.draw()
    below = ax.xaxis.label.get_window_extent().y0 / fig.bbox.height
    ncol = max(1, min(len(rep["candidates"]), int(width // 2.6)))
    fig.legend(loc="upper center", bbox_to_anchor=((pos.x0 + pos.x1) / 2, below - 0.01), ncol=ncol, frameon=False,
               fontsize=9)
    fig.savefig(out, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", help="file written by 'diffblocks similarity'")
    ap.add_argument("-o", "--output", required=True, help="image to write (.png, .pdf, .svg)")
    ap.add_argument("--dpi", type=int, default=150)
    ap.add_argument("--width", type=float, help="figure width in inches (default: grows with the phoneme count)")
    args = ap.parse_args()
    try:
        plot(load(args.json), args.output, args.dpi, args.width)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"plot_similarity: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
