"""Listener paths and head poses of the simulated scenes.

Listener. Poses at 1 frame per second, frame times t = 1..seconds. The head
centre follows a ``random_walk``, ``circle`` or ``grid`` trajectory at ~1.5 m
height, kept at least 0.5 m from every wall and 0.5 m (horizontally) from the
source. Head yaw ``follow`` (the direction of motion), ``random`` or ``fixed``
(facing +x), with an optional random pitch up to ``pitch_deg``.

Coordinates. World = pyroomacoustics room coordinates in metres, ``z`` up,
origin at a floor corner. A head with yaw psi (about +z, psi = 0 facing +x) and
pitch phi (positive looks up) has forward ``f = (cos phi cos psi,
cos phi sin psi, sin phi)``, right ``r = (sin psi, -cos psi, 0)``, up ``u = r x f``,
and the pose's rotation columns are ``[r, u, -f]`` (OpenGL: right, up, backward;
orthonormal, det +1). The ears sit at ``c -+ a * r`` (left, right) for a head
centre ``c`` and head radius ``a``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

__all__ = ["head_pose", "ear_positions", "make_trajectory", "make_yaws", "listener_poses"]

_WALL_MARGIN = 0.5
_SOURCE_MARGIN = 0.5
_HEAD_HEIGHT = 1.5


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


@dataclasses.dataclass(frozen=True)
class _Floor:
  """Where the head centre may be: inside ``[lo, hi]`` (x, y) at height ``z``,
  at least ``_SOURCE_MARGIN`` (horizontally) from ``source``."""

  lo: np.ndarray
  hi: np.ndarray
  z: float
  source: np.ndarray
  room_dim: Sequence[float]

  def ok(self, p: np.ndarray) -> bool:
    return (np.all(p[:2] >= self.lo[:2]) and np.all(p[:2] <= self.hi[:2])
            and float(np.hypot(*(p[:2] - self.source[:2]))) >= _SOURCE_MARGIN)

  def random_point(self, rng: np.random.Generator) -> np.ndarray:
    """A uniform allowed point (rejection sampling)."""
    lo, hi = self.lo, self.hi
    for _ in range(1000):
      p = np.array([rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1]), self.z])
      if self.ok(p):
        return p
    raise ValueError(f"no listener position >= {_SOURCE_MARGIN} m from the source "
                     f"{self.source.tolist()} fits in room {list(self.room_dim)}")


def _random_walk(floor: _Floor, n: int, rng: np.random.Generator) -> np.ndarray:
  """0.3-0.7 m per step, smoothly turning, reflected off the margins; a step
  that lands too close to the source is retried turning away (24 tries, then
  the head stays)."""
  lo, hi = floor.lo, floor.hi
  pts = [floor.random_point(rng)]
  heading = rng.uniform(-np.pi, np.pi)
  for _ in range(n - 1):
    p = pts[-1]
    heading += rng.normal(0.0, 0.6)
    step = rng.uniform(0.3, 0.7)
    new = None
    for attempt in range(24):
      cand = p + step * np.array([math.cos(heading), math.sin(heading), 0.0])
      for ax in range(2):
        if cand[ax] < lo[ax]:
          cand[ax] = 2 * lo[ax] - cand[ax]
        elif cand[ax] > hi[ax]:
          cand[ax] = 2 * hi[ax] - cand[ax]
      cand[:2] = np.clip(cand[:2], lo[:2], hi[:2])
      if floor.ok(cand):
        new = cand
        heading = math.atan2(cand[1] - p[1], cand[0] - p[0]) if \
            np.hypot(*(cand[:2] - p[:2])) > 1e-9 else heading
        break
      heading += np.pi / 2 * (1 if attempt % 2 == 0 else -1) + rng.normal(0, 0.3)
    pts.append(p.copy() if new is None else new)
  return np.stack(pts)


def _circle(floor: _Floor, n: int, rng: np.random.Generator) -> np.ndarray:
  """One lap per 20 s around the room centre, on the largest of a few radii
  whose every point is allowed; otherwise radius 0.8 of the largest, with the
  points too close to the source redrawn at random."""
  lo, hi, z = floor.lo, floor.hi, floor.z
  centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, z])
  r_max = float(min(hi[0] - lo[0], hi[1] - lo[1]) / 2)
  phase0 = rng.uniform(0, 2 * np.pi)
  ang = phase0 + 2 * np.pi * np.arange(n) / 20.0
  ring = np.stack([np.cos(ang), np.sin(ang), np.zeros(n)], axis=1)
  for frac in (0.8, 0.6, 1.0, 0.4, 0.9, 0.7, 0.5, 0.3):
    pts = centre + frac * r_max * ring
    if all(floor.ok(p) for p in pts):
      return pts
  pts = centre + 0.8 * r_max * ring
  for i, p in enumerate(pts):
    if not floor.ok(p):
      pts[i] = floor.random_point(rng)
  return pts


def _grid(floor: _Floor, n: int) -> np.ndarray:
  """A serpentine raster over the floor, walked back and forth."""
  lo, hi, z = floor.lo, floor.hi, floor.z
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
  pts = [p for p in pts if floor.ok(p)]
  if not pts:
    raise ValueError("grid trajectory: every grid point is too close to the source")
  cycle = pts + pts[-2:0:-1]
  return np.stack([cycle[i % len(cycle)] for i in range(n)])


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
  floor = _Floor(lo, hi, _head_height(room_dim), np.asarray(source_pos, dtype=np.float64),
                 room_dim)
  n = int(num_frames)
  if kind == "random_walk":
    return _random_walk(floor, n, rng)
  if kind == "circle":
    return _circle(floor, n, rng)
  if kind == "grid":
    return _grid(floor, n)
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


def listener_poses(trajectory: str, yaw: str, pitch_deg: float, num_frames: int,
                   room_dim: Sequence[float], source_pos: Sequence[float],
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """The listener of a scene: head centres, then yaws, then pitches (uniform in
  +-``pitch_deg``; none drawn when it is 0) from ``rng``, in that order.

  Returns:
    (positions [N, 3], poses [N, 4, 4] head-to-world), N = ``num_frames``.
  """
  positions = make_trajectory(trajectory, num_frames, room_dim, source_pos, rng)
  yaws = make_yaws(yaw, positions, rng)
  pitches = (rng.uniform(-1.0, 1.0, size=num_frames) * math.radians(pitch_deg)
             if pitch_deg > 0 else np.zeros(num_frames))
  poses = np.stack([head_pose(p, y, ph) for p, y, ph in zip(positions, yaws, pitches)])
  return positions, poses
