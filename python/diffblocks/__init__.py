"""diffblocks: diffusion U-Nets for text-to-speech on NumPy arrays.

    import diffblocks
    m = diffblocks.load("models/grad-tts")               # a model directory or .safetensors file
    inputs = diffblocks.read_tensors("inputs.safetensors")
    y = m.forward(**inputs)                               # x, mask, mu, t (+ spk, ...) -> ndarray
    mel = m.sample(steps=10, z=z, mask=mask, mu=mu)       # Grad-TTS reverse diffusion

Models are Grad-TTS's ``GradLogPEstimator2d`` ("Origin") or diffusers' ``UNet2DConditionModel``
("Diffuser"), as the model's config.json names them; inputs go by the names of the
``diffblocks`` command line (see docs/python.md).

Arrays in: float32 and int64 arrays that are C-contiguous (aligned, native byte order) are handed
to the library where they are (no copy in the binding); any other real array (float64, float16,
int32, bool, a slice or a transpose, a list, a Python scalar) is converted once to float32 (int64
for integer arrays).
Arrays out: one float32 ndarray that owns the library's result buffer. The GIL is released
while a model computes. Errors are :class:`diffblocks.Error` subclasses carrying the library's
message. ``diffblocks.torch`` wraps an Origin model as a ``torch.nn.Module``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._core import (
    Cancelled,
    ConfigError,
    CudaError,
    Error,
    InputError,
    IoError,
    LoadError,
    OutOfMemoryError,
    get_num_threads,
    set_num_threads,
)

__version__: str = _core.__version__

__all__ = [
    "__version__",
    "Model",
    "load",
    "read_tensors",
    "write_tensors",
    "read_metadata",
    "similarity",
    "set_num_threads",
    "get_num_threads",
    "devices",
    "dtypes",
    "Error",
    "IoError",
    "ConfigError",
    "LoadError",
    "InputError",
    "CudaError",
    "OutOfMemoryError",
    "Cancelled",
]

ArrayLike = Any  # np.ndarray, or anything np.asarray takes


def devices() -> List[str]:
    """The device names :func:`load` accepts: ``["cpu", "cuda"]``."""
    return list(_core.devices())


def dtypes() -> List[str]:
    """The model types :func:`load` accepts: ``["f32", "bf16", "f16"]``."""
    return list(_core.dtypes())


def _as_array(name: str, value: ArrayLike) -> np.ndarray:
    """``value`` as what the core borrows: float32 or int64, C-contiguous, aligned, native byte
    order.

    Such an array is returned as it is (no copy). Other real numbers are
    converted once: integer arrays to int64, floating and bool arrays to float32. Complex,
    object and string arrays are refused with TypeError.
    """
    a = value if isinstance(value, np.ndarray) else np.asarray(value)
    dt = a.dtype
    if dt.isnative and a.flags.c_contiguous and a.flags.aligned and (dt == np.float32 or dt == np.int64):
        return a
    if dt.kind in "iu":
        if dt.kind == "u" and dt.itemsize == 8 and a.size and int(a.max()) > np.iinfo(np.int64).max:
            raise TypeError(f"input '{name}' holds values beyond int64")
        return np.require(a, dtype=np.int64, requirements=["C_CONTIGUOUS", "ALIGNED"])
    if dt.kind in "fb":
        return np.require(a, dtype=np.float32, requirements=["C_CONTIGUOUS", "ALIGNED"])
    raise TypeError(
        f"input '{name}' has dtype {dt}; diffblocks takes real arrays "
        "(float32 and int64 as they are, other real types converted)"
    )


def _as_inputs(inputs: Mapping[str, ArrayLike]) -> Dict[str, np.ndarray]:
    return {str(k): _as_array(str(k), v) for k, v in inputs.items()}


class Model:
    """A loaded model (:func:`load`). Thread-safe: any number of threads may call
    :meth:`forward` / :meth:`sample` at once (the GIL is released while it computes)."""

    def __init__(self, path: Union[str, os.PathLike], device: str = "cpu", dtype: str = "f32") -> None:
        self._m = _core.Model(str(path), device, dtype)
        self._info: Optional[Tuple[str, Dict[str, Any], int, List[Tuple[str, str, List[int]]]]] = None
        self.path = str(path)

    def _describe(self):
        if self._info is None:
            cls, config, parameters, weights = self._m.describe()
            self._info = (cls, json.loads(config), int(parameters), [(n, d, list(s)) for n, d, s in weights])
        return self._info

    @property
    def kind(self) -> str:
        """``"GradLogPEstimator2d"`` (Origin) or ``"UNet2DConditionModel"`` (Diffuser)."""
        return self._m.kind

    @property
    def device(self) -> str:
        """The device it runs on: ``"cpu"`` or ``"cuda"``."""
        return self._m.device

    @property
    def dtype(self) -> str:
        """Its scalar type: ``"f32"``, ``"bf16"`` or ``"f16"``."""
        return self._m.dtype

    @property
    def config(self) -> Dict[str, Any]:
        """The config in use (Origin: every key with its value; Diffuser: as in the file). A copy."""
        return json.loads(json.dumps(self._describe()[1]))

    @property
    def parameters(self) -> int:
        """The number of parameters."""
        return self._describe()[2]

    @property
    def weights(self) -> List[Tuple[str, str, List[int]]]:
        """The checkpoint's tensors, in file order: (name, stored dtype, shape)."""
        return list(self._describe()[3])

    def forward(self, **inputs: ArrayLike) -> np.ndarray:
        """One forward pass of the U-Net; returns its output (float32).

        Origin: ``x``, ``mask``, ``mu`` (B, n_feats, T), ``t`` (B,); optional ``spk`` (B, D) or
        ``spk_id`` (B,), ``emo`` or ``emo_id``, ``psd`` (B, n_psd, T).
        Diffuser: ``sample`` (B, C, H, W), ``timestep`` (B,) or scalar; optional
        ``encoder_hidden_states``, ``encoder_attention_mask``, ``class_labels``, ``image_embeds``,
        ``hint``, ``text_embeds``, ``time_ids``.
        A missing, misnamed or wrongly shaped input raises :class:`InputError`.
        """
        return self._m.forward(_as_inputs(inputs))

    def sample(
        self,
        steps: int = 10,
        stochastic: bool = False,
        seed: int = 0,
        scheduler: Optional[str] = None,
        scheduler_config: Union[None, str, Mapping[str, Any]] = None,
        progress: Optional[Callable[[int, int, float], Optional[bool]]] = None,
        **inputs: ArrayLike,
    ) -> np.ndarray:
        """A whole sampling run; returns the final sample (float32).

        Origin: Grad-TTS reverse diffusion from ``z`` with ``mask``, ``mu`` (+ the conditioning
        :meth:`forward` takes), ``steps`` Euler steps of the ODE, or of the SDE with
        ``stochastic=True`` (noise from ``seed``).
        Diffuser: the scheduler's loop from ``sample`` (+ conditioning); ``scheduler`` is
        ``"ddim"`` (default), ``"ddpm"`` or ``"euler"``, ``scheduler_config`` a diffusers
        scheduler config (dict or JSON text).

        ``progress(step, steps, seconds)`` is called after every step (from 1) with the step's
        time; returning a true value stops the run with :class:`Cancelled`, and an exception it
        raises propagates as itself. Ctrl-C stops the run at the next step.
        """
        if isinstance(scheduler_config, Mapping):
            scheduler_config = json.dumps(scheduler_config)
        if progress is not None and not callable(progress):
            raise TypeError("progress must be a callable (step, steps, seconds) or None")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
            raise TypeError(f"steps must be an int, got {type(steps).__name__}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        return self._m.sample(
            _as_inputs(inputs), int(steps), bool(stochastic), int(seed), scheduler or "", scheduler_config or "", progress
        )

    def __repr__(self) -> str:
        return f"<diffblocks.Model {self.kind} from {self.path!r} on {self.device}, {self.dtype}>"


