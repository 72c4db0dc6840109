"""Reverberation time of a simulated room: measured on an IR, and calibrated.

Uniform walls from an RT60 are calibrated: Sabine's formula assumes a diffuse
field, and the image-source decay of a shoebox is slower (axial and tangential
paths meet the walls less often), so the absorption is refined
(:func:`calibrate_absorption`) until the T30 measured on the omni IR at the
listeners' mean position is within 2% of the request. The scene metadata
records both absorptions and the measured RT60 (:func:`room_rt60`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .ears import omni_ir
from .room import ImageSources

__all__ = ["measure_rt60", "calibrate_absorption", "room_rt60"]


def measure_rt60(ir: np.ndarray, sample_rate: int, decay_db: float = 30.0,
                 iterations: int = 5) -> float:
  """RT60 from the Schroeder energy decay curve (EDC) of an impulse response.

  A straight line is least-squares fitted to the EDC (dB) from -5 dB down to
  -(5 + decay_db) dB and extrapolated to -60 dB (T30 by default; T20 or T10 when
  the IR does not decay that far, nan when not even 15 dB). The IR is
  finite, so the EDC of a truncated IR bends down near its end; the energy
  missing after the end is estimated from the fitted line (the EDC it predicts
  at the end) and added back, a few fixed-point rounds (a simplified Lundeby
  compensation).

  Args:
    ir: [T] impulse response.
    sample_rate: Hz.
    decay_db: fitting range below -5 dB.
    iterations: compensation rounds.
  Returns:
    RT60 in seconds (nan if the decay never reaches the fitting range).
  """
  h = np.asarray(ir, dtype=np.float64)
  start = int(np.argmax(np.abs(h)))
  e = h[start:] ** 2
  edc = np.cumsum(e[::-1])[::-1]
  if edc[0] <= 0:
    return float("nan")
  t = np.arange(edc.shape[0]) / sample_rate
  t_end = edc.shape[0] / sample_rate
  # Shorter ranges (T20, T10) only when the IR does not reach -(5 + decay_db) dB.
  for rng_db in [decay_db] + [d for d in (20.0, 10.0) if d < decay_db]:
    missing, rt60, ok = 0.0, float("nan"), False
    for _ in range(max(1, iterations)):
      edc_db = 10 * np.log10(np.maximum((edc + missing) / (edc[0] + missing), 1e-300))
      below = edc_db <= -(5.0 + rng_db)
      if not below.any():
        ok = False
        break
      i0 = int(np.argmax(edc_db <= -5.0))
      i1 = int(np.argmax(below))
      if i1 - i0 < 8:
        ok = False
        break
      slope, intercept = np.polyfit(t[i0:i1 + 1], edc_db[i0:i1 + 1], 1)
      if slope >= 0:
        ok = False
        break
      rt60, ok = float(-60.0 / slope), True
      # Energy after the end, as the fitted EDC predicts it (fraction of the total).
      frac = min(10 ** ((intercept + slope * t_end) / 10.0), 0.5)
      missing = frac * edc[0] / (1.0 - frac)
    if ok:
      return rt60
  return float("nan")


def calibrate_absorption(images: ImageSources, absorption: float, rt60: float,
                         position: Sequence[float], *, sample_rate: int, ir_seconds: float,
                         iterations: int = 4, tol: float = 0.02) -> tuple[float, float]:
  """Refine a uniform wall absorption so that the measured RT60 matches ``rt60``.

  Sabine's formula assumes a diffuse field; in a shoebox the image-source decay
  is slower (axial and tangential paths hit the walls less often), so the
  ``inverse_sabine`` absorption gives a longer measured RT60. Fixed-point steps
  on ``x = -ln(1 - absorption)`` (RT60 ~ 1 / x) correct it, measuring the T30 of
  the omni IR at ``position``; the image sources are reused (damping =
  sqrt(1 - absorption) ** order).

  Returns:
    (absorption, measured RT60 with it).
  """
  a = float(absorption)
  measured = float("nan")
  for _ in range(iterations):
    ir = omni_ir(images.with_absorption(a), position, sample_rate=sample_rate,
                 ir_seconds=ir_seconds)
    measured = measure_rt60(ir, sample_rate)
    if not math.isfinite(measured) or abs(measured / rt60 - 1.0) < tol:
      break
    x = -math.log1p(-a) * measured / rt60
    a = float(min(max(1.0 - math.exp(-x), 1e-4), 0.999))
  return a, measured


def room_rt60(images: ImageSources, position: Sequence[float], *, sample_rate: int,
              ir_seconds: float, tail: np.ndarray | None = None) -> float:
  """The RT60 a scene reports: measured on the omni IR at ``position`` plus the
  mean over the two ears of the ray-traced ``tail`` [2, L'] when there is one."""
  ref_ir = omni_ir(images, position, sample_rate=sample_rate, ir_seconds=ir_seconds)
  if tail is not None:
    n = min(ref_ir.shape[0], tail.shape[1])
    ref_ir[:n] += tail.mean(axis=0)[:n]
  return measure_rt60(ref_ir, sample_rate)
