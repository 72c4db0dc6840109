"""Where is the source? A robust fit to the training recordings' interaural times.

AudioGS's geometric phase correction gives each Gaussian the interaural time of its
position seen from the listener's head, so the Gaussians must start where the sound
comes from. Recordings carry that information: each training clip's ITD
(``interaural.itd``, GCC-PHAT) fixes the lateral angle of the source in that clip's
head frame (a cone of confusion), and the many poses of a scene intersect those cones.

``estimate_source`` scores every point of a grid over the listeners' bounding box
(expanded by its own size on each side) by the residual of the spherical-head
(Woodworth) model ``ITD = -k (asin(s) + s)``, ``s`` the lateral component of the unit
vector from the head centre to the point in the head frame (``right . v / |v|``),
and refines the best point on a finer grid around it. The residual is truncated at
``TOLERANCE_S`` per clip (a clip whose measured ITD is further from the model than
that counts as an outlier, whatever its distance), and the head-size factor ``k`` is
the best of ``HEAD_FACTORS_S`` (heads of 5-14 cm radius, so the head's size need not
be known). Only the direction of the point from each head matters, so the scene's
units do not either. No training is involved.

Why truncated: in a reverberant room with music a fair share of the clips' GCC-PHAT
peaks belong to reflections; least squares let them pull the estimate 1.46 m from
the source in the benchmark's living room (the listeners' centroid was 0.71 m
away), the truncated residual finds it within 0.31 m there and within 0.03 m in the
dry room and the hall, as least squares did (docs/results.md).
"""

from __future__ import annotations

import numpy as np

from audiogs_jax import interaural

__all__ = ["itd_model", "estimate_source"]

_GRID = 25          # points per axis of the coarse grid
_FINE = 15          # points per axis of the refinement grid
_MIN_LATERAL_US = 20.0
#: Per-clip ITD residual beyond which a clip counts as an outlier (seconds).
TOLERANCE_S = 100e-6
#: Candidate head-size factors ``k = a / c`` (seconds): radii 5.1-13.7 cm at 343 m/s.
HEAD_FACTORS_S = np.linspace(150e-6, 400e-6, 11)


def itd_model(points: np.ndarray, poses: np.ndarray) -> np.ndarray:
  """Woodworth ITD shape ``-(asin(s) + s)`` [P, N] of points [P, 3] seen from poses [N, 4, 4]."""
  v = points[:, None, :] - poses[None, :, :3, 3]                # [P, N, 3]
  right = poses[:, :3, 0]                                        # [N, 3]
  s = np.sum(v * right[None], axis=-1) / np.maximum(np.linalg.norm(v, axis=-1), 1e-9)
  s = np.clip(s, -1.0, 1.0)
  return -(np.arcsin(s) + s)


def _score(points: np.ndarray, poses: np.ndarray, itds: np.ndarray) -> np.ndarray:
  """Truncated residual sum of squares [P] of ``k itd_model`` for the best head
  factor ``k`` of ``HEAD_FACTORS_S`` (module docstring)."""
  w = itd_model(points, poses)                                   # [P, N]
  best = np.full(len(points), np.inf)
  for k in HEAD_FACTORS_S:                                       # 11 head sizes
    r = np.minimum((k * w - itds[None]) ** 2, TOLERANCE_S ** 2).sum(axis=-1)
    best = np.minimum(best, r)
  return best


def _grid(lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
  axes = [np.linspace(lo[j], hi[j], n) if hi[j] > lo[j] else np.array([lo[j]])
          for j in range(3)]
  return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def estimate_source(poses, binaural, sample_rate: float, *, itds=None) -> np.ndarray:
  """Source position [3] (scene units) from binaural clips and their head poses.

  Args:
    poses: [N, 4, 4] head-to-world (rotation columns right, up, backward).
    binaural: [N, 2, L] clips (ear 0 left), or None when ``itds`` is given.
    sample_rate: Hz.
    itds: optional [N] ITDs in seconds (left leading positive), instead of clips.
  Returns:
    [3] float64; the listeners' centroid when no clip has a measurable ITD.
  """
  poses = np.asarray(poses, dtype=np.float64)
  centres = poses[:, :3, 3]
  if itds is None:
    itds = interaural.itd(np.asarray(binaural), sample_rate)
  itds = np.asarray(itds, dtype=np.float64)
  if np.sum(np.abs(itds) > _MIN_LATERAL_US * 1e-6) < 3:
    return centres.mean(axis=0)
  lo, hi = centres.min(axis=0), centres.max(axis=0)
  size = np.maximum(hi - lo, 1e-3)
  flat = (hi - lo) < 1e-6 * np.max(size)             # e.g. every head at one height
  lo = np.where(flat, lo, lo - size)
  hi = np.where(flat, hi, hi + size)
  pts = _grid(lo, hi, _GRID)
  best = pts[np.argmin(_score(pts, poses, itds))]
  step = (hi - lo) / (_GRID - 1)
  pts = _grid(best - step, best + step, _FINE)
  return pts[np.argmin(_score(pts, poses, itds))]
