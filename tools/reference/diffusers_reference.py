"""Shared helpers for the diffusers reference fixtures (make_diffusers_fixtures.py).

Nothing here reimplements diffusers: the fixtures are computed by the real diffusers 0.25.1
modules.  This file only holds what the generator needs around them:

* `load_diffusers()`   imports diffusers, checks the version (0.25.1) and silences the
                        import-time FutureWarning newer torch releases trigger;
* `randomize_()`        re-draws every parameter of a module away from its defaults;
* `round_weights_()`    rounds every parameter through F16/BF16 (weights stored in that type,
                        expected outputs computed from the rounded values in float32);
* `run_both()`          one forward in float32 and one in float64 with the same weights;
* `Fixtures`            collects files in memory, then writes them deterministically
                        (0644, one metadata key at most) or compares them with files on disk;
* `saved_pretrained()`  the bytes `ModelMixin.save_pretrained(..., safe_serialization=True)`
                        writes, so model directories are exactly what diffusers produces.

    python tools/reference/diffusers_reference.py     # self-check: version, randomize_ coverage
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from safetensors import safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save_file
from torch import nn

DIFFUSERS_VERSION = "0.25.1"

# float32 vs float64 of the same computation is expected far below the C++ tolerance (1e-4
# relative to max(1, max|out|)); a case above this is numerically fragile.
MAX_F32_F64_REL = 1e-5


def load_diffusers():
    """Import diffusers, insisting on the version the C++ port follows."""
    # torch >= 2.2 deprecates torch.utils._pytree._register_pytree_node, which 0.25.1 calls
    # when diffusers.utils.outputs is first imported (lazily, by whichever module needs it).
    warnings.filterwarnings("ignore", message=".*_register_pytree_node.*", category=FutureWarning)
    import diffusers
    if diffusers.__version__ != DIFFUSERS_VERSION:
        raise SystemExit(f"diffusers {diffusers.__version__} found, {DIFFUSERS_VERSION} needed "
                         "(see tools/README.md, 'diffusers fixtures')")
    diffusers.utils.logging.set_verbosity_error()
    return diffusers


# --------------------------------------------------------------------------------------------
# Random parameters
# --------------------------------------------------------------------------------------------

def normal(gen: torch.Generator, shape, std: float = 1.0) -> torch.Tensor:
    return torch.randn(shape, generator=gen) * std


def uniform(gen: torch.Generator, shape, lo: float, hi: float) -> torch.Tensor:
    return torch.rand(shape, generator=gen) * (hi - lo) + lo


@torch.no_grad()
def randomize_(module: nn.Module, gen: torch.Generator, gains: Optional[Dict[str, float]] = None):
    """Re-draw every parameter so that no default (zero bias, unit gamma, zero-init) hides a bug.

    * Linear / Conv2d (diffusers' LoRACompatible* subclasses included): weight N(0, 1/fan_in),
      bias U(-0.1, 0.1).  This includes AdaGroupNorm's `linear`, so scale and shift are O(1).
    * GroupNorm / LayerNorm with affine: gamma = 1 + 0.2 N, beta = 0.1 N.
    * Embedding (class embedding): N(0, 1) (nn.Embedding's own init distribution).
    * AttentionPooling.positional_embedding: 0.5 N.
    * `gains`: {regex: factor}; every parameter whose name matches (re.search) is multiplied
      by the factor after drawing, e.g. to keep a deep stack of convs O(1).

    Any other parameter is an error, so a module with an unexpected parameter cannot slip
    through with its default value.
    """
    touched = set()
    for _, m in module.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            fan_in = m.weight[0].numel()
            m.weight.copy_(normal(gen, m.weight.shape, 1.0 / math.sqrt(fan_in)))
            touched.add(id(m.weight))
            if m.bias is not None:
                m.bias.copy_(uniform(gen, m.bias.shape, -0.1, 0.1))
                touched.add(id(m.bias))
        elif isinstance(m, (nn.GroupNorm, nn.LayerNorm)):
            if m.weight is not None:
                m.weight.copy_(1.0 + 0.2 * normal(gen, m.weight.shape))
                touched.add(id(m.weight))
            if m.bias is not None:
                m.bias.copy_(0.1 * normal(gen, m.bias.shape))
                touched.add(id(m.bias))
        elif isinstance(m, nn.Embedding):
            m.weight.copy_(normal(gen, m.weight.shape))
            touched.add(id(m.weight))
        elif type(m).__name__ == "AttentionPooling":
            m.positional_embedding.copy_(0.5 * normal(gen, m.positional_embedding.shape))
            touched.add(id(m.positional_embedding))
    missed = [n for n, p in module.named_parameters() if id(p) not in touched]
    assert not missed, f"parameters not re-drawn: {missed}"
    if gains:
        for name, p in module.named_parameters():
            for pattern, g in gains.items():
                if re.search(pattern, name):
                    p.mul_(g)


@torch.no_grad()
def round_weights_(module: nn.Module, dtype: torch.dtype):
    """Round every parameter to `dtype` and back: the float32 model then computes with exactly
    the values a `dtype` checkpoint holds."""
    for p in module.parameters():
        p.copy_(p.to(dtype).float())


def run_both(call: Callable, module: nn.Module, inputs: Dict[str, torch.Tensor]):
    """(float32 result, float64 result) of call(module, **inputs); integer inputs stay as they
    are.  `call` may return a tensor or a tuple of tensors."""
    with torch.no_grad():
        out = call(module, **inputs)
        out64 = call(copy.deepcopy(module).double(),
                     **{k: v.double() if v.is_floating_point() else v for k, v in inputs.items()})
    return out, out64


# --------------------------------------------------------------------------------------------
# Output collection: every case yields files; they are then written or checked
# --------------------------------------------------------------------------------------------

def saved_pretrained(model) -> Dict[str, bytes]:
    """{file name: bytes} of model.save_pretrained(dir, safe_serialization=True)."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        return {name: (Path(tmp) / name).read_bytes() for name in sorted(os.listdir(tmp))}


def read_tensors(path: Path) -> Dict[str, torch.Tensor]:
    # clone(): tensors straight out of a file need not be 64-byte aligned, and torch's
    # vectorised kernels may then round differently; a fresh allocation recomputes bit-exactly.
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k).clone() for k in f.keys()}


