"""diffblocks.torch: the Origin model as Grad-TTS's estimator (runs where torch is installed).

The real point: Grad-TTS's reverse-diffusion loop (tools/reference/gradtts_reference.py's
Diffusion, a transcription of Grad-TTS's) with its estimator swapped for ours gives the numbers
of the PyTorch estimator and of the library's own sampler."""
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffblocks as db  # noqa: E402
import diffblocks.torch as dbt  # noqa: E402
from conftest import assert_contract, fixture  # noqa: E402


def tensors(*parts):
    return {k: torch.from_numpy(v) for k, v in db.read_tensors(fixture(*parts)).items()}


@pytest.fixture(scope="module")
def reference():
    ref = Path(fixture()).parents[1] / "tools" / "reference"
    pytest.importorskip("safetensors")
    sys.path.insert(0, str(ref))
    try:
        import gradtts_reference
    finally:
        sys.path.remove(str(ref))
    return gradtts_reference


def test_forward_is_the_direct_path_and_meets_the_contract():
    m = db.load(fixture("origin_a"))
    est = dbt.GradLogPEstimator2d(m)
    x = tensors("origin_a", "inputs.safetensors")
    with torch.no_grad():
        y = est(x["x"], x["mask"], x["mu"], x["t"])
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32
    direct = m.forward(**{k: v.numpy() for k, v in x.items()})
    np.testing.assert_array_equal(y.numpy(), direct)
    assert_contract(y.numpy(), db.read_tensors(fixture("origin_a", "expected.safetensors"))["out"])


def test_cpu_float32_tensors_are_not_copied():
    m = db.load(fixture("origin_a"))
    x = tensors("origin_a", "inputs.safetensors")
    arrays = {k: dbt._numpy(k, v) for k, v in x.items()}
    assert m._m._input_addresses("forward", db._as_inputs(arrays)) == {k: v.data_ptr() for k, v in x.items()}


def test_conditioning_by_position_and_keyword():
    x = tensors("origin_c", "inputs.safetensors")  # spk vector, emo_id (I32), psd
    est = dbt.GradLogPEstimator2d(fixture("origin_c"))
    with torch.no_grad():
        y = est(x["x"], x["mask"], x["mu"], x["t"], x["spk"], None, x["psd"], emo_id=x["emo_id"])
    assert_contract(y.numpy(), db.read_tensors(fixture("origin_c", "expected.safetensors"))["out"])


def test_against_the_pytorch_estimator(reference):
    torch_est, _, _ = reference.load_origin(fixture("origin_a"))
    torch_est.eval()
    ours = dbt.GradLogPEstimator2d(fixture("origin_a"))
    x = tensors("origin_a", "inputs.safetensors")
    with torch.no_grad():
        want = torch_est(x["x"], x["mask"], x["mu"], x["t"])
        got = ours(x["x"], x["mask"], x["mu"], x["t"])
    assert_contract(got.numpy(), want.numpy())


@pytest.mark.parametrize("steps", [3, 10])
def test_grad_tts_reverse_diffusion_with_our_estimator(reference, steps):
    cfg = db.load(fixture("sample_ode")).config
    torch_est, _, _ = reference.load_origin(fixture("sample_ode"))
    decoder = reference.Diffusion(cfg["n_feats"], cfg["dim"], n_spks=cfg["n_spks"], spk_emb_dim=cfg["spk_emb_dim"],
                                  beta_min=cfg["beta_min"], beta_max=cfg["beta_max"], pe_scale=cfg["pe_scale"],
                                  estimator=torch_est).eval()
    x = tensors("sample_ode", "inputs.safetensors")
    want = decoder(x["z"], x["mask"], x["mu"], steps)  # Grad-TTS with the PyTorch estimator
    decoder.estimator = dbt.GradLogPEstimator2d(fixture("sample_ode"))  # the swap a user makes
    calls = []
    decoder.estimator.register_forward_hook(lambda module, args, out: calls.append(args[3][0].item()))
    got = decoder(x["z"], x["mask"], x["mu"], steps)
    assert calls == pytest.approx([1 - (i + 0.5) / steps for i in range(steps)])  # ours ran, at Grad-TTS's times
    assert_contract(got.numpy(), want.numpy())
    key = "out_steps_10" if steps == 10 else "out_steps_3"
    assert_contract(got.numpy(), db.read_tensors(fixture("sample_ode", "expected.safetensors"))[key])
    library = db.load(fixture("sample_ode")).sample(steps=steps, **{k: v.numpy() for k, v in x.items()})
    assert_contract(got.numpy(), library)


