"""Benchmark case names that the PyTorch side (bench_torch.py, which imports torch) writes and the
report (bench_report.py, which must run without torch) looks up: one definition of each, so the
two cannot drift apart. Standard library only."""
from __future__ import annotations


def autocast_name(base: str, dtype: str) -> str:
    """A case's name in dtype: torch/origin_forward in f32; torch/origin_forward_bf16_autocast for
    bf16 (PyTorch's float32 model under torch.autocast, as its users run it in half precision)."""
    return base if dtype == "f32" else f"{base}_{dtype}_autocast"


def compiled_name(name: str) -> str:
    """bench_torch.py --compile's name of a case: torch/origin_forward/T:512 ->
    torch/origin_forward_compiled/T:512 (and ..._bf16_autocast_compiled/T:512 for an autocast
    run): the case, then the arguments."""
    head, _, args = name.rpartition("/T:")
    return f"{head}_compiled/T:{args}"
