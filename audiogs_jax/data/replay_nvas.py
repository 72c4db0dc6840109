"""Reader for Replay-NVAS (ViGAS, CVPR 2023) as preprocessed for AV-Cloud.

Layout (see docs/datasets.md)::

    ReplayNVAS/
      v3/metadata_v2.json          keys: clip directories ("<...>/<scene>/<clip>")
      cam_imags/gs_cameras.json    [{"img_name": "<scene>_<cam>", "position": [3],
                                     "rotation": 3x3, "fx", "fy", "width", "height"}, ...]
      <scene>/<clip>/near.wav      source (mono), <scene>/<clip>/<cam>.wav binaural, cams 1..8

Clip keys. The scene id is the second-to-last path component and the clip the
last one (``key.rstrip('/').split('/')[-2:]``), so keys with or without a
trailing slash, absolute (from the machine that made the file) or relative, all
resolve to ``root/<scene>/<clip>``. Per scene the clip directories are sorted
(natural order) and every ``every``-th one is kept, starting with the first.

Poses. ``gs_cameras.json`` is the ``cameras.json`` written by 3D Gaussian
Splatting: ``position`` is the camera centre in world coordinates and
``rotation`` the camera-to-world rotation with OpenCV/COLMAP columns (x right,
y down, z forward). The head-to-world pose in our OpenGL convention (columns
right, up, backward) is ``R_gl = R_cv @ diag(1, -1, -1)``: same right axis,
up = -y, backward = -z; translation = ``position``. The binaural channels 0/1
are taken as left/right ears on the camera's x axis.

Preprocessing (the published numbers'): both tracks are high-passed at 150 Hz
(5th-order Butterworth, zero-phase ``sosfiltfilt``; "band-pass 150 Hz to
Nyquist"), the source is aligned to the target with GCC-PHAT (the delay of the
target's channel mean relative to the source, clipped to +-200 samples, applied
as a shift with zero fill), then both are cut to ``clip_seconds`` (zero-padded
at the end if the recording is shorter, DataError if shorter than half a clip).

Split semantics. ``split`` picks the v3 scene list (``TRAIN_SCENES``,
``VAL_SCENES``, ``TEST_SCENES``); ``scenes=`` overrides it. Held-out camera
(Audio 3DGS): with ``holdout_camera=k`` (and ``scenes=`` given), "train" returns
the other 7 cameras' recordings and "val"/"test" camera k's, on the same clips.

``times`` are nominal: the clip's index in its scene's sorted list times
``clip_seconds``. Normalisation: max binaural clip RMS (after the high-pass) over
the loaded clips; with ``holdout_camera`` over all 8 cameras of those clips, so the
train and test sides get the same factor.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from typing import Iterable, Sequence

import numpy as np
from scipy import signal as sps

from .scene import (DataError, SceneData, check_rigid, clip_rms, read_json,
                    read_wav, require_key)

__all__ = ["TRAIN_SCENES", "VAL_SCENES", "TEST_SCENES", "SPLIT_SCENES", "CAMERAS",
           "MAX_DELAY", "HIGHPASS_HZ", "gcc_phat_delay", "highpass", "shift",
           "parse_clip_key", "camera_pose", "load"]

TRAIN_SCENES = tuple(f"SC-{n}" for n in (
    1025, 1032, 1033, 1045, 1059, 1069, 1078, 1066, 1070, 1076, 1081, 1077, 1035, 1085,
    1087, 1101, 1102, 1104, 1106, 1105, 1090, 1036, 1048, 1049, 1075, 1108, 1047, 1050))
VAL_SCENES = tuple(f"SC-{n}" for n in (1026, 1054, 1073, 1082, 1092, 1103))
TEST_SCENES = tuple(f"SC-{n}" for n in (1027, 1044, 1052, 1074, 1084, 1093, 1107))
SPLIT_SCENES = {"train": TRAIN_SCENES, "val": VAL_SCENES, "test": TEST_SCENES}
CAMERAS = tuple(range(1, 9))
MAX_DELAY = 200
HIGHPASS_HZ = 150.0
METADATA = "v3/metadata_v2.json"
CAMERAS_FILE = "cam_imags/gs_cameras.json"
_CV_TO_GL = np.diag([1.0, -1.0, -1.0])


# ----------------------------------------------------------------------------- DSP

def highpass(x: np.ndarray, sr: int, cutoff: float = HIGHPASS_HZ, order: int = 5) -> np.ndarray:
  """Zero-phase Butterworth high-pass along the last axis (``sosfiltfilt``)."""
  sos = sps.butter(order, cutoff, btype="highpass", fs=sr, output="sos")
  return sps.sosfiltfilt(sos, np.asarray(x, dtype=np.float64), axis=-1)


def gcc_phat_delay(x: np.ndarray, ref: np.ndarray, max_delay: int = MAX_DELAY) -> int:
  """Delay of ``x`` relative to ``ref`` in whole samples, by GCC-PHAT.

  Positive when ``x`` lags ``ref``: ``x[n] ~ ref[n - d]``.

  Args:
    x: [T] signal.
    ref: [T'] reference.
    max_delay: the search is limited to |d| <= max_delay.
  Returns:
    d, an int in [-max_delay, max_delay].
  """
  x = np.asarray(x, dtype=np.float64)
  ref = np.asarray(ref, dtype=np.float64)
  n = x.shape[-1] + ref.shape[-1]
  nfft = 1 << int(np.ceil(np.log2(max(n, 2))))
  cross = np.fft.rfft(x, nfft) * np.conj(np.fft.rfft(ref, nfft))
  cross /= np.maximum(np.abs(cross), 1e-12)
  cc = np.fft.irfft(cross, nfft)
  m = int(min(max_delay, nfft // 2 - 1))
  window = np.concatenate([cc[-m:], cc[:m + 1]]) if m > 0 else cc[:1]
  return int(np.argmax(window)) - m


def shift(x: np.ndarray, d: int) -> np.ndarray:
  """Delay ``x`` (last axis) by ``d`` samples (advance if negative), zero fill."""
  out = np.zeros_like(x)
  if d > 0:
    out[..., d:] = x[..., :-d]
  elif d < 0:
    out[..., :d] = x[..., -d:]
  else:
    out[...] = x
  return out


# ----------------------------------------------------------------------------- metadata

def parse_clip_key(key: str) -> tuple[str, str]:
  """(scene, clip) from a metadata key: the last two path components."""
  parts = [p for p in str(key).replace("\\", "/").rstrip("/").split("/") if p]
  if len(parts) < 2:
    raise ValueError(f"clip key {key!r} has no '<scene>/<clip>' components")
  return parts[-2], parts[-1]


def _natural(s: str):
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def camera_pose(entry: dict, path: os.PathLike | str, where: str = "") -> np.ndarray:
  """Head-to-world [4, 4] (OpenGL columns) from a gs_cameras.json entry
  (OpenCV camera-to-world rotation, camera centre)."""
  pos = np.asarray(require_key(entry, "position", path, where), dtype=np.float64)
  rot = np.asarray(require_key(entry, "rotation", path, where), dtype=np.float64)
  if pos.size != 3 or rot.size != 9:
    raise DataError(path, f"{where}: position must have 3 numbers and rotation 3x3, "
                          f"found {pos.shape} and {rot.shape}")
  pose = np.eye(4)
  pose[:3, :3] = rot.reshape(3, 3) @ _CV_TO_GL
  pose[:3, 3] = pos.reshape(3)
  check_rigid(pose, path, where)
  return pose


def _read_cameras(root: pathlib.Path) -> dict[tuple[str, int], np.ndarray]:
  path = root / CAMERAS_FILE
  data = read_json(path)
  if isinstance(data, dict):  # tolerate {"cameras": [...]}
    data = require_key(data, "cameras", path)
  if not isinstance(data, list):
    raise DataError(path, f"expected a list of cameras, found {type(data).__name__}")
  out = {}
  for i, entry in enumerate(data):
    where = f"entry {i}"
    name = str(require_key(entry, "img_name", path, where))
    scene, _, cam = name.rpartition("_")
    try:
      cam_id = int(os.path.splitext(cam)[0])
    except ValueError:
      raise DataError(path, f"{where}: img_name {name!r} is not '<scene>_<cam>'") from None
    out[(scene, cam_id)] = camera_pose(entry, path, f"{where} ({name})")
  return out


# ----------------------------------------------------------------------------- load

def _split_cameras(split: str, scenes: Sequence[str] | None,
                   holdout_camera: int | None) -> tuple[int, ...]:
  """The cameras whose recordings a split returns (see the module docstring)."""
  if holdout_camera is None:
    return CAMERAS
  if scenes is None:
    raise ValueError("holdout_camera needs scenes=[...] (the same scenes for the "
                     "train and test sides)")
  if int(holdout_camera) not in CAMERAS:
    raise ValueError(f"holdout_camera must be one of {CAMERAS}, got {holdout_camera}")
  return ((int(holdout_camera),) if split in ("val", "test") else
          tuple(c for c in CAMERAS if c != int(holdout_camera)))


def _clips_by_scene(meta_path: pathlib.Path) -> dict[str, list[str]]:
  """Scene -> its clip directories, in the metadata's order (first seen)."""
  metadata = read_json(meta_path)
  if isinstance(metadata, list):
    keys: Iterable[str] = [str(k) for k in metadata]
  elif isinstance(metadata, dict):
    keys = [str(k) for k in metadata.keys()]
  else:
    raise DataError(meta_path, "expected a JSON object keyed by clip directory")
  by_scene: dict[str, list[str]] = {}
  for k in keys:
    try:
      sc, cl = parse_clip_key(k)
    except ValueError as e:
      raise DataError(meta_path, str(e)) from None
    by_scene.setdefault(sc, [])
    if cl not in by_scene[sc]:
      by_scene[sc].append(cl)
  return by_scene


def _wanted_scenes(by_scene: dict, split: str, scenes: Sequence[str] | None,
                   meta_path: pathlib.Path) -> list[str]:
  """``scenes`` (all listed in the metadata), or the listed scenes of ``split``."""
  if scenes is None:
    wanted = [s for s in SPLIT_SCENES[split] if s in by_scene]
    if not wanted:
      raise DataError(meta_path, f"none of the {split} scenes {SPLIT_SCENES[split]} "
                                 f"is listed")
    return wanted
  wanted = [str(s) for s in scenes]
  missing = [s for s in wanted if s not in by_scene]
  if missing:
    raise DataError(meta_path, f"scene(s) {missing} not listed")
  return wanted


@dataclasses.dataclass
class _ClipReader:
  """Reads clips (high-passed, cut to ``length``, source aligned) into lists."""

  root: pathlib.Path
  sr: int
  length: int
  clip_seconds: float
  resample: bool
  max_delay: int
  cameras: dict
  bins: list = dataclasses.field(default_factory=list)     # [2, length] float32
  srcs: list = dataclasses.field(default_factory=list)     # [length] float32
  poses: list = dataclasses.field(default_factory=list)
  times: list = dataclasses.field(default_factory=list)
  ids: list = dataclasses.field(default_factory=list)
  delays: list = dataclasses.field(default_factory=list)
  best_rms: float = 0.0   # over every camera read, kept or not

  def read(self, scene: str, clip: str, time: float, norm_cams, cams) -> None:
    """Read the ``norm_cams`` recordings of a clip for the normalisation factor
    and keep those of ``cams``."""
    sr, length = self.sr, self.length
    clip_dir = self.root / scene / clip
    near = read_wav(clip_dir / "near.wav", channels=1, sample_rate=sr,
                    resample_audio=self.resample)[0]
    near = highpass(near, sr)
    for cam in norm_cams:
      if (scene, cam) not in self.cameras:
        raise DataError(self.root / CAMERAS_FILE, f"no camera '{scene}_{cam}'")
      cam_path = clip_dir / f"{cam}.wav"
      target = highpass(read_wav(cam_path, channels=2, sample_rate=sr,
                                 resample_audio=self.resample), sr)
      n = min(target.shape[1], near.shape[0])
      if n < length / 2:
        raise DataError(cam_path, f"audio too short: {n / sr:.3f} s, the clip "
                                  f"needs {self.clip_seconds:g} s")
      m = min(n, length)
      b = np.zeros((2, length), np.float32)
      b[:, :m] = target[:, :m]
      self.best_rms = max(self.best_rms, float(clip_rms(b[None])[0]))
      if cam not in cams:
        continue
      d = gcc_phat_delay(target[:, :n].mean(axis=0), near[:n], self.max_delay)
      s = np.zeros((length,), np.float32)
      s[:m] = shift(near[:n], d)[:m]
      self.bins.append(b)
      self.srcs.append(s)
      self.poses.append(self.cameras[(scene, cam)])
      self.times.append(time)
      self.ids.append(f"{scene}/{clip}/{cam}")
      self.delays.append(d)


def load(root: os.PathLike | str, split: str, *, scenes: Sequence[str] | None = None,
         holdout_camera: int | None = None, sample_rate: int = 16000,
         clip_seconds: float = 2.0, normalize: bool = True, every: int = 3,
         resample: bool = True, max_delay: int = MAX_DELAY) -> SceneData:
  """Load Replay-NVAS clips.

  Args:
    root: dataset root (holds ``v3/``, ``cam_imags/`` and the scene folders).
    split: "train", "val" or "test".
    scenes: scene ids to load (default: the v3 list of ``split``, keeping the
      scenes present in the metadata); explicit scenes must all be present.
    holdout_camera: camera id k for the held-out-camera protocol ("train": the
      other cameras, "val"/"test": camera k); requires ``scenes``.
    sample_rate: Hz (files at another rate are resampled unless resample=False).
    clip_seconds: clip length.
    normalize: divide by the max binaural clip RMS of the loaded clips (all
      8 cameras of them with ``holdout_camera``).
    every: keep every ``every``-th clip directory of each scene.
    resample: see ``sample_rate``.
    max_delay: GCC-PHAT search range in samples.
  Returns:
    SceneData: binaural [N, 2, L], source [N, L] (aligned to each target),
    poses [N, 4, 4], clip_ids "<scene>/<clip>/<cam>", meta with ``scenes``,
    ``cameras``, ``gcc_delays`` [N], ``holdout_camera``.
  """
  if split not in SPLIT_SCENES:
    raise ValueError(f"split must be one of {tuple(SPLIT_SCENES)}, got {split!r}")
  cams = _split_cameras(split, scenes, holdout_camera)
  if every < 1:
    raise ValueError("every must be >= 1")
  root = pathlib.Path(root)
  sr = int(sample_rate)
  meta_path = root / METADATA
  by_scene = _clips_by_scene(meta_path)
  wanted = _wanted_scenes(by_scene, split, scenes, meta_path)
  reader = _ClipReader(root, sr, int(round(clip_seconds * sr)), float(clip_seconds),
                       resample, max_delay, _read_cameras(root))
  # In the held-out protocol the factor covers all 8 cameras of the clips, so
  # that the train and test sides share it.
  norm_cams = CAMERAS if holdout_camera is not None else cams
  for sc in wanted:
    clips = sorted(by_scene[sc], key=_natural)
    for ci in range(0, len(clips), every):
      reader.read(sc, clips[ci], ci * clip_seconds, norm_cams, cams)
  if not reader.bins:
    raise DataError(meta_path, f"no clips selected for split {split!r}")
  binaural = np.stack(reader.bins)
  norm = (reader.best_rms if reader.best_rms > 0 else 1.0) if normalize else 1.0
  return SceneData(
      binaural=binaural / norm,
      source=np.stack(reader.srcs) / norm,
      poses=np.stack(reader.poses),
      times=np.asarray(reader.times, dtype=np.float64),
      sample_rate=sr,
      norm_factor=norm,
      source_position=None,
      meta={"dataset": "replay_nvas", "split": split, "scenes": list(wanted),
            "cameras": list(cams), "holdout_camera": holdout_camera, "every": every,
            "clip_seconds": float(clip_seconds),
            "gcc_delays": [int(v) for v in reader.delays]},
      clip_ids=reader.ids,
  )
