#!/usr/bin/env python3
"""PyTorch eager baseline for benchmarks/bench_origin.cpp and bench_attention.cpp.

Times the reference Origin U-Net (tools/reference/gradtts_reference.py: Grad-TTS
GradLogPEstimator2d, dim 64, mults (1,2,4), 80 mels, batch 1, n_spks 1) in float32 eager mode
under torch.no_grad(), with the same weight rule and inputs as the C++ benchmark. For every T:
a few warm-up runs, then the median of N timed runs.

Prints a table and writes Google Benchmark JSON ("torch/origin_forward/T:<T>", real_time in
ms) so the results sit next to `bench_origin --benchmark_out=...`. With --compare OURS.json
(bench_origin's JSON output) it also prints diffblocks vs torch side by side.

    python tools/bench_torch.py --frames 128 512 --threads 2 --json torch.json \
        --compare origin.json

--suite picks what runs (several allowed): origin (default), diffuser (the TTS-sized diffusers
UNet2DConditionModel of bench_origin's diffuser_forward, needs diffusers 0.25.1), sgemm
(torch.mm at N = 1024, 2048: the machine's GEMM rate), attention (the cases of
bench_attention: Grad-TTS linear attention, naive matmul-softmax-matmul, and
F.scaled_dot_product_attention, PyTorch's fused flash/streaming CPU kernel). Every result is
named like its C++ counterpart with "torch/" in front.

--dtypes f32 bf16 f16 adds, for the origin, diffuser and attention suites, the same cases run the
way PyTorch users run half precision, under torch.autocast("cpu", dtype), named
"<case>_<dtype>_autocast" (torch/origin_forward_bf16_autocast/T:512 beside bench_origin's
diffblocks/origin_forward_bf16/T:512; torch/self/naive_bf16_autocast/N:1024/dh:64 beside
bench_attention's self/naive_bf16/N:1024/dh:64).

--compile adds, for the origin and diffuser suites, the same models under torch.compile (inductor,
default mode, static shapes: compiled once per shape during the warm-ups; the compilation is not
timed), named "<case>_compiled" (torch/origin_forward_compiled/T:512,
torch/diffuser_forward_bf16_autocast_compiled/T:512): the fastest way a PyTorch user runs these
models on a CPU, and the baseline tools/bench_ratios.sh --compile puts beside eager.

--device cuda runs the GPU counterparts of benchmarks/bench_cuda.cu instead (same names with
"torch/" in front): the Origin U-Net at batch 1 and 16 (T = 512), the TTS-sized Diffuser at
batch 1 and 16, attention (naive matmul-softmax-matmul and F.scaled_dot_product_attention,
4 heads, 64 .. 16k tokens, head size 32 / 64; cross-attention to 16 style tokens), SGEMM
(N = 2048, 8192) and a device-to-device copy (the bandwidth roofline). float32 with TF32 off
(torch.backends.cuda.matmul.allow_tf32 = False, cudnn.allow_tf32 = False); times are CUDA-event
times, median of --repeats after --warmup runs. tools/bench_cuda.sh runs it on a GPU machine.

--check-upstream PATH checks the Origin transcription against the module users run: the upstream
Grad-TTS GradLogPEstimator2d (PATH: a huawei-noah/Speech-Backbones checkout, its Grad-TTS
directory or Grad-TTS/model; model/diffusion.py and model/base.py are loaded from there without
the package's __init__, and need einops). Same weights (the transcription's state_dict loaded
strictly), same inputs: the outputs must agree (max abs difference <= 1e-5, else exit 1), then
both are timed in --rounds interleaved rounds (the order alternating per round) at every
--frames T, and the table gives each side's median and range and the median (range) of the
per-round ratios transcription / upstream. --max-ratio R also fails when that median ratio
exceeds R (off by default: a loaded machine can disturb it).

    python tools/bench_torch.py --check-upstream ~/Speech-Backbones --frames 128 512 --rounds 7

Runs under the newest torch (.venv) and under Python 3.9 + torch 1.13.1 + diffusers 0.25.1
(build/torch-legacy/python, see tools/setup_torch_legacy.sh), the issue's reference version:
torch 1.13 has no F.scaled_dot_product_attention (its "sdpa" cases are skipped) and no
torch.backends.cpu (the CPU capability comes from torch.__config__.show()). The JSON context
names the torch version either way.
"""

from __future__ import annotations

import argparse
import copy
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
from bench_names import autocast_name, compiled_name  # noqa: E402


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