def load(
    path: Union[str, os.PathLike],
    device: str = "cpu",
    dtype: str = "f32",
    threads: Optional[int] = None,
) -> Model:
    """Loads a model: a directory with config.json and one .safetensors file, or one
    .safetensors file whose metadata holds the config. ``device``: ``"cpu"`` or ``"cuda"``;
    ``dtype``: ``"f32"``, ``"bf16"`` or ``"f16"``; ``threads``: sets the CPU thread count
    (process-wide, as :func:`set_num_threads`) when given.

    Raises :class:`IoError` (unreadable file), :class:`ConfigError`, :class:`LoadError`
    (checkpoint vs config), :class:`InputError` (unknown device or dtype), :class:`CudaError`.
    """
    if threads is not None:
        set_num_threads(threads)
    return Model(path, device, dtype)


def read_tensors(path: Union[str, os.PathLike]) -> Dict[str, np.ndarray]:
    """Every tensor of a safetensors file (in its header's order), floating dtypes (F32, F16, BF16, F64)
    as float32, integer and bool dtypes as int64."""
    return dict(_core.read_tensors(str(path)))


def read_metadata(path: Union[str, os.PathLike]) -> Dict[str, str]:
    """The ``__metadata__`` of a safetensors file."""
    return dict(_core.read_metadata(str(path)))


