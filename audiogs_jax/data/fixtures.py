"""Small scenes on disk, in the released layouts, for tests and examples.

- :func:`write_rwavs_fixture`: a few seconds of simulated RWAVS-layout scenes
  (the :mod:`~audiogs_jax.data.synth` generator with cheap settings).
- :func:`write_replay_fixture`: a Replay-NVAS-layout scene made with the same
  simulator: a speaker at a table in the middle of the room and 8 binaural
  cameras on a circle around it, facing the table.

Both take a second or two and are deterministic for a seed.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Sequence

import numpy as np
import soundfile as sf
from scipy import signal as sps

from .ears import binaural_ir
from .replay_nvas import CAMERAS, CAMERAS_FILE, METADATA, shift
from .room import SPEED_OF_SOUND, build_room, image_sources
from .scene import read_json
from .signals import make_signal
from .synth import generate_scene
from .trajectory import head_pose

__all__ = ["write_rwavs_fixture", "write_replay_fixture", "FIXTURE_ROOM"]

FIXTURE_ROOM = (5.0, 4.0, 2.8)
_FIXTURE_RT60 = 0.25


def write_rwavs_fixture(root: os.PathLike | str, *, scenes: Sequence[str] = ("1",),
                        seconds: int = 6, sample_rate: int = 22050, seed: int = 0,
                        **overrides) -> pathlib.Path:
  """Write small simulated scenes in the RWAVS layout.

  Args:
    root: release root (created); gets ``position.json`` and one folder per scene.
    scenes: scene ids.
    seconds: frames per scene (audio is ``seconds + 0.5`` s).
    sample_rate: Hz.
    seed: scene i uses ``seed + i``.
    **overrides: any other :func:`~audiogs_jax.data.synth.generate_scene` argument.
  Returns:
    ``root``.
  """
  root = pathlib.Path(root)
  for i, scene in enumerate(scenes):
    kw = dict(scene=str(scene), room=FIXTURE_ROOM, rt60=_FIXTURE_RT60, signal="speech",
              seconds=seconds, sample_rate=sample_rate, seed=seed + i,
              ir_seconds=0.2, progress=False)
    kw.update(overrides)
    generate_scene(root, **kw)
  return root


def _replay_cameras(table: np.ndarray, radius: float) -> list[np.ndarray]:
  """Head-to-world poses [4, 4] of cameras 1..8: on a circle of ``radius`` around
  ``table`` at 1.5 m, camera k at angle (k - 1) * 45 deg, facing the table."""
  poses = []
  for cam in CAMERAS:
    ang = (cam - 1) * math.pi / 4
    pos = table[:2] + radius * np.array([math.cos(ang), math.sin(ang)])
    yaw = math.atan2(table[1] - pos[1], table[0] - pos[0])
    poses.append(head_pose([pos[0], pos[1], 1.5], yaw))
  return poses


def _write_clips(scene_dir: pathlib.Path, clips: Sequence[str], signals, rendered,
                 sr: int, gain: float, inject_delay: int) -> None:
  """``<clip>/near.wav`` (the signal shifted by ``inject_delay`` samples, zero
  fill) and ``<clip>/<cam>.wav`` (the rendered binaural times ``gain``)."""
  for clip, sig, per_cam in zip(clips, signals, rendered):
    d = scene_dir / clip
    d.mkdir(parents=True, exist_ok=True)
    sf.write(d / "near.wav", shift(sig, int(inject_delay)), sr, subtype="PCM_16")
    for cam, b in zip(CAMERAS, per_cam):
      sf.write(d / f"{cam}.wav", (b * gain).T.astype(np.float32), sr, subtype="PCM_16")


def _merge_json(path: pathlib.Path, update, empty):
  """Read ``path`` (``empty`` when missing), apply ``update`` to it, write it back."""
  path.parent.mkdir(parents=True, exist_ok=True)
  data = update(read_json(path) if path.exists() else empty)
  path.write_text(json.dumps(data, indent=1))


def write_replay_fixture(root: os.PathLike | str, *, scene: str = "SC-1025",
                         num_clips: int = 3, seconds: float = 2.0,
                         sample_rate: int = 16000, seed: int = 0,
                         inject_delay: int = 0, radius: float = 1.5) -> pathlib.Path:
  """Write one simulated scene in the Replay-NVAS layout.

  The speaker (source) stands at a table in the middle of a
  ``FIXTURE_ROOM`` room (1.2 m high); cameras 1..8 sit on a circle of
  ``radius`` around it at 1.5 m, camera k at angle (k - 1) * 45 deg, facing the
  table. Each clip is a different speech-like signal; ``near.wav`` is that
  signal delayed by ``inject_delay`` samples (zero fill; negative advances),
  ``<cam>.wav`` the simulated binaural recording. All binaural files of the
  scene share one gain (peak 0.9). Calling it again with another scene adds
  to the same metadata and camera files; ``fixture_meta.json`` records the
  ground truth (source and camera positions, delay, gain).

  Returns:
    ``root``.
  """
  root = pathlib.Path(root)
  sr = int(sample_rate)
  n = int(round(seconds * sr))
  room_dim = np.asarray(FIXTURE_ROOM)
  table = np.array([room_dim[0] / 2, room_dim[1] / 2, 1.2])
  room, _ = build_room(room_dim, table, rt60=_FIXTURE_RT60, sample_rate=sr)
  images = image_sources(room, max_distance=SPEED_OF_SOUND * 0.2)
  poses = _replay_cameras(table, radius)
  irs = [binaural_ir(images, p, sample_rate=sr, ir_seconds=0.2) for p in poses]
  clips = [f"{i:04d}" for i in range(num_clips)]
  signals = [make_signal("speech", seconds, sr, seed * 1000 + i) for i in range(num_clips)]
  rendered = [[sps.fftconvolve(sig[None, :], ir, axes=1)[:, :n] for ir in irs]
              for sig in signals]
  gain = 0.9 / max(float(np.max(np.abs(b))) for per in rendered for b in per)
  _write_clips(root / scene, clips, signals, rendered, sr, gain, inject_delay)

  # Absolute-looking keys, as written on the machine that preprocessed the release.
  _merge_json(root / METADATA, lambda meta: {**meta, **{
      f"/data/ReplayNVAS/{scene}/{clip}": {"num_cameras": len(CAMERAS),
                                           "duration": float(seconds)}
      for clip in clips}}, {})
  _merge_json(root / CAMERAS_FILE, lambda cams: _with_cameras(cams, scene, poses), [])
  _merge_json(root / "fixture_meta.json", lambda truth: {**truth, scene: {
      "source_position": table.tolist(), "room_dim": room_dim.tolist(),
      "inject_delay": int(inject_delay), "binaural_gain": gain,
      "camera_positions": [p[:3, 3].tolist() for p in poses]}}, {})
  return root


def _with_cameras(cams: list, scene: str, poses: Sequence[np.ndarray]) -> list:
  """``gs_cameras.json`` entries: ``cams`` without ``scene``'s, then its cameras
  (OpenCV columns, as 3D Gaussian Splatting writes them)."""
  cams = [c for c in cams if not str(c.get("img_name", "")).startswith(f"{scene}_")]
  for cam, p in zip(CAMERAS, poses):
    r_cv = p[:3, :3] @ np.diag([1.0, -1.0, -1.0])   # OpenGL -> OpenCV columns
    cams.append({"id": len(cams), "img_name": f"{scene}_{cam}", "width": 640,
                 "height": 360, "position": p[:3, 3].tolist(),
                 "rotation": r_cv.tolist(), "fy": 400.0, "fx": 400.0})
  return cams
