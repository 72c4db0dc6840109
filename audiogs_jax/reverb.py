"""Reverberation time: the blind RT60 estimator behind the RTE metric, and Schroeder's.

A recording of a room rarely contains a clean impulse response, so the RTE
metric (``docs/metrics.md``) estimates RT60 blindly from the free decays of the
signal itself: :func:`rt60_blind`, the estimator named by
:data:`ESTIMATOR_NAME` and described in :data:`ESTIMATOR_DESCRIPTION` (always
report the name with an RTE value: numbers from different estimators do not
compare). :func:`rt60_schroeder` is the textbook estimate when the impulse
response itself is known and noise-free (a simulator's).

- ``rte``  ``|RT60(p) - RT60(g)|`` per clip with :func:`rt60_blind` on the
  mono mix of the two ears, seconds.
- ``rt60_true_error``  ``|RT60(p) - rt60_true|`` against a simulator's RT60.

Inputs follow :mod:`audiogs_jax.waveforms` (``[B, 2, L]``, ``pred`` matched
to the target's length); outputs are float64 ``[B]``. The estimator is
numpy/scipy in float64 and loops over clips.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from audiogs_jax import waveforms

__all__ = [
    "ESTIMATOR_NAME", "ESTIMATOR_DESCRIPTION", "RT60_MIN", "RT60_MAX",
    "rt60_blind", "rt60_blind_batch", "rt60_schroeder", "rte", "rt60_true_error",
]

ESTIMATOR_NAME = "free-decay-schroeder-v1"
ESTIMATOR_DESCRIPTION = (
    "free-decay-schroeder-v1: blind broadband RT60 of the mono mix (mean of "
    "the ears). Energy envelope in 10 ms frames at a 5 ms hop, in dB, "
    "smoothed over 5 frames. Free decays start at envelope peaks of >= 10 dB "
    "prominence (from the last frame within 3 dB of the peak, so plateaus are "
    "skipped) and run until the envelope rises 3 dB above its running minimum "
    "(the next onset); a decay ends at its first frame within 3 dB of its "
    "lowest level, and when the envelope then stays there >= 100 ms that "
    "level is a noise floor whose mean energy is subtracted. Decays must last "
    ">= 100 ms. Each is Schroeder-integrated (backward cumulative frame "
    "energy) and a least-squares line is fitted to the EDC between -5 and "
    "-25 dB over frames >= 10 dB above the decay's end (limits truncation "
    "bias; >= 10 dB of EDC span required); RT60 = -60 dB / slope. Result: the "
    "median of the sharpest half of the per-decay estimates (slower decays "
    "are usually the source still playing). Fallback when no decay "
    "qualifies: peaks of >= 6 dB prominence, decays >= 50 ms with >= 5 dB "
    "drop, slope of a least-squares line through the smoothed dB envelope "
    "itself, same median; no decay at all (silence, stationary or dry "
    "signals) gives RT60_MIN. Always finite, clipped to [RT60_MIN, RT60_MAX] "
    "= [0.05, 5] s.")

RT60_MIN = 0.05
RT60_MAX = 5.0

# The estimator's thresholds, as ESTIMATOR_DESCRIPTION states them: a change
# to any of them is a new estimator and needs a new ESTIMATOR_NAME.
_FRAME_S = 0.010
_HOP_S = 0.005
_SMOOTH_FRAMES = 5
_PROMINENCE_DB = 10.0
_ONSET_DB = 3.0
_MIN_DECAY_S = 0.100
_FIT_DB = (-5.0, -25.0)
_END_MARGIN_DB = 10.0
_MIN_SPAN_DB = 10.0
_MIN_FIT_FRAMES = 4
_FLOOR_DB = 3.0
_FLOOR_S = 0.100
_RELAXED = (6.0, 0.050, 5.0)  # prominence dB, min decay s, min EDC span dB


def _frame_energy(x: np.ndarray, sample_rate: float) -> tuple[np.ndarray, float]:
  """Mean-square energy of 10 ms frames at a 5 ms hop (cumsum, no loop)."""
  n = max(1, int(round(_FRAME_S * sample_rate)))
  h = max(1, int(round(_HOP_S * sample_rate)))
  if x.shape[-1] < n:
    return np.zeros(0), h / sample_rate
  c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
  starts = np.arange(0, x.shape[-1] - n + 1, h)
  return (c[starts + n] - c[starts]) / n, h / sample_rate


def _fit_decay(e: np.ndarray, s_db: np.ndarray, p: int, q: int, noise: float,
               dt: float, min_span_db: float) -> float | None:
  """RT60 of the decay e[p..q] (inclusive) from its Schroeder curve, or None."""
  seg = np.maximum(e[p:q + 1] - noise, 0.0)
  if seg.size < 2 or seg[0] <= 0:
    return None
  edc = np.cumsum(seg[::-1])[::-1]
  with np.errstate(divide="ignore"):
    edc_db = 10.0 * np.log10(edc / edc[0])
  keep = (edc_db <= _FIT_DB[0]) & (edc_db >= _FIT_DB[1])
  keep &= s_db[p:q + 1] >= s_db[q] + _END_MARGIN_DB
  idx = np.nonzero(keep)[0]
  if idx.size < _MIN_FIT_FRAMES:
    return None
  span = edc_db[idx].max() - edc_db[idx].min()
  if span < min_span_db:
    return None
  slope = np.polyfit(idx * dt, edc_db[idx], 1)[0]  # dB per second
  if not np.isfinite(slope) or slope >= 0:
    return None
  return -60.0 / slope


def _fit_envelope(s_db: np.ndarray, p: int, q: int, dt: float,
                  min_span_db: float) -> float | None:
  """RT60 from a least-squares line through the smoothed dB envelope s[p..q]."""
  y = s_db[p:q + 1]
  if y.size < _MIN_FIT_FRAMES or y.max() - y.min() < min_span_db:
    return None
  slope = np.polyfit(np.arange(y.size) * dt, y, 1)[0]
  if not np.isfinite(slope) or slope >= 0:
    return None
  return -60.0 / slope


def _decay_estimates(e: np.ndarray, s_db: np.ndarray, dt: float, *,
                     prominence_db: float, min_decay_s: float,
                     min_span_db: float, schroeder: bool = True) -> list[float]:
  """Per-free-decay RT60 estimates of one clip (see ESTIMATOR_DESCRIPTION)."""
  low = s_db.min() - 2.0 * prominence_db  # lets a decay start at frame 0
  peaks, _ = scipy.signal.find_peaks(np.r_[low, s_db, low], prominence=prominence_db)
  peaks = peaks - 1
  min_len = int(np.ceil(min_decay_s / dt))
  plateau_len = int(np.ceil(_FLOOR_S / dt))
  out = []
  for p in peaks:
    tail = s_db[p:]
    runmin = np.minimum.accumulate(tail)
    rise = np.nonzero(tail > runmin + _ONSET_DB)[0]
    stop = int(rise[0]) if rise.size else tail.size  # next onset (exclusive)
    low_db = tail[:stop].min()
    # End of the decay: first frame within 3 dB of the lowest level before the
    # next onset. A long stretch after it at that level is a noise floor.
    q = int(np.nonzero(tail[:stop] <= low_db + _FLOOR_DB)[0][0])
    noise = float(np.mean(e[p + q:p + stop])) if stop - q >= plateau_len else 0.0
    # Start of the decay: last frame within 3 dB of the peak (skips plateaus).
    p0 = int(np.nonzero(tail[:q + 1] >= tail[0] - _FLOOR_DB)[0][-1])
    if q - p0 < min_len:
      continue
    if schroeder:
      rt = _fit_decay(e, s_db, p + p0, p + q, noise, dt, min_span_db)
    else:
      rt = _fit_envelope(s_db, p + p0, p + q, dt, min_span_db)
    if rt is not None:
      out.append(rt)
  return out


def rt60_blind(x, sample_rate: float) -> float:
  """Blind RT60 (seconds) of a signal, ``free-decay-schroeder-v1``.

  Args:
    x: ``[L]`` mono or ``[C, L]`` (e.g. the two ears; averaged to mono).
    sample_rate: Hz.

  Returns:
    RT60 in seconds, finite, clipped to ``[RT60_MIN, RT60_MAX]``. See
    :data:`ESTIMATOR_DESCRIPTION` for the algorithm.
  """
  x = np.asarray(x, dtype=np.float64)
  if x.ndim == 2:
    x = x.mean(axis=0)
  if x.ndim != 1:
    raise ValueError(f"x must be [L] or [C, L], got {x.shape}")
  e, dt = _frame_energy(x, sample_rate)
  if e.size < 3 or not np.any(e > 0):
    return RT60_MIN
  floor = e.max() * 1e-12  # -120 dB: keeps log finite in digital silence
  l_db = 10.0 * np.log10(e + floor)
  k = min(_SMOOTH_FRAMES, e.size)
  padded = np.pad(l_db, (k // 2, k - 1 - k // 2), mode="edge")
  s_db = np.convolve(padded, np.ones(k) / k, mode="valid")
  est = _decay_estimates(e, s_db, dt, prominence_db=_PROMINENCE_DB,
                         min_decay_s=_MIN_DECAY_S, min_span_db=_MIN_SPAN_DB)
  if not est:  # fallback: relaxed thresholds
    est = _decay_estimates(e, s_db, dt, prominence_db=_RELAXED[0],
                           min_decay_s=_RELAXED[1], min_span_db=_RELAXED[2],
                           schroeder=False)
  if not est:
    return RT60_MIN
  est = np.sort(np.asarray(est))
  rt = float(np.median(est[:max(1, (est.size + 1) // 2)]))
  return float(np.clip(rt, RT60_MIN, RT60_MAX))


def rt60_blind_batch(x, sample_rate: float) -> np.ndarray:
  """:func:`rt60_blind` of each clip of ``[B, C, L]`` (or ``[B, L]``) -> ``[B]``."""
  x = np.asarray(x)
  return np.array([rt60_blind(xi, sample_rate) for xi in x], dtype=np.float64)


def rt60_schroeder(ir, sample_rate: float, *, fit_db: tuple[float, float] | None = None):
  """RT60 (seconds) of an impulse response by Schroeder backward integration.

  The energy decay curve ``EDC(t) = sum_{tau >= t} h(tau)^2`` (in dB re its
  start) is fitted by least squares between -5 and -35 dB (T30) when the EDC
  reaches -45 dB (10 dB of margin before the end of the response, where the
  backward integral is truncated), else between -5 and -25 dB (T20) if it
  reaches -35 dB, else between -5 dB and 10 dB above its lowest level; the
  slope is extrapolated to -60 dB. Assumes a noise-free response (simulated);
  no noise-floor compensation. ``fit_db=(hi, lo)`` forces the fit range.

  Args:
    ir: ``[..., L]``; leading axes are separate responses.
    sample_rate: Hz.

  Returns:
    float for a 1-D ``ir``, else an array of the leading shape. NaN when the
    response has no usable decay (e.g. all zeros).
  """
  ir = np.asarray(ir, dtype=np.float64)
  if ir.ndim > 1:
    flat = ir.reshape(-1, ir.shape[-1])
    out = np.array([rt60_schroeder(h, sample_rate, fit_db=fit_db) for h in flat])
    return out.reshape(ir.shape[:-1])
  energy = ir ** 2
  edc = np.cumsum(energy[::-1])[::-1]
  if edc[0] <= 0:
    return float("nan")
  with np.errstate(divide="ignore"):
    edc_db = 10.0 * np.log10(edc / edc[0])
  finite_min = edc_db[np.isfinite(edc_db)].min()
  if fit_db is None:
    if finite_min <= -45.0:
      fit_db = (-5.0, -35.0)
    elif finite_min <= -35.0:
      fit_db = (-5.0, -25.0)
    else:
      fit_db = (-5.0, finite_min + 10.0)
  hi, lo = fit_db
  idx = np.nonzero((edc_db <= hi) & (edc_db >= lo))[0]
  if idx.size < 2:
    return float("nan")
  slope = np.polyfit(idx / float(sample_rate), edc_db[idx], 1)[0]
  if not np.isfinite(slope) or slope >= 0:
    return float("nan")
  return float(-60.0 / slope)


def rte(pred, target, sample_rate: float) -> np.ndarray:
  """``|rt60_blind(p) - rt60_blind(g)|`` per clip ``[B]`` (mono mixes), seconds."""
  pred, target = waveforms.pair(pred, target)
  return np.abs(rt60_blind_batch(pred, sample_rate)
                - rt60_blind_batch(target, sample_rate))


def rt60_true_error(pred, rt60_true, sample_rate: float) -> np.ndarray:
  """``|rt60_blind(p) - rt60_true|`` per clip ``[B]``; ``rt60_true`` scalar or ``[B]``."""
  pred = waveforms.as_batch(pred, "pred")
  true = np.broadcast_to(np.asarray(rt60_true, dtype=np.float64), (pred.shape[0],))
  return np.abs(rt60_blind_batch(pred, sample_rate) - true)