def cpu_capability() -> str:
    """The ATen CPU kernels' vector ISA (e.g. AVX2, AVX512); torch < 2.0 has no
    torch.backends.cpu, but its build summary names it ("CPU capability usage: AVX2")."""
    cpu_backend = getattr(torch.backends, "cpu", None)
    if cpu_backend is not None and hasattr(cpu_backend, "get_cpu_capability"):
        return cpu_backend.get_cpu_capability()
    try:
        for line in torch.__config__.show().splitlines():
            if "CPU capability usage:" in line:
                return line.split(":", 1)[1].strip()
    except Exception:  # noqa: BLE001 (only informative)
        pass
    return "unknown"


# F.scaled_dot_product_attention arrived in torch 2.0.
SDPA = getattr(torch.nn.functional, "scaled_dot_product_attention", None)


# ---- timing and the suites ---------------------------------------------------------------

# Must equal diffuser_config() in benchmarks/bench_origin.cpp.
DIFFUSER_TTS_CONFIG = {
    "in_channels": 2, "out_channels": 1, "block_out_channels": [64, 128, 256], "layers_per_block": 2,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_num_groups": 32, "cross_attention_dim": 64,
    "attention_head_dim": 4, "num_class_embeds": 5, "addition_embed_type": "image", "encoder_hid_dim": 64,
}


def timed(fn, warmup: int, repeats: int):
    """(wall seconds, this thread's CPU seconds, minor page faults) of `repeats` calls after
    `warmup` untimed ones."""
    runs = []
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        for _ in range(repeats):
            f0, w0, c0 = minor_faults(), time.perf_counter(), time.thread_time()
            fn()
            runs.append((time.perf_counter() - w0, time.thread_time() - c0, minor_faults() - f0))
    return runs


def minor_faults() -> int:
    """This process's minor page faults so far (0 where unknown)."""
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    except Exception:  # noqa: BLE001 (informative only; no resource module on Windows)
        return 0


WARM_MALLOC_BYTES = 30 << 20


def warm_malloc() -> None:
    """Puts glibc's allocator in the state of a process that has already loaded or run a model:
    one 30 MiB block allocated, touched and freed. glibc serves a block this large with mmap and,
    when it is freed, raises its dynamic mmap threshold to the block's size (and the heap trim
    threshold to twice that), so that later tensors up to 30 MiB are reused from the heap instead
    of being unmapped on free and page-faulted back in on the next allocation. A fresh process
    that has allocated nothing large pays those faults on every forward (bench_torch.py measured
    8k / 33k-63k / 570k minor faults per Origin forward at T = 128 / 512 / 2048, 8-33 % of its
    CPU time; docs/performance.md). --malloc fresh skips this."""
    block = torch.empty(WARM_MALLOC_BYTES, dtype=torch.uint8)
    block.fill_(1)
    del block


def entry(name: str, index: int, runs, flops: float, extra: dict | None = None) -> dict:
    wall = [r[0] for r in runs]
    med = statistics.median(wall)
    e = {
        "name": name, "family_index": 0, "per_family_instance_index": index, "run_name": name,
        "run_type": "iteration", "repetitions": 1, "repetition_index": 0, "threads": 1,
        "iterations": len(runs), "real_time": med * 1e3,
        "cpu_time": statistics.median(r[1] for r in runs) * 1e3, "time_unit": "ms",
        "min_real_time": min(wall) * 1e3, "mean_real_time": statistics.fmean(wall) * 1e3,
        "GFLOP": flops / 1e9, "GFLOP/s": flops / 1e9 / med,
    }
    if all(len(r) > 2 for r in runs):
        e["minor_faults_per_run"] = int(statistics.median(r[2] for r in runs))
    e.update(extra or {})
    return e


def diffuser_model(diffusers, seed: int):
    """The TTS-sized UNet2DConditionModel with bench_common.hpp's weight rule, and a label naming
    diffusers' version and attention processors (AttnProcessor2_0 = F.scaled_dot_product_attention
    under torch 2, AttnProcessor under 1.13)."""
    torch.manual_seed(seed)
    model = diffusers.UNet2DConditionModel(**DIFFUSER_TTS_CONFIG).eval()
    processors = sorted({type(p).__name__ for p in model.attn_processors.values()})
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape) * 0.02)
        for m in model.modules():
            if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)) and m.weight is not None:
                m.weight.add_(1.0)
    return model, f"diffusers {diffusers.__version__}, {'+'.join(processors)}"


def import_diffusers():
    """diffusers 0.25.1, also where a newer transformers is installed: diffusers imports
    transformers when it finds it, and a transformers that needs a newer huggingface_hub than
    diffusers 0.25.1 accepts breaks that import (seen on the GPU machine). The U-Net needs none
    of transformers (nor peft), so both are hidden from it."""
    # Hidden first: the failure only shows when a class is first used (diffusers imports lazily).
    for name in ("transformers", "peft"):
        if name not in sys.modules:
            sys.modules[name] = None  # find_spec() now says "absent", "import" fails at once
    import diffusers  # noqa: WPS433 (optional dependency)
    return diffusers


