"""Physically simulated binaural scenes, written in the RWAVS layout.

    python -m audiogs_jax.data.synth --out DIR [--seconds 60 --rt60 0.5 ...]

writes ``DIR/<scene>/`` (``binaural_syn_re.wav``, ``source_syn_re.wav``,
``transforms_scale_{train,val}.json``, ``transforms_{train,val}.json``,
``scene_meta.json``) and merges the source position into ``DIR/position.json``,
so that :func:`audiogs_jax.data.rwavs.load` reads it like a real RWAVS scene.

Acoustic model
==============
Room. A shoebox room simulated with pyroomacoustics: wall absorption from a
target RT60 through ``pyroomacoustics.inverse_sabine`` (or named materials), and
the image-source method (``room.image_source_model()``) which gives every image
source's position and its wall damping (the product of the amplitude reflection
coefficients of the walls it bounced on, per octave band for named materials).
The image sources do not depend on the listener, so they are computed once per
scene. The IRs are ``ir_seconds`` long (default RT60 + 50 ms) and the image
order is what fills them; images that cannot arrive in time are dropped. The
image count grows as ``ir_seconds ** 3``: without ray tracing the default IR is
capped at what ~1e6 images cover (0.8 s in a 6 x 5 x 3 m room; a warning says
so, and an RT60 whose -40 dB point lies beyond that is refused: use ray tracing).
Uniform walls from an RT60 are then calibrated: Sabine's formula assumes a
diffuse field, and the image-source decay of a shoebox is slower (axial and
tangential paths meet the walls less often; T30 0.62 s for a 0.5 s request in a
6 x 5 x 3 m room), so the absorption is refined (:func:`calibrate_absorption`) until
the T30 measured on the omni IR at the listeners' mean position is within 2% of
the request. ``scene_meta.json`` records both absorptions and the measured RT60.

Ears. The head centre ``c`` has a rotation ``R`` (head-to-world, columns right,
up, backward); the ears sit at ``c - a * right`` (left, channel 0) and
``c + a * right`` (right, channel 1), ``a = head_radius``. For each ear and each
image k at distance ``r_k`` from that ear:

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
- multi-band materials: one pair of trains per octave band, combined with
  complementary (sum-to-one) crossover weights, piecewise linear in log frequency.
- optional ray tracing (``ray_tracing=True``): the image-source part is kept to
  low order (``max_order=3`` unless given), and a late tail computed once by the
  pyroomacoustics hybrid simulator (ISM + ray tracing minus ISM alone) at the ears
  of the trajectory's mean position is added to every frame's IRs (a diffuse tail,
  decorrelated between ears, identical for all poses).

Listener. Poses at 1 frame per second, frame times t = 1..seconds (files
``frames/00001.png``...; no images are written). The head centre follows a
``random_walk``, ``circle`` or ``grid`` trajectory at ~1.5 m height, kept at
least 0.5 m from every wall and 0.5 m (horizontally) from the source. Head yaw
``follow`` (the direction of motion), ``random`` or ``fixed`` (facing +x), with an
optional random pitch up to ``pitch_deg``.

Coordinates. World = pyroomacoustics room coordinates in metres, ``z`` up,
origin at a floor corner. A head with yaw psi (about +z, psi = 0 facing +x) and
pitch phi (positive looks up) has forward ``f = (cos phi cos psi,
cos phi sin psi, sin phi)``, right ``r = (sin psi, -cos psi, 0)``, up ``u = r x f``,
and the pose's rotation columns are ``[r, u, -f]`` (OpenGL: right, up, backward;
orthonormal, det +1).

Track. The pose is piecewise constant in *listener (output) time*: output samples
in [t - 0.5, t + 0.5) s come from the source convolved with frame t's ear IRs
(the first segment starts at 0, the last runs to the end), with 20 ms
raised-cosine crossfades (weights summing to 1) between segments. The audio is
``seconds + 0.5`` s long so that the last frame has a full centred clip. The
binaural WAV is peak-normalised to 0.99 (the gain is ``binaural_peak_gain`` in
``scene_meta.json``); the source WAV holds the source signal (peak 0.9) on the
same time axis; both PCM_16.

Scaled poses (``transforms_scale_*``): ``p_scaled = (p - centre) / metres_per_unit``
with ``centre`` the middle of the bounding box of all head positions and the source
and ``metres_per_unit`` its largest half-extent (at least 0.25 m), so everything
lies in [-1, 1]^3; rotations unchanged. ``position.json`` holds the source in
these scaled coordinates.

Train/val split: frame i (0-based) goes to val when
``floor((i + 1) * val_fraction) > floor(i * val_fraction)`` (every 5th frame for 0.2).

Everything is deterministic for a seed (identical bytes).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile
import time
import warnings
from typing import Any, Sequence

import numpy as np
from scipy import fft as sfft
from scipy import signal as sps

from . import heads
from .scene import DataError, read_json
from .signals import SIGNALS, make_signal

__all__ = [
    "GENERATOR_VERSION",
    "SPEED_OF_SOUND",
    "ImageSources",
    "head_pose",
    "make_trajectory",
    "make_yaws",
    "sabine_rt60",
    "sabine_rt60_bands",
    "ism_seconds_budget",
    "build_room",
    "image_sources",
    "ear_positions",
    "binaural_ir",
    "omni_ir",
    "measure_rt60",
    "calibrate_absorption",
    "segment_weights",
    "render_track",
    "split_is_val",
    "generate_scene",
    "ensure_scene",
    "main",
]

GENERATOR_VERSION = "2.0"
SPEED_OF_SOUND = 343.0
_SINC_HALF = 16            # windowed-sinc fractional delay: 2 * 16 taps
_SINC_SECONDS = 0.05       # sinc interpolation for arrivals within 50 ms of the direct sound
_CROSSFADE_SECONDS = 0.02
_BINAURAL_PEAK = 0.99
_WALL_MARGIN = 0.5
_SOURCE_MARGIN = 0.5
_HEAD_HEIGHT = 1.5
_MAX_IMAGES = 1_000_000    # image-source budget of a scene without ray tracing
_MAX_IR_SECONDS = 2.0


# ============================================================================ poses

def head_pose(position: Sequence[float], yaw: float, pitch: float = 0.0) -> np.ndarray:
  """Head-to-world pose for a head centre, yaw and pitch (radians).

  Args:
    position: [3] head centre in world coordinates (z up).
    yaw: rotation about world +z; 0 faces +x, pi/2 faces +y.
    pitch: positive looks up.
  Returns:
    [4, 4] float64, rotation columns right, up, backward (OpenGL), det +1.
  """
  cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
  forward = np.array([cp * cy, cp * sy, sp])
  right = np.array([sy, -cy, 0.0])
  up = np.cross(right, forward)
  pose = np.eye(4)
  pose[:3, 0] = right
  pose[:3, 1] = up
  pose[:3, 2] = -forward
  pose[:3, 3] = np.asarray(position, dtype=np.float64)
  return pose


def ear_positions(pose: np.ndarray, head_radius: float) -> np.ndarray:
  """Ear positions [2, 3] (left = centre - a * right, right = centre + a * right)."""
  pose = np.asarray(pose, dtype=np.float64)
  right, centre = pose[:3, 0], pose[:3, 3]
  return np.stack([centre - head_radius * right, centre + head_radius * right])


def _bounds(room_dim: Sequence[float], margin: float) -> tuple[np.ndarray, np.ndarray]:
  dim = np.asarray(room_dim, dtype=np.float64)
  lo, hi = np.full(3, margin), dim - margin
  if np.any(hi[:2] <= lo[:2]):
    raise ValueError(f"room {tuple(dim)} is too small for a {margin} m margin to "
                     f"the walls")
  return lo, hi


def _head_height(room_dim: Sequence[float]) -> float:
  h = float(room_dim[2])
  if h - _WALL_MARGIN >= _HEAD_HEIGHT:
    return _HEAD_HEIGHT
  return max(min(_HEAD_HEIGHT, h - _WALL_MARGIN), h / 2.0)


def _far_from_source(p: np.ndarray, source_pos: np.ndarray) -> bool:
  return float(np.hypot(*(p[:2] - source_pos[:2]))) >= _SOURCE_MARGIN


def make_trajectory(kind: str, num_frames: int, room_dim: Sequence[float],
                    source_pos: Sequence[float], rng: np.random.Generator) -> np.ndarray:
  """Head-centre positions, one per frame (1 s apart).

  Args:
    kind: "random_walk" (0.3-0.7 m per second, smoothly turning, bouncing off
      the margins), "circle" (around the room centre, one lap per 20 s) or
      "grid" (a serpentine raster over the floor, cycled when too short).
    num_frames: number of positions.
    room_dim: [3] room size in metres.
    source_pos: [3] source position; positions stay >= 0.5 m from it (horizontally).
    rng: random generator.
  Returns:
    [num_frames, 3] float64, >= 0.5 m from every wall, height ~1.5 m.
  """
  lo, hi = _bounds(room_dim, _WALL_MARGIN)
  src = np.asarray(source_pos, dtype=np.float64)
  z = _head_height(room_dim)
  n = int(num_frames)

  def ok(p):
    return np.all(p[:2] >= lo[:2]) and np.all(p[:2] <= hi[:2]) and _far_from_source(p, src)

  def random_point():
    for _ in range(1000):
      p = np.array([rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1]), z])
      if ok(p):
        return p
    raise ValueError(f"no listener position >= {_SOURCE_MARGIN} m from the source "
                     f"{src.tolist()} fits in room {list(room_dim)}")

  if kind == "random_walk":
    pts = [random_point()]
    heading = rng.uniform(-np.pi, np.pi)
    for _ in range(n - 1):
      p = pts[-1]
      heading += rng.normal(0.0, 0.6)
      step = rng.uniform(0.3, 0.7)
      new = None
      for attempt in range(24):
        d = step * np.array([math.cos(heading), math.sin(heading), 0.0])
        cand = p + d
        # Reflect off the margins.
        for ax in range(2):
          if cand[ax] < lo[ax]:
            cand[ax] = 2 * lo[ax] - cand[ax]
          elif cand[ax] > hi[ax]:
            cand[ax] = 2 * hi[ax] - cand[ax]
        cand[:2] = np.clip(cand[:2], lo[:2], hi[:2])
        if ok(cand):
          new = cand
          heading = math.atan2(cand[1] - p[1], cand[0] - p[0]) if \
              np.hypot(*(cand[:2] - p[:2])) > 1e-9 else heading
          break
        heading += np.pi / 2 * (1 if attempt % 2 == 0 else -1) + rng.normal(0, 0.3)
      pts.append(p.copy() if new is None else new)
    return np.stack(pts)

  if kind == "circle":
    centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, z])
    r_max = float(min(hi[0] - lo[0], hi[1] - lo[1]) / 2)
    phase0 = rng.uniform(0, 2 * np.pi)
    ang = phase0 + 2 * np.pi * np.arange(n) / 20.0
    for frac in (0.8, 0.6, 1.0, 0.4, 0.9, 0.7, 0.5, 0.3):
      r = frac * r_max
      pts = centre + r * np.stack([np.cos(ang), np.sin(ang), np.zeros(n)], axis=1)
      if all(ok(p) for p in pts):
        return pts
    # Push offending points radially away from the source.
    r = 0.8 * r_max
    pts = centre + r * np.stack([np.cos(ang), np.sin(ang), np.zeros(n)], axis=1)
    for i, p in enumerate(pts):
      if not ok(p):
        pts[i] = random_point()
    return pts

  if kind == "grid":
    ext = hi[:2] - lo[:2]
    target = max(n, 4)
    nx = max(2, int(round(math.sqrt(target * ext[0] / ext[1]))))
    ny = max(2, int(math.ceil(target / nx)))
    xs = np.linspace(lo[0], hi[0], nx)
    ys = np.linspace(lo[1], hi[1], ny)
    pts = []
    for j, yv in enumerate(ys):
      row = xs if j % 2 == 0 else xs[::-1]
      pts.extend(np.array([xv, yv, z]) for xv in row)
    pts = [p for p in pts if ok(p)]
    if not pts:
      raise ValueError("grid trajectory: every grid point is too close to the source")
    cycle = pts + pts[-2:0:-1]  # back and forth
    return np.stack([cycle[i % len(cycle)] for i in range(n)])

  raise ValueError(f"unknown trajectory {kind!r}; expected random_walk, circle or grid")


def make_yaws(mode: str, positions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Head yaw per frame (radians, about +z, 0 faces +x).

  Args:
    mode: "follow" (direction of motion towards the next frame; the last frame
      keeps the previous yaw; standing still keeps the yaw), "random" (uniform)
      or "fixed" (0).
    positions: [N, 3].
  Returns:
    [N] float64.
  """
  n = positions.shape[0]
  if mode == "fixed":
    return np.zeros(n)
  if mode == "random":
    return rng.uniform(-np.pi, np.pi, size=n)
  if mode == "follow":
    yaws = np.zeros(n)
    prev = 0.0
    for i in range(n):
      j = i + 1 if i + 1 < n else i
      d = positions[j] - positions[j - 1] if j > 0 else np.zeros(3)
      if np.hypot(d[0], d[1]) > 1e-6:
        prev = math.atan2(d[1], d[0])
      yaws[i] = prev
    return yaws
  raise ValueError(f"unknown yaw mode {mode!r}; expected follow, random or fixed")