def write_tensors(
    path: Union[str, os.PathLike],
    tensors: Mapping[str, ArrayLike],
    metadata: Optional[Mapping[str, str]] = None,
) -> None:
    """Writes ``tensors`` to a safetensors file, atomically (a failure leaves no half file and
    never replaces what was there): integer arrays as I64, the others as F32."""
    _core.write_tensors(str(path), _as_inputs(tensors), dict(metadata or {}))


def _mel(value: ArrayLike, what: str) -> np.ndarray:
    a = _as_array(what, value)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise InputError(f"{what} has shape {list(a.shape)}, expected a mel (n_feats, T) or (1, n_feats, T)")
    return np.ascontiguousarray(a, dtype=np.float32)


def similarity(
    reference: ArrayLike,
    candidates: Union[ArrayLike, Sequence[ArrayLike], Mapping[str, ArrayLike]],
    phonemes: Union[str, Sequence[str]],
    durations: Sequence[int],
    metric: str = "cosine",
    labels: Optional[Sequence[str]] = None,
    title: str = "Per-phoneme similarity to the reference",
    subtitle: str = "",
) -> Dict[str, Any]:
    """Per-phoneme similarity of candidate mels to a reference mel (``diffblocks similarity``).

    ``reference`` and each candidate: (n_feats, T) or (1, n_feats, T). ``candidates``: one array,
    a list, or a dict label -> array. ``phonemes``: symbols (a list, or one string split on
    spaces), one per duration; ``durations``: frames per phoneme, summing to T. ``metric``:
    ``"cosine"`` (default), ``"frame_cosine"``, ``"l1"`` or ``"mse"``.

    Returns the report the command writes as JSON (``tools/plot_similarity.py`` plots it):
    ``{"metric", "higher_is_better", "phonemes": [{"symbol", "start", "frames"}],
    "candidates": [{"label", "scores", "mean", "frame_weighted_mean", "worst"}], ...}``.
    """
    if isinstance(candidates, Mapping):
        if labels is not None:
            raise TypeError("labels come from the candidates dict's keys; do not give both")
        labels = [str(k) for k in candidates.keys()]
        cands = list(candidates.values())
    elif isinstance(candidates, np.ndarray):
        cands = [candidates]
    else:
        cands = list(candidates)
    if isinstance(phonemes, str):
        phonemes = phonemes.split()
    ds = np.asarray(durations)
    if ds.ndim != 1 or (ds.size and ds.dtype.kind not in "iu"):
        raise TypeError("durations must be a sequence of integers (frames per phoneme)")
    text = _core.similarity(
        _mel(reference, "the reference mel"),
        [_mel(c, f"candidate {i + 1}") for i, c in enumerate(cands)],
        [str(x) for x in (labels or [])],
        [str(p) for p in phonemes],
        [int(d) for d in ds],
        metric,
        title,
        subtitle,
    )
    return json.loads(text)

