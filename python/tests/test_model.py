"""The model entry: forward and sample against the PyTorch fixtures, progress and cancel,
inputs (names, ranks, dtypes, conversion, zero-copy), errors as diffblocks.Error subclasses with
the library's messages, threads."""
import json
import os
import re
import signal
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import diffblocks as db
from conftest import assert_contract, fixture


def inputs(*parts):
    return db.read_tensors(fixture(*parts))


@pytest.fixture(scope="module")
def origin_a():
    return db.load(fixture("origin_a"))


@pytest.fixture(scope="module")
def sampler():
    return db.load(fixture("sample_ode"))


@pytest.fixture(scope="module")
def unet_default():
    return db.load(fixture("diffusers", "unet_default"))


def test_version_is_the_headers():
    text = (Path(fixture()).parents[1] / "include" / "diffblocks" / "version.hpp").read_text()
    parts = [re.search(rf"#define DIFFBLOCKS_VERSION_{p} (\d+)", text).group(1) for p in ("MAJOR", "MINOR", "PATCH")]
    assert db.__version__ == ".".join(parts)
    from importlib.metadata import version

    assert version("diffblocks") == db.__version__


@pytest.mark.parametrize("case", ["origin_a", "origin_b", "origin_c", "origin_d"])
def test_origin_forward_meets_the_contract(case):
    m = db.load(fixture(case))
    assert m.kind == "GradLogPEstimator2d"
    assert m.device == "cpu" and m.dtype == "f32"
    y = m.forward(**inputs(case, "inputs.safetensors"))
    assert_contract(y, inputs(case, "expected.safetensors")["out"])


@pytest.mark.parametrize("case", ["unet_default", "unet_text"])
def test_diffuser_forward_meets_the_contract(case):
    m = db.load(fixture("diffusers", case))
    assert m.kind == "UNet2DConditionModel"
    y = m.forward(**inputs("diffusers", case, "inputs.safetensors"))
    assert_contract(y, inputs("diffusers", case, "expected.safetensors")["out"])


def test_config_and_description(origin_a):
    cfg = origin_a.config
    on_disk = json.loads(Path(fixture("origin_a", "config.json")).read_text())
    for k, v in on_disk.items():
        assert cfg[k] == v, k
    cfg["dim"] = -1  # a copy
    assert origin_a.config["dim"] == 64
    assert origin_a.parameters == sum(int(np.prod(s)) for _, _, s in origin_a.weights)
    assert origin_a.weights[0][1] in ("F32", "F16", "BF16")
    assert "GradLogPEstimator2d" in repr(origin_a)


@pytest.mark.parametrize("steps,key", [(1, "out_steps_1"), (3, "out_steps_3"), (5, "out"), (10, "out_steps_10")])
def test_origin_sample_meets_the_contract(sampler, steps, key):
    y = sampler.sample(steps=steps, **inputs("sample_ode", "inputs.safetensors"))
    assert_contract(y, inputs("sample_ode", "expected.safetensors")[key])


def test_stochastic_sampling_is_seeded(sampler):
    x = inputs("sample_ode", "inputs.safetensors")
    a = sampler.sample(steps=3, stochastic=True, seed=9, **x)
    b = sampler.sample(steps=3, stochastic=True, seed=9, **x)
    c = sampler.sample(steps=3, stochastic=True, seed=10, **x)
    ode = sampler.sample(steps=3, **x)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, ode)


@pytest.mark.parametrize("scheduler", ["ddim", "euler"])
def test_diffuser_sample_meets_the_contract(unet_default, scheduler):
    y = unet_default.sample(
        steps=4,
        scheduler=scheduler,
        scheduler_config={"num_train_timesteps": 1000},
        **inputs("diffusers", "sampling", f"{scheduler}_inputs.safetensors"),
    )
    assert_contract(y, inputs("diffusers", "sampling", f"{scheduler}_expected.safetensors")["out"])


