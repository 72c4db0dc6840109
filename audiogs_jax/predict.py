"""Waveforms from a trained model: batched clip rendering and long sources.

``predict_waveforms`` renders a split's clips in fixed-size batches (one
compilation); ``render_long`` renders a mono source of any length for a listener
trajectory by about 50 %-overlapping, Hann-weighted clip-length chunks on one STFT
frame grid (normalised by the sum of the shifted windows, so chunk boundaries are
crossfaded, not cut); each chunk
reads the source before it, so a reverberant tail carries across chunks.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from audiogs_jax import dataset
from audiogs_jax import dsp
from audiogs_jax.trainstate import compiler_options

__all__ = ["make_predict", "predict_waveforms", "chunk_plan", "chunk_weights", "render_long"]


def make_predict(model, config):
  """Jitted ``(params, poses [B,4,4], source_tf [B,K+T,F], length) -> [B,2,L]``
  (``source_tf`` as ``dataset.source_frames`` gives it)."""
  kw = dataset.stft_kwargs(config)
  opts = compiler_options(model)
  parts = model.render_parts(config) if model.render_parts else None
  if parts is None:
    def predict(params, poses, source_tf, length_ref):
      spec = model.render(params, poses, source_tf, config)
      return dsp.istft_frames(spec, length=length_ref.shape[-1], **kw)

    return jax.jit(predict, compiler_options=opts)
  # Two programs, the second with the inverse STFT (``RenderModel.render_parts``).
  first = jax.jit(lambda params, poses, source_tf: parts[0](params, poses, source_tf, config),
                  compiler_options=opts)
  second = jax.jit(lambda x, params, source_tf, length_ref: dsp.istft_frames(
      parts[1](x, params, source_tf, config), length=length_ref.shape[-1], **kw),
                   compiler_options=opts)

  def predict_in_parts(params, poses, source_tf, length_ref):
    return second(first(params, poses, source_tf), params, source_tf, length_ref)

  return predict_in_parts


def predict_waveforms(model, params, poses, source_tf, length: int, config,
                      batch_size: int = 16, predict=None) -> np.ndarray:
  """Render every clip, in fixed-size batches (the last one padded, so one
  compilation serves all): returns numpy ``[N, 2, length]``."""
  predict = predict or make_predict(model, config)
  n = poses.shape[0]
  ref = jnp.zeros((length,), jnp.float32)
  out = []
  for i in range(0, n, batch_size):
    p, s = poses[i:i + batch_size], source_tf[i:i + batch_size]
    pad = batch_size - p.shape[0]
    if pad:
      p = jnp.concatenate([p, jnp.repeat(p[-1:], pad, 0)])
      s = jnp.concatenate([s, jnp.repeat(s[-1:], pad, 0)])
    y = np.asarray(predict(params, p, s, ref))
    out.append(y[:batch_size - pad] if pad else y)
  return np.concatenate(out, 0)


def chunk_plan(num_samples: int, clip: int, align: int = 1) -> tuple[int, int, np.ndarray]:
  """``(pad, hop, starts)``: the padded signal's chunk starts.

  ``hop`` is ``clip // 2`` rounded down to a multiple of ``align`` (the STFT hop:
  then every chunk's STFT frames lie on one frame grid, so that what a chunk renders
  in its overlap with the next, the reverberant tail included, is what the next
  renders there). The source is padded with ``pad = hop`` zeros in front and
  enough behind; every original sample lies under chunks whose periodic-Hann
  weights sum to at least 1 (exactly 1 where ``hop = clip / 2``): ``render_long``
  divides by that sum.
  """
  hop = (clip // 2) // align * align
  if hop <= 0:
    raise ValueError(f"clip length {clip} is too short for chunks aligned to {align}")
  total = num_samples + 2 * hop
  k = max(int(np.ceil((total - clip) / hop)) + 1, 1)
  return hop, hop, np.arange(k) * hop


def chunk_weights(clip: int) -> np.ndarray:
  """The periodic Hann window ``[clip]`` that crossfades the chunks."""
  return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(clip) / clip)


def render_long(source: np.ndarray, pose_at: Callable, *, model, params, config,
                clip_length: int, norm_factor: float, batch_size: int = 8) -> np.ndarray:
  """Render a mono source of any length: returns ``[2, len(source)]``."""
  sr = int(config.data.sample_rate)
  n = source.shape[0]
  pad, hop, starts = chunk_plan(n, clip_length, align=int(config.model.hop_length))
  total = int(starts[-1]) + clip_length
  x = np.zeros(total, np.float32)
  x[pad:pad + n] = source / norm_factor
  chunks = np.stack([x[s:s + clip_length] for s in starts])          # [K, L]
  before = np.stack([np.concatenate([np.zeros(max(clip_length - s, 0), np.float32),
                                     x[max(s - clip_length, 0):s]]) for s in starts])
  centres = (starts + clip_length / 2 - pad) / sr
  poses = jnp.asarray(pose_at(centres), jnp.float32)                 # [K, 4, 4]
  src_tf = dataset.source_frames(jnp.asarray(chunks), jnp.asarray(before), config)
  y = predict_waveforms(model, params, poses, src_tf, clip_length, config,
                        batch_size)                        # [K, 2, L]
  w = chunk_weights(clip_length)
  out = np.zeros((2, total), np.float32)
  wsum = np.zeros((total,), np.float64)
  for i, s in enumerate(starts):  # host-side overlap-add of a few chunks, not per step
    out[:, s:s + clip_length] += y[i] * w
    wsum[s:s + clip_length] += w
  return (out[:, pad:pad + n] / wsum[pad:pad + n]).astype(np.float32) * norm_factor