AUTOCAST = {"bf16": torch.bfloat16, "f16": torch.float16}


def compiled(model):
    """model under torch.compile as users would run it for inference: inductor, default mode,
    static shapes (one compilation per input shape and autocast dtype, done in the warm-ups).
    Past dynamo's recompile limit (8 graphs per function by default: e.g. five --frames in two
    dtypes) dynamo would quietly run the model eagerly under a "_compiled" name, so the limit is
    raised and hitting it made an error instead."""
    if not hasattr(torch, "compile"):
        raise SystemExit(f"bench_torch.py: --compile needs torch 2 (this is torch {torch.__version__})")
    cfg = torch._dynamo.config
    for key, value in (("recompile_limit", 64), ("cache_size_limit", 64), ("fail_on_recompile_limit_hit", True),
                       ("fail_on_cache_limit_hit", True)):
        if hasattr(cfg, key):
            setattr(cfg, key, value)
    return torch.compile(model, dynamic=False)


def under(dtype: str, fn):
    """fn as users run the model in `dtype`: the float32 model under torch.autocast("cpu", dtype)."""
    if dtype == "f32":
        return fn

    def run():
        with torch.autocast("cpu", dtype=AUTOCAST[dtype]):
            return fn()
    return run


def diffuser_entries(frames_list, warmup, repeats, seed, dtypes=("f32",), compile_too=False):
    diffusers = import_diffusers()
    model, label = diffuser_model(diffusers, seed)
    variants = [(model, False)] + ([(compiled(model), True)] if compile_too else [])
    out = []
    for i, (frames, dtype, (m, is_compiled)) in enumerate(
            (f, d, v) for f in frames_list for d in dtypes for v in variants):
        gen = torch.Generator().manual_seed(seed + 1)
        sample = torch.randn(1, 2, 80, frames, generator=gen)
        style = torch.randn(1, 16, 64, generator=gen)
        image = torch.randn(1, 64, generator=gen)
        labels = torch.tensor([2])
        fn = lambda: m(sample, 500, encoder_hidden_states=style, class_labels=labels,  # noqa: E731
                       added_cond_kwargs={"image_embeds": image})
        name = f"{autocast_name('torch/diffuser_forward', dtype)}/T:{frames}"
        e = entry(compiled_name(name) if is_compiled else name, i, timed(under(dtype, fn), warmup, repeats), 0.0)
        e["items_per_second"] = frames / (e["real_time"] / 1e3)  # mel frames per second
        e["label"] = label + (", torch.compile (inductor)" if is_compiled else "")
        out.append(e)
    return out


def sgemm_entries(warmup, repeats):
    out = []
    for i, n in enumerate((1024, 2048)):
        a, b = torch.randn(n, n), torch.randn(n, n)
        out.append(entry(f"torch/sgemm/N:{n}", i, timed(lambda: torch.mm(a, b), warmup, repeats), 2.0 * n ** 3))
    return out


def linear_attention(qkv: torch.Tensor, heads: int, dh: int) -> torch.Tensor:
    """Grad-TTS LinearAttention's core on qkv (1, 3*heads*dh, 1, N), as in the reference model."""
    b, _, h, w = qkv.shape
    q, k, v = qkv.reshape(b, 3, heads, dh, h * w).unbind(1)
    k = k.softmax(dim=-1)
    context = torch.einsum("bhdn,bhen->bhde", k, v)
    return torch.einsum("bhde,bhdn->bhen", context, q).reshape(b, heads * dh, h, w)


