"""The room of a simulated scene: a pyroomacoustics shoebox and its image sources.

Walls. Wall absorption comes from a target RT60 through
``pyroomacoustics.inverse_sabine``, or from named materials (per octave band).
The image-source method (``room.image_source_model()``) gives every image
source's position and its wall damping (the product of the amplitude
reflection coefficients of the walls it bounced on, per octave band for named
materials). The image sources do not depend on the listener, so a scene
computes them once.

IR length. The IRs are ``ir_seconds`` long (default RT60 + 50 ms) and the image
order is what fills them; images that cannot arrive in time are dropped. The
image count grows as ``ir_seconds ** 3``: without ray tracing the default IR is
capped at what ``_MAX_IMAGES`` images cover (:func:`ism_seconds_budget`; a
warning says so), and an RT60 whose -40 dB point lies beyond that is refused
(:func:`ir_seconds_and_order`): use ray tracing.

Ray tracing (``ray_tracing=True``): the image-source part is kept to low order
(``max_order=3`` unless given), and a late tail computed by the pyroomacoustics
hybrid simulator (ISM + ray tracing minus ISM alone) at two ear points
(:func:`ray_traced_tail`) is added to every frame's IRs (a diffuse tail,
decorrelated between ears, identical for all poses).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Sequence

import numpy as np

__all__ = ["SPEED_OF_SOUND", "ImageSources", "sabine_rt60", "sabine_rt60_bands",
           "ism_seconds_budget", "ir_seconds_and_order", "build_room", "image_sources",
           "ray_traced_tail"]

SPEED_OF_SOUND = 343.0
_MAX_IMAGES = 1_000_000    # image-source budget of a scene without ray tracing
_MAX_IR_SECONDS = 2.0


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
    self.xyz = np.ascontiguousarray(self.positions.T)   # [3, K], one row per axis

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
  """Image order whose images cover ``rt60`` seconds (the shortest wall-pair spacing)."""
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


def ir_seconds_and_order(room_dim: Sequence[float], *, rt60: float, materials: Any,
                         ray_tracing: bool, max_order: int | None,
                         ir_seconds: float | None, stacklevel: int = 2
                         ) -> tuple[float, int]:
  """The IR length and image order of a scene (see the module docstring).

  Args:
    room_dim: [3] metres.
    rt60: target RT60 (used when ``materials`` is None).
    materials: named materials, or None.
    ray_tracing: a ray-traced tail follows the image sources (order 3 by default).
    max_order: explicit image order, or None.
    ir_seconds: explicit IR length, or None (Sabine RT60 + 50 ms, at most
      ``_MAX_IR_SECONDS`` and, without ray tracing or ``max_order``, at most
      :func:`ism_seconds_budget`, with a warning at ``stacklevel``).
  Returns:
    (ir_seconds, max_order).
  Raises:
    ValueError: when the budget stops the IR above -40 dB.
  """
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
                    stacklevel=stacklevel + 1)
      ir_seconds = budget
  ir_seconds = float(ir_seconds)
  if max_order is None:
    max_order = _order_for(ir_seconds, room_dim, SPEED_OF_SOUND)
  return ir_seconds, max_order


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


def ray_traced_tail(room_dim, source_pos, ears: np.ndarray, *, rt60, materials, sample_rate,
                    max_order, seed) -> np.ndarray:
  """Late tail [2, T] at two ear points ``ears`` [2, 3]: the pyroomacoustics
  hybrid RIR minus its image-source part (pyroomacoustics' random state seeded
  with ``seed``)."""
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
