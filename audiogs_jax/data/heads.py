"""Measured heads for the scene generator: SOFA HRIRs and image sources heard through them.

The default head is the MIT KEMAR dummy head with its normal pinna (Gardner & Martin
1994), shipped as package data (``audiogs_jax/data/hrtf/``, with its citation), so
nothing is downloaded. Any other head comes from a SOFA file in the
``SimpleFreeFieldHRIR`` convention (``--hrtf FILE.sofa``), read with h5py (SOFA files
are netCDF-4, i.e. HDF5).

How a room is heard (``hrir_ir``): every image source k of the room arrives from its
direction of arrival in the listener's head frame, with its distance delay
``r_k / c`` from the head centre, spherical spreading ``1 / (4 pi r_k)`` and wall
damping, through the HRIR pair of that direction. The HRIRs carry the interaural time
and level differences and the pinna cues themselves, so the ITD is the measured
head's, not a straight line between two points.

- Early arrivals (within ``early_seconds`` of the direct sound: the direct path and
  the first reflections, a few hundred images) use the HRIR of the nearest measured
  direction, delayed by the exact fractional delay (a linear-phase ramp on the HRIR's
  short spectrum).
- The dense late field uses a coarse set of directions (about 30 degrees apart):
  every late image is assigned to the nearest one through a lookup table on an
  azimuth/elevation grid, one impulse train per coarse direction (and octave band) is
  built with nearest-sample delays, and each train is filtered by its direction's HRTF.
  Cost per pose: one FFT per coarse direction and band, whatever the number of images.

Directions below the lowest measured elevation (-40 degrees for KEMAR) use the nearest
measured direction. The HRIRs' common onset delay is removed (the pair of the frontal
direction is centred on t = 0, i.e. delays are relative to the head centre as in the
room simulation).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import pathlib
from typing import Optional

import numpy as np
from scipy import fft as sfft
from scipy import signal as sps

__all__ = ["HRIRSet", "KEMAR_PATH", "load_sofa", "kemar", "load_head", "head_frame_directions",
           "nearest_direction", "hrir_ir", "EARS"]

#: The packaged MIT KEMAR (normal pinna) SOFA file.
KEMAR_PATH = pathlib.Path(__file__).with_name("hrtf") / "MIT_KEMAR_normal_pinna.sofa"
#: Ear models of the scene generator: a measured head (KEMAR or ``--hrtf``), or two
#: ear points with a spherical-head shadow filter ("cardioid").
EARS = ("kemar", "sofa", "cardioid")

_ONSET_FRACTION = 0.1        # onset: first sample above 10 % of the IR's peak
_LEAD_SAMPLES = 8            # kept before the earliest onset (at the SOFA rate)
_COARSE_STEP_DEG = 30.0      # late-field direction spacing
_GRID_DEG = 2.0              # azimuth/elevation lookup-table resolution


@dataclasses.dataclass(frozen=True, eq=False)
class HRIRSet:
  """A head's HRIRs at one sample rate.

  Attributes:
    directions: [D, 3] unit vectors of the measured directions in the head frame
      (SOFA's cartesian axes: x forward, y left, z up).
    irs: [D, 2, L] float64 impulse responses, channel 0 = left ear, resampled to
      ``sample_rate`` and shifted so that the frontal pair is centred on t = 0 at
      sample ``latency``.
    sample_rate: Hz.
    latency: fractional samples by which every IR is late relative to the head
      centre (the renderer places IR sample ``latency`` at the arrival time).
    name: a label (the SOFA file name).
  """

  directions: np.ndarray
  irs: np.ndarray
  sample_rate: int
  latency: float
  name: str

  @property
  def num_taps(self) -> int:
    return int(self.irs.shape[-1])


def _sofa_arrays(path: pathlib.Path):
  """(positions [D, 3] spherical degrees/metres or cartesian, type, IRs [D, 2, N], rate)."""
  try:
    import h5py
  except ImportError as e:  # a declared dependency; say which one is missing
    raise ValueError(f"{path}: reading SOFA files needs h5py ({e})") from None
  try:
    with h5py.File(path, "r") as f:
      conv = f.attrs.get("SOFAConventions", b"")
      conv = conv.decode() if isinstance(conv, bytes) else str(conv)
      if conv != "SimpleFreeFieldHRIR":
        raise ValueError(f"{path}: SOFA convention {conv!r}, expected SimpleFreeFieldHRIR")
      irs = np.asarray(f["Data.IR"], dtype=np.float64)
      rate = float(np.asarray(f["Data.SamplingRate"]).reshape(-1)[0])
      pos = np.asarray(f["SourcePosition"], dtype=np.float64)
      ptype = f["SourcePosition"].attrs.get("Type", b"spherical")
      ptype = ptype.decode() if isinstance(ptype, bytes) else str(ptype)
  except OSError as e:
    raise ValueError(f"{path}: not a readable SOFA (HDF5) file ({e})") from None
  except KeyError as e:
    raise ValueError(f"{path}: SOFA file lacks the variable {e}") from None
  if irs.ndim != 3 or irs.shape[1] != 2 or pos.shape != (irs.shape[0], 3):
    raise ValueError(f"{path}: expected Data.IR [M, 2, N] and SourcePosition [M, 3], "
                     f"got {irs.shape} and {pos.shape}")
  if not (np.all(np.isfinite(irs)) and np.all(np.isfinite(pos)) and rate > 0):
    raise ValueError(f"{path}: non-finite HRIRs, positions or sampling rate")
  return pos, ptype.lower(), irs, rate


def _unit_vectors(pos: np.ndarray, ptype: str) -> np.ndarray:
  if ptype.startswith("cartesian"):
    v = pos
  else:
    az, el = np.radians(pos[:, 0]), np.radians(pos[:, 1])
    v = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)
  return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def _onsets(irs: np.ndarray) -> np.ndarray:
  """[...] first sample index above ``_ONSET_FRACTION`` of each IR's peak."""
  a = np.abs(irs)
  return np.argmax(a >= _ONSET_FRACTION * a.max(axis=-1, keepdims=True), axis=-1)


def load_sofa(path: os.PathLike | str, sample_rate: int) -> HRIRSet:
  """Read a SimpleFreeFieldHRIR SOFA file and resample it to ``sample_rate``.

  Raises:
    ValueError: naming the file, when it is not such a SOFA file.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise ValueError(f"{path}: no such HRTF file")
  pos, ptype, irs, rate = _sofa_arrays(path)
  dirs = _unit_vectors(pos, ptype)
  onsets = _onsets(irs)                                            # [D, 2]
  front = int(np.argmax(dirs[:, 0]))
  start = max(0, int(onsets.min()) - _LEAD_SAMPLES)
  irs = irs[..., start:]
  latency_native = float(onsets[front].mean()) - start
  sr = int(sample_rate)
  g = math.gcd(int(round(rate)), sr)
  up, down = sr // g, int(round(rate)) // g
  if up != down:
    irs = sps.resample_poly(irs, up, down, axis=-1)
  return HRIRSet(directions=dirs, irs=np.ascontiguousarray(irs), sample_rate=sr,
                 latency=latency_native * sr / rate, name=path.name)


@functools.lru_cache(maxsize=8)
def _cached(path: str, sample_rate: int) -> HRIRSet:
  return load_sofa(path, sample_rate)


def kemar(sample_rate: int) -> HRIRSet:
  """The packaged MIT KEMAR (normal pinna) HRIRs at ``sample_rate`` (cached)."""
  return _cached(str(KEMAR_PATH), int(sample_rate))


def load_head(ears: str, hrtf: Optional[str], sample_rate: int) -> Optional[HRIRSet]:
  """The HRIR set for the generator's ``ears`` / ``hrtf`` options (None: cardioid)."""
  if hrtf:
    return _cached(str(pathlib.Path(hrtf).resolve()), int(sample_rate))
  if ears == "kemar":
    return kemar(sample_rate)
  if ears == "cardioid":
    return None
  raise ValueError(f"ears must be one of kemar, cardioid (or give an HRTF file), "
                   f"got {ears!r}")


def head_frame_directions(vectors: np.ndarray, pose: np.ndarray) -> np.ndarray:
  """World vectors [3, K] (from the head centre) -> head-frame (fwd, left, up) [3, K].

  ``pose`` [4, 4] is head-to-world with rotation columns right, up, backward.
  """
  rot = np.asarray(pose, dtype=np.float64)[:3, :3]
  right, up, back = rot[:, 0], rot[:, 1], rot[:, 2]
  return np.stack([-(back @ vectors), -(right @ vectors), up @ vectors])


def nearest_direction(dirs: np.ndarray, unit: np.ndarray) -> np.ndarray:
  """Index [K] of the nearest of ``dirs`` [D, 3] for unit vectors ``unit`` [3, K]."""
  return np.argmax(dirs @ unit, axis=0)


@functools.lru_cache(maxsize=8)
def _coarse(head: HRIRSet):
  """Coarse late-field directions: (indices into head.directions [Q], lookup [A, E])."""
  step = _COARSE_STEP_DEG
  wanted = []
  for el in np.arange(-90.0, 90.0 + 1e-9, step):
    n_az = max(1, int(round(360.0 * math.cos(math.radians(el)) / step)))
    for az in np.arange(n_az) * 360.0 / n_az:
      a, e = math.radians(az), math.radians(el)
      wanted.append([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
  q_idx = np.unique(nearest_direction(head.directions, np.asarray(wanted).T))
  az = np.radians(np.arange(-180.0, 180.0 + 1e-9, _GRID_DEG))
  el = np.radians(np.arange(-90.0, 90.0 + 1e-9, _GRID_DEG))
  a, e = np.meshgrid(az, el, indexing="ij")
  grid = np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)]).reshape(3, -1)
  table = nearest_direction(head.directions[q_idx], grid).reshape(a.shape)
  return q_idx, table


