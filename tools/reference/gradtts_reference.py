"""PyTorch reference for Grad-TTS's score estimator (GradLogPEstimator2d) and its sampler.

A clean-room transcription of the behaviour documented in /work/shared/reference/gradtts.md
(huawei-noah/Speech-Backbones, Grad-TTS/model/diffusion.py), extended with the emotion and
prosody conditioning described in DESIGN.md.  It is the ground truth the C++ library is tested
against, so it deliberately keeps the original's quirks:

* `GradLogPEstimator2d.groups` is stored but never passed on: every GroupNorm has 8 groups.
* LinearAttention's hidden width is heads*dim_head = 128 whatever `dim` is; no q softmax, no
  1/sqrt(d) scaling and no mask (padded frames take part in the k softmax).
* The time bias of a ResnetBlock is added after block1's output mask, so padded frames get it.
* GroupNorm statistics include padded frames.
* hiddens[0] (the full-resolution skip) is pushed but never used.
* Module registration order (spk_mlp, mlp, downs, ups, mid_*, final_*) matches the original
  so `state_dict()` keys come out in the original order.

The module/parameter names are the original's, so a Grad-TTS checkpoint loads unchanged.

Besides the modules, this file holds the helpers shared by the fixture generator, the
checkpoint converter and their tests: model-directory loading (the Python mirror of the C++
loader contract), and resolution of speaker/emotion ids through the embedding tables.
"""

from __future__ import annotations

import json
import math
import os
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Mish", "Upsample", "Downsample", "Rezero", "Block", "ResnetBlock", "LinearAttention",
    "Residual", "SinusoidalPosEmb", "GradLogPEstimator2d", "get_noise", "Diffusion",
    "ESTIMATOR_DEFAULTS", "CONFIG_DEFAULTS", "build_estimator", "estimator_kwargs",
    "strip_prefix", "split_tables", "check_state_dict", "load_origin", "resolve_inputs",
    "TABLE_KEYS", "ModelLoadError",
]


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------

class Mish(nn.Module):
    """x * tanh(softplus(x)); torch's softplus returns x itself above 20."""

    def forward(self, x):
        return x * torch.tanh(F.softplus(x))


class Upsample(nn.Module):
    """ConvTranspose2d(dim, dim, 4, 2, 1): doubles H and W. Weight layout (in, out, kH, kW)."""

    def __init__(self, dim):
        super().__init__()
        self.conv = nn.ConvTranspose2d(dim, dim, 4, 2, 1)

    def forward(self, x):
        return self.conv(x)


class Downsample(nn.Module):
    """Conv2d(dim, dim, 3, stride 2, padding 1): H, W -> ceil(H/2), ceil(W/2)."""

    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, 2, 1)

    def forward(self, x):
        return self.conv(x)


