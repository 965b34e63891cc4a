"""Generate the committed reference fixtures under tests/fixtures/ from gradtts_reference.py.

    python tools/reference/make_fixtures.py            # (re)write tests/fixtures
    python tools/reference/make_fixtures.py --out DIR  # write somewhere else
    python tools/reference/make_fixtures.py --check    # regenerate in memory and compare with
                                                       # the committed files (tolerance), write nothing

Every parameter is re-drawn away from PyTorch's defaults (Rezero's g is 0 by default, which
would hide the whole attention path; GroupNorm's default affine is the identity), masks have
padding, and x/mu/psd carry random junk on padded frames because those values must not
matter.  Everything is seeded per case and run on one CPU thread, so two runs on the same
machine and torch version give byte-identical files.  Outputs are computed in float32 (the
accuracy contract is against float32 PyTorch); each case also reports how far float32 is from
a float64 run with the same weights, i.e. how much of the C++ tolerance is reference noise.

File formats are fixed by the C++ tests; see tools/README.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path
from typing import Callable, Dict, List

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gradtts_reference as ref  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "tests" / "fixtures"

# float32 vs float64 of the same computation is expected far below the C++ tolerance (1e-4
# relative); a case above this is numerically fragile and would make the C++ tests flaky.
MAX_F32_F64_REL = 1e-5


# --------------------------------------------------------------------------------------------
# Random parameters and inputs
# --------------------------------------------------------------------------------------------

def _normal(gen, shape, std=1.0):
    return torch.randn(shape, generator=gen) * std


def _uniform(gen, shape, lo, hi):
    return torch.rand(shape, generator=gen) * (hi - lo) + lo


@torch.no_grad()
def randomize_(module: nn.Module, gen: torch.Generator, qkv_gain: float = 0.3) -> None:
    """Re-draw every parameter so that no default (zeros, ones, symmetric init) hides a bug.

    Weights ~ N(0, 1/fan_in) keep activations O(1) through the network; biases are small but
    nonzero; GroupNorm's affine is clearly not the identity; Rezero's g is never 0.

    LinearAttention is un-normalised and quadratic in its input (q times a k-weighted mean of
    v), and its output joins the residual stream unnormalised.  At full N(0, 1/fan_in) scale
    for to_qkv each attention multiplies the stream's size by ~5-300 and the 64-dim U-Net
    overflows float32 by the up path.  `qkv_gain` 0.3 makes each attention add ~20-50% of the
    stream's standard deviation: clearly visible, yet stable (float32 vs float64 ~2e-6).
    Single-block fixtures use gain 1.
    """
    touched = set()
    for _, m in module.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.copy_(_normal(gen, m.weight.shape, 1.0 / math.sqrt(fan_in)))
            touched.add(id(m.weight))
            if m.bias is not None:
                m.bias.copy_(_uniform(gen, m.bias.shape, -0.1, 0.1))
                touched.add(id(m.bias))
        elif isinstance(m, nn.ConvTranspose2d):
            # Weight (in, out, kH, kW); with stride s each output pixel sees in*kH*kW/s^2 taps.
            cin, _, kh, kw = m.weight.shape
            fan_in = cin * kh * kw / (m.stride[0] * m.stride[1])
            m.weight.copy_(_normal(gen, m.weight.shape, 1.0 / math.sqrt(fan_in)))
            m.bias.copy_(_uniform(gen, m.bias.shape, -0.1, 0.1))
            touched.update((id(m.weight), id(m.bias)))
        elif isinstance(m, nn.GroupNorm):
            m.weight.copy_(1.0 + 0.2 * _normal(gen, m.weight.shape))
            m.bias.copy_(0.1 * _normal(gen, m.bias.shape))
            touched.update((id(m.weight), id(m.bias)))
        elif isinstance(m, ref.Rezero):
            m.g.copy_(_uniform(gen, m.g.shape, 0.3, 0.8))
            touched.add(id(m.g))
    for m in module.modules():
        if isinstance(m, ref.LinearAttention):
            m.to_qkv.weight.mul_(qkv_gain)
    missed = [n for n, p in module.named_parameters() if id(p) not in touched]
    assert not missed, f"parameters not re-drawn: {missed}"


def make_mask(lengths: List[int], n_frames: int) -> torch.Tensor:
    """(B, 1, T) float mask, 1 = valid (Grad-TTS's sequence_mask(...).unsqueeze(1))."""
    return (torch.arange(n_frames)[None, :] < torch.tensor(lengths)[:, None]).float()[:, None, :]


# --------------------------------------------------------------------------------------------
# Output collection: every case yields files; they are then written or checked
# --------------------------------------------------------------------------------------------

class Fixtures:
    def __init__(self):
        self.files: Dict[str, tuple] = {}   # relpath -> ("st", tensors, metadata) | ("json", dict)
        self.summary: List[tuple] = []      # (case, max|out|, f32-vs-f64 relative error)

    def tensors(self, relpath: str, tensors: Dict[str, torch.Tensor], metadata=None):
        assert relpath not in self.files, relpath
        # More than one metadata key would make the header's byte order nondeterministic.
        assert metadata is None or len(metadata) == 1, metadata
        clean = {}
        for k, v in tensors.items():
            assert torch.isfinite(v.float()).all(), f"{relpath}:{k} is not finite"
            clean[k] = v.detach().contiguous().clone()
        self.files[relpath] = ("st", clean, metadata)

    def json(self, relpath: str, obj: dict):
        self.files[relpath] = ("json", obj)

    def note(self, case: str, out: torch.Tensor, out64: torch.Tensor, limit=MAX_F32_F64_REL):
        peak = out64.abs().max().item()
        rel = (out.double() - out64).abs().max().item() / max(1.0, peak)
        assert rel < limit, f"{case}: float32 vs float64 differ by {rel:.2e} (relative)"
        self.summary.append((case, out.abs().max().item(), rel))


def _dump_json(obj) -> str:
    return json.dumps(obj, indent=2) + "\n"


def write_all(fx: Fixtures, out_dir: Path):
    for rel, item in sorted(fx.files.items()):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if item[0] == "json":
            path.write_text(_dump_json(item[1]))
        else:
            _, tensors, meta = item
            save_file(tensors, str(path), metadata=meta)
            path.chmod(0o644)  # safetensors >= 0.7 creates files 0600


def check_all(fx: Fixtures, out_dir: Path) -> int:
    """Compare regenerated fixtures with files on disk. Weights, inputs and outputs may differ
    in the last bits across machines / torch versions, so floats use a relative tolerance."""
    bad = 0
    for rel, item in sorted(fx.files.items()):
        path = out_dir / rel
        if not path.exists():
            print(f"MISSING {rel}")
            bad += 1
            continue
        if item[0] == "json":
            if json.loads(path.read_text()) != item[1]:
                print(f"DIFFERS {rel}")
                bad += 1
            continue
        _, tensors, meta = item
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}) != (meta or {}) or set(f.keys()) != set(tensors):
                print(f"DIFFERS {rel}: metadata or tensor names")
                bad += 1
                continue
            for k, want in tensors.items():
                got = f.get_tensor(k)
                ok = got.dtype == want.dtype and got.shape == want.shape
                if ok and want.is_floating_point():
                    scale = max(1.0, want.float().abs().max().item())
                    ok = (got.float() - want.float()).abs().max().item() <= 1e-5 * scale
                elif ok:
                    ok = torch.equal(got, want)
                if not ok:
                    print(f"DIFFERS {rel}:{k}")
                    bad += 1
    print(f"checked {len(fx.files)} files, {bad} differences")
    return bad