def _coarse_index(head: HRIRSet, fwd, left, up, dist) -> tuple[np.ndarray, np.ndarray]:
  q_idx, table = _coarse(head)
  az = np.arctan2(left, fwd)
  el = np.arcsin(np.clip(up / dist, -1.0, 1.0))
  ia = np.rint((np.degrees(az) + 180.0) / _GRID_DEG).astype(np.int64)
  ie = np.rint((np.degrees(el) + 90.0) / _GRID_DEG).astype(np.int64)
  return q_idx, table[ia, ie]


def _early_part(head: HRIRSet, unit, delays, gain, bands_short, length: int) -> np.ndarray:
  """[2, length] early arrivals, each through its nearest HRIR at its exact delay."""
  d = nearest_direction(head.directions, unit)                  # [K]
  taps = head.num_taps
  n = sfft.next_fast_len(2 * taps)
  spec = sfft.rfft(head.irs[d], n, axis=-1)                     # [K, 2, n/2+1]
  shift = delays - head.latency                                 # arrival of IR sample 0
  start = np.floor(shift).astype(np.int64)
  w = 2 * np.pi * np.fft.rfftfreq(n)
  ramp = np.exp(-1j * w[None, :] * (shift - start)[:, None])    # [K, n/2+1]
  weight = gain.T @ bands_short                                 # [K, n/2+1]
  ir = sfft.irfft(spec * (ramp * weight)[:, None, :], n, axis=-1)   # [K, 2, n]
  idx = start[:, None] + np.arange(n)[None, :]                  # [K, n]
  ok = (idx >= 0) & (idx < length)
  out = np.zeros((2, length))
  for e in range(2):
    out[e] = np.bincount(idx[ok], weights=ir[:, e, :][ok], minlength=length)
  return out