class Rezero(nn.Module):
    """fn(x) * g with a learnable scalar g, initialised to 0 as in the original."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.g = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.fn(x) * self.g


class Block(nn.Module):
    """Conv3x3 -> GroupNorm -> Mish, masked on the way in and on the way out."""

    def __init__(self, dim, dim_out, groups=8):
        super().__init__()
        # A Sequential so the parameter names are block.0.* (conv) and block.1.* (norm).
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim_out, 3, padding=1),
            nn.GroupNorm(groups, dim_out),
            Mish(),
        )

    def forward(self, x, mask):
        return self.block(x * mask) * mask


class ResnetBlock(nn.Module):
    def __init__(self, dim, dim_out, time_emb_dim, groups=8):
        super().__init__()
        # Mish first, so the Linear is mlp.1 (index 0 has no parameters).
        self.mlp = nn.Sequential(Mish(), nn.Linear(time_emb_dim, dim_out))
        self.block1 = Block(dim, dim_out, groups=groups)
        self.block2 = Block(dim_out, dim_out, groups=groups)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x, mask, time_emb):
        h = self.block1(x, mask)
        # The time bias lands after block1's output mask: padded frames carry it into block2,
        # whose input mask then removes it again. In place, as in the original (`h += ...`):
        # same values, and the same ops as the upstream module (an out-of-place add allocated
        # one more feature map per ResnetBlock; tools/bench_torch.py --check-upstream compares
        # outputs and speed with upstream).
        h += self.mlp(time_emb)[:, :, None, None]
        h = self.block2(h, mask)
        # The residual input is masked even when res_conv is the identity.
        return h + self.res_conv(x * mask)


class LinearAttention(nn.Module):
    """Un-normalised linear attention over all H*W pixels of the 2-D feature map."""

    def __init__(self, dim, heads=4, dim_head=32):
        super().__init__()
        self.heads = heads
        self.dim_head = dim_head
        hidden = heads * dim_head  # 128 by default, independent of dim
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x):
        b, _, h, w = x.shape
        # Channel layout (qkv heads c); pixel index n = row * W + col.
        qkv = self.to_qkv(x).reshape(b, 3, self.heads, self.dim_head, h * w)
        q, k, v = qkv.unbind(dim=1)
        k = k.softmax(dim=-1)  # softmax over positions only; q is left raw and unscaled
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q)
        out = out.reshape(b, self.heads * self.dim_head, h, w)
        return self.to_out(out)


class Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, *args, **kwargs):
        return self.fn(x, *args, **kwargs) + x


class SinusoidalPosEmb(nn.Module):
    """cat(sin(a), cos(a)) with a = (scale * t) * f, f_i = exp(-i ln(1e4) / (half - 1))."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x, scale=1000):
        half = self.dim // 2
        step = math.log(10000) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=x.device).float() * -step).to(x.dtype)
        # Same association order as the original, (scale * t) first: with scale 1000 the
        # float32 rounding of the argument is visible in the 5th digit of sin/cos.
        arg = scale * x.unsqueeze(1) * freqs.unsqueeze(0)
        return torch.cat((arg.sin(), arg.cos()), dim=-1)


# --------------------------------------------------------------------------------------------
# The U-Net
# --------------------------------------------------------------------------------------------