# --------------------------------------------------------------------------------------------
# Block fixtures: tests/fixtures/blocks/<case>.safetensors
# --------------------------------------------------------------------------------------------

def block_case(fx: Fixtures, case: str, seed: int, module: nn.Module, config: dict,
               inputs: Callable[[torch.Generator], Dict[str, torch.Tensor]],
               call: Callable[..., torch.Tensor] = None, limit=MAX_F32_F64_REL):
    """Randomize `module`, draw its inputs, and store state_dict + input.<name> + output.
    `call(module, **inputs)` defaults to module(**inputs) in the inputs' order."""
    gen = torch.Generator().manual_seed(seed)
    randomize_(module, gen, qkv_gain=1.0)
    module.eval()
    args = inputs(gen)
    call = call or (lambda m, **kw: m(*kw.values()))
    with torch.no_grad():
        out = call(module, **args)
        out64 = call(copy.deepcopy(module).double(),
                     **{k: v.double() if v.is_floating_point() else v for k, v in args.items()})
    tensors = dict(module.state_dict())
    tensors.update({f"input.{k}": v for k, v in args.items()})
    tensors["output"] = out
    fx.tensors(f"blocks/{case}.safetensors", tensors, {"config": json.dumps(config)})
    fx.note(f"blocks/{case}", out, out64, limit)


