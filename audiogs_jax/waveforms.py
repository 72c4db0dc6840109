"""Binaural clip batches as the metrics take them: ``[B, 2, L]`` arrays.

Every per-clip metric (:mod:`audiogs_jax.metrics`, :mod:`audiogs_jax.reverb`,
:mod:`audiogs_jax.dpam`) accepts ``pred`` and ``target`` as ``[B, 2, L]``
(ear 0 = left) or a single ``[2, L]`` clip, and compares ``pred`` trimmed or
zero-padded to the target's length, so that a renderer's output of a slightly
different length is scored against the whole recording.
"""

from __future__ import annotations

import numpy as np

__all__ = ["as_batch", "match_length", "pair"]


def as_batch(x, name: str) -> np.ndarray:
  """``x`` as ``[B, 2, L]`` (a ``[2, L]`` clip becomes a batch of one).

  Floating dtypes are kept; integer or boolean input is cast to float64.
  Raises ``ValueError`` naming ``name`` for any other shape.
  """
  x = np.asarray(x)
  if x.ndim == 2:
    x = x[None]
  if x.ndim != 3 or x.shape[1] != 2:
    raise ValueError(f"{name} must be [B, 2, L] (or [2, L]), got shape {x.shape}")
  if not np.issubdtype(x.dtype, np.floating):
    x = x.astype(np.float64)
  return x


def match_length(pred, length: int) -> np.ndarray:
  """Trims or zero-pads the last axis of ``pred`` to ``length`` samples."""
  pred = np.asarray(pred)
  n = pred.shape[-1]
  if n >= length:
    return pred[..., :length]
  pad = [(0, 0)] * (pred.ndim - 1) + [(0, length - n)]
  return np.pad(pred, pad)


def pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
  """``(pred, target)`` as ``[B, 2, L]`` batches of one length ``L`` (the target's).

  Raises ``ValueError`` when the shapes are not binaural or the batch sizes differ.
  """
  target = as_batch(target, "target")
  pred = as_batch(pred, "pred")
  if pred.shape[0] != target.shape[0]:
    raise ValueError(f"batch sizes differ: pred {pred.shape}, target {target.shape}")
  return match_length(pred, target.shape[-1]), target
