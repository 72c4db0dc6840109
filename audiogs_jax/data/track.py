"""The binaural track of a moving listener: per-frame ear IRs, crossfaded.

The pose is piecewise constant in *listener (output) time*: output samples in
[t - 0.5, t + 0.5) s come from the source convolved with frame t's ear IRs (the
first segment starts at 0, the last runs to the end), with 20 ms raised-cosine
crossfades (weights summing to 1) between segments. The binaural track is
peak-normalised to 0.99 (:func:`frame_track` returns the gain).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import signal as sps

__all__ = ["segment_weights", "render_track", "frame_track"]

_CROSSFADE_SECONDS = 0.02
_BINAURAL_PEAK = 0.99


def segment_weights(boundaries: Sequence[int], num_samples: int,
                    crossfade: int) -> list[tuple[int, np.ndarray]]:
  """Crossfade weights of a piecewise-constant segmentation.

  Args:
    boundaries: [S - 1] increasing sample indices where segment s ends.
    num_samples: T.
    crossfade: ramp length in samples, centred on each boundary.
  Returns:
    S pairs (start, w): segment s has weight w [n_s] on samples
    [start, start + n_s); the weights of all segments sum to 1 everywhere.
  """
  edges = [0] + [int(b) for b in boundaries] + [int(num_samples)]
  half = crossfade // 2
  k = np.arange(crossfade)
  ramp = 0.5 - 0.5 * np.cos(np.pi * (k + 0.5) / max(crossfade, 1))  # ramp + rev(ramp) = 1
  out = []
  s_count = len(edges) - 1
  for s in range(s_count):
    lo = 0 if s == 0 else max(0, edges[s] - half)
    hi = num_samples if s == s_count - 1 else min(num_samples, edges[s + 1] - half + crossfade)
    n = np.arange(lo, hi)
    w = np.ones(hi - lo)
    if crossfade > 0:
      if s > 0:
        j = n - (edges[s] - half)
        m = (j >= 0) & (j < crossfade)
        w[m] *= ramp[j[m]]
      if s < s_count - 1:
        j = n - (edges[s + 1] - half)
        m = (j >= 0) & (j < crossfade)
        w[m] *= 1.0 - ramp[j[m]]
    out.append((lo, w))
  return out


def render_track(source: np.ndarray, irs, boundaries: Sequence[int],
                 crossfade: int) -> np.ndarray:
  """Binaural track for a piecewise-constant pose (in output time).

  Args:
    source: [T] source signal.
    irs: sequence of S arrays [2, L_s], the ear IRs of segments 0..S-1.
    boundaries: [S - 1] sample indices where segment s ends and s + 1 begins.
    crossfade: crossfade length in samples (raised cosine, weights sum to 1).
  Returns:
    [2, T] float64: output samples of segment s are ``(source * irs[s])``
    (full history of the source), crossfaded around the boundaries.
  """
  source = np.asarray(source, dtype=np.float64)
  t_len = source.shape[0]
  if len(boundaries) != len(irs) - 1:
    raise ValueError(f"need {len(irs) - 1} boundaries for {len(irs)} segments, "
                     f"got {len(boundaries)}")
  out = np.zeros((2, t_len))
  for (lo, w), ir in zip(segment_weights(boundaries, t_len, crossfade), irs):
    hi = lo + w.shape[0]
    if hi <= lo:
      continue
    ir = np.asarray(ir, dtype=np.float64)
    start = max(0, lo - ir.shape[1] + 1)
    seg = source[start:hi]
    y = sps.fftconvolve(seg[None, :], ir, axes=1)      # [2, len(seg) + L - 1]
    out[:, lo:hi] += w[None, :] * y[:, lo - start:hi - start]
  return out


def frame_track(source: np.ndarray, irs, times: np.ndarray,
                sample_rate: int) -> tuple[np.ndarray, float]:
  """The track of frames at ``times`` (seconds) with ear IRs ``irs``, each frame
  covering [t - 0.5, t + 0.5) s, 20 ms crossfades, peak-normalised.

  Args:
    source: [T] source signal.
    irs: S arrays [2, L], one per frame.
    times: [S] frame times in seconds.
    sample_rate: Hz.
  Returns:
    (binaural [2, T] float64 with peak 0.99, the gain applied).
  """
  sr = sample_rate
  boundaries = [int(round((t + 0.5) * sr)) for t in times[:-1]]
  binaural = render_track(source, irs, boundaries, int(round(_CROSSFADE_SECONDS * sr)))
  peak = float(np.max(np.abs(binaural)))
  gain = _BINAURAL_PEAK / peak if peak > 0 else 1.0
  binaural *= gain
  return binaural, gain