def attention_entries(warmup, repeats, max_tokens, dtypes=("f32",)):
    """The cases of benchmarks/bench_attention.cpp (4 heads, batch 1), each in every dtype:
    float32, and float32 tensors under torch.autocast (`torch/self/naive_bf16_autocast/...`, the
    counterpart of bench_attention's `self/naive_bf16/...`)."""
    heads, out, idx = 4, [], 0
    lengths = [n for n in (64, 256, 1024, 4096, 16384) if n <= max_tokens]

    def naive(q, k, v):
        s = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
        return s.softmax(dim=-1) @ v

    sdpa = SDPA
    if sdpa is None:
        print(f"  torch {torch.__version__} has no F.scaled_dot_product_attention: "
              "skipping the sdpa cases", flush=True)

    def add(name, fn, flops):
        """torch/<kind>/<variant><shape> in every dtype (name = "torch/<kind>/<variant>", sfx)."""
        nonlocal idx
        if fn is None:
            return
        base, sfx = name
        for dtype in dtypes:
            case = autocast_name(base, dtype) + sfx
            out.append(entry(case, idx, timed(under(dtype, fn), warmup, repeats), flops))
            idx += 1
            print(f"  {case}: {out[-1]['real_time']:.2f} ms", flush=True)

    for dh in (32, 64, 128):
        for n in lengths:
            sfx = f"/N:{n}/dh:{dh}"
            qkv = torch.randn(1, 3 * heads * dh, 1, n)
            add(("torch/self/linear", sfx), lambda: linear_attention(qkv, heads, dh), 2.0 * heads * n * 2 * dh * dh)
            if dh == 128 and n > 4096:
                continue
            q, k, v = (torch.randn(1, heads, n, dh) for _ in range(3))
            flops = 2.0 * heads * n * n * 2 * dh
            add(("torch/self/naive", sfx), lambda: naive(q, k, v), flops)
            add(("torch/self/sdpa", sfx), (lambda: sdpa(q, k, v)) if sdpa else None, flops)
    cross = [(n, 16) for n in (1280, 10240, 40960)] + [(1024, s) for s in lengths]
    for n, s_len in cross:
        q = torch.randn(1, heads, n, 64)
        k, v = torch.randn(1, heads, s_len, 64), torch.randn(1, heads, s_len, 64)
        flops = 2.0 * heads * n * s_len * 2 * 64
        sfx = f"/N:{n}/S:{s_len}/dh:64"
        add(("torch/cross/naive", sfx), lambda: naive(q, k, v), flops)
        add(("torch/cross/sdpa", sfx), (lambda: sdpa(q, k, v)) if sdpa else None, flops)
    return out


# ---- the CUDA suite (--device cuda) -------------------------------------------------------------

def timed_cuda(fn, warmup: int, repeats: int):
    """(GPU seconds, GPU seconds) of `repeats` calls after `warmup`, timed with CUDA events (the
    pair keeps entry()'s (wall, cpu) shape)."""
    runs = []
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        for _ in range(repeats):
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            sec = start.elapsed_time(stop) * 1e-3
            runs.append((sec, sec))
    return runs


@torch.no_grad()
def gradtts_samplers(model, dev, steps=10, frames=512, beta_min=0.05, beta_max=20.0) -> dict:
    """Grad-TTS reverse diffusion (ODE, Diffusion.reverse_diffusion's arithmetic) at batch 1 two
    ways: the eager loop, and one step captured as a CUDA graph and replayed (the fastest a
    PyTorch user gets without rewriting the model). Both on fixed inputs, 10 steps."""
    gen = torch.Generator().manual_seed(7)
    z = torch.randn(1, 80, frames, generator=gen).to(dev)
    mu = torch.randn(1, 80, frames, generator=gen).to(dev)
    mask = torch.ones(1, 1, frames, device=dev)
    h = 1.0 / steps

    def step(xt, t):
        noise_t = beta_min + (beta_max - beta_min) * t.view(-1, 1, 1)
        dxt = 0.5 * (mu - xt - model(xt, mask, mu, t)) * noise_t * h
        return (xt - dxt) * mask

    def eager():
        xt = z * mask
        for i in range(steps):
            xt = step(xt, torch.full((1,), 1.0 - (i + 0.5) * h, device=dev))
        return xt

    static_xt, static_t = z * mask, torch.full((1,), 0.5, device=dev)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the default stream, as torch.cuda.graphs asks
        for _ in range(3):
            step(static_xt, static_t)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_xt.copy_(step(static_xt, static_t))

    def graphed():
        static_xt.copy_(z * mask)
        for i in range(steps):
            static_t.fill_(1.0 - (i + 0.5) * h)
            graph.replay()
        return static_xt

    return {"origin_sample_eager": eager, "origin_sample_cudagraph": graphed}