def block_fixtures(fx: Fixtures):
    b = 2

    def conv(cin, cout, k, stride, pad, bias, h, w):
        cfg = {"in_channels": cin, "out_channels": cout, "kernel_size": k, "stride": stride,
               "padding": pad, "bias": bias}
        return (nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=bias), cfg,
                lambda g: {"x": _normal(g, (b, cin, h, w))})

    block_case(fx, "conv2d_3x3", 101, *conv(5, 7, 3, 1, 1, True, 9, 11))
    block_case(fx, "conv2d_3x3_s2", 102, *conv(5, 7, 3, 2, 1, True, 9, 11))
    block_case(fx, "conv2d_1x1", 103, *conv(6, 9, 1, 1, 0, True, 7, 10))
    block_case(fx, "conv2d_1x1_nobias", 104, *conv(6, 9, 1, 1, 0, False, 7, 10))

    block_case(fx, "conv_transpose2d", 105, nn.ConvTranspose2d(6, 5, 4, 2, 1),
               {"in_channels": 6, "out_channels": 5, "kernel_size": 4, "stride": 2,
                "padding": 1, "bias": True},
               lambda g: {"x": _normal(g, (b, 6, 5, 7))})

    block_case(fx, "linear", 106, nn.Linear(12, 20),
               {"in_features": 12, "out_features": 20, "bias": True},
               lambda g: {"x": _normal(g, (b, 12))})

    # Per-channel offsets make the variance sensitive to a naive E[x^2] - E[x]^2.
    def gn_input(c, h, w):
        return lambda g: {"x": _normal(g, (b, c, h, w), 1.5) + _uniform(g, (1, c, 1, 1), -3, 3)}

    block_case(fx, "group_norm", 107, nn.GroupNorm(8, 16),
               {"num_groups": 8, "num_channels": 16, "eps": 1e-5, "affine": True},
               gn_input(16, 6, 10))
    block_case(fx, "group_norm_4", 108, nn.GroupNorm(4, 12),
               {"num_groups": 4, "num_channels": 12, "eps": 1e-5, "affine": True},
               gn_input(12, 6, 10))

    def mish_input(g):
        # Both sides of softplus's threshold (20), the far negative tail and values near 0.
        # Kept within +-30 so a max-scaled tolerance stays meaningful for the small values.
        special = torch.tensor([-30.0, -29.0, -25.5, -20.5, -20.0, -19.5, -10.0, -1e-3, -1e-7,
                                0.0, 1e-7, 1e-3, 10.0, 19.5, 19.999, 20.0, 20.001, 20.5, 25.5,
                                29.0, 30.0])
        ramp = torch.linspace(-25.0, 25.0, 51)
        rest = _normal(g, (128 - special.numel() - ramp.numel(),), 2.0)
        return {"x": torch.cat([special, ramp, rest]).reshape(b, 4, 16)}

    block_case(fx, "mish", 109, ref.Mish(), {}, mish_input)

    def masked(c, h, w, valid):
        return lambda g: {"x": _normal(g, (b, c, h, w)),
                          "mask": make_mask([w, valid], w)[:, :, None, :]}

    block_case(fx, "block", 110, ref.Block(8, 16, groups=8),
               {"dim": 8, "dim_out": 16, "groups": 8}, masked(8, 9, 11, 7))

    def resnet_inputs(c, h, w, valid, temb):
        def draw(g):
            d = masked(c, h, w, valid)(g)
            d["t"] = _normal(g, (b, temb))
            return d
        return draw

    block_case(fx, "resnet_block", 111, ref.ResnetBlock(8, 16, 24, groups=8),
               {"dim": 8, "dim_out": 16, "time_emb_dim": 24, "groups": 8},
               resnet_inputs(8, 9, 11, 7, 24))
    block_case(fx, "resnet_block_same", 112, ref.ResnetBlock(16, 16, 24, groups=8),
               {"dim": 16, "dim_out": 16, "time_emb_dim": 24, "groups": 8},
               resnet_inputs(16, 9, 11, 7, 24))

    attn_cfg = {"dim": 16, "heads": 4, "dim_head": 32}
    block_case(fx, "linear_attention", 113, ref.LinearAttention(16), attn_cfg,
               lambda g: {"x": _normal(g, (b, 16, 6, 10))})
    block_case(fx, "residual_rezero_linear_attention", 114,
               ref.Residual(ref.Rezero(ref.LinearAttention(16))), attn_cfg,
               lambda g: {"x": _normal(g, (b, 16, 6, 10))})

    block_case(fx, "downsample", 115, ref.Downsample(8), {"dim": 8},
               lambda g: {"x": _normal(g, (b, 8, 9, 11))})
    block_case(fx, "upsample", 116, ref.Upsample(8), {"dim": 8},
               lambda g: {"x": _normal(g, (b, 8, 5, 6))})

    def pos_emb(case, seed, dim, scale, t, limit=MAX_F32_F64_REL):
        block_case(fx, case, seed, ref.SinusoidalPosEmb(dim), {"dim": dim, "scale": scale},
                   lambda g: {"t": t}, call=lambda m, t: m(t, scale=scale), limit=limit)

    # Includes t close to 0 and to 1 (the sampler's range); arguments reach ~1000 rad, where
    # the float32 rounding of (scale * t) * f alone moves sin/cos by ~1e-5: a port must form
    # the argument in float32 in that order to match this file closely.
    pos_emb("sinusoidal_pos_emb", 117, 64, 1000, torch.tensor([1e-5, 0.31415927, 0.75, 0.99999]),
            limit=5e-5)
    pos_emb("sinusoidal_pos_emb_scale1", 118, 32, 1, torch.tensor([0.05, 0.5, 0.9, 0.123]))