def test_stochastic_grad_tts_loop_with_our_estimator(reference):
    torch_est, _, _ = reference.load_origin(fixture("sample_ode"))
    cfg = db.load(fixture("sample_ode")).config
    decoder = reference.Diffusion(cfg["n_feats"], cfg["dim"], pe_scale=cfg["pe_scale"], estimator=torch_est).eval()
    x = tensors("sample_ode", "inputs.safetensors")
    want = decoder.reverse_diffusion(x["z"], x["mask"], x["mu"], 4, stoc=True, generator=torch.Generator().manual_seed(3))
    decoder.estimator = dbt.GradLogPEstimator2d(fixture("sample_ode"))
    got = decoder.reverse_diffusion(x["z"], x["mask"], x["mu"], 4, stoc=True, generator=torch.Generator().manual_seed(3))
    assert_contract(got.numpy(), want.numpy())


def test_inputs_it_refuses_and_converts():
    est = dbt.GradLogPEstimator2d(fixture("origin_d"))
    x = tensors("origin_d", "inputs.safetensors")
    with torch.no_grad():
        want = est(x["x"], x["mask"], x["mu"], x["t"])
    needs_grad = x["x"].clone().requires_grad_()
    with pytest.raises(RuntimeError, match="'x' requires grad; the diffblocks estimator is inference only"):
        est(needs_grad, x["mask"], x["mu"], x["t"])
    with torch.no_grad():
        torch.testing.assert_close(est(needs_grad, x["mask"], x["mu"], x["t"]), want, rtol=0, atol=0)
        meta = torch.empty(x["mu"].shape, device="meta")
        with pytest.raises(ValueError, match="'mu' is on meta; pass CPU tensors"):
            est(x["x"], x["mask"], meta, x["t"])
        # Non-contiguous and float64 inputs are converted; the result takes x's dtype.
        xt = x["x"].transpose(1, 2).contiguous().transpose(1, 2)
        assert not xt.is_contiguous()
        torch.testing.assert_close(est(xt, x["mask"], x["mu"], x["t"]), want, rtol=0, atol=0)
        y64 = est(x["x"].double(), x["mask"].double(), x["mu"].double(), x["t"].double())
        assert y64.dtype == torch.float64
        torch.testing.assert_close(y64.float(), want, rtol=0, atol=0)
        # A scalar t stands for the whole batch.
        t0 = float(x["t"][0])
        same_t = est(x["x"], x["mask"], x["mu"], torch.full((2,), t0))
        torch.testing.assert_close(est(x["x"], x["mask"], x["mu"], torch.tensor(t0)), same_t, rtol=0, atol=0)
        with pytest.raises(db.InputError, match="missing input tensor 'mask'"):
            est.model.forward(x=x["x"].numpy())


def test_module_surface():
    est = dbt.GradLogPEstimator2d(fixture("origin_d"), threads=1)
    assert list(est.parameters()) == [] and est.state_dict() == {}
    assert est.n_feats == db.load(fixture("origin_d")).config["n_feats"]
    assert "origin_d" in repr(est)
    with pytest.raises(db.InputError, match="needs a GradLogPEstimator2d model, got UNet2DConditionModel"):
        dbt.GradLogPEstimator2d(fixture("diffusers", "unet_default"))