class GradLogPEstimator2d(nn.Module):
    """Grad-TTS's 2-D score estimator, plus optional emotion (`n_emos`) and prosody (`n_psd`)
    conditioning. Input channels: mu, x, [spk], [emo], [psd_0 .. psd_{n_psd-1}].

    With n_spks <= 1, n_emos <= 1 and n_psd == 0 this is exactly the original.
    """

    def __init__(self, dim, dim_mults=(1, 2, 4), groups=8, n_spks=None, spk_emb_dim=64,
                 n_feats=80, pe_scale=1000, n_emos=1, emo_emb_dim=64, n_psd=0):
        super().__init__()
        if n_spks is None:
            # The original keeps None in the comparison `n_spks > 1` and raises there.
            raise TypeError("n_spks=None fails in Grad-TTS ('>' between None and int); pass an int")
        self.dim = dim
        self.dim_mults = tuple(dim_mults)
        self.groups = groups  # stored, never used: every GroupNorm below has 8 groups
        self.n_spks = n_spks
        self.spk_emb_dim = spk_emb_dim
        self.n_feats = n_feats
        self.pe_scale = pe_scale
        self.n_emos = n_emos
        self.emo_emb_dim = emo_emb_dim
        self.n_psd = n_psd

        if n_spks > 1:
            self.spk_mlp = nn.Sequential(nn.Linear(spk_emb_dim, spk_emb_dim * 4), Mish(),
                                         nn.Linear(spk_emb_dim * 4, n_feats))
        if n_emos > 1:
            self.emo_mlp = nn.Sequential(nn.Linear(emo_emb_dim, emo_emb_dim * 4), Mish(),
                                         nn.Linear(emo_emb_dim * 4, n_feats))
        self.time_pos_emb = SinusoidalPosEmb(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), Mish(), nn.Linear(dim * 4, dim))

        in_channels = 2 + (1 if n_spks > 1 else 0) + (1 if n_emos > 1 else 0) + n_psd
        dims = [in_channels, *(dim * m for m in dim_mults)]
        in_out = list(zip(dims[:-1], dims[1:]))

        # Both lists are registered before the mid blocks (ups is filled afterwards): this is
        # what puts `ups.*` before `mid_block1.*` in the original's state_dict.
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i, (din, dout) in enumerate(in_out):
            is_last = i == len(in_out) - 1
            self.downs.append(nn.ModuleList([
                ResnetBlock(din, dout, time_emb_dim=dim),
                ResnetBlock(dout, dout, time_emb_dim=dim),
                Residual(Rezero(LinearAttention(dout))),
                nn.Identity() if is_last else Downsample(dout),
            ]))

        mid = dims[-1]
        self.mid_block1 = ResnetBlock(mid, mid, time_emb_dim=dim)
        self.mid_attn = Residual(Rezero(LinearAttention(mid)))
        self.mid_block2 = ResnetBlock(mid, mid, time_emb_dim=dim)

        for din, dout in reversed(in_out[1:]):
            self.ups.append(nn.ModuleList([
                ResnetBlock(dout * 2, din, time_emb_dim=dim),
                ResnetBlock(din, din, time_emb_dim=dim),
                Residual(Rezero(LinearAttention(din))),
                Upsample(din),
            ]))
        self.final_block = Block(dim, dim)
        self.final_conv = nn.Conv2d(dim, 1, 1)

    def forward(self, x, mask, mu, t, spk=None, emo=None, psd=None):
        """x, mu: (B, F, T); mask: (B, 1, T), 1 = valid; t: (B,);
        spk: (B, spk_emb_dim) and emo: (B, emo_emb_dim) already-embedded vectors;
        psd: (B, n_psd, T). Returns (B, F, T), exactly 0 on padded frames."""
        n_frames = x.shape[-1]
        channels = [mu, x]  # mu first, as in the original's stack([mu, x])
        if self.n_spks > 1:
            if spk is None:
                raise ValueError("model has n_spks > 1: a speaker vector `spk` is required")
            s = self.spk_mlp(spk)
            channels.append(s.unsqueeze(-1).repeat(1, 1, n_frames))
        elif spk is not None:
            raise ValueError("model has n_spks <= 1 (no spk_mlp) but `spk` was given")
        if self.n_emos > 1:
            if emo is None:
                raise ValueError("model has n_emos > 1: an emotion vector `emo` is required")
            e = self.emo_mlp(emo)
            channels.append(e.unsqueeze(-1).repeat(1, 1, n_frames))
        elif emo is not None:
            raise ValueError("model has n_emos <= 1 (no emo_mlp) but `emo` was given")
        if self.n_psd > 0:
            if psd is None or psd.shape[1] != self.n_psd:
                raise ValueError(f"model has n_psd = {self.n_psd}: `psd` must be (B, {self.n_psd}, T)")
            for i in range(self.n_psd):
                channels.append(psd[:, i:i + 1, :].expand(-1, x.shape[1], -1))
        elif psd is not None:
            raise ValueError("model has n_psd = 0 but `psd` was given")

        t = self.mlp(self.time_pos_emb(t, scale=self.pe_scale))
        x = torch.stack(channels, 1)  # (B, C, F, T): frequency is the image height
        mask = mask.unsqueeze(1)      # (B, 1, 1, T)

        hiddens = []
        masks = [mask]
        for resnet1, resnet2, attn, down in self.downs:
            m = masks[-1]
            x = resnet1(x, m, t)
            x = resnet2(x, m, t)
            x = attn(x)
            hiddens.append(x)
            x = down(x * m)
            masks.append(m[:, :, :, ::2])  # time-only stride-2 subsample of the mask

        masks = masks[:-1]
        m = masks[-1]
        x = self.mid_block1(x, m, t)
        x = self.mid_attn(x)
        x = self.mid_block2(x, m, t)

        # L down levels pushed L hiddens; the L-1 up levels pop the last L-1, so hiddens[0]
        # (full resolution) is never consumed.
        for resnet1, resnet2, attn, up in self.ups:
            m = masks.pop()
            x = torch.cat((x, hiddens.pop()), dim=1)
            x = resnet1(x, m, t)
            x = resnet2(x, m, t)
            x = attn(x)
            x = up(x * m)

        x = self.final_block(x, mask)
        out = self.final_conv(x * mask)
        return (out * mask).squeeze(1)


