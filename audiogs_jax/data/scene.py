"""The in-memory scene and the input checks shared by every reader.

A :class:`SceneData` holds every clip of one split of one scene as plain numpy
arrays (no JAX here: reading data is host work):

==================  ==============  ==============================================
field               shape / type    meaning
==================  ==============  ==============================================
``binaural``        [N, 2, L] f32   ear signals, channel 0 = left, 1 = right
``source``          [N, L] f32      the mono source clip that produced each item
``poses``           [N, 4, 4] f32   head-to-world (OpenGL/nerfstudio: columns
                                    right, up, backward; translation in column 3)
``times``           [N] f64         time of the frame in seconds
``sample_rate``     int             Hz
``norm_factor``     float           the audio was DIVIDED by it; multiply to undo
``source_position`` [3] or None     same coordinates as ``poses`` (evaluation only)
``source_context``  [N, L] or None  the L source samples before each clip (zeros
                                    before the track starts; None: silence), read
                                    by the reverberant tail (``renderer.tail``)
``meta``            dict            scene facts (``rt60_true``, ``metres_per_unit``...)
``clip_ids``        list[str]       one id per item (frame file, clip dir + camera)
==================  ==============  ==============================================

All bad input raises :class:`DataError` (a ``ValueError``) whose message names
the offending file and what is wrong with it. The helpers below are the single
place where the checks live, so that the RWAVS and Replay-NVAS readers (and the
synthetic scenes, which use the RWAVS layout) reject the same things the same way.

Scene-level normalisation (method.md): every clip of a scene, source and
binaural, is divided by ``norm_factor`` = the largest binaural clip RMS (over
both channels of the zero-padded clip) among the clips the factor is computed on.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from fractions import Fraction
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "DataError",
    "SceneData",
    "SILENCE_RMS",
    "RIGID_TOL",
    "read_wav",
    "read_json",
    "require_key",
    "as_pose",
    "check_rigid",
    "check_audio_covers",
    "resample",
    "clip_rms",
    "norm_factor_of",
]

#: A track whose RMS is below this is considered silent.
SILENCE_RMS = 1e-8
#: A WAV with at least this fraction of subnormal samples is refused as not audio.
SUBNORMAL_FRACTION = 0.01
#: Tolerance of the rigid-transform check (orthonormality, det, last row).
RIGID_TOL = 1e-3


class DataError(ValueError):
  """Bad input data. The message always names the file and the problem."""

  def __init__(self, path: os.PathLike | str | None, problem: str):
    self.path = None if path is None else os.fspath(path)
    self.problem = problem
    super().__init__(f"{self.path}: {problem}" if self.path else problem)


@dataclasses.dataclass
class SceneData:
  """Every clip of one split of one scene (see the module docstring)."""

  binaural: np.ndarray
  source: np.ndarray
  poses: np.ndarray
  times: np.ndarray
  sample_rate: int
  norm_factor: float = 1.0
  source_position: np.ndarray | None = None
  meta: dict = dataclasses.field(default_factory=dict)
  clip_ids: list = dataclasses.field(default_factory=list)
  source_context: np.ndarray | None = None

  def __post_init__(self):
    self.binaural = np.asarray(self.binaural, dtype=np.float32)
    self.source = np.asarray(self.source, dtype=np.float32)
    self.poses = np.asarray(self.poses, dtype=np.float32)
    self.times = np.asarray(self.times, dtype=np.float64)
    if self.binaural.ndim != 3 or self.binaural.shape[1] != 2:
      raise ValueError(
          f"SceneData.binaural must be [N, 2, L], got shape {self.binaural.shape}")
    n, _, length = self.binaural.shape
    if self.source.shape != (n, length):
      raise ValueError(
          f"SceneData.source must be [N, L] = {(n, length)} to match binaural "
          f"{self.binaural.shape}, got {self.source.shape}")
    if self.source_context is not None:
      self.source_context = np.asarray(self.source_context, dtype=np.float32)
      if self.source_context.shape != (n, length):
        raise ValueError(f"SceneData.source_context must be [N, L] = {(n, length)} or "
                         f"None, got {self.source_context.shape}")
    if self.poses.shape != (n, 4, 4):
      raise ValueError(f"SceneData.poses must be [N, 4, 4] = {(n, 4, 4)}, "
                       f"got {self.poses.shape}")
    if self.times.shape != (n,):
      raise ValueError(f"SceneData.times must be [N] = {(n,)}, got {self.times.shape}")
    if int(self.sample_rate) != self.sample_rate or self.sample_rate <= 0:
      raise ValueError(f"SceneData.sample_rate must be a positive int, "
                       f"got {self.sample_rate!r}")
    self.sample_rate = int(self.sample_rate)
    self.norm_factor = float(self.norm_factor)
    if not (math.isfinite(self.norm_factor) and self.norm_factor > 0):
      raise ValueError(f"SceneData.norm_factor must be finite and > 0, "
                       f"got {self.norm_factor}")
    if self.source_position is not None:
      self.source_position = np.asarray(self.source_position, dtype=np.float64)
      if self.source_position.shape != (3,):
        raise ValueError(f"SceneData.source_position must be [3] or None, "
                         f"got shape {self.source_position.shape}")
    if self.meta is None:
      self.meta = {}
    if not isinstance(self.meta, dict):
      raise ValueError(f"SceneData.meta must be a dict, got {type(self.meta).__name__}")
    self.clip_ids = [str(c) for c in self.clip_ids]
    if len(self.clip_ids) != n:
      raise ValueError(f"SceneData.clip_ids must have N = {n} entries, "
                       f"got {len(self.clip_ids)}")

  def __len__(self) -> int:
    return int(self.binaural.shape[0])

  @property
  def clip_length(self) -> int:
    """L, samples per clip."""
    return int(self.binaural.shape[2])


# ----------------------------------------------------------------------------- audio

def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
  """Resample along the last axis with ``scipy.signal.resample_poly``.

  Args:
    x: [..., T] samples.
  Returns:
    [..., T * sr_out / sr_in] float32.
  """
  if sr_in == sr_out:
    return np.asarray(x, dtype=np.float32)
  from scipy.signal import resample_poly

  frac = Fraction(int(sr_out), int(sr_in))
  y = resample_poly(np.asarray(x, dtype=np.float64), frac.numerator, frac.denominator,
                    axis=-1)
  return y.astype(np.float32)


def read_wav(path: os.PathLike | str, *, channels: int | None, sample_rate: int | None,
             resample_audio: bool = True, check_silence: bool = True,
             notice: bool = True) -> np.ndarray:
  """Read a WAV file and check it.

  Args:
    path: the file.
    channels: required channel count (None: any).
    sample_rate: required rate in Hz (None: keep the file's).
    resample_audio: when the file's rate differs, resample to ``sample_rate``
      (True) or raise a DataError naming both rates (False).
    check_silence: reject a channel whose RMS is below ``SILENCE_RMS``.
    notice: say on stderr (one line) when the file is resampled.
  Returns:
    [channels, T] float32.
  Raises:
    DataError: missing/unreadable file, wrong channel count, NaN/Inf samples,
      subnormal samples (``SUBNORMAL_FRACTION`` of them or more; fewer are
      set to 0), a silent channel, a sample-rate mismatch with
      ``resample_audio=False``.
  """
  import soundfile as sf

  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(path, "missing file")
  try:
    data, sr = sf.read(path, dtype="float64", always_2d=True)
  except Exception as e:  # soundfile raises RuntimeError / LibsndfileError
    raise DataError(path, f"cannot read as audio ({e})") from e
  x = data.T  # [C, T]
  if channels is not None and x.shape[0] != channels:
    raise DataError(path, f"expected {channels} channel(s), found {x.shape[0]}")
  if x.shape[1] == 0:
    raise DataError(path, "empty audio (0 samples)")
  bad = ~np.isfinite(x)
  if bad.any():
    c, i = np.argwhere(bad)[0]
    raise DataError(path, f"{int(bad.sum())} NaN/Inf sample(s) "
                          f"(first at channel {c}, sample {i})")
  # Subnormal floats (0 < |x| < 1.2e-38, far below any audio): a few, as a float
  # fade-out may leave, are flushed to zero; many mean the data is not audio.
  sub = (x != 0) & (np.abs(x) < np.finfo(np.float32).tiny)
  if sub.any():
    if sub.mean() >= SUBNORMAL_FRACTION:
      c, i = np.argwhere(sub)[0]
      raise DataError(path, f"{int(sub.sum())} subnormal sample(s) (0 < |x| < "
                            f"{np.finfo(np.float32).tiny:.3g}, first at channel {c}, "
                            f"sample {i}): not audio (corrupt or uninitialised data?)")
    x = np.where(sub, 0.0, x)
  if check_silence:
    rms = np.sqrt(np.mean(x * x, axis=1))
    for c, r in enumerate(rms):
      if r < SILENCE_RMS:
        raise DataError(path, f"silent track: channel {c} has RMS {r:.3g} "
                              f"< {SILENCE_RMS:g}")
  if sample_rate is not None and sr != sample_rate:
    if not resample_audio:
      raise DataError(path, f"sample rate is {sr} Hz, expected {sample_rate} Hz "
                            f"(pass resample=True to resample)")
    if notice:
      import sys
      print(f"note: {path}: {sr} Hz, resampled to {sample_rate} Hz", file=sys.stderr)
    return resample(x, sr, sample_rate)
  return x.astype(np.float32)


# ----------------------------------------------------------------------------- JSON

def read_json(path: os.PathLike | str) -> Any:
  """Parse a JSON file; DataError on a missing file or malformed JSON (with line)."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(path, "missing file")
  try:
    with open(path, "r", encoding="utf-8") as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise DataError(path, f"malformed JSON at line {e.lineno}, column {e.colno}: "
                          f"{e.msg}") from e
  except UnicodeDecodeError as e:
    raise DataError(path, f"not UTF-8 text ({e})") from e


def require_key(obj: Any, key: str, path: os.PathLike | str, where: str = "") -> Any:
  """``obj[key]``, or a DataError naming the file, the key and where it was expected."""
  loc = f" in {where}" if where else ""
  if not isinstance(obj, Mapping):
    raise DataError(path, f"expected a JSON object{loc} holding key {key!r}, "
                          f"found {type(obj).__name__}")
  if key not in obj:
    raise DataError(path, f"missing key {key!r}{loc}")
  return obj[key]


# ----------------------------------------------------------------------------- poses

def as_pose(value: Any, path: os.PathLike | str, where: str = "") -> np.ndarray:
  """A 4x4 float64 matrix from 16 floats (row-major), 12 floats (3x4 row-major),
  or a nested 4x4 / 3x4 list. DataError otherwise."""
  loc = f" ({where})" if where else ""
  try:
    m = np.asarray(value, dtype=np.float64)
  except (TypeError, ValueError) as e:
    raise DataError(path, f"pose{loc} is not numeric: {e}") from e
  if m.size == 16:
    m = m.reshape(4, 4)
  elif m.size == 12:
    m = np.vstack([m.reshape(3, 4), [0.0, 0.0, 0.0, 1.0]])
  else:
    raise DataError(path, f"pose{loc} must have 16 (4x4) or 12 (3x4) numbers, "
                          f"found shape {m.shape}")
  if not np.all(np.isfinite(m)):
    raise DataError(path, f"pose{loc} has NaN/Inf entries")
  return m


def check_rigid(pose: np.ndarray, path: os.PathLike | str, where: str = "",
                tol: float = RIGID_TOL) -> None:
  """DataError unless ``pose`` [4, 4] is a rigid transform: orthonormal rotation
  (|R^T R - I| <= tol), det(R) = +1 within tol, last row [0, 0, 0, 1]."""
  loc = f" ({where})" if where else ""
  pose = np.asarray(pose, dtype=np.float64)
  if pose.shape != (4, 4):
    raise DataError(path, f"pose{loc} must be 4x4, found {pose.shape}")
  if np.max(np.abs(pose[3] - [0.0, 0.0, 0.0, 1.0])) > tol:
    raise DataError(path, f"pose{loc} is not a rigid transform: last row is "
                          f"{pose[3].tolist()}, expected [0, 0, 0, 1]")
  r = pose[:3, :3]
  err = float(np.max(np.abs(r.T @ r - np.eye(3))))
  if err > tol:
    raise DataError(path, f"pose{loc} is not a rigid transform: rotation is not "
                          f"orthonormal (max |R^T R - I| = {err:.3g} > {tol:g})")
  det = float(np.linalg.det(r))
  if abs(det - 1.0) > tol:
    raise DataError(path, f"pose{loc} is not a rigid transform: det(R) = {det:.4f}, "
                          f"expected +1")


# ----------------------------------------------------------------------------- lengths

def check_audio_covers(times: Sequence[float], num_samples: int, sample_rate: int,
                       path: os.PathLike | str, slack_seconds: float = 1.0,
                       poses_path: os.PathLike | str | None = None) -> None:
  """DataError when the audio is too short for the poses' times.

  A frame at time ``t`` needs audio around ``t``; frames up to ``slack_seconds``
  past the end are tolerated (their clips are simply cut or skipped, as the
  published loaders do), anything later means the track and the poses do not
  belong together.
  """
  if len(times) == 0:
    return
  duration = num_samples / float(sample_rate)
  t_max = float(np.max(times))
  if t_max > duration + slack_seconds:
    src = f" in {os.fspath(poses_path)}" if poses_path is not None else ""
    raise DataError(path, f"audio too short for the poses: {duration:.3f} s of audio "
                          f"but frames{src} up to t = {t_max:g} s")


# ----------------------------------------------------------------------------- normalisation

def clip_rms(clips: np.ndarray) -> np.ndarray:
  """RMS of each clip over all its channels and samples.

  Args:
    clips: [N, ...] array.
  Returns:
    [N] float64.
  """
  clips = np.asarray(clips, dtype=np.float64)
  if clips.shape[0] == 0:
    return np.zeros((0,), np.float64)
  return np.sqrt(np.mean(clips.reshape(clips.shape[0], -1) ** 2, axis=1))


def norm_factor_of(binaural_clips: Iterable[np.ndarray], normalize: bool = True) -> float:
  """Scene normalisation factor: max clip RMS of the binaural clips ([.., 2, L]
  arrays, any number of them); 1.0 when ``normalize`` is False or all silent."""
  if not normalize:
    return 1.0
  best = 0.0
  for clips in binaural_clips:
    clips = np.asarray(clips)
    if clips.size:
      best = max(best, float(np.max(clip_rms(clips))))
  return best if best > 0.0 else 1.0
