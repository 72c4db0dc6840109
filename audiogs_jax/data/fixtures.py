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
from scipy import signal as sps

from . import synth
from .replay_nvas import CAMERAS, CAMERAS_FILE, METADATA
from .scene import read_json
from .signals import make_signal

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
    synth.generate_scene(root, **kw)
  return root


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
  to the same metadata and camera files.

  Returns:
    ``root``.
  """
  root = pathlib.Path(root)
  sr = int(sample_rate)
  n = int(round(seconds * sr))
  room_dim = np.asarray(FIXTURE_ROOM)
  table = np.array([room_dim[0] / 2, room_dim[1] / 2, 1.2])
  room, _ = synth.build_room(room_dim, table, rt60=_FIXTURE_RT60, sample_rate=sr)
  images = synth.image_sources(room, max_distance=synth.SPEED_OF_SOUND * 0.2)
  poses = []
  for cam in CAMERAS:
    ang = (cam - 1) * math.pi / 4
    pos = table[:2] + radius * np.array([math.cos(ang), math.sin(ang)])
    yaw = math.atan2(table[1] - pos[1], table[0] - pos[0])
    poses.append(synth.head_pose([pos[0], pos[1], 1.5], yaw))
  irs = [synth.binaural_ir(images, p, sample_rate=sr, ir_seconds=0.2) for p in poses]

  clips = [f"{i:04d}" for i in range(num_clips)]
  signals = [make_signal("speech", seconds, sr, seed * 1000 + i) for i in range(num_clips)]
  rendered = [[sps.fftconvolve(sig[None, :], ir, axes=1)[:, :n] for ir in irs]
              for sig in signals]
  gain = 0.9 / max(float(np.max(np.abs(b))) for per in rendered for b in per)

  import soundfile as sf

  for clip, sig, per_cam in zip(clips, signals, rendered):
    d = root / scene / clip
    d.mkdir(parents=True, exist_ok=True)
    near = np.zeros_like(sig)
    k = int(inject_delay)
    if k > 0:
      near[k:] = sig[:-k]
    elif k < 0:
      near[:k] = sig[-k:]
    else:
      near[:] = sig
    sf.write(d / "near.wav", near, sr, subtype="PCM_16")
    for cam, b in zip(CAMERAS, per_cam):
      sf.write(d / f"{cam}.wav", (b * gain).T.astype(np.float32), sr, subtype="PCM_16")

  # Metadata (merged with an existing file): absolute-looking keys, as written
  # on the machine that preprocessed the release.
  meta_path = root / METADATA
  meta_path.parent.mkdir(parents=True, exist_ok=True)
  metadata = read_json(meta_path) if meta_path.exists() else {}
  for clip in clips:
    metadata[f"/data/ReplayNVAS/{scene}/{clip}"] = {"num_cameras": len(CAMERAS),
                                                    "duration": float(seconds)}
  meta_path.write_text(json.dumps(metadata, indent=1))

  cam_path = root / CAMERAS_FILE
  cam_path.parent.mkdir(parents=True, exist_ok=True)
  cams = read_json(cam_path) if cam_path.exists() else []
  cams = [c for c in cams if not str(c.get("img_name", "")).startswith(f"{scene}_")]
  for i, (cam, p) in enumerate(zip(CAMERAS, poses)):
    r_cv = p[:3, :3] @ np.diag([1.0, -1.0, -1.0])   # OpenGL -> OpenCV columns
    cams.append({"id": len(cams), "img_name": f"{scene}_{cam}", "width": 640,
                 "height": 360, "position": p[:3, 3].tolist(),
                 "rotation": r_cv.tolist(), "fy": 400.0, "fx": 400.0})
  cam_path.write_text(json.dumps(cams, indent=1))

  truth_path = root / "fixture_meta.json"
  truth = read_json(truth_path) if truth_path.exists() else {}
  truth[scene] = {"source_position": table.tolist(), "room_dim": room_dim.tolist(),
                  "inject_delay": int(inject_delay), "binaural_gain": gain,
                  "camera_positions": [p[:3, 3].tolist() for p in poses]}
  truth_path.write_text(json.dumps(truth, indent=1))
  return root