# --------------------------------------------------------------------------------------------
# U-Net fixtures: tests/fixtures/origin_<case>/
# --------------------------------------------------------------------------------------------

def origin_config(**kw) -> dict:
    cfg = {"_class_name": "GradLogPEstimator2d", "dim": kw.pop("dim")}
    for key, default in ref.CONFIG_DEFAULTS.items():
        cfg[key] = kw.pop(key, default)
    assert not kw, kw
    cfg["dim_mults"] = list(cfg["dim_mults"])
    return cfg


def rounded(state: Dict[str, torch.Tensor], dtype: torch.dtype):
    """(tensors as stored in `dtype`, the same values in float32 for computing)."""
    stored = {k: v.to(dtype) for k, v in state.items()}
    return stored, {k: v.float() for k, v in stored.items()}


def run_both(model: ref.GradLogPEstimator2d, kw: dict):
    """Forward in float32 and in float64 (same weights and inputs)."""
    with torch.no_grad():
        out = model(**kw)
        out64 = copy.deepcopy(model).double()(
            **{k: v.double() if v.is_floating_point() else v for k, v in kw.items()})
    return out, out64


def origin_case(fx: Fixtures, case: str, seed: int, config: dict, n_frames: int,
                lengths: List[int], weight_dtype: torch.dtype, spk: str = None, emo: str = None,
                layout: str = "dir"):
    """spk/emo: None, "vec" (input vector, no table) or "id" (table in the model file +
    integer ids; `spk` "id" also writes inputs_vec.safetensors with the embedded vectors).
    layout "dir": origin_<case>/{config.json, model, inputs, expected}.safetensors;
    layout "file": one origin_<case>.safetensors (config in metadata, decoder.estimator. keys)."""
    gen = torch.Generator().manual_seed(seed)
    model = ref.build_estimator(config)
    randomize_(model, gen)
    model.eval()
    b, f = len(lengths), config["n_feats"]

    # Tables are drawn like nn.Embedding's init, N(0, 1).
    tables = {}
    if spk == "id":
        tables["spk_emb.weight"] = _normal(gen, (config["n_spks"], config["spk_emb_dim"]))
    if emo == "id":
        tables["emo_emb.weight"] = _normal(gen, (config["n_emos"], config["emo_emb_dim"]))

    stored, compute = rounded({**model.state_dict(), **tables}, weight_dtype)
    state, tables = ref.split_tables(compute)
    model.load_state_dict(state, strict=True)

    # x, mu ~ N(0, 1) everywhere: the padded frames hold junk that must not matter.
    inputs = {
        "x": _normal(gen, (b, f, n_frames)),
        "mask": make_mask(lengths, n_frames),
        "mu": _normal(gen, (b, f, n_frames)),
        "t": _uniform(gen, (b,), 0.05, 0.95),
    }
    if spk == "vec":
        inputs["spk"] = _normal(gen, (b, config["spk_emb_dim"]))
    elif spk == "id":
        inputs["spk_id"] = torch.tensor([2, 0][:b], dtype=torch.int64)
    if emo == "vec":
        inputs["emo"] = _normal(gen, (b, config["emo_emb_dim"]))
    elif emo == "id":
        inputs["emo_id"] = torch.tensor([3, 1][:b], dtype=torch.int32)
    if config["n_psd"] > 0:
        inputs["psd"] = _normal(gen, (b, config["n_psd"], n_frames))

    kw = ref.resolve_inputs(inputs, tables)
    out, out64 = run_both(model, kw)
    assert out.shape == (b, f, n_frames)
    fx.note(f"origin_{case}", out, out64)

    if layout == "dir":
        d = f"origin_{case}"
        fx.json(f"{d}/config.json", config)
        fx.tensors(f"{d}/model.safetensors", stored)
        fx.tensors(f"{d}/inputs.safetensors", inputs)
        fx.tensors(f"{d}/expected.safetensors", {"out": out})
        if spk == "id":
            vec = dict(inputs)
            vec["spk"] = kw["spk"]
            del vec["spk_id"]
            fx.tensors(f"{d}/inputs_vec.safetensors", vec)
    else:
        prefixed = {(k if k in ref.TABLE_KEYS else f"decoder.estimator.{k}"): v
                    for k, v in stored.items()}
        fx.tensors(f"origin_{case}.safetensors", prefixed, {"config": json.dumps(config)})
        fx.tensors(f"origin_{case}_inputs.safetensors", inputs)
        fx.tensors(f"origin_{case}_expected.safetensors", {"out": out})