def cuda_entries(args) -> list:
    """The cases of benchmarks/bench_cuda.cu that PyTorch has a counterpart for."""
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    out: list = []

    def add(name, fn, flops=0.0, bytes_=0.0, extra=None):
        try:
            runs = timed_cuda(fn, args.warmup, args.repeats)
        except torch.cuda.OutOfMemoryError as exc:  # noqa: PERF203 (report and go on)
            print(f"  {name}: out of memory ({exc})", flush=True)
            torch.cuda.empty_cache()
            return None
        e = entry(name, len(out), runs, flops, extra)
        if bytes_:
            e["GB/s"] = bytes_ / 1e9 / (e["real_time"] / 1e3)
        e["TFLOP/s"] = e["GFLOP/s"] / 1e3
        out.append(e)
        print(f"  {name}: {e['real_time']:.3f} ms", flush=True)
        return e

    for mib in (256, 1024):
        n = mib << 18
        a, b = torch.zeros(n, device=dev), torch.empty(n, device=dev)
        add(f"torch/d2d_copy/MiB:{mib}", lambda: b.copy_(a), 0.0, 2.0 * n * 4)
        del a, b
    for n in (2048, 8192):
        a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
        add(f"torch/sgemm/N:{n}", lambda: torch.mm(a, b), 2.0 * n ** 3, 3.0 * n * n * 4)
        del a, b

    heads = 4

    def naive(q, k, v):
        s_ = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
        return s_.softmax(dim=-1) @ v

    for dh in (32, 64):
        for n in (64, 256, 1024, 4096, 16384):
            q, k, v = (torch.randn(1, heads, n, dh, device=dev) for _ in range(3))
            flops = 2.0 * heads * n * n * 2 * dh
            add(f"torch/attention/self/naive/N:{n}/dh:{dh}", lambda: naive(q, k, v), flops)
            if SDPA is not None:
                add(f"torch/attention/self/sdpa/N:{n}/dh:{dh}", lambda: SDPA(q, k, v), flops)
    for n in (1280, 10240, 40960):
        q = torch.randn(1, heads, n, 64, device=dev)
        k, v = torch.randn(1, heads, 16, 64, device=dev), torch.randn(1, heads, 16, 64, device=dev)
        flops = 2.0 * heads * n * 16 * 2 * 64
        add(f"torch/attention/cross/naive/N:{n}/S:16/dh:64", lambda: naive(q, k, v), flops)
        if SDPA is not None:
            add(f"torch/attention/cross/sdpa/N:{n}/S:16/dh:64", lambda: SDPA(q, k, v), flops)

    model = GradLogPEstimator2d(64, dim_mults=(1, 2, 4), n_spks=1, n_feats=80).eval()
    randomize_(model, args.seed)
    model = model.to(dev)
    for b in (1, 16):
        x, mu = torch.randn(b, 80, 512, device=dev), torch.randn(b, 80, 512, device=dev)
        mask, t = torch.ones(b, 1, 512, device=dev), torch.full((b,), 0.5, device=dev)
        e_flops = 2.0 * b * origin_macs(512)
        e = add(f"torch/origin_forward/B:{b}/T:512", lambda: model(x, mask, mu, t), e_flops)
        if e:
            e["frames/s"] = b * 512 / (e["real_time"] / 1e3)
        # What a PyTorch user would run instead: TF32 allowed, bf16 autocast.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        add(f"torch/origin_forward_tf32/B:{b}/T:512", lambda: model(x, mask, mu, t), e_flops)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

        def autocast_forward():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return model(x, mask, mu, t)

        add(f"torch/origin_forward_bf16_autocast/B:{b}/T:512", autocast_forward, e_flops)
    # The model converted, as diffblocks' bf16 model is: weights and inputs bf16, PyTorch's bf16
    # kernels throughout (t in bf16 too: the module's time embedding then stays bf16, while a
    # float32 t meets the bf16 MLP weight and fails).
    model_bf16 = copy.deepcopy(model).to(torch.bfloat16)
    for b in (1, 16):
        x, mu = (torch.randn(b, 80, 512, device=dev).to(torch.bfloat16) for _ in range(2))
        mask = torch.ones(b, 1, 512, device=dev, dtype=torch.bfloat16)
        t = torch.full((b,), 0.5, device=dev, dtype=torch.bfloat16)
        add(f"torch/origin_forward_bf16/B:{b}/T:512", lambda: model_bf16(x, mask, mu, t), 2.0 * b * origin_macs(512))
    del model_bf16
    for name, fn in gradtts_samplers(model, dev).items():
        add(f"torch/{name}/steps:10/B:1/T:512", fn, 10 * 2.0 * origin_macs(512))
    del model
    try:
        diffusers = import_diffusers()
    except Exception as exc:  # noqa: BLE001 (diffusers 0.25.1 needs huggingface_hub < 0.26)
        print(f"  diffusers unavailable ({exc}): skipping torch/diffuser_forward", flush=True)
        return out
    try:
        unet, label = diffuser_model(diffusers, args.seed)
    except Exception as exc:  # noqa: BLE001 (report it; the other results still count)
        print(f"  diffusers model unavailable ({exc}): skipping torch/diffuser_forward", flush=True)
        return out
    unet = unet.to(dev)
    for b in (1, 16):
        sample = torch.randn(b, 2, 80, 512, device=dev)
        style, image = torch.randn(b, 16, 64, device=dev), torch.randn(b, 64, device=dev)
        labels = torch.arange(b, device=dev) % 5
        e = add(f"torch/diffuser_forward/B:{b}/T:512",
                lambda: unet(sample, 500, encoder_hidden_states=style, class_labels=labels,
                             added_cond_kwargs={"image_embeds": image}))
        if e:
            e["frames/s"] = b * 512 / (e["real_time"] / 1e3)
            e["label"] = label
    return out