# ============================================================================ room

@dataclasses.dataclass
class ImageSources:
  """The image sources of one source in one room.

  Attributes:
    positions: [K, 3] image positions (world, metres).
    damping: [B, K] wall damping per band (amplitude factor).
    band_centres: [B] band centre frequencies in Hz (B = 1: broadband).
    orders: [K] reflection order.
  """

  positions: np.ndarray
  damping: np.ndarray
  band_centres: np.ndarray
  orders: np.ndarray

  def __post_init__(self):
    self.positions = np.asarray(self.positions, dtype=np.float64)
    self.damping = np.atleast_2d(np.asarray(self.damping, dtype=np.float64))
    self.xyz = np.ascontiguousarray(self.positions.T)   # [3, K] for fast maths

  def __len__(self) -> int:
    return int(self.positions.shape[0])

  def with_absorption(self, absorption: float) -> "ImageSources":
    """Same images, broadband damping recomputed for a uniform energy absorption:
    ``sqrt(1 - absorption) ** order``."""
    damp = np.sqrt(1.0 - float(absorption)) ** self.orders.astype(np.float64)
    return ImageSources(self.positions, damp[None, :], np.zeros(1), self.orders)


def _materials(materials: Any, pra):
  """A pyroomacoustics material spec from a name, absorption or per-wall dict."""
  if isinstance(materials, pra.Material):
    return materials
  if isinstance(materials, (str, float, int)):
    return pra.Material(materials)
  if isinstance(materials, dict):
    return {k: (v if isinstance(v, pra.Material) else pra.Material(v))
            for k, v in materials.items()}
  raise ValueError(f"materials must be a name, an energy absorption, a "
                   f"pyroomacoustics Material or a dict wall -> material, got {materials!r}")