# --------------------------------------------------------------------------------------------
# Diffusion (sampler)
# --------------------------------------------------------------------------------------------

def get_noise(t, beta_init, beta_term, cumulative=False):
    """beta(t) = b0 + (b1 - b0) t, or its integral b0 t + (b1 - b0) t^2 / 2."""
    if cumulative:
        return beta_init * t + 0.5 * (beta_term - beta_init) * (t ** 2)
    return beta_init + (beta_term - beta_init) * t


class Diffusion(nn.Module):
    """Grad-TTS's Diffusion wrapper (original, midpoint-Euler reverse diffusion).

    Like the original it builds the estimator without passing n_feats (so it keeps 80) and
    with default dim_mults/groups.  For other shapes pass a ready `estimator`.
    """

    def __init__(self, n_feats, dim, n_spks=1, spk_emb_dim=64, beta_min=0.05, beta_max=20,
                 pe_scale=1000, estimator: Optional[GradLogPEstimator2d] = None):
        super().__init__()
        self.n_feats = n_feats
        self.dim = dim
        self.n_spks = n_spks
        self.spk_emb_dim = spk_emb_dim
        self.beta_min = beta_min
        self.beta_max = beta_max
        self.pe_scale = pe_scale
        if estimator is None:
            estimator = GradLogPEstimator2d(dim, n_spks=n_spks, spk_emb_dim=spk_emb_dim,
                                            pe_scale=pe_scale)
        self.estimator = estimator

    def forward_diffusion(self, x0, mask, mu, t, z=None, generator=None):
        """Returns (xt * mask, z * mask). `z` (the noise) may be given explicitly; otherwise it
        is drawn like the original (torch.randn of x0's shape)."""
        time = t.unsqueeze(-1).unsqueeze(-1)
        cum_noise = get_noise(time, self.beta_min, self.beta_max, cumulative=True)
        mean = x0 * torch.exp(-0.5 * cum_noise) + mu * (1.0 - torch.exp(-0.5 * cum_noise))
        variance = 1.0 - torch.exp(-cum_noise)
        if z is None:
            z = torch.randn(x0.shape, dtype=x0.dtype, device=x0.device, generator=generator)
        xt = mean + z * torch.sqrt(variance)
        return xt * mask, z * mask

    @torch.no_grad()
    def reverse_diffusion(self, z, mask, mu, n_timesteps, stoc=False, spk=None, emo=None,
                          psd=None, generator=None):
        """N Euler steps from t = 1 to 0, evaluating the score at the step midpoints."""
        h = 1.0 / n_timesteps
        xt = z * mask
        for i in range(n_timesteps):
            # Midpoint time, computed in Python double and then rounded to the tensor dtype.
            t = (1.0 - (i + 0.5) * h) * torch.ones(z.shape[0], dtype=z.dtype, device=z.device)
            time = t.unsqueeze(-1).unsqueeze(-1)
            noise_t = get_noise(time, self.beta_min, self.beta_max, cumulative=False)
            est = self.estimator(xt, mask, mu, t, spk, emo, psd)
            if stoc:
                # The SDE drift does not halve the score term (the ODE below does).
                dxt_det = (0.5 * (mu - xt) - est) * noise_t * h
                dxt_stoc = torch.randn(z.shape, dtype=z.dtype, device=z.device,
                                       generator=generator)
                dxt = dxt_det + dxt_stoc * torch.sqrt(noise_t * h)
            else:
                dxt = 0.5 * (mu - xt - est) * noise_t * h
            xt = (xt - dxt) * mask
        return xt

    @torch.no_grad()
    def forward(self, z, mask, mu, n_timesteps, stoc=False, spk=None, emo=None, psd=None):
        return self.reverse_diffusion(z, mask, mu, n_timesteps, stoc, spk, emo, psd)


# --------------------------------------------------------------------------------------------
# Model files (Python mirror of the loader contract in DESIGN.md)
# --------------------------------------------------------------------------------------------