def read_metadata(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


class Fixtures:
    def __init__(self):
        # relpath -> ("st", tensors, metadata) | ("json", dict) | ("raw", bytes)
        self.files: Dict[str, tuple] = {}
        self.summary: List[tuple] = []      # (case, max|out|, f32-vs-f64 relative error)

    def tensors(self, relpath: str, tensors: Dict[str, torch.Tensor], metadata=None):
        assert relpath not in self.files, relpath
        # More than one metadata key would make the header's byte order nondeterministic
        # (safetensors writes metadata from a hash map).
        assert metadata is None or len(metadata) == 1, metadata
        clean = {}
        for k, v in tensors.items():
            assert torch.isfinite(v.float()).all(), f"{relpath}:{k} is not finite"
            clean[k] = v.detach().contiguous().clone()
        self.files[relpath] = ("st", clean, metadata)

    def raw(self, relpath: str, data: bytes):
        assert relpath not in self.files, relpath
        self.files[relpath] = ("raw", data)

    def note(self, case: str, out: torch.Tensor, out64: torch.Tensor, limit=MAX_F32_F64_REL):
        peak = out64.abs().max().item()
        rel = (out.double() - out64).abs().max().item() / max(1.0, peak)
        assert rel < limit, f"{case}: float32 vs float64 differ by {rel:.2e} (relative)"
        self.summary.append((case, out.abs().max().item(), rel))

    # ---- writing ------------------------------------------------------------------------

    def write(self, out_dir: Path):
        for rel, item in sorted(self.files.items()):
            path = out_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if item[0] == "raw":
                path.write_bytes(item[1])
            elif item[0] == "json":
                path.write_text(json.dumps(item[1], indent=2) + "\n")
            else:
                _, tensors, meta = item
                save_file(tensors, str(path), metadata=meta)
            path.chmod(0o644)  # safetensors >= 0.7 creates files 0600

    # ---- checking -----------------------------------------------------------------------

    @staticmethod
    def _same_tensors(want: Dict[str, torch.Tensor], got: Dict[str, torch.Tensor]) -> List[str]:
        if set(want) != set(got):
            return [f"tensor names {sorted(set(want) ^ set(got))}"]
        bad = []
        for k, w in want.items():
            g = got[k]
            ok = g.dtype == w.dtype and g.shape == w.shape
            if ok and w.is_floating_point():
                scale = max(1.0, w.float().abs().max().item()) if w.numel() else 1.0
                ok = w.numel() == 0 or (g.float() - w.float()).abs().max().item() <= 1e-5 * scale
            elif ok:
                ok = torch.equal(g, w)
            if not ok:
                bad.append(k)
        return bad

    def check(self, out_dir: Path) -> int:
        """Compare with the files on disk.  Weights, inputs and outputs may differ in the last
        bits across machines / torch versions, so floats use a relative tolerance (1e-5)."""
        nbad = 0
        for rel, item in sorted(self.files.items()):
            path = out_dir / rel
            if not path.exists():
                print(f"MISSING {rel}")
                nbad += 1
                continue
            if item[0] == "raw" and rel.endswith(".json"):
                bad = [] if json.loads(item[1]) == json.loads(path.read_text()) else ["content"]
            elif item[0] == "raw":
                want = st_load(item[1])
                bad = self._same_tensors(want, read_tensors(path))
            else:
                _, tensors, meta = item
                bad = [] if read_metadata(path) == (meta or {}) else ["metadata"]
                bad += self._same_tensors(tensors, read_tensors(path))
            if bad:
                print(f"DIFFERS {rel}: {', '.join(bad)}")
                nbad += 1
        print(f"checked {len(self.files)} files, {nbad} differ")
        return nbad


def scheduler_config(scheduler, **extra) -> dict:
    """scheduler.config as diffusers serialises it (`to_json_string`: sorted, with
    _class_name/_diffusers_version, without _use_default_values) plus `extra`."""
    cfg = json.loads(scheduler.to_json_string())
    cfg.update(extra)
    return cfg


if __name__ == "__main__":
    d = load_diffusers()
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        in_channels=2, out_channels=1, block_out_channels=(32, 64), layers_per_block=1,
        norm_num_groups=8, cross_attention_dim=48, attention_head_dim=8, num_class_embeds=5,
        resnet_time_scale_shift="ada_group", addition_embed_type="image", encoder_hid_dim=48,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        mid_block_type="UNetMidBlock2DCrossAttn",
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"))
    randomize_(unet, torch.Generator().manual_seed(0))
    sd = unet.state_dict()
    n = sum(v.numel() for v in sd.values())
    print(f"diffusers {d.__version__}, torch {torch.__version__}: reference U-Net "
          f"{len(sd)} tensors, {n} parameters, all re-drawn")
    assert (len(sd), n) == (199, 1202001), (len(sd), n)