def _order_for(rt60: float, room_dim: Sequence[float], c: float) -> int:
  radii = [l1 * l2 / math.hypot(l1, l2) for i, l1 in enumerate(room_dim)
           for l2 in room_dim[i + 1:]]
  return max(1, int(math.ceil(c * rt60 / min(radii) - 1)))


def sabine_rt60(room_dim: Sequence[float], *, rt60: float | None = None,
                materials: Any = None) -> float:
  """How long the room rings, by Sabine's formula: ``rt60`` itself when the walls
  come from it, else the LONGEST octave-band Sabine RT60 of the named materials
  (that band sets how long the IRs must be)."""
  if materials is None:
    return float(rt60)
  return float(max(sabine_rt60_bands(room_dim, materials)))


def sabine_rt60_bands(room_dim: Sequence[float], materials: Any) -> list[float]:
  """Sabine RT60 per octave band ([1] for broadband materials)."""
  import pyroomacoustics as pra

  probe = pra.ShoeBox([float(v) for v in room_dim], fs=16000,
                      materials=_materials(materials, pra), max_order=0,
                      air_absorption=False)
  absorption = np.sum([w.area() * np.asarray(w.absorption, dtype=np.float64)
                       for w in probe.walls], axis=0)
  vol = float(np.prod(np.asarray(room_dim, dtype=np.float64)))
  return [float(24 * math.log(10) * vol / (SPEED_OF_SOUND * a)) if a > 0 else float("inf")
          for a in np.atleast_1d(absorption)]


