import os
from pathlib import Path

import numpy as np
import pytest

# The C++ tests' fixtures (PyTorch reference outputs), from the repository this file is in, or
# from DIFFBLOCKS_FIXTURES.
FIXTURES = Path(os.environ.get("DIFFBLOCKS_FIXTURES", Path(__file__).resolve().parents[2] / "tests" / "fixtures"))


def fixture(*parts: str) -> str:
    p = FIXTURES.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"fixture {p} not found (set DIFFBLOCKS_FIXTURES)")
    return str(p)


def assert_contract(ours: np.ndarray, ref: np.ndarray) -> None:
    """DESIGN.md's accuracy contract: max|ours - ref| <= 1e-4 * max(1, max|ref|)."""
    assert ours.shape == ref.shape
    assert ours.dtype == np.float32
    err = float(np.max(np.abs(ours.astype(np.float64) - ref)))
    bound = 1e-4 * max(1.0, float(np.max(np.abs(ref))))
    assert err <= bound, f"max abs error {err} > {bound}"
