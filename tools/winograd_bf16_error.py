#!/usr/bin/env python3
"""Why diffblocks' bf16 convolutions keep float32 Winograd (docs/half_precision.md).

A bf16 model's 3x3 convolution could run its Winograd products on bf16 operands (vdpbf16ps, or
AMX) if the transformed input V = B^T d B and the transformed kernel U = G g G^T were rounded to
bf16. This measures what that rounding costs on one convolution, as relative L2 error against the
exact (float64) convolution of the same bf16 input and weight:

  - output rounding only: the float32 convolution rounded once to bf16 (what diffblocks and a
    direct bf16 convolution with float32 accumulation store; PyTorch's autocast adds the rounding
    of its float32 inputs on top);
  - F(4x4, 3x3) (diffblocks' float32 tiles) with U and V rounded, only V, only U;
  - F(2x2, 3x3) with U and V rounded.

Each row also gives the ratio to output rounding alone: the half contract allows a whole U-Net 2x
PyTorch's autocast error, and every convolution of a U-Net adds its share.

    python3 tools/winograd_bf16_error.py [--cin 64] [--cout 64] [--height 40] [--width 64] [--seed 0]

numpy only (not part of the build or the tests).
"""
from __future__ import annotations

import argparse

import numpy as np


def bf16(a: np.ndarray) -> np.ndarray:
    """a rounded to bf16 (nearest even), as float64."""
    u = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32).astype(np.float64)


def f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).astype(np.float64)


# Lavin & Gray's matrices (interpolation points 0, +-1, +-2, infinity for F(4,3); 0, +-1, inf for F(2,3)).
F43 = (
    np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
              [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64),
    np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]),
    np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float64),
)
F23 = (
    np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
    np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]),
    np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64),
)


def direct(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact 3x3, stride 1, padding 1 convolution: x (Cin, H, W), w (Cout, Cin, 3, 3)."""
    cin, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    y = np.zeros((w.shape[0], h, wd))
    for dy in range(3):
        for dx in range(3):
            y += np.einsum("oc,chw->ohw", w[:, :, dy, dx], xp[:, dy:dy + h, dx:dx + wd])
    return y


def winograd(x: np.ndarray, w: np.ndarray, mats, round_u, round_v) -> np.ndarray:
    """The convolution as Winograd tiles, U and V each either rounded (round_*) or kept in float32."""
    bt, g, at = mats
    m, alpha = at.shape
    cin, h, wd = x.shape
    u = np.einsum("ia,ocab,jb->ocij", g, w, g)
    u = bf16(u) if round_u else f32(u)
    th, tw = -(-h // m), -(-wd // m)
    xp = np.pad(x, ((0, 0), (1, th * m + alpha - m - 1 - h), (1, tw * m + alpha - m - 1 - wd)))
    out = np.zeros((w.shape[0], th * m, tw * m))
    for ty in range(th):
        for tx in range(tw):
            d = xp[:, m * ty:m * ty + alpha, m * tx:m * tx + alpha]
            v = np.einsum("ia,cab,jb->cij", bt, d, bt)
            v = bf16(v) if round_v else f32(v)
            prod = np.einsum("ocij,cij->oij", u, v)
            out[:, m * ty:m * ty + m, m * tx:m * tx + m] = np.einsum("ia,oab,jb->oij", at, prod, at)
    return out[:, :h, :wd]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cin", type=int, default=64)
    ap.add_argument("--cout", type=int, default=64)
    ap.add_argument("--height", type=int, default=40)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    x = bf16(rng.standard_normal((args.cin, args.height, args.width)))
    w = bf16(rng.standard_normal((args.cout, args.cin, 3, 3)) / np.sqrt(9 * args.cin))
    exact = direct(x, w)

    def rel(y):
        return float(np.linalg.norm(y - exact) / np.linalg.norm(exact))

    base = rel(bf16(exact))
    rows = [("output rounding only (float32 convolution, rounded once)", base),
            ("F(4,3), U and V rounded to bf16", rel(winograd(x, w, F43, True, True))),
            ("F(4,3), V rounded", rel(winograd(x, w, F43, False, True))),
            ("F(4,3), U rounded", rel(winograd(x, w, F43, True, False))),
            ("F(4,3), float32 (diffblocks)", rel(winograd(x, w, F43, False, False))),
            ("F(2,3), U and V rounded to bf16", rel(winograd(x, w, F23, True, True)))]
    print(f"3x3 convolution {args.cin} -> {args.cout} channels, {args.height} x {args.width}, bf16 x and w")
    print("| variant | relative L2 error | / output rounding |")
    print("|---|---|---|")
    for name, e in rows:
        print(f"| {name} | {e:.2e} | {e / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