def ism_seconds_budget(room_dim: Sequence[float], max_images: int | None = None) -> float:
  """Longest IR the image-source method covers with about ``max_images`` images
  (the images within ``c * T`` of the listener: ``4/3 pi (c T)^3 / volume``)."""
  n = _MAX_IMAGES if max_images is None else max_images
  vol = float(np.prod(np.asarray(room_dim, dtype=np.float64)))
  return float((3.0 * vol * n / (4.0 * math.pi)) ** (1.0 / 3.0) / SPEED_OF_SOUND)


def build_room(room_dim: Sequence[float], source_pos: Sequence[float], *,
               rt60: float | None = 0.5, materials: Any = None, sample_rate: int = 22050,
               max_order: int | None = None, ray_tracing: bool = False):
  """A pyroomacoustics ShoeBox with one source.

  Args:
    room_dim: [3] metres.
    source_pos: [3] metres.
    rt60: target RT60 (walls from ``inverse_sabine``) when ``materials`` is None.
    materials: a pyroomacoustics material name / energy absorption / Material,
      or a dict {east, west, north, south, floor, ceiling} -> one of those.
    sample_rate: Hz.
    max_order: image-source order; None: enough for the (target or Sabine)
      RT60, as ``inverse_sabine`` computes it, or 3 with ray tracing.
    ray_tracing: enable pyroomacoustics' hybrid ray tracer.
  Returns:
    (room, info) with info = {"rt60_sabine", "max_order", "absorption"}.
  """
  import pyroomacoustics as pra

  room_dim = [float(v) for v in room_dim]
  if materials is None:
    if rt60 is None or rt60 <= 0:
      raise ValueError("give rt60 > 0 or materials")
    absorption, order = pra.inverse_sabine(float(rt60), room_dim, c=SPEED_OF_SOUND)
    mat = pra.Material(float(absorption))
    absorption = float(absorption)
  else:
    mat = _materials(materials, pra)
    absorption = None
    probe = pra.ShoeBox(room_dim, fs=int(sample_rate), materials=mat, max_order=0,
                        air_absorption=False)
    order = _order_for(float(probe.rt60_theory(formula="sabine")), room_dim,
                       SPEED_OF_SOUND)
  if max_order is None:
    max_order = 3 if ray_tracing else order
  room = pra.ShoeBox(room_dim, fs=int(sample_rate), materials=mat, max_order=int(max_order),
                     air_absorption=False, ray_tracing=bool(ray_tracing),
                     use_rand_ism=False)
  rt60_sabine = float(room.rt60_theory(formula="sabine"))
  if ray_tracing:
    room.set_ray_tracing(receiver_radius=0.5, n_rays=20000, energy_thres=1e-7,
                         time_thres=max(1.0, 1.5 * rt60_sabine), hist_bin_size=0.004)
  room.add_source([float(v) for v in source_pos])
  return room, {"rt60_sabine": rt60_sabine, "max_order": int(max_order),
                "absorption": absorption}


def image_sources(room, max_distance: float | None = None) -> ImageSources:
  """Run ``room.image_source_model()`` and return the images of source 0.

  Args:
    room: from :func:`build_room`.
    max_distance: drop images farther than this from the room centre plus the
      room's half diagonal (they arrive after ``max_distance / c`` everywhere).
  """
  if room.mic_array is None:
    room.add_microphone(np.asarray(room.shoebox_dim, dtype=np.float64) / 2.0)
  room.image_source_model()
  src = room.sources[0]
  pos = np.asarray(src.images, dtype=np.float64).T  # [K, 3]
  damp = np.atleast_2d(np.asarray(src.damping, dtype=np.float64))
  orders = np.asarray(src.orders)
  if max_distance is not None:
    dim = np.asarray(room.shoebox_dim, dtype=np.float64)
    keep = np.linalg.norm(pos - dim / 2.0, axis=1) <= max_distance + np.linalg.norm(dim) / 2
    pos, damp, orders = pos[keep], damp[:, keep], orders[keep]
  if room.is_multi_band:
    centres = np.asarray(room.octave_bands.centers, dtype=np.float64)[: damp.shape[0]]
  else:
    centres = np.zeros(1)
  return ImageSources(pos, damp, centres, orders)


# ============================================================================ impulse responses

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


