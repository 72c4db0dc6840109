"""Physically simulated binaural scenes, written in the RWAVS layout.

    python -m audiogs_jax.data.synth --out DIR [--seconds 60 --rt60 0.5 ...]

writes ``DIR/<scene>/`` (``binaural_syn_re.wav``, ``source_syn_re.wav``,
``transforms_scale_{train,val}.json``, ``transforms_{train,val}.json``,
``scene_meta.json``) and merges the source position into ``DIR/position.json``,
so that :func:`audiogs_jax.data.rwavs.load` reads it like a real RWAVS scene.

A scene, step by step (:func:`generate_scene`):

1. the source: given, or drawn at random >= 1 m from the walls;
2. the listener (:mod:`.trajectory`): a head path at 1 frame per second and
   the head pose of each frame;
3. the room (:mod:`.room`, :mod:`.reverb`): a pyroomacoustics shoebox, its
   image sources, walls calibrated to the requested RT60, an optional
   ray-traced late tail;
4. the ears (:mod:`.ears`, :mod:`.heads`): each frame's ear IRs, through the
   measured HRIRs (KEMAR by default) or two cardioid ear points;
5. the track (:mod:`.track`): the source signal (:mod:`.signals`) through the
   frames' IRs, ``seconds + 0.5`` s long so that the last frame has a full
   centred clip, peak-normalised to 0.99 (the gain is ``binaural_peak_gain``
   in ``scene_meta.json``); the source WAV holds the source signal (peak 0.9)
   on the same time axis;
6. the release (:mod:`.release`): WAVs, poses in metres and scaled, metadata.

:func:`audiogs_jax.data.cache.ensure_scene` generates a scene once into a cache
folder keyed by its arguments. Everything is deterministic for a seed
(identical bytes).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
import time
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from . import heads
from .ears import binaural_ir
from .release import (jsonable, merge_position, scale_frame, split_is_val,
                      write_json_atomic, write_scene_files)
from .reverb import calibrate_absorption, room_rt60
from .room import (SPEED_OF_SOUND, ImageSources, build_room, image_sources,
                   ir_seconds_and_order, ray_traced_tail, sabine_rt60_bands)
from .signals import make_signal
from .synth_args import parser as cli_parser
from .track import frame_track
from .trajectory import ear_positions, head_pose, listener_poses

__all__ = ["GENERATOR_VERSION", "generate_scene", "main"]

GENERATOR_VERSION = "2.0"


@dataclasses.dataclass(frozen=True)
class _Spec:
  """The arguments of :func:`generate_scene` (see there), as given."""

  scene: Any
  room: Sequence[float]
  rt60: float
  materials: Any
  source_pos: Sequence[float] | None
  signal: Any
  seconds: int
  trajectory: str
  yaw: str
  pitch_deg: float
  head_radius: float
  sample_rate: int
  seed: int
  ray_tracing: bool
  val_fraction: float
  max_order: int | None
  ir_seconds: float | None
  ears: str
  hrtf: Any

  @property
  def frames(self) -> int:
    return int(self.seconds)

  @property
  def sr(self) -> int:
    return int(self.sample_rate)

  @property
  def num_samples(self) -> int:
    """Track length: ``seconds + 0.5`` s."""
    return self.frames * self.sr + self.sr // 2

  @property
  def rt60_walls(self) -> float | None:
    """The RT60 the walls come from (None with named materials)."""
    return None if self.materials is not None else self.rt60

  def recorded(self) -> dict:
    """The arguments as ``scene_meta.json`` records them (JSON values)."""
    return dict(
        scene=str(self.scene), room=[float(v) for v in self.room], rt60=self.rt60,
        materials=jsonable(self.materials),
        source_pos=(None if self.source_pos is None
                    else [float(v) for v in self.source_pos]),
        signal=os.fspath(self.signal), seconds=int(self.seconds),
        trajectory=self.trajectory, yaw=self.yaw, pitch_deg=float(self.pitch_deg),
        head_radius=float(self.head_radius), sample_rate=int(self.sample_rate),
        seed=int(self.seed), ray_tracing=bool(self.ray_tracing),
        val_fraction=float(self.val_fraction), max_order=self.max_order,
        ir_seconds=self.ir_seconds, ears=str(self.ears),
        hrtf=None if not self.hrtf else os.fspath(self.hrtf))

  def check(self) -> None:
    """ValueError for arguments out of range."""
    if self.frames < 1:
      raise ValueError("seconds must be >= 1")
    if len(self.room) != 3 or min(self.room) <= 0:
      raise ValueError(f"room must be 3 positive sizes in metres, got {self.room}")
    if self.ears not in heads.EARS:
      raise ValueError(f"ears must be one of {', '.join(heads.EARS)}, got {self.ears!r}")
    if self.ears == "sofa" and not self.hrtf:
      raise ValueError("ears='sofa' needs an HRTF file (--hrtf FILE.sofa)")


@dataclasses.dataclass
class _Room:
  """A scene's room: image sources (walls calibrated), IR length, late tail."""

  images: ImageSources
  info: dict                 # build_room's: rt60_sabine, max_order, absorption
  absorption: float | None   # the calibrated uniform absorption
  ir_seconds: float
  tail: np.ndarray | None    # [2, L'] ray-traced tail


