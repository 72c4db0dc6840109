"""Ear impulse responses of a room's image sources for one head pose.

Measured heads (``ears="kemar"`` or a SOFA file): every image source is heard
through the HRIRs of its direction of arrival (:func:`heads.hrir_ir`).

Cardioid ears (``ears="cardioid"``): the head centre ``c`` has a rotation ``R``
(head-to-world, columns right, up, backward); the ears sit at ``c - a * right``
(left, channel 0) and ``c + a * right`` (right, channel 1), ``a = head_radius``.
For each ear and each image k at distance ``r_k`` from that ear:

- delay ``tau_k = r_k / c_sound`` exactly (fractional; a Hann-windowed sinc of
  32 taps for arrivals within ``_SINC_SECONDS`` of the direct sound, the dense
  late field rounded to the nearest sample). The ITD therefore comes from the
  ear positions: straight-line paths, no diffraction path around the head.
- gain ``damping_k / (4 pi r_k)`` (spherical spreading, wall losses).
- head shadow: the spherical-head model of Brown & Duda (1998),
  ``H(w, theta) = (1 + j alpha(theta) w / (2 w0)) / (1 + j w / (2 w0))``,
  ``w0 = c_sound / a``, ``alpha(theta) = 1.05 + 0.95 cos(theta * 180/150 deg)``,
  theta = angle between the arrival direction (from the ear towards the image)
  and the ear's outward axis (-right for the left ear, +right for the right).
  alpha = 2 (+6 dB at high frequencies) facing the ear, 0.1 (-20 dB) at 150 deg.
  Because H is affine in alpha, ``H = LP + alpha * HP`` with
  ``LP = 1 / (1 + j w/2w0)`` and ``HP = (j w/2w0) / (1 + j w/2w0)``; each ear's IR
  is ``LP * train + HP * alpha_train`` where ``train`` is the impulse train of
  all arrivals and ``alpha_train`` the same train weighted by alpha(theta_k):
  two filters per ear (per band), whatever the number of images, applied as a
  product of spectra (FFT). Brown & Duda's onset-delay (head-diffraction) and
  pinna terms are not modelled.

Multi-band materials: one pair of trains per octave band, combined with
complementary (sum-to-one) crossover weights, piecewise linear in log frequency.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import fft as sfft

from . import heads
from .room import SPEED_OF_SOUND, ImageSources
from .trajectory import ear_positions

__all__ = ["binaural_ir", "omni_ir"]

_SINC_HALF = 16            # windowed-sinc fractional delay: 2 * 16 taps
_SINC_SECONDS = 0.05       # sinc interpolation for arrivals within 50 ms of the direct sound


def _band_weights(centres: np.ndarray, freqs: np.ndarray) -> np.ndarray:
  """[B, F] complementary crossover weights (sum to 1), linear in log2 f."""
  b = len(centres)
  if b == 1:
    return np.ones((1, freqs.shape[0]))
  lf = np.log2(np.maximum(freqs, 1.0))
  lc = np.log2(centres)
  w = np.zeros((b, freqs.shape[0]))
  for i in range(b):
    col = np.zeros(b)
    col[i] = 1.0
    w[i] = np.interp(lf, lc, col)  # clamps to 1 below the first / above the last
  return w


def _trains(delays: np.ndarray, weights: np.ndarray, length: int,
            early: np.ndarray) -> np.ndarray:
  """Impulse trains with fractional delays.

  Args:
    delays: [K] arrival times in samples, all < length - 16 (or weight 0).
    weights: [M, K] amplitude of each arrival in each of M trains.
    length: output length in samples.
    early: [K'] int indices of the arrivals rendered with the 32-tap Hann-windowed
      sinc; all others are rounded to the nearest sample.
  Returns:
    [M, length] float64.
  """
  m = weights.shape[0]
  # Nearest-sample part (every arrival; the early ones get weight 0 here).
  idx = np.minimum(np.rint(delays).astype(np.int64), length - 1)
  late_w = weights.copy()
  late_w[:, early] = 0.0
  offs = (np.arange(m, dtype=np.int64) * length)[:, None]
  out = np.bincount((idx[None, :] + offs).ravel(), weights=late_w.ravel(),
                    minlength=m * length).reshape(m, length)
  # Windowed-sinc part.
  if early.size:
    d = delays[early]
    taps = np.arange(-_SINC_HALF + 1, _SINC_HALF + 1)
    tidx = np.floor(d).astype(np.int64)[:, None] + taps[None, :]     # [K', 2H]
    x = tidx - d[:, None]
    kern = np.sinc(x) * (0.5 + 0.5 * np.cos(np.pi * x / _SINC_HALF))
    tidx = np.clip(tidx, 0, length - 1)
    w = weights[:, early][:, :, None] * kern[None]                   # [M, K', 2H]
    out += np.bincount((tidx[None] + offs[:, :, None]).ravel(), weights=w.ravel(),
                       minlength=m * length).reshape(m, length)
  return out


def _add_tail(out: np.ndarray, tail: np.ndarray | None) -> np.ndarray:
  """``out`` [2, L] with the first samples of ``tail`` [2, L'] added in place."""
  if tail is not None:
    n = min(out.shape[1], tail.shape[1])
    out[:, :n] += tail[:, :n]
  return out


def _cardioid_ir(images: ImageSources, pose: np.ndarray, *, sample_rate: int, length: int,
                 head_radius: float, c: float, head_shadow: bool) -> np.ndarray:
  """[2, length] IRs at the two ear points, with or without the head-shadow filter."""
  ears = ear_positions(pose, head_radius)
  right = pose[:3, 0]
  nfft = sfft.next_fast_len(length + 256)
  freqs = np.fft.rfftfreq(nfft, 1.0 / sample_rate)
  bands = _band_weights(images.band_centres, freqs)        # [B, F]
  nb = images.damping.shape[0]
  xs, ys, zs = images.xyz
  limit = length - _SINC_HALF - 1
  out = np.zeros((2, length))
  for e, (ear, outward) in enumerate(zip(ears, (-right, right))):
    dx, dy, dz = xs - ear[0], ys - ear[1], zs - ear[2]
    dist = np.sqrt(dx * dx + dy * dy + dz * dz)
    np.maximum(dist, 1e-3, out=dist)
    delays = dist * (sample_rate / c)
    inv = (delays < limit) / (4 * np.pi * dist)              # 0 for too-late arrivals
    np.minimum(delays, limit, out=delays)
    gain = images.damping * inv[None, :]                      # [B, K]
    early = np.flatnonzero(delays <= delays.min() + _SINC_SECONDS * sample_rate)
    if not head_shadow:
      f = sfft.rfft(_trains(delays, gain, length, early), nfft, axis=1)
      spec = np.sum(bands * f, axis=0)
    else:
      cos_t = (dx * outward[0] + dy * outward[1] + dz * outward[2]) / dist
      np.clip(cos_t, -1.0, 1.0, out=cos_t)
      alpha = 1.05 + 0.95 * np.cos(np.arccos(cos_t) * (180.0 / 150.0))
      f = sfft.rfft(_trains(delays, np.concatenate([gain, gain * alpha[None, :]]),
                            length, early), nfft, axis=1)
      jw = 1j * 2 * np.pi * freqs * head_radius / (2.0 * c)   # j w / (2 w0)
      lp = 1.0 / (1.0 + jw)
      hp = jw * lp
      spec = np.sum(bands * (lp[None] * f[:nb] + hp[None] * f[nb:]), axis=0)
    out[e] = sfft.irfft(spec, nfft)[:length]
  return out


def binaural_ir(images: ImageSources, pose: np.ndarray, *, sample_rate: int,
                ir_seconds: float, head_radius: float = 0.0875,
                c: float = SPEED_OF_SOUND, head_shadow: bool = True,
                tail: np.ndarray | None = None, head=None) -> np.ndarray:
  """Ear impulse responses for one head pose (see the module docstring).

  With ``head`` (a ``heads.HRIRSet``) every image source is heard through the
  measured HRIRs of its direction (``heads.hrir_ir``) and ``head_radius`` /
  ``head_shadow`` are unused; without it, the two ear points with the spherical-head
  shadow filter ("cardioid" ears).

  Args:
    images: the room's image sources.
    pose: [4, 4] head-to-world (columns right, up, backward, centre).
    sample_rate: Hz.
    ir_seconds: IR duration; later arrivals are dropped.
    head_radius: metres.
    c: speed of sound (m/s).
    head_shadow: apply the Brown & Duda head-shadow filter (False: free field
      at the two ear points).
    tail: optional [2, L'] late tail added to the IRs.
    head: the measured head, or None (cardioid ears).
  Returns:
    [2, L] float64 with L = ceil(ir_seconds * sample_rate) + 32; row 0 = left ear.
  """
  pose = np.asarray(pose, dtype=np.float64)
  length = int(math.ceil(ir_seconds * sample_rate)) + 2 * _SINC_HALF
  if head is not None:
    out = heads.hrir_ir(images, pose, head, sample_rate=sample_rate, length=length, c=c,
                        early_seconds=_SINC_SECONDS,
                        band_weights=lambda fr: _band_weights(images.band_centres, fr))
  else:
    out = _cardioid_ir(images, pose, sample_rate=sample_rate, length=length,
                       head_radius=head_radius, c=c, head_shadow=head_shadow)
  return _add_tail(out, tail)


def omni_ir(images: ImageSources, position: Sequence[float], *, sample_rate: int,
            ir_seconds: float, c: float = SPEED_OF_SOUND) -> np.ndarray:
  """Omnidirectional IR at one point (no head): [ceil(ir_seconds*sr) + 32] float64."""
  pose = np.eye(4)
  pose[:3, 3] = position
  return binaural_ir(images, pose, sample_rate=sample_rate, ir_seconds=ir_seconds,
                     head_radius=0.0, c=c, head_shadow=False)[0]