# Constructor defaults of the estimator. n_spks defaults to None in the original, which cannot
# be constructed; model files treat a missing n_spks as 1 (single speaker).
ESTIMATOR_DEFAULTS = {
    "dim_mults": [1, 2, 4], "groups": 8, "n_spks": 1, "spk_emb_dim": 64, "n_feats": 80,
    "pe_scale": 1000, "n_emos": 1, "emo_emb_dim": 64, "n_psd": 0,
}
# Everything a config.json carries: the estimator's arguments plus the sampler's beta range.
CONFIG_DEFAULTS = {**ESTIMATOR_DEFAULTS, "beta_min": 0.05, "beta_max": 20.0}

# Embedding tables that live next to the estimator in a model file (GradTTS.spk_emb and the
# extension's emo_emb), with the config keys that fix their shapes.
TABLE_KEYS = {"spk_emb.weight": ("n_spks", "spk_emb_dim"),
              "emo_emb.weight": ("n_emos", "emo_emb_dim")}

KNOWN_PREFIXES = ("decoder.estimator.", "estimator.")


class ModelLoadError(ValueError):
    pass


def estimator_kwargs(config: dict) -> dict:
    """Constructor arguments of GradLogPEstimator2d from a config dict (defaults filled in)."""
    if "dim" not in config:
        raise ModelLoadError("config has no 'dim' (GradLogPEstimator2d has no default for it)")
    kw = {"dim": config["dim"]}
    for key, default in ESTIMATOR_DEFAULTS.items():
        kw[key] = config.get(key, default)
    kw["dim_mults"] = tuple(kw["dim_mults"])
    return kw


def build_estimator(config: dict) -> GradLogPEstimator2d:
    return GradLogPEstimator2d(**estimator_kwargs(config))


