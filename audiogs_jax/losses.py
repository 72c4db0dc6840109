"""Losses of method.md ("Losses") on frames-major complex STFTs ``[B, 2, T, F]``.

- ``magnitude_l2``: mean over (batch, ear, frame, bin) of (|P| - |G|)^2.
- ``log_magnitude_l1``: mean of |log(|P| + eps) - log(|G| + eps)|.
- ``ipd_loss``: interaural phase difference loss
  ``sum_{f,t} w(f,t) (1 - cos(IPD_pred - IPD_true))`` per clip, averaged over
  the batch, with ``w`` the recorded magnitude (mean of the ears) normalised to
  sum 1 per clip, so silent bins do not dominate. ``cos(a - b)`` is computed as
  ``Re(z_p conj(z_t)) / (|z_p| |z_t|)`` with ``z = L conj(R)``: no ``angle``,
  no wrap-around.
- ``mono_diff_l2`` (Audio 3DGS): L2 on mono (|L| + |R|) and difference
  (|L| - |R|) magnitudes.
- ``frame_tie``: optional regulariser pulling each frequency bin's per-frame
  parameters towards their mean over frames.

Predictions go through ``safe_abs`` (finite gradient at 0); targets are
recordings and take plain ``abs``. Each loss returns a float scalar.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["magnitude_l2", "log_magnitude_l1", "ipd_loss", "mono_diff_l2",
           "frame_tie", "safe_abs"]


def safe_abs(z, eps: float = 1e-12):
  """|z| with a finite gradient at z = 0."""
  return jnp.sqrt(jnp.real(z) ** 2 + jnp.imag(z) ** 2 + eps)


def magnitude_l2(pred, target):
  """Mean squared magnitude error over all of complex ``[B, 2, T, F]``."""
  return jnp.mean((safe_abs(pred) - jnp.abs(target)) ** 2)


def frame_tie(fields) -> jnp.ndarray:
  """Mean squared deviation of per-frame parameters from their mean over frames.

  ``fields``: arrays laid out frames-major ``[..., T, F]`` (``GaussianGrid``'s
  layout); the deviation is taken along axis -2 (frames) and averaged over
  every element, then summed over fields. Zero when every frame of a
  frequency bin holds the same parameters. An optional regulariser
  (``config.loss.frame_tie_weight``): the frame index inside a clip carries
  no physical meaning for a static source, so pulling the T Gaussians of a
  frequency bin together trades per-clip detail for generalisation to new
  clips (see README, "Scenes where AudioGS does not win").
  """
  total = jnp.zeros((), jnp.float32)
  for x in fields:
    if x is None:
      continue
    total = total + jnp.mean((x - jnp.mean(x, axis=-2, keepdims=True)) ** 2)
  return total


def log_magnitude_l1(pred, target, eps: float = 1e-3):
  """Mean absolute error of ``log(|.| + eps)`` over all of complex ``[B, 2, T, F]``;
  ``eps`` bounds the weight of near-silent bins."""
  return jnp.mean(jnp.abs(jnp.log(safe_abs(pred) + eps) - jnp.log(jnp.abs(target) + eps)))


def ipd_loss(pred, target, eps: float = 1e-8):
  """Magnitude-weighted ``1 - cos`` of the IPD error; pred, target complex ``[B, 2, T, F]``."""
  zp = pred[:, 0] * jnp.conj(pred[:, 1])
  zt = target[:, 0] * jnp.conj(target[:, 1])
  num = jnp.real(zp * jnp.conj(zt))
  cos = num / (safe_abs(zp, eps) * safe_abs(zt, eps))
  w = 0.5 * (jnp.abs(target[:, 0]) + jnp.abs(target[:, 1]))
  w = w / (jnp.sum(w, axis=(-2, -1), keepdims=True) + eps)
  return jnp.mean(jnp.sum(w * (1.0 - cos), axis=(-2, -1)))


def mono_diff_l2(pred, target):
  """Audio 3DGS's loss: L2 of the mono ``|L| + |R|`` plus L2 of the difference
  ``|L| - |R|`` magnitudes, complex ``[B, 2, T, F]``."""
  pl, pr = safe_abs(pred[:, 0]), safe_abs(pred[:, 1])
  tl, tr = jnp.abs(target[:, 0]), jnp.abs(target[:, 1])
  return jnp.mean(((pl + pr) - (tl + tr)) ** 2) + jnp.mean(((pl - pr) - (tl - tr)) ** 2)
