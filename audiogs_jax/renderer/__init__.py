"""The AudioGS renderer: explicit, no network (method.md, "AudioGS render").

One entry point, ``render(params, poses, source_tf, config)``: the binaural STFT
of a batch of listener poses from the Gaussians ``params``
(``gaussians.GaussianGrid``) and the mono source's STFT::

    Y_e(t, f) = G_e(t, f; pose) * S(t, f)  [ + sum_k H_e(k, f) S(t - k, f) ]

with the gain ``G`` of ``renderer.formula`` (directional dual-SH magnitude,
learned distance decay, geometric interaural phase and a learned residual phase)
and, with ``config.tail_frames = K > 0``, the reverberant tail ``H`` of
``renderer.tail`` (a filter across frames per ear and bin, fed by the ``K`` source
frames before the clip).
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

from audiogs_jax import dsp
from audiogs_jax.gaussians import GaussianGrid
from audiogs_jax.renderer import backward
from audiogs_jax.renderer import formula
from audiogs_jax.renderer import tail as tail_lib
from audiogs_jax.renderer.config import RenderConfig
from audiogs_jax.renderer.formula import Fields, fields
from audiogs_jax.renderer.reference import render_reference

__all__ = ["RenderConfig", "Fields", "fields", "gains", "render", "direct", "add_tail",
           "combine_tail", "render_reference", "tail_coherence"]


def gains(params: "GaussianGrid | Fields", poses: jnp.ndarray,
          config: RenderConfig) -> jnp.ndarray:
  """Complex gains ``[B, 2, T, F]`` of poses ``[B, 4, 4]`` (ear 0 = left).

  ``params``: the Gaussians, or their ``fields`` (computed once, reused for many
  pose batches). The backward pass is ``renderer.backward``'s when
  ``config.custom_backward``, autodiff of ``formula.gains`` otherwise.
  """
  chex.assert_rank(poses, 3)
  f = params if isinstance(params, Fields) else fields(params, config)
  f = f.replace(tail=None)            # the tail is not part of the gain
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
      ``[B, T, F]``: the mono source's STFT, frames-major (``dsp.stft_frames``);
      with ``config.tail_frames = K``, ``[(B,) K + T, F]``: the ``K`` frames before
      the clip first (``dataset.source_frames``).
    config: ``RenderConfig`` (static).

  Returns:
    complex ``[B, 2, T, F]``: ``G * S`` per ear, plus the tail; with
    ``config.content_mode`` the source contributes its phase only.
  """
  return add_tail(direct(params, poses, source_tf, config), params, source_tf, config)


def direct(params: "GaussianGrid | Fields", poses: jnp.ndarray, source_tf: jnp.ndarray,
           config: RenderConfig) -> jnp.ndarray:
  """The direct part ``G * S`` ``[B, 2, T, F]`` of ``render`` (same arguments)."""
  g = gains(params, poses, config)
  if source_tf.ndim == 2:
    source_tf = source_tf[None]
  k = config.tail_frames
  s = source_tf[:, k:]
  chex.assert_equal_shape([g[0, 0], s[0]])
  if config.content_mode:
    if k:
      raise ValueError("content_mode has no reverberant tail (tail_frames must be 0)")
    s = s / jnp.maximum(jnp.abs(s), 1e-8)
  return g * s[:, None]


def add_tail(y: jnp.ndarray, params: "GaussianGrid | Fields", source_tf: jnp.ndarray,
             config: RenderConfig) -> jnp.ndarray:
  """``render`` from its direct part ``y = direct(...)`` ``[B, 2, T, F]``: ``y`` and
  the reverberant tail (``tail.combine``); ``y`` itself when ``config.tail_frames``
  is 0."""
  k = config.tail_frames
  if not k:
    return y
  if source_tf.ndim == 2:
    source_tf = source_tf[None]
  tail = getattr(params, "tail", None)
  if tail is None:
    raise ValueError(f"config.tail_frames={k} but the Gaussians carry no tail")
  return combine_tail(y, tail, source_tf, k, config)[0]


def combine_tail(y: jnp.ndarray, tail, source_tf: jnp.ndarray, skip: int,
                 config: RenderConfig, state=None):
  """``tail.combine`` with the configured mode, ear coherence and phase advance:
  ``(out [B, 2, T, F], state)`` (the clip renderer above and the block-wise
  ``stream.step``, which carries ``state``, share it)."""
  return tail_lib.combine(y, tail, source_tf, skip, config.tail_mode, tail_coherence(config),
                          state=state,
                          advance=tail_lib.natural_advance(config.n_fft, config.hop_length))


def tail_coherence(config: RenderConfig):
  """The diffuse-field coherence ``[F]`` of the ears' tail taps (ears ``2 a`` apart),
  or None when ``config.tail_coherence`` is off."""
  if not config.tail_coherence:
    return None
  freqs = dsp.frequencies(config.n_fft, config.sample_rate)
  return tail_lib.diffuse_coherence(freqs, 2.0 * config.head_radius, config.speed_of_sound)