def hrir_ir(images, pose: np.ndarray, head: HRIRSet, *, sample_rate: int, length: int,
            c: float, early_seconds: float, band_weights) -> np.ndarray:
  """Ear impulse responses [2, length] of a room's image sources through a head.

  Args:
    images: ``room.ImageSources`` (positions [K, 3] metres, damping [B, K]).
    pose: [4, 4] head-to-world (rotation columns right, up, backward; centre).
    head: the HRIRs, at ``sample_rate``.
    sample_rate: Hz.
    length: output length in samples; arrivals later than that are dropped.
    c: speed of sound, m/s.
    early_seconds: arrivals within this of the direct sound get exact directions
      and fractional delays.
    band_weights: callable ``freqs [F] -> [B, F]`` crossover weights of the bands.
  Returns:
    [2, length] float64, row 0 = left ear.
  """
  if head.sample_rate != int(sample_rate):
    raise ValueError(f"HRIRs at {head.sample_rate} Hz for a {sample_rate} Hz scene")
  pose = np.asarray(pose, dtype=np.float64)
  vec = images.xyz - pose[:3, 3][:, None]                       # [3, K]
  fwd, left, up = head_frame_directions(vec, pose)
  dist = np.maximum(np.sqrt(fwd * fwd + left * left + up * up), 1e-3)
  delays = dist * (sample_rate / c)
  tail_room = head.num_taps + 2
  live = delays + tail_room < length
  gain = images.damping * (live / (4 * np.pi * dist))[None, :]  # [B, K]
  early = live & (delays <= delays.min() + early_seconds * sample_rate)
  late = live & ~early

  taps = head.num_taps
  bands_short = band_weights(np.fft.rfftfreq(sfft.next_fast_len(2 * taps), 1.0 / sample_rate))
  e_idx = np.flatnonzero(early)
  unit = np.stack([fwd, left, up])[:, e_idx] / dist[e_idx]
  out = _early_part(head, unit, delays[e_idx], gain[:, e_idx], bands_short, length)

  l_idx = np.flatnonzero(late)
  if l_idx.size:
    q_idx, q = _coarse_index(head, fwd[l_idx], left[l_idx], up[l_idx], dist[l_idx])
    nq, nb = len(q_idx), gain.shape[0]
    pos = np.rint(delays[l_idx] - head.latency).astype(np.int64)
    nfft = sfft.next_fast_len(length + taps)
    rows = (q[None, :] * nb + np.arange(nb)[:, None]) * nfft + pos[None, :]   # [B, K']
    trains = np.bincount(rows.ravel(), weights=gain[:, l_idx].ravel(),
                         minlength=nq * nb * nfft).reshape(nq, nb, nfft)
    spec = sfft.rfft(trains, axis=-1)                           # [Q, B, n/2+1]
    bands = band_weights(np.fft.rfftfreq(nfft, 1.0 / sample_rate))   # [B, n/2+1]
    spec = np.einsum("qbf,bf->qf", spec, bands)
    hrtf = sfft.rfft(head.irs[q_idx], nfft, axis=-1)            # [Q, 2, n/2+1]
    out += sfft.irfft(np.einsum("qf,qef->ef", spec, hrtf), nfft, axis=-1)[:, :length]
  return out