def _ir_length(ir_seconds: float, sample_rate: int) -> int:
  return int(math.ceil(ir_seconds * sample_rate)) + 2 * _SINC_HALF


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
  Returns:
    [2, L] float64 with L = ceil(ir_seconds * sample_rate) + 32; row 0 = left ear.
  """
  pose = np.asarray(pose, dtype=np.float64)
  length = _ir_length(ir_seconds, sample_rate)
  if head is not None:
    out = heads.hrir_ir(images, pose, head, sample_rate=sample_rate, length=length, c=c,
                        early_seconds=_SINC_SECONDS,
                        band_weights=lambda fr: _band_weights(images.band_centres, fr))
    if tail is not None:
      n = min(length, tail.shape[1])
      out[:, :n] += tail[:, :n]
    return out
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
  if tail is not None:
    n = min(length, tail.shape[1])
    out[:, :n] += tail[:, :n]
  return out


def omni_ir(images: ImageSources, position: Sequence[float], *, sample_rate: int,
            ir_seconds: float, c: float = SPEED_OF_SOUND) -> np.ndarray:
  """Omnidirectional IR at one point (no head): [ceil(ir_seconds*sr) + 32] float64."""
  pose = np.eye(4)
  pose[:3, 3] = position
  return binaural_ir(images, pose, sample_rate=sample_rate, ir_seconds=ir_seconds,
                     head_radius=0.0, c=c, head_shadow=False)[0]


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


def _ray_traced_tail(room_dim, source_pos, ears: np.ndarray, *, rt60, materials, sample_rate,
                     max_order, seed) -> np.ndarray:
  """Late tail [2, T] at two ear points: pyroomacoustics hybrid RIR minus its ISM part."""
  import pyroomacoustics as pra

  pra.random.seed(int(seed))
  rirs = []
  for rt in (True, False):
    room, _ = build_room(room_dim, source_pos, rt60=rt60, materials=materials,
                         sample_rate=sample_rate, max_order=max_order, ray_tracing=rt)
    room.add_microphone_array(np.asarray(ears, dtype=np.float64).T)
    room.compute_rir()
    rirs.append([np.asarray(room.rir[m][0], dtype=np.float64) for m in range(2)])
  offset = pra.constants.get("frac_delay_length") // 2
  n = max(len(r) for r in rirs[0] + rirs[1])
  tail = np.zeros((2, n))
  for m in range(2):
    tail[m, :len(rirs[0][m])] += rirs[0][m]
    tail[m, :len(rirs[1][m])] -= rirs[1][m]
  return tail[:, offset:]


# ============================================================================ rendering

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


def split_is_val(num_frames: int, val_fraction: float) -> np.ndarray:
  """[num_frames] bool: frame i is in val iff floor((i+1) f) > floor(i f)."""
  i = np.arange(num_frames)
  f = float(val_fraction)
  return np.floor((i + 1) * f + 1e-9) > np.floor(i * f + 1e-9)


# ============================================================================ writing

def _write_json_atomic(path: pathlib.Path, obj: Any) -> None:
  tmp = path.with_name(path.name + f".tmp{os.getpid()}")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=1)
    f.write("\n")
  os.replace(tmp, path)


def _camera_path(poses: np.ndarray, times: Sequence[int]) -> dict:
  return {"camera_path": [
      {"file_path": f"frames/{int(t):05d}.png",
       "camera_to_world": [float(v) for v in p.reshape(-1)]}
      for p, t in zip(poses, times)]}


def _jsonable(v: Any) -> Any:
  if isinstance(v, (str, int, float, bool)) or v is None:
    return v
  if isinstance(v, (np.integer,)):
    return int(v)
  if isinstance(v, (np.floating,)):
    return float(v)
  if isinstance(v, (list, tuple, np.ndarray)):
    return [_jsonable(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
  if isinstance(v, dict):
    return {str(k): _jsonable(x) for k, x in v.items()}
  if isinstance(v, os.PathLike):
    return os.fspath(v)
  if hasattr(v, "energy_absorption"):   # a pyroomacoustics Material
    return {"energy_absorption": _jsonable(v.energy_absorption),
            "scattering": _jsonable(getattr(v, "scattering", None))}
  return repr(v)


def generate_scene(out_root: os.PathLike | str, *, scene: str = "1",
                   room: Sequence[float] = (6.0, 5.0, 3.0), rt60: float = 0.5,
                   materials: Any = None, source_pos: Sequence[float] | None = None,
                   signal: str = "speech", seconds: int = 60,
                   trajectory: str = "random_walk", yaw: str = "follow",
                   pitch_deg: float = 0.0, head_radius: float = 0.0875,
                   sample_rate: int = 22050, seed: int = 0, ray_tracing: bool = False,
                   val_fraction: float = 0.2, max_order: int | None = None,
                   ir_seconds: float | None = None, ears: str = "kemar",
                   hrtf: str | None = None, progress: bool = True) -> pathlib.Path:
  """Simulate one scene and write it in the RWAVS layout.

  Args:
    out_root: release root; the scene goes to ``out_root/<scene>/`` and the
      source position (scaled coordinates) is merged into ``out_root/position.json``.
    scene: scene id (folder name).
    room: [3] shoebox size in metres (x, y, z; z up).
    rt60: target RT60 in seconds (walls from Sabine) unless ``materials`` given.
    materials: pyroomacoustics material name / absorption / dict per wall.
    source_pos: [3] metres; None: random (seeded), >= 1 m from the walls.
    signal: "speech", "music", "noise" or a WAV path.
    seconds: number of frames (1 per second, t = 1..seconds); the audio is
      ``seconds + 0.5`` s long.
    trajectory: "random_walk", "circle" or "grid".
    yaw: "follow", "random" or "fixed".
    pitch_deg: maximum absolute head pitch (uniform random per frame; 0 = level).
    head_radius: metres (ears at +-head_radius along the head's right axis).
    sample_rate: Hz.
    seed: seeds everything (trajectory, source position, signal, ray tracer).
    ray_tracing: add a ray-traced late tail (low-order ISM + pyroomacoustics rays).
    val_fraction: fraction of frames in the val split (evenly spread).
    max_order: image-source order (None: enough to fill ``ir_seconds``; 3 with
      ray tracing).
    ir_seconds: IR length (None: the room's Sabine RT60 + 50 ms, at most 2 s,
      and without ray tracing at most what ~1e6 image sources cover, with a
      warning: about 0.8 s in a 6 x 5 x 3 m room).
    ears: "kemar" (the packaged MIT KEMAR HRIRs, the default), "cardioid" (two ear
      points ``head_radius`` apart with the spherical-head shadow filter), or
      "sofa" with ``hrtf``.
    hrtf: a SimpleFreeFieldHRIR SOFA file: the head to hear the room through
      (overrides ``ears``).
    progress: show a tqdm bar over frames.
  Returns:
    The scene folder ``out_root/<scene>``.
  """
  from tqdm.auto import tqdm

  t_start = time.perf_counter()
  args = dict(scene=str(scene), room=[float(v) for v in room], rt60=rt60,
              materials=_jsonable(materials),
              source_pos=None if source_pos is None else [float(v) for v in source_pos],
              signal=os.fspath(signal), seconds=int(seconds), trajectory=trajectory,
              yaw=yaw, pitch_deg=float(pitch_deg), head_radius=float(head_radius),
              sample_rate=int(sample_rate), seed=int(seed), ray_tracing=bool(ray_tracing),
              val_fraction=float(val_fraction), max_order=max_order, ir_seconds=ir_seconds,
              ears=str(ears), hrtf=None if not hrtf else os.fspath(hrtf))
  seconds = int(seconds)
  if seconds < 1:
    raise ValueError("seconds must be >= 1")
  if len(room) != 3 or min(room) <= 0:
    raise ValueError(f"room must be 3 positive sizes in metres, got {room}")
  sr = int(sample_rate)
  if ears not in heads.EARS:
    raise ValueError(f"ears must be one of {', '.join(heads.EARS)}, got {ears!r}")
  if ears == "sofa" and not hrtf:
    raise ValueError("ears='sofa' needs an HRTF file (--hrtf FILE.sofa)")
  head = heads.load_head(ears, hrtf, sr)
  rng = np.random.default_rng(seed)
  room_dim = np.asarray(room, dtype=np.float64)

  # Source.
  if source_pos is None:
    m = np.minimum(1.0, room_dim / 3.0)
    source = np.array([rng.uniform(m[0], room_dim[0] - m[0]),
                       rng.uniform(m[1], room_dim[1] - m[1]),
                       min(rng.uniform(1.0, 1.8), room_dim[2] - m[2])])
  else:
    source = np.asarray(source_pos, dtype=np.float64)
    if source.shape != (3,) or np.any(source <= 0) or np.any(source >= room_dim):
      raise ValueError(f"source_pos {source_pos} must be inside the room {tuple(room)}")

  # Listener.
  times = np.arange(1, seconds + 1)
  positions = make_trajectory(trajectory, seconds, room_dim, source, rng)
  yaws = make_yaws(yaw, positions, rng)
  pitches = (rng.uniform(-1.0, 1.0, size=seconds) * math.radians(pitch_deg)
             if pitch_deg > 0 else np.zeros(seconds))
  poses = np.stack([head_pose(p, y, ph) for p, y, ph in zip(positions, yaws, pitches)])

  # Room and image sources.
  if ray_tracing and max_order is None:
    max_order = 3
  rt60_est = sabine_rt60(room_dim, rt60=rt60, materials=materials)
  if ir_seconds is None:
    ir_seconds = min(_MAX_IR_SECONDS, rt60_est + 0.05)
    budget = ism_seconds_budget(room_dim)
    if not ray_tracing and max_order is None and ir_seconds > budget:
      if budget < rt60_est * 2.0 / 3.0:   # the IR would stop above -40 dB
        raise ValueError(
            f"RT60 {rt60_est:.2f} s is too long for the image-source method alone "
            f"in this room (about {_MAX_IMAGES} images cover {budget:.2f} s): "
            f"use ray_tracing=True, or give ir_seconds (or max_order) explicitly")
      warnings.warn(f"RT60 {rt60_est:.2f} s needs more than {_MAX_IMAGES} image "
                    f"sources in this room; the IRs are cut at {budget:.2f} s "
                    f"(below -40 dB). Use ray_tracing=True for long reverberation.",
                    stacklevel=2)
      ir_seconds = budget
  ir_seconds = float(ir_seconds)
  if max_order is None:
    max_order = _order_for(ir_seconds, room_dim, SPEED_OF_SOUND)
  room_obj, info = build_room(room_dim, source, rt60=None if materials is not None else rt60,
                              materials=materials, sample_rate=sr, max_order=max_order,
                              ray_tracing=False)
  images = image_sources(room_obj, max_distance=SPEED_OF_SOUND * ir_seconds)
  absorption = info["absorption"]
  if materials is None and not ray_tracing:
    absorption, _ = calibrate_absorption(images, absorption, float(rt60),
                                         positions.mean(axis=0), sample_rate=sr,
                                         ir_seconds=ir_seconds)
    images = images.with_absorption(absorption)
  tail = None
  if ray_tracing:
    centre_pose = head_pose(positions.mean(axis=0), 0.0)
    tail = _ray_traced_tail(room_dim, source, ear_positions(centre_pose, head_radius),
                            rt60=None if materials is not None else rt60,
                            materials=materials, sample_rate=sr,
                            max_order=info["max_order"], seed=seed)

  # Source signal and the track.
  n_samples = seconds * sr + sr // 2
  src_signal = make_signal(signal, n_samples / sr, sr, seed)[:n_samples]
  irs = []
  for pose in tqdm(poses, desc=f"scene {scene}: ear IRs", unit="frame", disable=not progress,
                   leave=False):
    irs.append(binaural_ir(images, pose, sample_rate=sr, ir_seconds=ir_seconds,
                           head_radius=head_radius, tail=tail, head=head))
  boundaries = [int(round((t + 0.5) * sr)) for t in times[:-1]]
  binaural = render_track(src_signal, irs, boundaries,
                          int(round(_CROSSFADE_SECONDS * sr)))
  peak = float(np.max(np.abs(binaural)))
  gain = _BINAURAL_PEAK / peak if peak > 0 else 1.0
  binaural *= gain

  # RT60 measured on an omni IR at the mean listener position.
  ref_ir = omni_ir(images, positions.mean(axis=0), sample_rate=sr, ir_seconds=ir_seconds)
  if tail is not None:
    n = min(ref_ir.shape[0], tail.shape[1])
    ref_ir[:n] += tail.mean(axis=0)[:n]
  rt60_measured = measure_rt60(ref_ir, sr)

  # Scaled coordinates.
  pts = np.vstack([positions, source[None]])
  lo, hi = pts.min(axis=0), pts.max(axis=0)
  centre = (lo + hi) / 2.0
  mpu = float(max(np.max((hi - lo) / 2.0), 0.25))
  poses_scaled = poses.copy()
  poses_scaled[:, :3, 3] = (poses[:, :3, 3] - centre) / mpu
  source_scaled = (source - centre) / mpu
  is_val = split_is_val(seconds, val_fraction)

  # Write.
  import soundfile as sf

  out_root = pathlib.Path(out_root)
  scene_dir = out_root / str(scene)
  scene_dir.mkdir(parents=True, exist_ok=True)
  sf.write(scene_dir / "binaural_syn_re.wav", binaural.T.astype(np.float32), sr,
           subtype="PCM_16", format="WAV")
  sf.write(scene_dir / "source_syn_re.wav", src_signal.astype(np.float32), sr,
           subtype="PCM_16", format="WAV")
  for split, mask in (("train", ~is_val), ("val", is_val)):
    _write_json_atomic(scene_dir / f"transforms_scale_{split}.json",
                       _camera_path(poses_scaled[mask], times[mask]))
    _write_json_atomic(scene_dir / f"transforms_{split}.json",
                       _camera_path(poses[mask], times[mask]))
  meta = {
      "generator": "audiogs_jax.data.synth",
      "generator_version": GENERATOR_VERSION,
      "args": args,
      "scene": str(scene),
      "room_dim": room_dim.tolist(),
      "rt60_requested": None if materials is not None else float(rt60),
      "rt60_sabine": info["rt60_sabine"],
      "rt60_sabine_bands": (None if materials is None else
                            sabine_rt60_bands(room_dim, materials)),
      "rt60_measured": rt60_measured,
      "rt60_true": rt60_measured,
      "absorption_sabine": info["absorption"],
      "absorption": absorption,
      "materials": _jsonable(materials),
      "max_order": info["max_order"],
      "num_image_sources": len(images),
      "ir_seconds": ir_seconds,
      "ray_tracing": bool(ray_tracing),
      "speed_of_sound": SPEED_OF_SOUND,
      "source_position_m": source.tolist(),
      "source_position": source_scaled.tolist(),
      "centre_m": centre.tolist(),
      "metres_per_unit": mpu,
      "head_radius": float(head_radius),
      "head_radius_units": float(head_radius) / mpu,
      "signal": os.fspath(signal),
      "seed": int(seed),
      "sample_rate": sr,
      "num_frames": seconds,
      "num_val_frames": int(is_val.sum()),
      "duration_s": n_samples / sr,
      "binaural_peak_gain": gain,
      "source_gain": 1.0,
      "coordinates": "world: room metres, z up; poses head-to-world, columns right, up, "
                     "backward (OpenGL); yaw 0 faces +x",
      "ears": "cardioid" if head is None else ("sofa" if hrtf else "kemar"),
      "hrtf": None if head is None else head.name,
      "head_model": ("Brown & Duda (1998) spherical-head shadow, ITD from ear positions"
                     if head is None else
                     f"measured HRIRs ({head.name}), image sources by direction of arrival"),
      "segments": "pose t covers output samples [t-0.5, t+0.5) s, 20 ms crossfades",
  }
  _write_json_atomic(scene_dir / "scene_meta.json", meta)
  pos_path = out_root / "position.json"
  positions_json = read_json(pos_path) if pos_path.exists() else {}
  if not isinstance(positions_json, dict):
    raise DataError(pos_path, "expected a JSON object keyed by scene id")
  positions_json[str(scene)] = {"source_position": source_scaled.tolist()}
  _write_json_atomic(pos_path, dict(sorted(positions_json.items())))
  if progress:
    print(f"simulated scene {scene} ({seconds} frames, {len(images)} image sources, "
          f"RT60 measured {rt60_measured:.3f} s) in {time.perf_counter() - t_start:.1f} s",
          file=sys.stderr)
  return scene_dir


def _cache_key(kwargs: dict) -> str:
  import inspect

  bound = inspect.signature(generate_scene).bind("<out_root>", **kwargs)
  bound.apply_defaults()
  args = dict(bound.arguments)
  args.pop("out_root")
  args.pop("progress", None)
  norm = _jsonable(dict(sorted(args.items())))
  sig = kwargs.get("signal", "speech")
  if os.fspath(sig) not in SIGNALS and os.path.isfile(os.fspath(sig)):
    with open(os.fspath(sig), "rb") as f:
      norm["signal_sha256"] = hashlib.sha256(f.read()).hexdigest()
  hrtf = kwargs.get("hrtf")
  if hrtf and os.path.isfile(os.fspath(hrtf)):
    with open(os.fspath(hrtf), "rb") as f:
      norm["hrtf_sha256"] = hashlib.sha256(f.read()).hexdigest()
  norm["generator_version"] = GENERATOR_VERSION
  blob = json.dumps(norm, sort_keys=True).encode()
  return hashlib.sha256(blob).hexdigest()[:16]


def ensure_scene(cache_dir: os.PathLike | str, **kwargs) -> pathlib.Path:
  """Generate a scene once into ``cache_dir`` and reuse it afterwards.

  The release root is ``cache_dir/<hash of the arguments>/`` (with its own
  ``position.json``); it is written to a temporary folder and renamed into
  place atomically, so an interrupted run never leaves a half scene.

  Args:
    cache_dir: the cache folder.
    **kwargs: arguments of :func:`generate_scene` (except ``out_root``).
  Returns:
    The scene folder ``cache_dir/<hash>/<scene>``.
  """
  kwargs = dict(kwargs)
  progress = kwargs.pop("progress", True)
  scene = str(kwargs.get("scene", "1"))
  cache_dir = pathlib.Path(cache_dir)
  final = cache_dir / _cache_key(kwargs)
  if (final / scene / "scene_meta.json").is_file():
    return final / scene
  cache_dir.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=cache_dir))
  try:
    generate_scene(tmp, progress=progress, **kwargs)
    try:
      os.rename(tmp, final)
    except OSError:
      if not (final / scene / "scene_meta.json").is_file():  # not a lost race
        raise
  finally:
    if tmp.exists():
      shutil.rmtree(tmp, ignore_errors=True)
  return final / scene


# ============================================================================ CLI

def _floats(n: int):
  def parse(s: str):
    try:
      vals = [float(v) for v in s.replace(" ", "").split(",")]
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {s!r}")
    if len(vals) != n:
      raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {s!r}")
    return tuple(vals)
  return parse


class _Parser(argparse.ArgumentParser):
  """Usage errors as one line on stderr, exit status 2 (no usage dump)."""

  def error(self, message: str):
    self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
  """Shows defaults, except None/False ones (the help text says what happens)."""

  def _get_help_string(self, action):
    if action.default is None or action.default is False:
      return action.help
    return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
  p = _Parser(
      prog="python -m audiogs_jax.data.synth",
      description="Simulate a binaural scene (shoebox room, image sources heard through "
                  "the MIT KEMAR HRIRs, or another SOFA head) and write it in the RWAVS layout: OUT/<scene>/binaural_syn_re.wav, "
                  "source_syn_re.wav, transforms_scale_{train,val}.json, "
                  "transforms_{train,val}.json, scene_meta.json and OUT/position.json.",
      formatter_class=_HelpFormatter)
  p.add_argument("--out", required=True, help="release root to write into")
  p.add_argument("--scene", default="1", help="scene id (folder name)")
  p.add_argument("--seconds", type=int, default=60,
                 help="number of 1-second frames (audio is seconds + 0.5 s)")
  p.add_argument("--room", type=_floats(3), default="6,5,3",
                 help="room size in metres: X,Y,Z (Z up)")
  p.add_argument("--rt60", type=float, default=0.5,
                 help="target reverberation time in seconds (walls via inverse Sabine)")
  p.add_argument("--materials", default=None,
                 help="pyroomacoustics material name for all walls (e.g. 'brickwork', "
                      "'curtains_cotton_0.5'); overrides --rt60")
  p.add_argument("--source", type=_floats(3), default=None,
                 help="source position in metres X,Y,Z (omitted: random, >= 1 m from "
                      "the walls, for the seed)")
  p.add_argument("--signal", default="speech",
                 help="source signal: speech | music | noise | path/to/file.wav")
  p.add_argument("--trajectory", default="random_walk",
                 choices=["random_walk", "circle", "grid"], help="listener path")
  p.add_argument("--yaw", default="follow", choices=["follow", "random", "fixed"],
                 help="head yaw: direction of motion, random, or fixed (+x)")
  p.add_argument("--pitch-deg", type=float, default=0.0,
                 help="maximum random head pitch in degrees (0: level)")
  p.add_argument("--ears", default="kemar", choices=["kemar", "cardioid"],
                 help="kemar: the packaged MIT KEMAR HRIRs (Gardner & Martin 1994); "
                      "cardioid: two ear points --head-radius apart with a spherical-head "
                      "shadow filter")
  p.add_argument("--hrtf", default=None, metavar="FILE.sofa",
                 help="hear the room through this SimpleFreeFieldHRIR SOFA file "
                      "instead (overrides --ears)")
  p.add_argument("--head-radius", type=float, default=0.0875,
                 help="metres (cardioid ears; recorded in the scene metadata)")
  p.add_argument("--sample-rate", type=int, default=22050, help="Hz")
  p.add_argument("--seed", type=int, default=0, help="random seed (output is deterministic)")
  p.add_argument("--ray-tracing", action="store_true",
                 help="low-order image sources plus a ray-traced late tail")
  p.add_argument("--max-order", type=int, default=None,
                 help="image-source order (omitted: enough to fill the IR; 3 with "
                      "--ray-tracing)")
  p.add_argument("--val-fraction", type=float, default=0.2,
                 help="fraction of frames in the val split")
  p.add_argument("--ir-seconds", type=float, default=None,
                 help="impulse response length in seconds (omitted: RT60 + 50 ms, "
                      "capped at 2 s and, without ray tracing, at ~1e6 image sources)")
  p.add_argument("--quiet", action="store_true", help="no progress bar")
  return p


def main(argv: Sequence[str] | None = None) -> pathlib.Path:
  """Command-line entry point; bad arguments or input exit with status 2."""
  parser = _parser()
  a = parser.parse_args(argv)
  try:
    return _main(a)
  except ValueError as e:   # DataError included
    parser.exit(2, f"{parser.prog}: error: {e}\n")


def _main(a) -> pathlib.Path:
  scene_dir = generate_scene(
      a.out, scene=a.scene, room=a.room, rt60=a.rt60, materials=a.materials,
      source_pos=a.source, signal=a.signal, seconds=a.seconds, trajectory=a.trajectory,
      yaw=a.yaw, pitch_deg=a.pitch_deg, head_radius=a.head_radius,
      sample_rate=a.sample_rate, seed=a.seed, ray_tracing=a.ray_tracing,
      val_fraction=a.val_fraction, max_order=a.max_order, ir_seconds=a.ir_seconds,
      ears="sofa" if a.hrtf else a.ears, hrtf=a.hrtf, progress=not a.quiet)
  print(scene_dir)
  return scene_dir


if __name__ == "__main__":
  main()
