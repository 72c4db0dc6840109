"""Baselines reported beside every model (``docs/metrics.md``).

All functions take and return numpy arrays. Shapes: source clips ``[B, L]``
(test) / ``[M, L]`` (train), binaural recordings ``[M, 2, L]`` (ear 0 = left),
poses ``[*, 4, 4]`` homogeneous head-to-world matrices (rotation in the
upper-left 3x3, head centre in the last column). Each baseline returns the
predicted binaural clips ``[B, 2, L]`` for the test sources.

- ``mono_mono``: the source copied to both ears.
- ``mono_energy``: the source scaled to the mean training energy: one gain
  ``g = sqrt(E_bin / E_src)`` where ``E_bin`` is the mean square of all
  training binaural samples (all clips, both ears: the per-ear energy averaged
  over ears) and ``E_src`` the mean square of all training source samples;
  ``g * s`` in both ears.
- ``stereo_energy``: each ear scaled to its mean training energy:
  ``g_e = sqrt(E_bin,e / E_src)`` per ear.
- ``nearest_pose``: per-frequency left/right magnitude gains measured on the
  training clip at the nearest pose, applied to the test source STFT with the
  source phase.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from audiogs_jax import dsp

__all__ = [
    "BASELINE_NAMES", "energy_gains", "mono_mono", "mono_energy", "stereo_energy",
    "nearest_pose_index", "nearest_pose_gains", "nearest_pose", "all_baselines",
]

BASELINE_NAMES = ("mono_mono", "mono_energy", "stereo_energy", "nearest_pose")
GAIN_EPS = 1e-8


def _sources(x, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"{name} must be [N, L], got {x.shape}")
  return x


def _binaural(x, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 3 or x.shape[1] != 2:
    raise ValueError(f"{name} must be [N, 2, L], got {x.shape}")
  return x


def mono_mono(test_source) -> np.ndarray:
  """The source copied to both ears: ``[B, L] -> [B, 2, L]``."""
  s = _sources(test_source, "test_source")
  return np.repeat(s[:, None, :], 2, axis=1)


def energy_gains(train_source, train_binaural) -> tuple[float, np.ndarray]:
  """Energy gains of the training set.

  Returns:
    ``(g, g_e)``: the mono gain ``sqrt(mean(train_binaural^2) /
    mean(train_source^2))`` (per-ear mean energy averaged over the two ears)
    and the per-ear gains ``[2]`` ``sqrt(mean(train_binaural[:, e]^2) /
    mean(train_source^2))``. Mean squares over all clips and samples, so the
    clips are weighted by their length.
  """
  s = _sources(train_source, "train_source").astype(np.float64)
  b = _binaural(train_binaural, "train_binaural").astype(np.float64)
  e_src = float(np.mean(s ** 2))
  if e_src <= 0:
    raise ValueError("training sources are silent; energy gain undefined")
  e_ear = np.mean(b ** 2, axis=(0, 2))  # [2]
  return float(np.sqrt(np.mean(e_ear) / e_src)), np.sqrt(e_ear / e_src)


def mono_energy(test_source, train_source, train_binaural) -> np.ndarray:
  """The source scaled to the mean training energy, same gain in both ears."""
  g, _ = energy_gains(train_source, train_binaural)
  s = _sources(test_source, "test_source")
  return (g * mono_mono(s)).astype(np.result_type(s.dtype, np.float32))


def stereo_energy(test_source, train_source, train_binaural) -> np.ndarray:
  """Each ear scaled to its mean training energy (per-ear gains ``g_e``)."""
  _, ge = energy_gains(train_source, train_binaural)
  s = _sources(test_source, "test_source")
  out = mono_mono(s) * ge[None, :, None]
  return out.astype(np.result_type(s.dtype, np.float32))


def _rotation_angle(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
  """Angle (rad) of ``ra^T rb`` for ``ra [B,3,3]``, ``rb [M,3,3]`` -> ``[B, M]``."""
  tr = np.einsum("bij,mij->bm", ra, rb)  # trace(ra^T rb)
  return np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0))


def nearest_pose_index(test_poses, train_poses, *, tol: float = 1e-9) -> np.ndarray:
  """Index ``[B]`` of the nearest training pose for each test pose.

  Nearest = smallest Euclidean distance between positions (translation
  column); positions within ``tol`` of the minimum distance count as ties,
  broken by the smallest rotation angle between the two head orientations
  (then by the lower index).
  """
  tp = np.asarray(test_poses, dtype=np.float64)
  rp = np.asarray(train_poses, dtype=np.float64)
  if tp.shape[-2:] != (4, 4) or rp.shape[-2:] != (4, 4):
    raise ValueError(f"poses must be [N, 4, 4], got {tp.shape} and {rp.shape}")
  d = np.linalg.norm(tp[:, None, :3, 3] - rp[None, :, :3, 3], axis=-1)  # [B, M]
  ang = _rotation_angle(tp[:, :3, :3], rp[:, :3, :3])
  tie = d <= d.min(axis=1, keepdims=True) + tol
  return np.argmin(np.where(tie, ang, np.inf), axis=1)


@functools.partial(jax.jit, static_argnames=("n_fft", "hop_length"))
def _gains_jax(source, binaural, n_fft: int, hop_length: int):
  s = jnp.mean(jnp.abs(dsp.stft(source, n_fft=n_fft, hop_length=hop_length)), axis=-1)
  b = jnp.mean(jnp.abs(dsp.stft(binaural, n_fft=n_fft, hop_length=hop_length)), axis=-1)
  return b / (s[:, None, :] + GAIN_EPS)  # [M, 2, F]


@functools.partial(jax.jit, static_argnames=("n_fft", "hop_length", "length"))
def _apply_jax(source, gains, n_fft: int, hop_length: int, length: int):
  spec = dsp.stft(source, n_fft=n_fft, hop_length=hop_length)       # [B, F, T]
  out = gains[:, :, :, None] * spec[:, None]                          # [B, 2, F, T]
  return dsp.istft(out, n_fft=n_fft, hop_length=hop_length, length=length)


def nearest_pose_gains(train_source, train_binaural, *, n_fft: int = 512,
                       hop_length: int = 128) -> np.ndarray:
  """Per-frequency ear gains of each training clip, ``[M, 2, n_fft//2+1]``.

  ``G_e(f) = mean_t |B_e(f, t)| / (mean_t |S(f, t)| + 1e-8)``: a ratio of
  frame-averaged magnitudes (not the mean of per-frame ratios, which silent
  frames of the source would blow up). Hann STFT, centred, zero padding.
  """
  s = _sources(train_source, "train_source").astype(np.float32)
  b = _binaural(train_binaural, "train_binaural").astype(np.float32)
  return np.asarray(_gains_jax(s, b, n_fft, hop_length))


def nearest_pose(test_source, test_poses, train_source, train_binaural,
                 train_poses, *, n_fft: int = 512, hop_length: int = 128) -> np.ndarray:
  """Nearest-pose transfer.

  For each test pose, take the training clip at the nearest pose
  (:func:`nearest_pose_index`), measure its per-frequency left/right
  magnitude gains (:func:`nearest_pose_gains`) and multiply the test source
  STFT by them, keeping the source phase; inverse STFT to the test length.
  """
  s = _sources(test_source, "test_source")
  train_source = _sources(train_source, "train_source")
  train_binaural = _binaural(train_binaural, "train_binaural")
  idx = nearest_pose_index(test_poses, train_poses)
  if idx.shape[0] != s.shape[0]:
    raise ValueError(f"{s.shape[0]} test sources but {idx.shape[0]} test poses")
  used, inverse = np.unique(idx, return_inverse=True)
  gains = nearest_pose_gains(train_source[used], train_binaural[used],
                             n_fft=n_fft, hop_length=hop_length)[inverse]
  out = _apply_jax(s.astype(np.float32), jnp.asarray(gains), n_fft, hop_length,
                   s.shape[-1])
  return np.asarray(out)


def all_baselines(test_source, test_poses, train_source, train_binaural,
                  train_poses, *, n_fft: int = 512, hop_length: int = 128
                  ) -> dict[str, np.ndarray]:
  """All four baselines: ``{name: [B, 2, L]}`` for ``BASELINE_NAMES``."""
  return {
      "mono_mono": mono_mono(test_source),
      "mono_energy": mono_energy(test_source, train_source, train_binaural),
      "stereo_energy": stereo_energy(test_source, train_source, train_binaural),
      "nearest_pose": nearest_pose(test_source, test_poses, train_source,
                                   train_binaural, train_poses, n_fft=n_fft,
                                   hop_length=hop_length),
  }