def test_ctrl_c_stops_sampling_at_the_next_step(sampler):
    x = inputs("sample_ode", "inputs.safetensors")
    t0 = time.perf_counter()
    sampler.sample(steps=20, **x)
    whole = (time.perf_counter() - t0) / 20 * 2000  # what 2000 steps take
    timer = threading.Timer(0.1, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            sampler.sample(steps=2000, **x)
    finally:
        timer.cancel()
    # Not stopped, the run would end after `whole` and the interrupt come only then.
    assert time.perf_counter() - start < 0.1 + whole / 4
    assert sampler.sample(steps=1, **x).shape == (2, 16, 24)


def test_progress_is_called_after_every_step(sampler):
    calls = []
    sampler.sample(steps=4, progress=lambda *a: calls.append(a), **inputs("sample_ode", "inputs.safetensors"))
    assert [c[:2] for c in calls] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(isinstance(c[2], float) and c[2] >= 0 for c in calls)


def test_progress_returning_true_cancels(sampler):
    calls = []

    def stop_at_2(step, steps, seconds):
        calls.append(step)
        return step == 2

    with pytest.raises(db.Cancelled, match=r"^sampling stopped by the progress callback after step 2 of 5$"):
        sampler.sample(steps=5, progress=stop_at_2, **inputs("sample_ode", "inputs.safetensors"))
    assert calls == [1, 2]
    assert issubclass(db.Cancelled, db.Error)


def test_an_exception_in_progress_propagates_as_itself(sampler):
    class Stop(Exception):
        pass

    raised = Stop("from the callback")
    calls = []

    def boom(step, steps, seconds):
        calls.append(step)
        if step == 3:
            raise raised

    with pytest.raises(Stop) as info:
        sampler.sample(steps=5, progress=boom, **inputs("sample_ode", "inputs.safetensors"))
    assert info.value is raised
    assert calls == [1, 2, 3]
    # The model is usable afterwards.
    assert sampler.sample(steps=1, **inputs("sample_ode", "inputs.safetensors")).shape == (2, 16, 24)


def test_progress_must_be_callable(sampler):
    with pytest.raises(TypeError, match="progress must be a callable"):
        sampler.sample(steps=1, progress=3, **inputs("sample_ode", "inputs.safetensors"))


# ---- inputs: zero-copy, conversion ------------------------------------------------------------


def test_float32_and_int64_arrays_are_borrowed_not_copied():
    m = db.load(fixture("origin_b"))
    x = inputs("origin_b", "inputs.safetensors")
    assert x["spk_id"].dtype == np.int64 and x["x"].dtype == np.float32
    addresses = m._m._input_addresses("forward", x)
    assert addresses == {k: v.ctypes.data for k, v in x.items()}


def test_other_arrays_are_converted_once_and_give_the_same_result():
    m = db.load(fixture("origin_b"))
    x = inputs("origin_b", "inputs.safetensors")
    want = m.forward(**x)
    converted = {
        "x": x["x"].astype(np.float64),  # another dtype
        "mu": np.asfortranarray(x["mu"]),  # not C-contiguous
        "mask": x["mask"].astype(bool),  # bool -> float32 (the mask is 0/1)
        "t": [float(v) for v in x["t"]],  # a list
        "spk_id": x["spk_id"].astype(np.int32),  # int32 ids
    }
    prepared = db._as_inputs(converted)
    addresses = m._m._input_addresses("forward", prepared)
    assert all(addresses[k] != converted[k].ctypes.data for k in ("x", "mu", "mask") if isinstance(converted[k], np.ndarray))
    assert all(prepared[k].dtype in (np.float32, np.int64) and prepared[k].flags.c_contiguous for k in prepared)
    np.testing.assert_array_equal(m.forward(**converted), want)
    # A strided view (every other frame of a wider array) is handled the same way.
    wide = np.repeat(x["x"], 2, axis=2)
    view = wide[:, :, ::2]
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(m.forward(**{**x, "x": view}), want)


def test_ids_may_be_integral_floats():
    m = db.load(fixture("origin_b"))
    x = inputs("origin_b", "inputs.safetensors")
    np.testing.assert_array_equal(m.forward(**{**x, "spk_id": x["spk_id"].astype(np.float32)}), m.forward(**x))
    with pytest.raises(db.InputError, match=r"^inputs: tensor 'spk_id' must hold integer ids, but element 0 is 0\.500000$"):
        m.forward(**{**x, "spk_id": np.array([0.5, 1.0], np.float32)})


def test_non_numeric_arrays_are_refused_with_type_error(origin_a):
    x = inputs("origin_a", "inputs.safetensors")
    with pytest.raises(TypeError, match="input 'x' has dtype complex64"):
        origin_a.forward(**{**x, "x": x["x"].astype(np.complex64)})
    with pytest.raises(TypeError, match="input 't' has dtype <U"):
        origin_a.forward(**{**x, "t": np.array(["a", "b"])})


def test_the_result_is_a_fresh_writable_array(origin_a):
    x = inputs("origin_a", "inputs.safetensors")
    a = origin_a.forward(**x)
    b = origin_a.forward(**x)
    assert a.flags.writeable and a.flags.c_contiguous
    a[...] = 0
    assert np.abs(b).max() > 0
    assert not np.shares_memory(a, b)


# ---- errors: the library's classes and messages ---------------------------------------------


def test_exception_hierarchy():
    assert issubclass(db.Error, RuntimeError)
    for cls in (db.IoError, db.ConfigError, db.LoadError, db.InputError, db.CudaError, db.OutOfMemoryError, db.Cancelled):
        assert issubclass(cls, db.Error) and cls is not db.Error
    assert db.InputError.__module__ == "diffblocks"


def test_bad_path_is_an_io_error(tmp_path):
    missing = str(tmp_path / "nope")
    with pytest.raises(db.IoError) as e:
        db.load(missing)
    assert str(e.value).startswith(missing)


def test_unknown_device_and_dtype_are_input_errors():
    with pytest.raises(db.InputError, match=r"^unknown device 'tpu' \(cpu or cuda\)$"):
        db.load(fixture("origin_d"), device="tpu")
    with pytest.raises(db.InputError, match=r"^unknown model type 'f64' \(f32, bf16 or f16\)$"):
        db.load(fixture("origin_d"), dtype="f64")


def test_a_config_naming_another_class_is_a_config_error(tmp_path):
    d = tmp_path / "m"
    shutil.copytree(fixture("origin_d"), d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["_class_name"] = "Foo"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(db.ConfigError, match=r'_class_name "Foo" is not supported'):
        db.load(d)


def test_weights_that_disagree_with_the_config_are_a_load_error(tmp_path):
    d = tmp_path / "m"
    shutil.copytree(fixture("origin_d"), d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["dim"] = 2 * cfg["dim"]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(db.LoadError) as e:
        db.load(d)
    assert "shape" in str(e.value)


def test_missing_unexpected_and_wrong_rank_inputs(origin_a):
    x = inputs("origin_a", "inputs.safetensors")
    with pytest.raises(db.InputError, match=r"^inputs: missing input tensor 'mask' \(B, 1, T\)$"):
        origin_a.forward(x=x["x"], mu=x["mu"], t=x["t"])
    with pytest.raises(db.InputError, match=r"^inputs: unexpected input tensor 'spk_ids'$"):
        origin_a.forward(spk_ids=np.zeros(2, np.int64), **x)
    with pytest.raises(db.InputError, match=r"^inputs: input 't' has shape \[1, 2\] \(rank 2\), expected rank 1 \(B,\)$"):
        origin_a.forward(**{**x, "t": x["t"][None]})
    with pytest.raises(db.InputError, match=r"^inputs: missing input tensor 'z' \(B, n_feats, T\)$"):
        origin_a.sample(steps=2, **x)


def test_shapes_against_the_config_are_input_errors(origin_a):
    x = inputs("origin_a", "inputs.safetensors")
    with pytest.raises(db.InputError):
        origin_a.forward(**{**x, "t": np.array([0.1, 0.2, 0.3], np.float32)})


def test_options_that_do_not_fit_the_model(sampler, unet_default):
    x = inputs("sample_ode", "inputs.safetensors")
    with pytest.raises(db.InputError, match="a scheduler applies to UNet2DConditionModel models"):
        sampler.sample(steps=2, scheduler="ddim", **x)
    d = inputs("diffusers", "sampling", "ddim_inputs.safetensors")
    with pytest.raises(db.InputError, match="stochastic sampling applies to GradLogPEstimator2d models"):
        unet_default.sample(steps=2, stochastic=True, **d)
    with pytest.raises(db.ConfigError, match=r"unknown scheduler 'plms' \(ddim, ddpm or euler\)"):
        unet_default.sample(steps=2, scheduler="plms", **d)
    with pytest.raises(db.InputError, match="steps must be at least 1, got 0"):
        sampler.sample(steps=0, **x)


def test_cuda_without_a_gpu_or_module_is_an_error_naming_it():
    if "cuda" not in db.devices():
        pytest.skip("no cuda device name")
    try:
        m = db.load(fixture("origin_d"), device="cuda")
    except db.Error as e:
        assert "cuda" in str(e).lower() or "CUDA" in str(e)
    else:  # a machine with a GPU and the module: it runs
        assert m.device == "cuda"


# ---- threads, GIL --------------------------------------------------------------------------


def test_threads():
    before = db.get_num_threads()
    try:
        db.set_num_threads(1)
        assert db.get_num_threads() == 1
        m = db.load(fixture("origin_d"), threads=2)
        assert db.get_num_threads() == 2
        x = inputs("origin_d", "inputs.safetensors")
        two = m.forward(**x)
        db.set_num_threads(1)
        assert_contract(m.forward(**x), two)
        with pytest.raises(db.InputError, match="the thread count must be at least 1, got 0"):
            db.set_num_threads(0)
    finally:
        db.set_num_threads(before)


def test_the_gil_is_released_while_computing(origin_a):
    x = inputs("origin_a", "inputs.safetensors")
    t0 = time.perf_counter()
    origin_a.forward(**x)
    one = time.perf_counter() - t0
    done = threading.Event()

    def work():
        origin_a.forward(**x)
        origin_a.forward(**x)
        done.set()

    t = threading.Thread(target=work)
    gap, last = 0.0, time.perf_counter()
    t.start()
    while not done.is_set():  # the longest time this thread could not run
        now = time.perf_counter()
        gap, last = max(gap, now - last), now
    t.join()
    # With the GIL held through a forward, this thread would stall for a whole forward.
    assert gap < 0.5 * one, (gap, one)


def test_concurrent_calls_on_one_model_agree(origin_a):
    x = inputs("origin_a", "inputs.safetensors")
    want = origin_a.forward(**x)
    results = [None] * 2

    def run(i):
        results[i] = origin_a.forward(**x)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, want)


def test_a_scalar_timestep_stands_for_the_batch():
    m = db.load(fixture("diffusers", "unet_text"))
    x = inputs("diffusers", "unet_text", "inputs.safetensors")
    t0 = int(x["timestep"][0])
    both = m.forward(**{**x, "timestep": np.array([t0, t0], np.int64)})
    np.testing.assert_array_equal(m.forward(**{**x, "timestep": t0}), both)
    np.testing.assert_array_equal(m.forward(**{**x, "timestep": np.float32(t0)}), both)


def test_the_core_takes_only_float32_int64_c_contiguous(origin_a):
    x = inputs("origin_a", "inputs.safetensors")
    with pytest.raises(TypeError, match="input 'x' must be float32 or int64"):
        origin_a._m.forward({**x, "x": x["x"].astype(np.float64)})
    with pytest.raises(TypeError, match="input 'mu' must be C-contiguous"):
        origin_a._m.forward({**x, "mu": np.asfortranarray(x["mu"])})


def test_empty_and_read_only_arrays_reach_the_library():
    m = db.load(fixture("origin_d"))
    x = inputs("origin_d", "inputs.safetensors")
    read_only = {k: np.frombuffer(v.tobytes(), v.dtype).reshape(v.shape) for k, v in x.items()}
    assert not read_only["x"].flags.writeable
    assert m._m._input_addresses("forward", read_only)["x"] == read_only["x"].ctypes.data
    np.testing.assert_array_equal(m.forward(**read_only), m.forward(**x))
    empty = {k: v[:0] for k, v in x.items()}
    with pytest.raises(db.InputError, match=r"^GradLogPEstimator2d: input 'x' has shape \[0, 16, 24\]"):
        m.forward(**empty)


def test_unaligned_and_byte_swapped_arrays_are_copied():
    x = inputs("origin_d", "inputs.safetensors")
    raw = np.zeros(x["x"].nbytes + 1, np.uint8)
    unaligned = raw[1:].view(np.float32).reshape(x["x"].shape)
    unaligned[...] = x["x"]
    assert not unaligned.flags.aligned
    swapped = x["mu"].astype(">f4")
    prepared = db._as_inputs({**x, "x": unaligned, "mu": swapped})
    assert prepared["x"].flags.aligned and prepared["x"].ctypes.data != unaligned.ctypes.data
    assert prepared["mu"].dtype == np.float32 and prepared["mu"].dtype.isnative
    m = db.load(fixture("origin_d"))
    np.testing.assert_array_equal(m.forward(**{**x, "x": unaligned, "mu": swapped}), m.forward(**x))
