"""Waveforms from a trained model: batched clip rendering and long sources.

``predict_waveforms`` renders a split's clips in fixed-size batches (one
compilation); ``render_long`` renders a mono source of any length for a listener
trajectory by 50 %-overlapping, Hann-weighted clip-length chunks (the shifted
windows sum to exactly 1, so chunk boundaries are crossfaded, not cut).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from audiogs_jax import dataset
from audiogs_jax import dsp
from audiogs_jax.trainstate import compiler_options

__all__ = ["make_predict", "predict_waveforms", "chunk_plan", "render_long"]


def make_predict(model, config):
  """Jitted ``(params, poses [B,4,4], source_tf [B,T,F], length) -> [B,2,L]``."""
  kw = dataset.stft_kwargs(config)

  def predict(params, poses, source_tf, length_ref):
    spec = model.render(params, poses, source_tf, config)
    return dsp.istft_frames(spec, length=length_ref.shape[-1], **kw)

  return jax.jit(predict, compiler_options=compiler_options(model))


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


def chunk_plan(num_samples: int, clip: int) -> tuple[int, int, np.ndarray]:
  """``(pad, hop, starts)``: the padded signal's chunk starts (hop = clip // 2).

  The source is padded with ``pad = hop`` zeros in front and enough behind; the
  chunks ``[s, s + clip)`` with periodic-Hann weights then cover every original
  sample with weights summing to exactly 1.
  """
  if clip % 2:
    raise ValueError(f"clip length {clip} must be even for 50% overlap")
  hop = clip // 2
  total = num_samples + 2 * hop
  k = max(int(np.ceil((total - clip) / hop)) + 1, 1)
  return hop, hop, np.arange(k) * hop


def render_long(source: np.ndarray, pose_at: Callable, *, model, params, config,
                clip_length: int, norm_factor: float, batch_size: int = 8) -> np.ndarray:
  """Render a mono source of any length: returns ``[2, len(source)]``."""
  sr = int(config.data.sample_rate)
  n = source.shape[0]
  pad, hop, starts = chunk_plan(n, clip_length)
  total = int(starts[-1]) + clip_length
  x = np.zeros(total, np.float32)
  x[pad:pad + n] = source / norm_factor
  chunks = np.stack([x[s:s + clip_length] for s in starts])          # [K, L]
  centres = (starts + clip_length / 2 - pad) / sr
  poses = jnp.asarray(pose_at(centres), jnp.float32)                 # [K, 4, 4]
  src_tf = dsp.stft_frames(jnp.asarray(chunks), **dataset.stft_kwargs(config))
  y = predict_waveforms(model, params, poses, src_tf, clip_length, config,
                        batch_size)                        # [K, 2, L]
  w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(clip_length) / clip_length)
  out = np.zeros((2, total), np.float32)
  for i, s in enumerate(starts):  # host-side overlap-add of a few chunks, not per step
    out[:, s:s + clip_length] += y[i] * w
  return out[:, pad:pad + n] * norm_factor