def origin_fixtures(fx: Fixtures):
    big = dict(dim=64, dim_mults=[1, 2, 4], n_feats=80, pe_scale=1000)
    small = dict(dim=32, dim_mults=[1, 2], n_feats=16, pe_scale=1)
    origin_case(fx, "a", 201, origin_config(**big, n_spks=1), 96, [96, 72], torch.float16)
    origin_case(fx, "b", 202, origin_config(**big, n_spks=4, spk_emb_dim=64), 96, [96, 72],
                torch.float16, spk="id")
    origin_case(fx, "c", 203, origin_config(**big, n_spks=3, n_emos=5, emo_emb_dim=16, n_psd=3),
                96, [96, 72], torch.float16, spk="vec", emo="id")
    origin_case(fx, "d", 204, origin_config(**small, n_spks=1), 24, [24, 17], torch.bfloat16)
    origin_case(fx, "e", 205, origin_config(**small, n_spks=1), 24, [24, 17], torch.float32,
                layout="file")


# --------------------------------------------------------------------------------------------
# Sampler fixtures: tests/fixtures/sample_ode/
# --------------------------------------------------------------------------------------------

# (steps, key in expected.safetensors) of the ODE sampler runs; 10 steps is the Grad-TTS sampler
# the half-precision accuracy contract names (issue #16).
SAMPLE_STEPS = ((5, "out"), (1, "out_steps_1"), (3, "out_steps_3"), (10, "out_steps_10"))