def strip_prefix(tensors: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Drop a common `decoder.estimator.` / `estimator.` prefix from the estimator's keys.
    The embedding tables stay at top level, as in a whole GradTTS state_dict."""
    est_keys = [k for k in tensors if k not in TABLE_KEYS]
    for prefix in KNOWN_PREFIXES:
        if est_keys and all(k.startswith(prefix) for k in est_keys):
            return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in tensors.items()}
    return dict(tensors)


def split_tables(tensors: Dict[str, torch.Tensor]):
    """(estimator state_dict, {table key: tensor})."""
    tables = {k: v for k, v in tensors.items() if k in TABLE_KEYS}
    state = {k: v for k, v in tensors.items() if k not in TABLE_KEYS}
    return state, tables


def check_state_dict(model: nn.Module, state: Dict[str, torch.Tensor], config: dict,
                     tables: Optional[Dict[str, torch.Tensor]] = None) -> None:
    """Strict key/shape check; raises ModelLoadError naming the key and both shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key, shape in expected.items():
        if key not in state:
            raise ModelLoadError(f"missing key '{key}' (expected shape {shape})")
        got = tuple(state[key].shape)
        if got != shape:
            raise ModelLoadError(f"shape mismatch for '{key}': file has {got}, config expects {shape}")
    for key in state:
        if key not in expected:
            raise ModelLoadError(f"unexpected key '{key}' (shape {tuple(state[key].shape)}) "
                                 "not in a GradLogPEstimator2d built from the config")
    for key, table in (tables or {}).items():
        rows_key, cols_key = TABLE_KEYS[key]
        want = (config.get(rows_key, CONFIG_DEFAULTS[rows_key]),
                config.get(cols_key, CONFIG_DEFAULTS[cols_key]))
        if tuple(table.shape) != want:
            raise ModelLoadError(f"shape mismatch for '{key}': file has {tuple(table.shape)}, "
                                 f"config expects {want}")


def _read_safetensors(path: str):
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, meta


def load_origin(path: str) -> Tuple[GradLogPEstimator2d, Dict[str, torch.Tensor], dict]:
    """Load an Origin model file: a directory with config.json and model.safetensors (or its
    only *.safetensors), or a single .safetensors whose metadata 'config' holds the JSON.
    Weights of any float dtype are upcast to float32. Returns (estimator, tables, config)."""
    if os.path.isdir(path):
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
        weights = os.path.join(path, "model.safetensors")
        if not os.path.exists(weights):
            found = sorted(n for n in os.listdir(path) if n.endswith(".safetensors"))
            if len(found) != 1:
                raise ModelLoadError(f"{path}: no model.safetensors and {len(found)} other "
                                     "*.safetensors files")
            weights = os.path.join(path, found[0])
        tensors, _ = _read_safetensors(weights)
    else:
        tensors, meta = _read_safetensors(path)
        if "config" not in meta:
            raise ModelLoadError(f"{path}: no 'config' in the safetensors metadata")
        config = json.loads(meta["config"])
    if config.get("_class_name", "GradLogPEstimator2d") != "GradLogPEstimator2d":
        raise ModelLoadError(f"{path}: _class_name is {config['_class_name']!r}, "
                             "not GradLogPEstimator2d")
    state, tables = split_tables(strip_prefix(tensors))
    model = build_estimator(config)
    check_state_dict(model, state, config, tables)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    model.eval()
    return model, {k: v.float() for k, v in tables.items()}, config


def _as_index(t: torch.Tensor, name: str) -> torch.Tensor:
    if t.is_floating_point():
        if not torch.equal(t, t.round()):
            raise ValueError(f"input '{name}' holds non-integral values")
    return t.long()


def resolve_inputs(inputs: Dict[str, torch.Tensor], tables: Dict[str, torch.Tensor]) -> dict:
    """Map the CLI input names (x, mask, mu, t, spk|spk_id, emo|emo_id, psd) to the keyword
    arguments of GradLogPEstimator2d.forward, embedding ids through the tables."""
    kw = {k: inputs[k].float() for k in ("x", "mask", "mu", "t")}
    for name, table_key in (("spk", "spk_emb.weight"), ("emo", "emo_emb.weight")):
        if name in inputs:
            kw[name] = inputs[name].float()
        elif f"{name}_id" in inputs:
            if table_key not in tables:
                raise ValueError(f"input '{name}_id' given but the model has no '{table_key}'")
            kw[name] = tables[table_key][_as_index(inputs[f"{name}_id"], f"{name}_id")]
    if "psd" in inputs:
        kw["psd"] = inputs["psd"].float()
    return kw


# --------------------------------------------------------------------------------------------
# Self-check: names and parameter counts against gradtts.md
# --------------------------------------------------------------------------------------------

def _self_check():
    def summary(model):
        sd = model.state_dict()
        return len(sd), sum(v.numel() for v in sd.values()), list(sd)

    cases = [
        (dict(dim=64, dim_mults=(1, 2, 4), n_spks=1), 172, 7_634_887),
        (dict(dim=64, dim_mults=(1, 2, 4), n_spks=4), 176, 7_672_727),
        (dict(dim=32, dim_mults=(1, 2), n_spks=1, n_feats=16), 116, 532_389),
    ]
    for kw, n_tensors, n_params in cases:
        got_tensors, got_params, keys = summary(GradLogPEstimator2d(**kw))
        assert (got_tensors, got_params) == (n_tensors, n_params), (kw, got_tensors, got_params)

        # Top-level registration order, ups before the mid blocks.
        order = []
        for k in keys:
            top = k.split(".")[0]
            if not order or order[-1] != top:
                order.append(top)
        want = (["spk_mlp"] if kw["n_spks"] > 1 else []) + [
            "mlp", "downs", "ups", "mid_block1", "mid_attn", "mid_block2", "final_block",
            "final_conv"]
        assert order == want, order
        print(f"ok  {kw}: {got_tensors} tensors, {got_params:,} params")

    model = GradLogPEstimator2d(64, n_spks=4)
    sd = model.state_dict()
    shapes = {
        "mlp.0.weight": (256, 64), "spk_mlp.2.weight": (80, 256),
        "downs.0.0.mlp.1.weight": (64, 64), "downs.0.0.block1.block.0.weight": (64, 3, 3, 3),
        "downs.0.0.res_conv.weight": (64, 3, 1, 1), "downs.0.2.fn.g": (1,),
        "downs.0.2.fn.fn.to_qkv.weight": (384, 64, 1, 1),
        "downs.0.2.fn.fn.to_out.weight": (64, 128, 1, 1), "downs.1.3.conv.weight": (128, 128, 3, 3),
        "ups.0.0.block1.block.0.weight": (128, 512, 3, 3), "ups.0.3.conv.weight": (128, 128, 4, 4),
        "ups.1.0.res_conv.weight": (64, 256, 1, 1), "final_conv.weight": (1, 64, 1, 1),
    }
    for k, s in shapes.items():
        assert tuple(sd[k].shape) == s, (k, tuple(sd[k].shape), s)
    assert "downs.2.3.conv.weight" not in sd and "downs.0.1.res_conv.weight" not in sd
    assert not list(model.buffers())

    # Extension: emo_mlp right after spk_mlp, input channels 2 + 1 + 1 + n_psd.
    ext = GradLogPEstimator2d(32, (1, 2), n_spks=3, n_feats=16, n_emos=5, emo_emb_dim=16, n_psd=3)
    keys = list(ext.state_dict())
    assert keys[:8] == ["spk_mlp.0.weight", "spk_mlp.0.bias", "spk_mlp.2.weight", "spk_mlp.2.bias",
                        "emo_mlp.0.weight", "emo_mlp.0.bias", "emo_mlp.2.weight",
                        "emo_mlp.2.bias"], keys[:8]
    assert tuple(ext.state_dict()["emo_mlp.2.weight"].shape) == (16, 64)
    assert tuple(ext.state_dict()["downs.0.0.block1.block.0.weight"].shape) == (32, 7, 3, 3)

    # Behaviour: output is (B, F, T), exactly 0 on padding, and padded-frame junk in x/mu/psd
    # does not matter.
    torch.manual_seed(0)
    for p in ext.parameters():
        nn.init.normal_(p, std=0.1)
    b, f, t = 2, 16, 12
    mask = torch.ones(b, 1, t)
    mask[1, :, 9:] = 0
    args = dict(x=torch.randn(b, f, t), mu=torch.randn(b, f, t), psd=torch.randn(b, 3, t))
    kw = dict(mask=mask, t=torch.rand(b), spk=torch.randn(b, 64), emo=torch.randn(b, 16))
    with torch.no_grad():
        out = ext(**args, **kw)
        junk = {k: v + (1 - mask) * 7 * torch.randn_like(v) for k, v in args.items()}
        out2 = ext(**junk, **kw)
    assert out.shape == (b, f, t)
    assert torch.all(out[1, :, 9:] == 0)
    assert torch.equal(out, out2)

    # The padded-frame facts of gradtts.md: a ResnetBlock with a 1x1 res_conv leaves exactly
    # res_conv.bias there, one with an Identity res_conv leaves 0, and the attention after it
    # leaves g * to_out.bias (q = k = v = 0 on those frames, to_qkv has no bias).
    seen = {}
    hooks = [ext.get_submodule(n).register_forward_hook(
        lambda mod, inp, o, n=n: seen.__setitem__(n, o)) for n in
        ("downs.0.0", "downs.0.1", "downs.0.2")]
    with torch.no_grad():
        ext(**args, **kw)
    for hk in hooks:
        hk.remove()
    pad = seen["downs.0.0"][1, :, :, 9:]
    bias = ext.downs[0][0].res_conv.bias[:, None, None]
    assert torch.equal(pad, bias.expand_as(pad))
    assert torch.all(seen["downs.0.1"][1, :, :, 9:] == 0)
    attn = ext.downs[0][2].fn
    want = (attn.fn.to_out.bias * attn.g)[:, None, None]
    assert torch.allclose(seen["downs.0.2"][1, :, :, 9:], want.expand(-1, f, 3), atol=1e-6)
    print("ok  key shapes, extension layout, masking, padded-frame values")


if __name__ == "__main__":
    _self_check()
