"""A slow, obviously-correct float64 numpy restatement of ``formula`` (for tests).

It evaluates the formulas of ``renderer.formula``'s docstring literally, one ear
at a time, with numpy arrays laid out ``[T, F, ...]``, in float64, except the SH
basis (``sh.sh_basis``), which runs through jax.numpy in float32 (about 1e-7
relative error, far inside the tests' tolerances).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from audiogs_jax import dsp
from audiogs_jax import sh as sh_lib
from audiogs_jax.gaussians import GaussianGrid
from audiogs_jax.renderer.config import RenderConfig
from audiogs_jax.renderer.formula import WOODWORTH_MAX_LATERAL

__all__ = ["render_reference"]


def _softplus(x):
  return np.log1p(np.exp(x))


def _ear_gain(g: GaussianGrid, p: np.ndarray, e: int, freqs: np.ndarray,
              config: RenderConfig) -> np.ndarray:
  """Complex gain ``[T, F]`` of ear ``e`` from head-frame positions ``p`` ``[T, F, 3]``."""
  ear_x = (-config.head_radius, config.head_radius)[e]
  d = p - np.array([ear_x, 0.0, 0.0])
  r = np.linalg.norm(d, axis=-1)
  u = d / r[..., None]
  degree = g.sh_degree if config.use_sh_directionality else 0
  kk = (degree + 1) ** 2
  basis = np.asarray(sh_lib.sh_basis(jnp.asarray(u), degree), np.float64)   # [T, F, K]
  shc = np.asarray(g.sh, np.float64)                                         # [E, K, T, F]
  field = shc[e if (config.dual_sh and shc.shape[0] == 2) else 0][:kk]
  a = np.sum(np.moveaxis(field, 0, -1) * basis, axis=-1)
  a = np.maximum(a, 0.0) if config.activation == "relu" else _softplus(a)
  if config.use_attenuation:
    expo = _softplus(np.asarray(g.decay, np.float64))
    a = a * (config.r0 / np.maximum(r, config.r_min)) ** expo
  phi = np.zeros_like(a)
  rc = np.linalg.norm(p, axis=-1)
  if config.use_phase_correction and config.itd_model == "woodworth":
    lat = np.clip(p[..., 0] / rc, -WOODWORTH_MAX_LATERAL, WOODWORTH_MAX_LATERAL)
    tau = (1 - 2 * e) * 0.5 * config.head_radius * (np.arcsin(lat) + lat)
    phi = phi - 2.0 * np.pi * freqs * tau / config.speed_of_sound
  elif config.use_phase_correction:
    phi = phi - 2.0 * np.pi * freqs * (r - rc) / config.speed_of_sound
  if config.use_learned_phase and g.phase is not None:
    phi = phi + np.asarray(g.phase[e], np.float64)
  return a * np.exp(1j * phi)


def render_reference(g: GaussianGrid, pose, source_tf, config: RenderConfig) -> np.ndarray:
  """Binaural STFT ``[2, T, F]`` (complex128) for one pose ``[4, 4]`` and one
  source STFT ``[T, F]``: what ``renderer.render`` computes for a batch of one."""
  pose = np.asarray(pose, np.float64)
  rmat, c = pose[:3, :3], pose[:3, 3]
  s = (float(np.exp(np.asarray(g.log_scale))) if g.log_scale is not None
       else config.metres_per_unit)
  xyz = np.moveaxis(np.asarray(g.xyz, np.float64), 0, -1)                    # [T, F, 3]
  p = ((xyz - c) @ rmat) * s                                  # R^T (x - c), metres
  freqs = dsp.frequencies(config.n_fft, config.sample_rate)                  # [F]
  out = np.stack([_ear_gain(g, p, e, freqs, config) for e in range(2)])
  src = np.asarray(source_tf)
  if config.content_mode:
    src = src / np.maximum(np.abs(src), 1e-8)
  return out * src[None]