# ---- the upstream check (--check-upstream) -------------------------------------------------

def load_upstream(path: Path):
    """The upstream GradLogPEstimator2d class from a Grad-TTS checkout at `path` (Speech-Backbones,
    its Grad-TTS directory, or Grad-TTS/model). Only model/base.py and model/diffusion.py run:
    model/__init__.py imports the whole TTS model (monotonic_align needs a Cython build), so the
    package `model` is registered here without it."""
    import importlib
    import types
    path = Path(path).expanduser().resolve()
    for cand in (path, path / "model", path / "Grad-TTS" / "model"):
        if (cand / "diffusion.py").is_file() and (cand / "base.py").is_file():
            model_dir = cand
            break
    else:
        raise SystemExit(f"bench_torch.py: no Grad-TTS model/diffusion.py under {path}")
    try:
        import einops  # noqa: F401 (the upstream module's dependency)
    except ImportError:
        raise SystemExit("bench_torch.py: the upstream Grad-TTS module needs einops (pip install einops)")
    for name in [n for n in sys.modules if n == "model" or n.startswith("model.")]:
        del sys.modules[name]
    pkg = types.ModuleType("model")
    pkg.__path__ = [str(model_dir)]
    sys.modules["model"] = pkg
    diffusion = importlib.import_module("model.diffusion")
    return diffusion.GradLogPEstimator2d, model_dir


def check_upstream(args) -> int:
    """Outputs and speed of the transcription against the upstream module (see --check-upstream)."""
    upstream_cls, model_dir = load_upstream(args.check_upstream)
    ours = GradLogPEstimator2d(64, dim_mults=(1, 2, 4), n_spks=1, n_feats=80).eval()
    randomize_(ours, args.seed)
    upstream = upstream_cls(64, dim_mults=(1, 2, 4), n_spks=1, n_feats=80).eval()
    upstream.load_state_dict(ours.state_dict(), strict=True)
    print(f"upstream: {model_dir}; transcription: tools/reference/gradtts_reference.py; "
          f"{args.rounds} interleaved rounds after {args.warmup} warm-ups each")
    print(f"{'T':>6} {'max|diff|':>10} {'transcription ms':>22} {'upstream ms':>22} {'ratio':>18} {'cpu ratio':>9} "
          f"{'faults/fwd':>14}")
    failed, entries = False, []
    for frames in args.frames:
        gen = torch.Generator().manual_seed(args.seed + 1)
        x = torch.randn(1, 80, frames, generator=gen)
        mu = torch.randn(1, 80, frames, generator=gen)
        mask = torch.ones(1, 1, frames)
        t = torch.full((1,), 0.5)
        models = {"transcription": ours, "upstream": upstream}
        with torch.no_grad():
            outs = {k: m(x, mask, mu, t) for k, m in models.items()}
            diff = (outs["transcription"] - outs["upstream"]).abs().max().item()
            for _ in range(args.warmup):
                for m in models.values():
                    m(x, mask, mu, t)
            times = {k: [] for k in models}
            faults = {k: [] for k in models}
            cpu = {k: [] for k in models}
            for r in range(args.rounds):
                order = list(models) if r % 2 == 0 else list(reversed(list(models)))
                for k in order:
                    f0, c0, w0 = minor_faults(), time.process_time(), time.perf_counter()
                    models[k](x, mask, mu, t)
                    times[k].append(time.perf_counter() - w0)
                    cpu[k].append(time.process_time() - c0)
                    faults[k].append(minor_faults() - f0)
        ratios = [a / b for a, b in zip(times["transcription"], times["upstream"])]
        ratio = statistics.median(ratios)
        cell = {k: f"{statistics.median(v) * 1e3:.1f} ({min(v) * 1e3:.0f}-{max(v) * 1e3:.0f})" for k, v in times.items()}
        fcell = "/".join(str(int(statistics.median(faults[k]))) for k in models)
        cpu_ratio = statistics.median(a / b for a, b in zip(cpu["transcription"], cpu["upstream"]))
        print(f"{frames:>6} {diff:>10.2e} {cell['transcription']:>22} {cell['upstream']:>22} "
              f"{ratio:>6.3f} ({min(ratios):.2f}-{max(ratios):.2f}) {cpu_ratio:>9.3f} {fcell:>14}", flush=True)
        if not diff <= 1e-5:
            print(f"  FAIL: outputs differ at T={frames} (max |diff| {diff:.3g} > 1e-5)")
            failed = True
        if args.max_ratio is not None and ratio > args.max_ratio:
            print(f"  FAIL: the transcription takes {ratio:.3f}x the upstream module's time at T={frames} "
                  f"(--max-ratio {args.max_ratio})")
            failed = True
        for i, (k, v) in enumerate(times.items()):
            e = entry(f"torch/origin_forward{'_upstream' if k == 'upstream' else ''}/T:{frames}", i,
                      [(w, w) for w in v], 2 * origin_macs(frames))
            e["max_abs_diff_vs_upstream"] = diff
            e["round_times_ms"] = [w * 1e3 for w in v]
            entries.append(e)
    if args.json:
        args.json.write_text(json.dumps({"context": context(args), "benchmarks": entries}, indent=2) + "\n")
        print(f"wrote {args.json}")
    print("ms: median (range) of the rounds' wall times; ratio = transcription / upstream wall time, median "
          "(range) of the rounds (1.0: the same speed); cpu ratio: the same with the process's CPU time (less "
          "disturbed by other load at --threads 1); faults/fwd: minor page faults per forward "
          "(transcription/upstream)")
    return 1 if failed else 0


