"""read_tensors / write_tensors / read_metadata, and the per-phoneme similarity."""
import numpy as np
import pytest

import diffblocks as db
from conftest import fixture


def test_round_trip(tmp_path):
    p = tmp_path / "t.safetensors"
    a = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    ids = np.array([3, -1, 2**40], np.int64)
    db.write_tensors(p, {"a": a, "ids": ids, "f64": a.astype(np.float64).T}, metadata={"who": "test"})
    back = db.read_tensors(p)
    assert sorted(back) == ["a", "f64", "ids"]
    np.testing.assert_array_equal(back["a"], a)
    assert back["ids"].dtype == np.int64
    np.testing.assert_array_equal(back["ids"], ids)
    assert back["f64"].dtype == np.float32
    np.testing.assert_array_equal(back["f64"], a.T)
    assert db.read_metadata(p) == {"who": "test"}


def test_reads_half_and_integer_dtypes():
    w = db.read_tensors(fixture("origin_a", "model.safetensors"))  # F16 weights
    assert all(v.dtype == np.float32 for v in w.values())
    c = db.read_tensors(fixture("origin_c", "inputs.safetensors"))  # emo_id is I32
    assert c["emo_id"].dtype == np.int64


def test_io_errors(tmp_path):
    with pytest.raises(db.IoError, match="missing.safetensors: cannot open safetensors file"):
        db.read_tensors(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x01\x02")
    with pytest.raises(db.IoError, match="truncated safetensors file"):
        db.read_tensors(bad)
    with pytest.raises(TypeError, match="input 'c' has dtype complex128"):
        db.write_tensors(tmp_path / "c.safetensors", {"c": np.zeros(2, complex)})
    assert not (tmp_path / "c.safetensors").exists()


def _mels():
    rng = np.random.default_rng(0)
    ref = rng.random((8, 10)).astype(np.float32)
    return ref, rng.random((8, 10)).astype(np.float32)


def test_similarity_matches_its_definition():
    ref, cand = _mels()
    durations = [3, 5, 2]
    r = db.similarity(ref, {"same": ref, "twice": 2 * ref, "other": cand}, "a b c", durations)
    assert r["metric"] == "cosine" and r["higher_is_better"] is True
    assert [p["start"] for p in r["phonemes"]] == [0, 3, 8]
    same, twice, other = r["candidates"]
    assert [c["label"] for c in r["candidates"]] == ["same", "twice", "other"]
    assert same["scores"] == [1.0, 1.0, 1.0]
    assert twice["scores"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)
    # cosine of the segments' mean spectra, computed here
    want, start = [], 0
    for d in durations:
        a = ref[:, start : start + d].astype(np.float64).mean(1)
        b = cand[:, start : start + d].astype(np.float64).mean(1)
        want.append(a @ b / np.sqrt((a @ a) * (b @ b)))
        start += d
    assert other["scores"] == pytest.approx(want, rel=1e-12)
    assert other["mean"] == pytest.approx(np.mean(want), rel=1e-12)
    assert other["worst"]["index"] == int(np.argmin(want))


def test_similarity_l1_and_shapes():
    ref, _ = _mels()
    r = db.similarity(ref[None], [ref + 1], ["a", "b"], [4, 6], metric="l1", labels=["plus one"])
    assert r["candidates"][0]["label"] == "plus one"
    assert r["candidates"][0]["scores"] == pytest.approx([1.0, 1.0], abs=1e-6)
    assert r["higher_is_better"] is False


def test_similarity_errors():
    ref, cand = _mels()
    with pytest.raises(db.InputError, match=r"^durations sum to 9 frames but the mels have 10 frames$"):
        db.similarity(ref, cand, "a b", [4, 5])
    with pytest.raises(db.InputError, match=r"^unknown similarity metric 'l3'"):
        db.similarity(ref, cand, "a b", [4, 6], metric="l3")
    with pytest.raises(db.InputError, match=r"^candidate 'candidate 1' has shape \[8, 9\] but the reference has \[8, 10\]$"):
        db.similarity(ref, cand[:, :9], "a b", [4, 6])
    bad = cand.copy()
    bad[2, 3] = np.nan
    with pytest.raises(db.InputError, match=r"holds NaN or Inf at \(feature 2, frame 3\)"):
        db.similarity(ref, bad, "a b", [4, 6])
