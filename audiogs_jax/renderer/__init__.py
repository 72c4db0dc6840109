"""The AudioGS renderer: explicit, no network (method.md, "AudioGS render").

One entry point, ``render(params, poses, source_tf, config)``: the binaural STFT
of a batch of listener poses from the Gaussians ``params``
(``gaussians.GaussianGrid``) and the mono source's STFT::

    Y_e(t, f) = G_e(t, f; pose) * S(t, f)

with the gain ``G`` of ``renderer.formula`` (directional dual-SH magnitude,
learned distance decay, geometric interaural phase and a learned residual phase).
``renderer.backward`` is the same gain with a hand-derived VJP (the default for
training), ``renderer.reference`` a float64 numpy restatement for the tests.
Everything is a pure function of arrays: no Python loop over Gaussians, frames or
poses, and a fixed batch shape compiles once.

Distances are in metres: scene-unit positions are multiplied by
``exp(log_scale)`` when the Gaussians carry ``log_scale`` and by
``config.metres_per_unit`` otherwise.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp

from audiogs_jax.gaussians import GaussianGrid
from audiogs_jax.renderer import backward
from audiogs_jax.renderer import formula
from audiogs_jax.renderer.config import RenderConfig
from audiogs_jax.renderer.formula import Fields, fields
from audiogs_jax.renderer.reference import render_reference

__all__ = ["RenderConfig", "Fields", "fields", "gains", "render", "render_reference"]


def gains(params: "GaussianGrid | Fields", poses: jnp.ndarray,
          config: RenderConfig) -> jnp.ndarray:
  """Complex gains ``[B, 2, T, F]`` of poses ``[B, 4, 4]`` (ear 0 = left).

  ``params``: the Gaussians, or their ``fields`` (computed once, reused for many
  pose batches). The backward pass is ``renderer.backward``'s when
  ``config.custom_backward``, autodiff of ``formula.gains`` otherwise.
  """
  chex.assert_rank(poses, 3)
  f = params if isinstance(params, Fields) else fields(params, config)
  if config.custom_backward:
    return backward.gains(f, poses, config)
  return formula.gains(f, poses, config)


def render(params: "GaussianGrid | Fields", poses: jnp.ndarray, source_tf: jnp.ndarray,
           config: RenderConfig) -> jnp.ndarray:
  """Binaural STFTs of a batch of poses.

  Args:
    params: ``GaussianGrid`` (fields ``[..., T, F]``) or its ``fields``.
    poses: ``[B, 4, 4]`` head-to-world poses (scene units).
    source_tf: complex ``[T, F]`` (one source clip for every pose) or
      ``[B, T, F]``: the mono source's STFT, frames-major (``dsp.stft_frames``).
    config: ``RenderConfig`` (static).

  Returns:
    complex ``[B, 2, T, F]``: ``G * S`` per ear; with ``config.content_mode`` the
    source contributes its phase only.
  """
  g = gains(params, poses, config)
  if source_tf.ndim == 2:
    source_tf = source_tf[None]
  chex.assert_equal_shape([g[0, 0], source_tf[0]])
  if config.content_mode:
    source_tf = source_tf / jnp.maximum(jnp.abs(source_tf), 1e-8)
  return g * source_tf[:, None]
