"""The PyTorch baseline's Origin model against the upstream Grad-TTS module (needs torch and
einops, and a Speech-Backbones checkout named by GRADTTS_UPSTREAM; skipped otherwise, so CI,
which has no torch, skips it).

    GRADTTS_UPSTREAM=~/Speech-Backbones python -m pytest tools/tests/test_bench_upstream.py
    GRADTTS_UPSTREAM=~/Speech-Backbones python tools/tests/test_bench_upstream.py

Runs tools/bench_torch.py --check-upstream at two small T: the transcription that the benchmarks
time must give the upstream module's outputs (max abs difference <= 1e-5) for the same weights.
Speed is printed, not asserted (a shared machine disturbs it); see docs/performance.md.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import unittest
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1]
UPSTREAM = os.environ.get("GRADTTS_UPSTREAM", "")


@unittest.skipUnless(importlib.util.find_spec("torch") and importlib.util.find_spec("einops"),
                     "needs torch and einops")
@unittest.skipUnless(UPSTREAM, "set GRADTTS_UPSTREAM to a huawei-noah/Speech-Backbones checkout")
class CheckUpstream(unittest.TestCase):
    def test_outputs_match_upstream(self):
        r = subprocess.run([sys.executable, str(TOOLS / "bench_torch.py"), "--check-upstream", UPSTREAM,
                            "--frames", "64", "100", "--rounds", "1", "--warmup", "0", "--threads", "1"],
                           capture_output=True, text=True)
        print(r.stdout, r.stderr)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("upstream:", r.stdout)
        self.assertNotIn("FAIL", r.stdout)


if __name__ == "__main__":
    unittest.main()
