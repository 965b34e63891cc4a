"""Self-test of tools/convert_gradtts.py (needs torch; not part of CI).

    python tools/tests/test_convert.py      # or: python -m pytest tools/tests

Builds small Grad-TTS-shaped checkpoints, converts them through the command line, and checks
that the result loads strictly into the reference and reproduces the original's output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

TOOLS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOOLS / "reference"))
import gradtts_reference as ref  # noqa: E402
from make_fixtures import randomize_  # noqa: E402

CONVERT = TOOLS / "convert_gradtts.py"


def run_convert(*args):
    return subprocess.run([sys.executable, str(CONVERT), *map(str, args)],
                          capture_output=True, text=True)


def randomize(module, seed):
    # The fixtures' draw: no zero Rezero gates, and attention gains that keep the
    # un-normalised linear attention from overflowing (naive N(0, 0.2) gives NaN at dim 16).
    randomize_(module, torch.Generator().manual_seed(seed))


def inputs(n_feats, n_frames, seed):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(2, 1, n_frames)
    mask[1, :, n_frames - 5:] = 0
    return {"x": torch.randn(2, n_feats, n_frames, generator=gen),
            "mu": torch.randn(2, n_feats, n_frames, generator=gen),
            "mask": mask, "t": torch.tensor([0.2, 0.9])}


def gradtts_like(n_spks, spk_emb_dim, dim):
    """A whole GradTTS state_dict: encoder keys, decoder.estimator.*, spk_emb.weight.
    The estimator comes from Diffusion, so like in Grad-TTS it keeps n_feats = 80."""
    diffusion = ref.Diffusion(n_feats=80, dim=dim, n_spks=n_spks, spk_emb_dim=spk_emb_dim)
    randomize(diffusion, 1)
    state = {"encoder.emb.weight": torch.randn(148, 192),
             "encoder.proj_m.weight": torch.randn(80, 192, 1),
             "encoder.proj_m.bias": torch.randn(80)}
    state.update({f"decoder.{k}": v for k, v in diffusion.state_dict().items()})
    table = None
    if n_spks > 1:
        table = torch.randn(n_spks, spk_emb_dim)
        state["spk_emb.weight"] = table
    return state, diffusion.estimator.eval(), table


def test_whole_gradtts_multispeaker():
    state, est, table = gradtts_like(n_spks=3, spk_emb_dim=8, dim=16)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, out = Path(tmp) / "grad-tts.pt", Path(tmp) / "model"
        torch.save(state, ckpt)
        # No --n-spks: inferred from spk_emb.weight; --spk-emb-dim 64 (default) is corrected.
        r = run_convert(ckpt, out, "--dim", 16)
        assert r.returncode == 0, r.stderr
        assert "spk_emb_dim" in r.stderr and "warning" in r.stderr, r.stderr
        config = json.loads((out / "config.json").read_text())
        assert config["_class_name"] == "GradLogPEstimator2d"
        assert (config["n_spks"], config["spk_emb_dim"], config["n_feats"]) == (3, 8, 80)

        model, tables, _ = ref.load_origin(str(out))
        assert torch.equal(tables["spk_emb.weight"], table)
        kw = inputs(80, 16, 2)
        with torch.no_grad():
            want = est(**kw, spk=table[torch.tensor([2, 0])])
            got = model(**ref.resolve_inputs({**kw, "spk_id": torch.tensor([2, 0])}, tables))
        assert torch.isfinite(want).all() and want.abs().max() > 0.1
        assert torch.equal(got, want), (got - want).abs().max()

        from safetensors import safe_open
        with safe_open(str(out / "model.safetensors"), framework="pt") as f:
            keys = set(f.keys())
        assert not any(k.startswith(("encoder.", "decoder.")) for k in keys)
        assert "spk_emb.weight" in keys and "spk_mlp.0.weight" in keys


def test_wrapped_estimator_only_f16():
    est = ref.GradLogPEstimator2d(16, (1, 2), n_spks=1, n_feats=16, pe_scale=1).eval()
    randomize(est, 3)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, out = Path(tmp) / "ckpt.pt", Path(tmp) / "model"
        torch.save({"state_dict": est.state_dict(), "epoch": 7}, ckpt)
        r = run_convert(ckpt, out, "--dim", 16, "--dim-mults", "1,2", "--n-feats", 16,
                        "--pe-scale", 1, "--dtype", "f16")
        assert r.returncode == 0, r.stderr
        config = json.loads((out / "config.json").read_text())
        assert config["pe_scale"] == 1 and config["dim_mults"] == [1, 2]
        from safetensors import safe_open
        with safe_open(str(out / "model.safetensors"), framework="pt") as f:
            assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())
        model, _, _ = ref.load_origin(str(out))
        kw = inputs(16, 8, 4)
        with torch.no_grad():
            diff = (model(**kw) - est(**kw)).abs().max().item()
        assert 0 < diff < 1e-2, diff  # f16 rounding shows, but only just


def test_single_file_bf16_prefix_estimator():
    est = ref.GradLogPEstimator2d(16, (1, 2), n_spks=1, n_feats=16).eval()
    randomize(est, 5)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, out = Path(tmp) / "ckpt.pt", Path(tmp) / "out" / "m.safetensors"
        torch.save({f"estimator.{k}": v for k, v in est.state_dict().items()}, ckpt)
        r = run_convert(ckpt, out, "--dim", 16, "--dim-mults", "1,2", "--n-feats", 16,
                        "--dtype", "bf16")
        assert r.returncode == 0, r.stderr
        model, _, config = ref.load_origin(str(out))
        assert config["n_feats"] == 16


def test_mismatch_names_key_and_shapes():
    state, _, _ = gradtts_like(n_spks=1, spk_emb_dim=64, dim=16)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, out = Path(tmp) / "grad-tts.pt", Path(tmp) / "model"
        torch.save(state, ckpt)
        r = run_convert(ckpt, out, "--dim", 32)
        assert r.returncode == 1
        line = r.stderr.strip()
        assert line.startswith("error: shape mismatch for 'mlp.0.weight'"), line
        assert "(64, 16)" in line and "(128, 32)" in line, line
        assert not out.exists() or not any(out.iterdir())

        # A key the config does not know: n_spks 1 model given an extra tensor.
        state["decoder.estimator.extra.weight"] = torch.zeros(3)
        torch.save(state, ckpt)
        r = run_convert(ckpt, out, "--dim", 16)
        assert r.returncode == 1 and "unexpected key 'extra.weight'" in r.stderr, r.stderr

        # A key the config expects: drop one.
        del state["decoder.estimator.extra.weight"]
        del state["decoder.estimator.final_conv.bias"]
        torch.save(state, ckpt)
        r = run_convert(ckpt, out, "--dim", 16)
        assert r.returncode == 1 and "missing key 'final_conv.bias'" in r.stderr, r.stderr


def test_n_spks_flag_disagreement_warns():
    state, _, _ = gradtts_like(n_spks=3, spk_emb_dim=8, dim=16)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, out = Path(tmp) / "grad-tts.pt", Path(tmp) / "model"
        torch.save(state, ckpt)
        r = run_convert(ckpt, out, "--dim", 16, "--n-spks", 5, "--spk-emb-dim", 8)
        assert r.returncode == 0, r.stderr
        assert "--n-spks 5 disagrees with spk_emb.weight (3, 8)" in r.stderr, r.stderr
        assert json.loads((out / "config.json").read_text())["n_spks"] == 3
        # Refuses to overwrite without --force.
        r = run_convert(ckpt, out, "--dim", 16)
        assert r.returncode == 1 and "--force" in r.stderr


if __name__ == "__main__":
    tests = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    for test in tests:
        test()
        print(f"ok  {test.__name__}")
    print(f"{len(tests)} tests passed")