@dataclasses.dataclass
class _Simulation:
  """Everything a scene's release is written from."""

  source: np.ndarray         # [3] metres
  positions: np.ndarray      # [N, 3] head centres
  poses: np.ndarray          # [N, 4, 4] head-to-world
  times: np.ndarray          # [N] int seconds
  room: _Room
  head: heads.HRIRSet | None
  signal: np.ndarray         # [T] source signal
  binaural: np.ndarray       # [2, T]
  gain: float                # peak normalisation of binaural
  rt60_measured: float


def _source_position(spec: _Spec, room_dim: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
  """The source [3]: ``spec.source_pos`` (checked inside the room) or random."""
  if spec.source_pos is None:
    m = np.minimum(1.0, room_dim / 3.0)
    return np.array([rng.uniform(m[0], room_dim[0] - m[0]),
                     rng.uniform(m[1], room_dim[1] - m[1]),
                     min(rng.uniform(1.0, 1.8), room_dim[2] - m[2])])
  source = np.asarray(spec.source_pos, dtype=np.float64)
  if source.shape != (3,) or np.any(source <= 0) or np.any(source >= room_dim):
    raise ValueError(f"source_pos {spec.source_pos} must be inside the room "
                     f"{tuple(spec.room)}")
  return source


def _simulate_room(spec: _Spec, room_dim: np.ndarray, source: np.ndarray,
                   positions: np.ndarray) -> _Room:
  """Image sources with the walls calibrated at the listeners' mean position
  (walls from an RT60, no ray tracing), and the ray-traced tail when asked."""
  ir_seconds, max_order = ir_seconds_and_order(
      room_dim, rt60=spec.rt60, materials=spec.materials, ray_tracing=spec.ray_tracing,
      max_order=spec.max_order, ir_seconds=spec.ir_seconds,
      stacklevel=4)   # the warning names generate_scene's caller
  room_obj, info = build_room(room_dim, source, rt60=spec.rt60_walls,
                              materials=spec.materials, sample_rate=spec.sr,
                              max_order=max_order, ray_tracing=False)
  images = image_sources(room_obj, max_distance=SPEED_OF_SOUND * ir_seconds)
  absorption = info["absorption"]
  if spec.materials is None and not spec.ray_tracing:
    absorption, _ = calibrate_absorption(images, absorption, float(spec.rt60),
                                         positions.mean(axis=0), sample_rate=spec.sr,
                                         ir_seconds=ir_seconds)
    images = images.with_absorption(absorption)
  tail = None
  if spec.ray_tracing:
    centre_pose = head_pose(positions.mean(axis=0), 0.0)
    tail = ray_traced_tail(room_dim, source, ear_positions(centre_pose, spec.head_radius),
                           rt60=spec.rt60_walls, materials=spec.materials,
                           sample_rate=spec.sr, max_order=info["max_order"], seed=spec.seed)
  return _Room(images, info, absorption, ir_seconds, tail)


def _simulate(spec: _Spec, progress: bool) -> _Simulation:
  """Source, listener, room, ear IRs and track of a scene (nothing written)."""
  sr = spec.sr
  head = heads.load_head(spec.ears, spec.hrtf, sr)
  rng = np.random.default_rng(spec.seed)
  room_dim = np.asarray(spec.room, dtype=np.float64)
  source = _source_position(spec, room_dim, rng)
  times = np.arange(1, spec.frames + 1)
  positions, poses = listener_poses(spec.trajectory, spec.yaw, spec.pitch_deg, spec.frames,
                                    room_dim, source, rng)
  room = _simulate_room(spec, room_dim, source, positions)
  n_samples = spec.num_samples
  signal = make_signal(spec.signal, n_samples / sr, sr, spec.seed)[:n_samples]
  irs = [binaural_ir(room.images, pose, sample_rate=sr, ir_seconds=room.ir_seconds,
                     head_radius=spec.head_radius, tail=room.tail, head=head)
         for pose in tqdm(poses, desc=f"scene {spec.scene}: ear IRs", unit="frame",
                          disable=not progress, leave=False)]
  binaural, gain = frame_track(signal, irs, times, sr)
  rt60 = room_rt60(room.images, positions.mean(axis=0), sample_rate=sr,
                   ir_seconds=room.ir_seconds, tail=room.tail)
  return _Simulation(source, positions, poses, times, room, head, signal, binaural, gain,
                     rt60)


def _scene_meta(spec: _Spec, args: dict, sim: _Simulation, *, centre: np.ndarray, mpu: float,
                source_scaled: np.ndarray, num_val: int) -> dict:
  """The content of ``scene_meta.json``."""
  room, head, sr = sim.room, sim.head, spec.sr
  room_dim = np.asarray(spec.room, dtype=np.float64)
  return {
      "generator": "audiogs_jax.data.synth",
      "generator_version": GENERATOR_VERSION,
      "args": args,
      "scene": str(spec.scene),
      "room_dim": room_dim.tolist(),
      "rt60_requested": None if spec.materials is not None else float(spec.rt60),
      "rt60_sabine": room.info["rt60_sabine"],
      "rt60_sabine_bands": (None if spec.materials is None else
                            sabine_rt60_bands(room_dim, spec.materials)),
      "rt60_measured": sim.rt60_measured,
      "rt60_true": sim.rt60_measured,
      "absorption_sabine": room.info["absorption"],
      "absorption": room.absorption,
      "materials": jsonable(spec.materials),
      "max_order": room.info["max_order"],
      "num_image_sources": len(room.images),
      "ir_seconds": room.ir_seconds,
      "ray_tracing": bool(spec.ray_tracing),
      "speed_of_sound": SPEED_OF_SOUND,
      "source_position_m": sim.source.tolist(),
      "source_position": source_scaled.tolist(),
      "centre_m": centre.tolist(),
      "metres_per_unit": mpu,
      "head_radius": float(spec.head_radius),
      "head_radius_units": float(spec.head_radius) / mpu,
      "signal": os.fspath(spec.signal),
      "seed": int(spec.seed),
      "sample_rate": sr,
      "num_frames": spec.frames,
      "num_val_frames": num_val,
      "duration_s": spec.num_samples / sr,
      "binaural_peak_gain": sim.gain,
      "source_gain": 1.0,
      "coordinates": "world: room metres, z up; poses head-to-world, columns right, up, "
                     "backward (OpenGL); yaw 0 faces +x",
      "ears": "cardioid" if head is None else ("sofa" if spec.hrtf else "kemar"),
      "hrtf": None if head is None else head.name,
      "head_model": ("Brown & Duda (1998) spherical-head shadow, ITD from ear positions"
                     if head is None else
                     f"measured HRIRs ({head.name}), image sources by direction of arrival"),
      "segments": "pose t covers output samples [t-0.5, t+0.5) s, 20 ms crossfades",
  }


def _write(out_root: pathlib.Path, spec: _Spec, args: dict, sim: _Simulation) -> pathlib.Path:
  """Write the scene folder and merge its source into ``position.json``."""
  centre, mpu = scale_frame(sim.positions, sim.source)
  poses_scaled = sim.poses.copy()
  poses_scaled[:, :3, 3] = (sim.poses[:, :3, 3] - centre) / mpu
  source_scaled = (sim.source - centre) / mpu
  is_val = split_is_val(spec.frames, spec.val_fraction)
  scene_dir = out_root / str(spec.scene)
  write_scene_files(scene_dir, binaural=sim.binaural, source=sim.signal, sample_rate=spec.sr,
                    poses=sim.poses, poses_scaled=poses_scaled, times=sim.times,
                    is_val=is_val)
  meta = _scene_meta(spec, args, sim, centre=centre, mpu=mpu, source_scaled=source_scaled,
                     num_val=int(is_val.sum()))
  write_json_atomic(scene_dir / "scene_meta.json", meta)
  merge_position(out_root, spec.scene, source_scaled)
  return scene_dir


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
  t_start = time.perf_counter()
  spec = _Spec(scene=scene, room=room, rt60=rt60, materials=materials, source_pos=source_pos,
               signal=signal, seconds=seconds, trajectory=trajectory, yaw=yaw,
               pitch_deg=pitch_deg, head_radius=head_radius, sample_rate=sample_rate,
               seed=seed, ray_tracing=ray_tracing, val_fraction=val_fraction,
               max_order=max_order, ir_seconds=ir_seconds, ears=ears, hrtf=hrtf)
  args = spec.recorded()
  spec.check()
  sim = _simulate(spec, progress)
  scene_dir = _write(pathlib.Path(out_root), spec, args, sim)
  if progress:
    print(f"simulated scene {scene} ({spec.frames} frames, {len(sim.room.images)} image "
          f"sources, RT60 measured {sim.rt60_measured:.3f} s) in "
          f"{time.perf_counter() - t_start:.1f} s", file=sys.stderr)
  return scene_dir


def main(argv: Sequence[str] | None = None) -> pathlib.Path:
  """Command-line entry point; bad arguments or input exit with status 2."""
  parser = cli_parser()
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
