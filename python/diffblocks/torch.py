"""A loaded Origin model as a ``torch.nn.Module`` with Grad-TTS's estimator interface.

    import diffblocks.torch
    generator = GradTTS(...)                                   # the user's Grad-TTS
    generator.load_state_dict(torch.load("grad-tts.pt"))       # as before
    generator.decoder.estimator = diffblocks.torch.GradLogPEstimator2d("models/grad-tts")
    y_enc, y_dec, attn = generator(x, x_lengths, n_timesteps=10)   # unchanged

``forward(x, mask, mu, t, spk=None)`` is ``GradLogPEstimator2d.forward``: x, mu (B, n_feats, T),
mask (B, 1, T), t (B,) (or a scalar), spk (B, spk_emb_dim) the already-embedded speaker vector
as Grad-TTS passes it; returns the score estimate (B, n_feats, T). The extension's conditioning
follows as in DESIGN.md: ``emo``, ``psd`` after ``spk``, and ``spk_id`` / ``emo_id`` by keyword.

Inference only: the module has no parameters and no gradient flows through it; it refuses
inputs that require grad while grad mode is on (run under ``torch.no_grad()``, as Grad-TTS's
``GradTTS.forward`` does). Tensors must be on the CPU (the model's own device, CPU or CUDA,
is chosen at load); float32 contiguous tensors reach the library without a copy
(``Tensor.numpy()`` shares memory), others are converted once. The result shares memory with
the array the library returned (``torch.from_numpy``), in the input's dtype.

Importing this module needs torch; ``import diffblocks`` does not.
"""

from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np
import torch

import diffblocks

__all__ = ["GradLogPEstimator2d"]


def _numpy(name: str, t, batch: Optional[int] = None) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        if t.device.type != "cpu":
            raise ValueError(
                f"diffblocks.torch: '{name}' is on {t.device}; pass CPU tensors (the model runs on the device "
                "given to diffblocks.load, and takes its inputs from host memory)"
            )
        if t.requires_grad and torch.is_grad_enabled():
            raise RuntimeError(
                f"diffblocks.torch: '{name}' requires grad; the diffblocks estimator is inference only "
                "(no gradient flows through it): call it under torch.no_grad() or pass detached tensors"
            )
        if t.dtype in (torch.bfloat16,):  # NumPy has no bfloat16
            t = t.float()
        a = t.detach().numpy()
    else:
        a = np.asarray(t)
    if name == "t" and a.ndim == 0 and batch is not None:  # a scalar time for the whole batch
        a = np.full((batch,), a, dtype=np.float32)
    return a


class GradLogPEstimator2d(torch.nn.Module):
    """Grad-TTS's score estimator, computed by diffblocks: a drop-in for ``decoder.estimator``.

    ``model``: a :class:`diffblocks.Model` of kind ``GradLogPEstimator2d``, or a path to load
    (with ``device``, ``dtype`` and ``threads`` as :func:`diffblocks.load`).
    """

    def __init__(
        self,
        model: Union["diffblocks.Model", str, os.PathLike],
        device: str = "cpu",
        dtype: str = "f32",
        threads: Optional[int] = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, diffblocks.Model):
            model = diffblocks.load(model, device=device, dtype=dtype, threads=threads)
        if model.kind != "GradLogPEstimator2d":
            raise diffblocks.InputError(
                f"diffblocks.torch.GradLogPEstimator2d needs a GradLogPEstimator2d model, got {model.kind}"
            )
        self.model = model
        cfg = model.config
        # The constructor arguments Grad-TTS code may read.
        for k in ("dim", "dim_mults", "groups", "n_spks", "spk_emb_dim", "n_feats", "pe_scale"):
            if k in cfg:
                setattr(self, k, cfg[k])

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        mu: torch.Tensor,
        t: torch.Tensor,
        spk: Optional[torch.Tensor] = None,
        emo: Optional[torch.Tensor] = None,
        psd: Optional[torch.Tensor] = None,
        *,
        spk_id: Optional[torch.Tensor] = None,
        emo_id: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """The score estimate (B, n_feats, T), as ``GradLogPEstimator2d.forward(x, mask, mu, t, spk)``.

        ``emo`` (B, emo_emb_dim) and ``psd`` (B, n_psd, T) follow ``spk`` as in the extended
        estimator (DESIGN.md); ``spk_id`` / ``emo_id`` (B,) give ids instead of vectors when the
        model file holds the embedding tables.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"diffblocks.torch: x must be a torch.Tensor, got {type(x).__name__}")
        batch = int(x.shape[0]) if x.dim() > 0 else None
        inputs = {"x": x, "mask": mask, "mu": mu, "t": t, "spk": spk, "spk_id": spk_id, "emo": emo, "emo_id": emo_id, "psd": psd}
        arrays = {k: _numpy(k, v, batch) for k, v in inputs.items() if v is not None}
        out = torch.from_numpy(self.model.forward(**arrays))
        return out if out.dtype == x.dtype else out.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.model.path!r}, device={self.model.device!r}, dtype={self.model.dtype!r}"
