"""Listener poses from the command line and files, and mono sources from WAV files.

Poses are 4x4 head-to-world matrices in the scene's (normalised) coordinates:
``parse_pose`` takes 16 numbers (row-major) or a .json/.npy file holding a 4x4;
``load_trajectory`` takes a JSON file, either ``{"poses": [{"time": seconds,
"pose": 4x4 or 16 numbers}, ...]}`` (or that list alone), or an RWAVS-style
``{"camera_path": [{"file_path": "frames/00001.png", "camera_to_world": ...}]}``
(time = the frame number in seconds); times must be finite and strictly
increasing. ``trajectory_fn`` interpolates between keyframes: the position
linearly, the orientation by spherical interpolation (``cli.TRAJECTORY_HELP``).
Bad input raises ``DataError`` naming the file or option.
"""

from __future__ import annotations

import os
import pathlib
import warnings
from typing import Callable

import numpy as np
import soundfile as sf
from scipy.spatial.transform import Rotation, Slerp

from audiogs_jax.data.scene import DataError, as_pose, check_rigid, read_json, read_wav
from audiogs_jax.data.rwavs import frame_time

__all__ = ["load_source", "parse_pose", "load_trajectory", "check_times", "trajectory_fn"]


def load_source(path, sample_rate: int) -> np.ndarray:
  """Mono float32 source at ``sample_rate``: resampled with a warning when the
  file's rate differs, refused (DataError naming the file) on NaN/Inf."""
  path = os.fspath(path)
  try:
    sr = sf.info(path).samplerate
  except Exception:  # read_wav gives the clear error
    sr = sample_rate
  if sr != sample_rate:
    warnings.warn(f"{path}: sample rate {sr} Hz differs from the model's {sample_rate} Hz; "
                  f"resampling", stacklevel=2)
  x = read_wav(path, channels=None, sample_rate=sample_rate, check_silence=False,
               notice=False)
  if x.shape[0] > 1:
    warnings.warn(f"{path}: {x.shape[0]} channels; mixing down to mono", stacklevel=2)
  return np.mean(x, axis=0).astype(np.float32)


def parse_pose(text: str) -> np.ndarray:
  """16 numbers, or a .json / .npy file with a 4x4 pose."""
  if _names_a_file(text):
    p = pathlib.Path(text)
    if not p.is_file():
      raise DataError(str(p), "missing file")
    if p.suffix == ".npy":
      try:
        value = np.load(p, allow_pickle=False).tolist()
      except (OSError, ValueError, EOFError) as e:
        raise DataError(str(p), f"cannot read as a .npy array ({e})") from None
    else:
      value = read_json(p)
    pose = as_pose(value, str(p))
    check_rigid(pose, str(p))
    return pose
  try:
    nums = [float(v) for v in text.replace(",", " ").split()]
  except ValueError:
    raise DataError("--pose", f"expected 16 numbers or a file, got {text!r}") from None
  if len(nums) != 16:
    raise DataError("--pose", f"expected 16 numbers (a 4x4 matrix, row-major), got "
                              f"{len(nums)}")
  pose = as_pose(nums, "--pose")   # refuses NaN / Inf entries
  check_rigid(pose, "--pose")
  return pose


def _names_a_file(text: str) -> bool:
  """Whether a ``--pose`` value is a file name (a .json/.npy name, or any
  existing path) rather than numbers."""
  if text.endswith((".json", ".npy")):
    return True
  try:
    return os.path.exists(text)
  except (OSError, ValueError):   # too long for a file name, NUL bytes: not a path
    return False


def load_trajectory(path) -> tuple[np.ndarray, np.ndarray]:
  """``(times [K], poses [K, 4, 4])`` from a trajectory JSON (format:
  ``cli.TRAJECTORY_HELP``); DataError naming the file and the entry for a
  missing key, a non-numeric / NaN / repeated / decreasing time, or a pose
  that is not a finite rigid 4x4."""
  path = os.fspath(path)
  obj = read_json(path)
  times, poses = [], []
  if isinstance(obj, dict) and "camera_path" in obj:
    if not isinstance(obj["camera_path"], list) or not obj["camera_path"]:
      raise DataError(path, "'camera_path' must be a non-empty list of keyframes")
    for i, e in enumerate(obj["camera_path"]):
      where = f"camera_path[{i}]"
      if not isinstance(e, dict) or "file_path" not in e or "camera_to_world" not in e:
        raise DataError(path, f"{where} needs 'file_path' and 'camera_to_world'")
      times.append(float(frame_time(e["file_path"], path, where)))
      poses.append(as_pose(e["camera_to_world"], path, where))
  else:
    entries = obj.get("poses") if isinstance(obj, dict) else obj
    if not isinstance(entries, list) or not entries:
      raise DataError(path, "expected {'poses': [{'time': s, 'pose': 4x4}, ...]}, a list of "
                            "such entries, or an RWAVS 'camera_path'")
    for i, e in enumerate(entries):
      where = f"poses[{i}]"
      if not isinstance(e, dict) or "time" not in e or "pose" not in e:
        raise DataError(path, f"{where} needs 'time' and 'pose'")
      t = e["time"]
      if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise DataError(path, f"{where}.time is not a number: {t!r}")
      times.append(float(t))
      poses.append(as_pose(e["pose"], path, where))
  check_times(times, path, "camera_path" if isinstance(obj, dict) and "camera_path" in obj
              else "poses")
  for i, p in enumerate(poses):
    check_rigid(p, path, f"pose {i}")
  return np.asarray(times, np.float64), np.stack(poses)


def check_times(times, path, key: str = "poses") -> None:
  """DataError unless the keyframe times are finite and strictly increasing
  (interpolation needs an order; two poses at one time contradict each other)."""
  for i, t in enumerate(times):
    if not np.isfinite(t):
      raise DataError(path, f"{key}[{i}].time is {t}: keyframe times must be finite")
  for i in range(1, len(times)):
    if times[i] == times[i - 1]:
      raise DataError(path, f"{key}[{i - 1}] and {key}[{i}] have the same time "
                            f"{times[i]:g} s: keyframe times must differ")
    if times[i] < times[i - 1]:
      raise DataError(path, f"{key}[{i}].time {times[i]:g} s comes after "
                            f"{times[i - 1]:g} s: keyframe times must increase")


def trajectory_fn(times: np.ndarray, poses: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
  """Pose at any time: linear position, slerp orientation, clamped at the ends."""
  if len(times) == 1:
    return lambda t: np.repeat(poses[:1], len(np.atleast_1d(t)), 0)
  slerp = Slerp(times, Rotation.from_matrix(poses[:, :3, :3]))

  def at(t):
    t = np.clip(np.atleast_1d(np.asarray(t, np.float64)), times[0], times[-1])
    out = np.tile(np.eye(4), (len(t), 1, 1))
    out[:, :3, :3] = slerp(t).as_matrix()
    for k in range(3):
      out[:, k, 3] = np.interp(t, times, poses[:, k, 3])
    return out

  return at
