#!/usr/bin/env python3
"""Convert a Grad-TTS PyTorch checkpoint into a diffblocks Origin model.

    python tools/convert_gradtts.py grad-tts.pt models/grad-tts            # directory
    python tools/convert_gradtts.py grad-tts.pt grad-tts.safetensors       # single file
    python tools/convert_gradtts.py grad-tts-old.pt models/old --pe-scale 1
    python tools/convert_gradtts.py libritts.pt models/libritts --dtype f16  # n_spks inferred

Accepted inputs: a whole GradTTS state_dict (encoder.*, decoder.estimator.*, spk_emb.weight),
the estimator's state_dict alone, either of them wrapped in a dict under 'state_dict' or
'model', or a .safetensors file holding such tensors.

Output: config.json (+ model.safetensors) with the estimator's keys (prefix stripped) and
spk_emb.weight / emo_emb.weight when the checkpoint has them; or, when OUT ends in
.safetensors, one file with the config JSON in its metadata under "config".

Hyper-parameters come from the flags, whose defaults are Grad-TTS's params.py.  Note that
Grad-TTS's Diffusion does not pass n_feats to the estimator, so --n-feats must stay 80 (what
the estimator was built with) even for a model trained on another mel size.  The tensors
are checked against a freshly built reference GradLogPEstimator2d; any missing, unexpected
or mis-shaped key is an error naming the key and both shapes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
import gradtts_reference as ref  # noqa: E402

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
WRAPPER_KEYS = ("state_dict", "model")
# DataParallel adds "module."; the rest are the estimator's homes in GradTTS / Diffusion.
ESTIMATOR_PREFIXES = ("decoder.estimator.", "estimator.")


class ConvertError(Exception):
    pass


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def load_checkpoint(path: str, unsafe: bool) -> dict:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        return load_file(path)
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not unsafe)
    except Exception as e:  # noqa: BLE001 - torch raises several types here
        hint = "" if unsafe else (" (if the file holds more than tensors and you trust it, "
                                  "retry with --unsafe-load)")
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConvertError(f"cannot read {path} as a PyTorch checkpoint: {first}{hint}") from e
    # Unwrap {'state_dict': ...} / {'model': ...} (training checkpoints with optimizer etc.).
    while isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            raise ConvertError(f"{path}: no tensors at top level and no "
                               f"{'/'.join(WRAPPER_KEYS)} entry (keys: {sorted(obj)[:10]})")
        obj = inner
    if not isinstance(obj, dict):
        raise ConvertError(f"{path}: expected a state_dict, got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if torch.is_tensor(v)}


def extract(state: dict):
    """(estimator tensors with the prefix stripped, embedding tables, ignored key count)."""
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    tables = {k: v for k, v in state.items() if k in ref.TABLE_KEYS}
    for prefix in ESTIMATOR_PREFIXES:
        est = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if est:
            ignored = len(state) - len(est) - len(tables)
            return est, tables, ignored
    est = {k: v for k, v in state.items() if k not in ref.TABLE_KEYS}
    return est, tables, 0


def build_config(args, tables: dict) -> dict:
    config = {
        "_class_name": "GradLogPEstimator2d",
        "dim": args.dim,
        "dim_mults": [int(m) for m in args.dim_mults.split(",")],
        "groups": args.groups,
        "n_spks": args.n_spks if args.n_spks is not None else 1,
        "spk_emb_dim": args.spk_emb_dim,
        "n_feats": args.n_feats,
        "pe_scale": args.pe_scale,
        "n_emos": args.n_emos if args.n_emos is not None else 1,
        "emo_emb_dim": args.emo_emb_dim,
        "n_psd": args.n_psd,
        "beta_min": args.beta_min,
        "beta_max": args.beta_max,
    }
    # The tables fix the speaker/emotion count and width; they beat the flags.
    for key, (rows_key, cols_key) in ref.TABLE_KEYS.items():
        if key not in tables:
            continue
        rows, cols = tables[key].shape
        flag = getattr(args, rows_key)
        if flag is not None and flag != rows:
            warn(f"--{rows_key.replace('_', '-')} {flag} disagrees with {key} "
                 f"{tuple(tables[key].shape)}: using {rows_key} = {rows}")
        if cols != config[cols_key]:
            warn(f"--{cols_key.replace('_', '-')} {config[cols_key]} disagrees with {key} "
                 f"{tuple(tables[key].shape)}: using {cols_key} = {cols}")
        config[rows_key], config[cols_key] = rows, cols
    return config


def write_atomic(out: Path, config: dict, tensors: dict, force: bool) -> None:
    """Write next to the destination and rename, so a failure leaves nothing half-written."""
    from safetensors.torch import save_file

    single = out.suffix == ".safetensors"
    targets = [out] if single else [out / "config.json", out / "model.safetensors"]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise ConvertError(f"{', '.join(existing)} exists (use --force to overwrite)")
    (out.parent if single else out).mkdir(parents=True, exist_ok=True)

    tmp_dir = Path(tempfile.mkdtemp(dir=out.parent if single else out, prefix=".convert-"))
    try:
        if single:
            tmp = tmp_dir / out.name
            save_file(tensors, str(tmp), metadata={"config": json.dumps(config)})
            tmp.chmod(0o644)  # safetensors >= 0.7 creates files 0600
            os.replace(tmp, out)
        else:
            save_file(tensors, str(tmp_dir / "model.safetensors"))
            (tmp_dir / "model.safetensors").chmod(0o644)
            (tmp_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
            os.replace(tmp_dir / "model.safetensors", out / "model.safetensors")
            os.replace(tmp_dir / "config.json", out / "config.json")
    finally:
        for p in tmp_dir.iterdir():
            p.unlink()
        tmp_dir.rmdir()


@torch.no_grad()
def verify(out: Path, config: dict, source: ref.GradLogPEstimator2d, tables: dict) -> float:
    """Reload the written model (strict, like the C++ loader) and compare one forward pass on
    random O(1) inputs with the checkpoint's own float32 weights. Returns max |difference|."""
    model, out_tables, _ = ref.load_origin(str(out))
    gen = torch.Generator().manual_seed(0)
    levels = len(config["dim_mults"])
    # n_feats and T must be divisible by 2^(L-1).
    f, t = config["n_feats"], 8 * 2 ** (levels - 1)
    b = 2
    kw = {"x": torch.randn(b, f, t, generator=gen), "mu": torch.randn(b, f, t, generator=gen),
          "mask": torch.ones(b, 1, t), "t": torch.rand(b, generator=gen)}
    kw["mask"][1, :, t // 2:] = 0
    if config["n_spks"] > 1:
        kw["spk"] = torch.randn(b, config["spk_emb_dim"], generator=gen)
    if config["n_emos"] > 1:
        kw["emo"] = torch.randn(b, config["emo_emb_dim"], generator=gen)
    if config["n_psd"] > 0:
        kw["psd"] = torch.randn(b, config["n_psd"], t, generator=gen)
    diff = (model(**kw) - source(**kw)).abs().max().item()
    for k, v in tables.items():
        diff = max(diff, (out_tables[k] - v.float()).abs().max().item())
    return diff


def convert(args) -> dict:
    state = load_checkpoint(args.checkpoint, args.unsafe_load)
    est, tables, ignored = extract(state)
    if not est:
        raise ConvertError(f"{args.checkpoint}: no estimator tensors found")
    config = build_config(args, tables)

    model = ref.build_estimator(config)
    try:
        ref.check_state_dict(model, est, config, tables)
    except ref.ModelLoadError as e:
        raise ConvertError(f"{e} [config: dim={config['dim']}, dim_mults={config['dim_mults']}, "
                           f"n_spks={config['n_spks']}, spk_emb_dim={config['spk_emb_dim']}, "
                           f"n_feats={config['n_feats']}, n_emos={config['n_emos']}, "
                           f"n_psd={config['n_psd']}]") from e
    model.load_state_dict({k: v.float() for k, v in est.items()}, strict=True)
    model.eval()

    dtype = DTYPES[args.dtype]
    tensors = {}
    for k, v in {**est, **tables}.items():
        if not v.is_floating_point():
            raise ConvertError(f"'{k}' has non-float dtype {v.dtype}")
        w = v.detach().to(dtype).contiguous()
        if not torch.isfinite(w).all():
            raise ConvertError(f"'{k}' is not finite in {args.dtype} "
                               f"(max |value| {v.abs().max().item():.3g}); use a wider --dtype")
        tensors[k] = w

    out = Path(args.out)
    write_atomic(out, config, tensors, args.force)
    n_params = sum(v.numel() for v in est.values())
    print(f"wrote {out}: {len(est)} estimator tensors ({n_params:,} params)"
          f"{''.join(f', {k}' for k in tables)}, {args.dtype}; "
          f"ignored {ignored} non-estimator keys")
    if not args.no_verify:
        diff = verify(out, config, model, tables)
        print(f"verified: reloaded model matches the checkpoint (max |diff| {diff:.3g})")
    return config


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description="Convert a Grad-TTS checkpoint into a diffblocks Origin model "
                    "(defaults: Grad-TTS params.py).")
    ap.add_argument("checkpoint", help=".pt state_dict (whole GradTTS or estimator) or .safetensors")
    ap.add_argument("out", help="output directory, or a .safetensors path for a single file")
    ap.add_argument("--dim", type=int, default=64, help="dec_dim (default 64)")
    ap.add_argument("--dim-mults", default="1,2,4", help="comma-separated (default 1,2,4)")
    ap.add_argument("--groups", type=int, default=8, help="stored only; Grad-TTS ignores it")
    ap.add_argument("--n-spks", type=int, default=None,
                    help="default: rows of spk_emb.weight if present, else 1")
    ap.add_argument("--spk-emb-dim", type=int, default=64)
    ap.add_argument("--n-feats", type=int, default=80,
                    help="the estimator's n_feats: 80 for any checkpoint built by Grad-TTS's "
                         "Diffusion, which does not pass n_feats on")
    ap.add_argument("--pe-scale", type=float, default=1000,
                    help="1000; 1 for grad-tts-old.pt")
    ap.add_argument("--n-emos", type=int, default=None,
                    help="extension: default rows of emo_emb.weight if present, else 1")
    ap.add_argument("--emo-emb-dim", type=int, default=64)
    ap.add_argument("--n-psd", type=int, default=0, help="extension: prosody channels")
    ap.add_argument("--beta-min", type=float, default=0.05)
    ap.add_argument("--beta-max", type=float, default=20.0)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32", help="stored weight type")
    ap.add_argument("--force", action="store_true", help="overwrite existing output files")
    ap.add_argument("--no-verify", action="store_true", help="skip the reload-and-compare pass")
    ap.add_argument("--unsafe-load", action="store_true",
                    help="torch.load with weights_only=False (only for trusted files)")
    args = ap.parse_args(argv)
    # Keep integral pe_scale an int in config.json (1000, not 1000.0), as Grad-TTS writes it.
    if float(args.pe_scale).is_integer():
        args.pe_scale = int(args.pe_scale)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        convert(args)
    except (ConvertError, ref.ModelLoadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