def time_forward(model, frames: int, warmup: int, repeats: int, seed: int, dtype: str = "f32"):
    """Per-run (wall seconds, this thread's CPU seconds) of `repeats` timed forwards."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 80, frames, generator=gen)
    mu = torch.randn(1, 80, frames, generator=gen)
    mask = torch.ones(1, 1, frames)
    t = torch.full((1,), 0.5)
    return timed(under(dtype, lambda: model(x, mask, mu, t)), warmup, repeats)


def benchmark_entry(index: int, frames: int, runs, dtype: str = "f32", is_compiled: bool = False) -> dict:
    """One Origin result in Google Benchmark's JSON schema (times in ms, like bench_origin)."""
    name = f"{autocast_name('torch/origin_forward', dtype)}/T:{frames}"
    e = entry(compiled_name(name) if is_compiled else name, index, runs, 2 * origin_macs(frames))
    e["items_per_second"] = frames / (e["real_time"] / 1e3)  # mel frames per second
    return e


def cpu_info() -> dict:
    """The CPU's model name and the vector/matrix extensions that matter here (Linux /proc/cpuinfo,
    the `flags` lscpu shows); empty where unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    wanted = {"AVX2": "avx2", "AVX-512": "avx512f", "AVX512-BF16": "avx512_bf16", "AMX": "amx_tile"}
    return {"cpu_model": model, "cpu_flags": {k: v in flags for k, v in wanted.items()}}


def context(args) -> dict:
    ctx = {
        **cpu_info(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host_name": socket.gethostname(),
        "executable": " ".join([sys.executable] + sys.argv),
        "num_cpus": os.cpu_count(),
        "library_build_type": "release",
        "cpu": platform.processor() or platform.machine(),
        "torch_version": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "torch_cpu_capability": cpu_capability(),
        "python_version": platform.python_version(),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available()),
        "warmup": args.warmup,
        "repeats": args.repeats,
        "weights": "N(0, 0.02), GroupNorm gamma 1 + N(0, 0.02), Rezero g 0.5",
        "malloc": (f"warm (one {WARM_MALLOC_BYTES >> 20} MiB block freed before timing: glibc's mmap/trim "
                   "thresholds raised as in a process that has loaded a model)") if getattr(args, "malloc", "warm") == "warm"
                  else "fresh process",
        "grad_mode": "torch.no_grad()",
        "origin_model": (f"upstream Grad-TTS ({args.upstream})" if getattr(args, "upstream", None)
                         else "tools/reference/gradtts_reference.py (checked against upstream: --check-upstream)"),
    }
    if "diffusers" in sys.modules:
        ctx["diffusers_version"] = sys.modules["diffusers"].__version__
    if getattr(args, "compile", False):
        ctx["torch_compile"] = "torch.compile(model, dynamic=False): inductor, default mode, compiled in the warm-ups"
    return ctx


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
    ap.add_argument("--suite", nargs="+", default=["origin"], choices=["origin", "diffuser", "sgemm", "attention"])
    ap.add_argument("--diffuser-frames", type=int, nargs="+", default=[512])
    ap.add_argument("--dtypes", nargs="+", default=["f32"], choices=["f32", "bf16", "f16"],
                    help="origin / diffuser / attention suites: f32, and the f32 model (tensors) under "
                         "torch.autocast('cpu', dtype)")
    ap.add_argument("--max-tokens", type=int, default=16384, help="longest attention sequence")
    ap.add_argument("--malloc", choices=["warm", "fresh"], default="warm",
                    help="warm (default): time in the allocator state of a process that has loaded or run a "
                         "model (see warm_malloc); fresh: as a new process that has allocated nothing large")
    ap.add_argument("--upstream", type=Path, metavar="PATH",
                    help="origin suite: time the upstream Grad-TTS GradLogPEstimator2d itself (PATH as for "
                         "--check-upstream) instead of the transcription")
    ap.add_argument("--check-upstream", type=Path, metavar="PATH",
                    help="a Grad-TTS checkout (Speech-Backbones): check the Origin transcription's outputs "
                         "and speed against the upstream GradLogPEstimator2d instead of benchmarking")
    ap.add_argument("--rounds", type=int, default=7, help="--check-upstream: interleaved timing rounds")
    ap.add_argument("--max-ratio", type=float, help="--check-upstream: fail when transcription / upstream "
                    "(median of the rounds) exceeds this")
    ap.add_argument("--compile", action="store_true",
                    help="origin and diffuser suites: also time the models under torch.compile (<case>_compiled)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: the GPU suite of benchmarks/bench_cuda.cu instead of --suite")
    args = ap.parse_args()

    if args.device == "cuda":
        if not torch.cuda.is_available():
            print("bench_torch.py: --device cuda but torch sees no CUDA device", file=sys.stderr)
            return 1
        print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}, float32, TF32 off; "
              f"{args.warmup} warm-ups, median of {args.repeats} (CUDA events)", flush=True)
        entries = cuda_entries(args)
        if args.json:
            ctx = context(args)
            ctx["cuda_device"] = torch.cuda.get_device_name()
            ctx["torch_cuda"] = torch.version.cuda
            ctx["tf32"] = "off (on in the cases named tf32)"
            args.json.write_text(json.dumps({"context": ctx, "benchmarks": entries}, indent=2) + "\n")
            print(f"wrote {args.json}")
        return 0

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {cpu_capability()}, Python {platform.python_version()}; "
          f"{args.warmup} warm-ups, median of {args.repeats}")
    if args.malloc == "warm":
        warm_malloc()
    if args.check_upstream:
        return check_upstream(args)
    entries = []
    if "origin" in args.suite:
        model = GradLogPEstimator2d(64, dim_mults=(1, 2, 4), n_spks=1, n_feats=80).eval()
        randomize_(model, args.seed)
        if args.upstream:
            upstream_cls, model_dir = load_upstream(args.upstream)
            upstream = upstream_cls(64, dim_mults=(1, 2, 4), n_spks=1, n_feats=80).eval()
            upstream.load_state_dict(model.state_dict(), strict=True)
            model = upstream
            print(f"origin: the upstream module from {model_dir}")
        print(f"{'benchmark':<30} {'median ms':>10} {'min ms':>10} {'GFLOP':>8} {'GFLOP/s':>8}")
        variants = [(model, False)] + ([(compiled(model), True)] if args.compile else [])
        for i, (frames, dtype, (m, is_compiled)) in enumerate(
                (f, d, v) for f in args.frames for d in args.dtypes for v in variants):
            e = benchmark_entry(i, frames, time_forward(m, frames, args.warmup, args.repeats, args.seed + 1, dtype),
                                dtype, is_compiled)
            entries.append(e)
            print(f"{e['name']:<30} {e['real_time']:>10.1f} {e['min_real_time']:>10.1f} "
                  f"{e['GFLOP']:>8.2f} {e['GFLOP/s']:>8.1f}", flush=True)
    if "sgemm" in args.suite:
        for e in sgemm_entries(args.warmup, args.repeats):
            entries.append(e)
            print(f"{e['name']:<30} {e['real_time']:>10.1f} ms {e['GFLOP/s']:>8.1f} GFLOP/s", flush=True)
    if "diffuser" in args.suite:
        for e in diffuser_entries(args.diffuser_frames, args.warmup, args.repeats, args.seed, args.dtypes,
                                  args.compile):
            entries.append(e)
            print(f"{e['name']:<30} {e['real_time']:>10.1f} ms  ({e['label']})", flush=True)
    if "attention" in args.suite:
        entries += attention_entries(max(1, args.warmup // 2), max(1, args.repeats // 2), args.max_tokens,
                                     args.dtypes)

    if args.json:
        args.json.write_text(json.dumps({"context": context(args), "benchmarks": entries}, indent=2) + "\n")
        print(f"wrote {args.json}")

    if args.compare:
        ours = load_ours(args.compare)
        print(f"\n{'T':>6} {'diffblocks ms':>14} {'GFLOP/s':>8} {'torch ms':>10} {'GFLOP/s':>8} "
              f"{'torch/ours':>11}")
        for e in entries:
            if not e["name"].startswith("torch/origin_forward/"):
                continue
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