def sampler_fixtures(fx: Fixtures):
    config = origin_config(dim=32, dim_mults=[1, 2], n_feats=16, pe_scale=1, n_spks=1)
    gen = torch.Generator().manual_seed(301)
    est = ref.build_estimator(config)
    randomize_(est, gen)
    # A random estimator is no score: the Euler ODE adds 0.5*beta*h*est per step (1.8*est in
    # the first of 5 steps) and then amplifies it ~9x; scaling the last conv keeps the result
    # and the estimator's later inputs O(1).
    with torch.no_grad():
        est.final_conv.weight.mul_(0.05)
        est.final_conv.bias.mul_(0.05)
    est.eval()
    diff = ref.Diffusion(config["n_feats"], config["dim"], beta_min=config["beta_min"],
                         beta_max=config["beta_max"], pe_scale=config["pe_scale"], estimator=est)
    diff64 = copy.deepcopy(diff).double()

    b, f, n_frames, lengths = 2, config["n_feats"], 24, [24, 17]
    mask = make_mask(lengths, n_frames)
    # |xt - mu| grows ~26x over 5 steps (factors 1 + beta_i h / 2), so the noise is small;
    # padded frames keep unmasked junk (the sampler masks z itself).
    mu = 0.3 * _normal(gen, (b, f, n_frames))
    z = mu + 0.1 * _normal(gen, (b, f, n_frames))

    expected = {}
    for steps, name in SAMPLE_STEPS:
        out = diff.reverse_diffusion(z, mask, mu, steps, stoc=False)
        out64 = diff64.reverse_diffusion(z.double(), mask.double(), mu.double(), steps)
        fx.note(f"sample_ode/{name}", out, out64)
        expected[name] = out

    fx.json("sample_ode/config.json", config)
    fx.tensors("sample_ode/model.safetensors", dict(est.state_dict()))
    fx.tensors("sample_ode/inputs.safetensors", {"z": z, "mask": mask, "mu": mu})
    fx.tensors("sample_ode/expected.safetensors", expected)

    # forward_diffusion with explicit noise; t spans the schedule.
    x0 = _normal(gen, (b, f, n_frames))
    mu_f = _normal(gen, (b, f, n_frames))
    t = torch.tensor([0.3, 0.85])
    noise = _normal(gen, (b, f, n_frames))
    xt, z_masked = diff.forward_diffusion(x0, mask, mu_f, t, z=noise)
    xt64, _ = diff64.forward_diffusion(x0.double(), mask.double(), mu_f.double(), t.double(),
                                       z=noise.double())
    fx.note("sample_ode/forward_diffusion", xt, xt64)
    fx.tensors("sample_ode/forward_diffusion.safetensors",
               {"x0": x0, "mask": mask, "mu": mu_f, "t": t, "z": noise, "xt": xt,
                "z_masked": z_masked},
               # One metadata key only: safetensors writes metadata from a hash map, so with
               # two keys their order (and the file's bytes) changes from run to run.
               {"config": json.dumps({"beta_min": config["beta_min"],
                                      "beta_max": config["beta_max"]})})


# --------------------------------------------------------------------------------------------
# Re-reading what was written, the way the C++ tests will
# --------------------------------------------------------------------------------------------

def _read(path: Path) -> Dict[str, torch.Tensor]:
    # clone(): tensors straight out of the file need not be 64-byte aligned, and torch's
    # vectorised reductions then round differently (a few ulp, seen on origin_c); the fresh
    # allocation makes the recomputation bit-identical to the generating run.
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k).clone() for k in f.keys()}


# Block fixture name prefix -> constructor from the file's config (SinusoidalPosEmb, which takes
# `scale` in forward, is handled in load_block).
BLOCK_BUILDERS = {
    "conv2d": lambda c: nn.Conv2d(**c), "conv_transpose2d": lambda c: nn.ConvTranspose2d(**c),
    "linear": lambda c: nn.Linear(**c), "group_norm": lambda c: nn.GroupNorm(**c),
    "mish": lambda c: ref.Mish(), "block": lambda c: ref.Block(**c),
    "resnet_block": lambda c: ref.ResnetBlock(**c),
    "linear_attention": lambda c: ref.LinearAttention(**c),
    "residual_rezero_linear_attention":
        lambda c: ref.Residual(ref.Rezero(ref.LinearAttention(**c))),
    "downsample": lambda c: ref.Downsample(**c), "upsample": lambda c: ref.Upsample(**c),
}


def load_block(path: Path):
    """Rebuild a block fixture from its file alone: (module, run, inputs, output), where
    run(inputs) is the module's forward on the inputs dict (forward order x, mask, t)."""
    with safe_open(str(path), framework="pt") as f:
        config = json.loads(f.metadata()["config"])
    t = _read(path)
    # Files list tensors alphabetically; the forward order is (x, mask, t).
    inputs = {k: t[f"input.{k}"] for k in ("x", "mask", "t") if f"input.{k}" in t}
    state = {k: v for k, v in t.items() if not k.startswith("input.") and k != "output"}
    name = path.stem
    if name.startswith("sinusoidal_pos_emb"):
        m = ref.SinusoidalPosEmb(config["dim"])
        return m, lambda inp: m(inp["t"], scale=config["scale"]), inputs, t["output"]
    key = next(k for k in sorted(BLOCK_BUILDERS, key=len, reverse=True) if name.startswith(k))
    m = BLOCK_BUILDERS[key](config)
    m.load_state_dict(state, strict=True)
    return m, lambda inp: m(*inp.values()), inputs, t["output"]


def load_diffusion(model_dir: Path) -> ref.Diffusion:
    """The sampler of a model directory (sample_ode): estimator and beta range from its files."""
    model, _, config = ref.load_origin(str(model_dir))
    return ref.Diffusion(config["n_feats"], config["dim"], beta_min=config["beta_min"],
                         beta_max=config["beta_max"], estimator=model)


def verify_written(out_dir: Path):
    """Load every written model through ref.load_origin (prefix stripping, dtype upcast, strict
    key check, id lookup) and recompute: the files alone must reproduce the expected outputs."""
    with torch.no_grad():
        for case in "abcd":
            d = out_dir / f"origin_{case}"
            model, tables, _ = ref.load_origin(str(d))
            want = _read(d / "expected.safetensors")["out"]
            for name in ("inputs.safetensors", "inputs_vec.safetensors"):
                if (d / name).exists():
                    got = model(**ref.resolve_inputs(_read(d / name), tables))
                    assert torch.equal(got, want), f"origin_{case}/{name}"
        model, tables, _ = ref.load_origin(str(out_dir / "origin_e.safetensors"))
        got = model(**ref.resolve_inputs(_read(out_dir / "origin_e_inputs.safetensors"), tables))
        assert torch.equal(got, _read(out_dir / "origin_e_expected.safetensors")["out"]), "origin_e"

        diff = load_diffusion(out_dir / "sample_ode")
        inp = _read(out_dir / "sample_ode" / "inputs.safetensors")
        exp = _read(out_dir / "sample_ode" / "expected.safetensors")
        for steps, name in SAMPLE_STEPS:
            got = diff.reverse_diffusion(inp["z"], inp["mask"], inp["mu"], steps)
            assert torch.equal(got, exp[name]), f"sample_ode/{name}"

        # Blocks: rebuild from the config, load the file's own state_dict, recompute.
        for path in sorted((out_dir / "blocks").glob("*.safetensors")):
            _, run, inputs, want = load_block(path)
            assert torch.equal(run(inputs), want), path.stem
    print("verified: every written fixture reproduces its expected output when re-loaded")


# --------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture root (tests/fixtures)")
    ap.add_argument("--check", action="store_true",
                    help="compare with the files under --out instead of writing them")
    args = ap.parse_args()

    # One thread: reductions and oneDNN kernels then run in a fixed order, so reruns are
    # byte-identical regardless of how many cores the machine has.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    fx = Fixtures()
    block_fixtures(fx)
    origin_fixtures(fx)
    sampler_fixtures(fx)

    if args.check:
        sys.exit(1 if check_all(fx, args.out) else 0)

    write_all(fx, args.out)
    verify_written(args.out)

    print(f"\n{'case':<45} {'max|out|':>10} {'|f32-f64|/max(1,|out|)':>24}")
    for case, peak, rel in fx.summary:
        print(f"{case:<45} {peak:>10.4f} {rel:>24.2e}")
    total = 0
    for rel in sorted(fx.files):
        total += (args.out / rel).stat().st_size
    print(f"\n{len(fx.files)} files, {total / 2**20:.2f} MiB under {args.out}")


if __name__ == "__main__":
    main()
