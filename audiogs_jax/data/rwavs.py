"""Reader for RWAVS (AV-NeRF, NeurIPS 2023) and the built-in synthetic scenes.

Layout (see docs/datasets.md)::

    release/
      position.json                    {"1": {"source_position": [x, y, z]}, ...}
      1/
        binaural_syn_re.wav            2 channels, 22050 Hz
        source_syn_re.wav              1 channel, synchronised
        transforms_scale_train.json    {"camera_path": [{"file_path": "frames/00001.png",
        transforms_scale_val.json                         "camera_to_world": ...}, ...]}
        scene_meta.json                (synthetic scenes only; copied into ``meta``)

A frame's time is ``int(basename(file_path) without extension)`` seconds. Clips are
``sample_rate`` samples (1 s) long, cut from the tracks with one of two conventions:

- ``"centered"`` (AV-NeRF): ``start = max(0, int(sr * (t - 0.5)))``,
  ``end = min(T, int(sr * (t + 0.5)))``; skipped when ``end - start < sr / 2``;
  zero-padded at the end to ``sr`` samples.
- ``"preceding"`` (AV-Cloud): ``[sr * (t - 1), sr * t)`` clamped to the track,
  zero-padded at the end to ``sr``; skipped when empty.

Poses are the ``camera_to_world`` matrices of ``transforms_scale_{split}.json``
unchanged (head-to-world, OpenGL: columns right, up, backward), in the release's
normalised coordinates; ``source_position`` comes from ``position.json`` in the
same coordinates. Normalisation: ``norm_factor`` is the max binaural clip RMS over
the clips of BOTH splits of the scene (the same factor for train and val).
"""

from __future__ import annotations

import os
import pathlib
from typing import Sequence

import numpy as np

from .scene import (DataError, SceneData, as_pose, check_audio_covers, check_rigid,
                    norm_factor_of, read_json, read_wav, require_key)

__all__ = ["CLIP_CONVENTIONS", "SPLITS", "clip_range", "frame_time",
           "read_camera_path", "check_synchronised", "load"]

CLIP_CONVENTIONS = ("centered", "preceding")
SPLITS = ("train", "val")
BINAURAL_FILE = "binaural_syn_re.wav"
SOURCE_FILE = "source_syn_re.wav"


def clip_range(t: float, num_samples: int, sr: int, clip: str = "centered"
               ) -> tuple[int, int] | None:
  """Sample range [start, end) of the clip of a frame at time ``t`` seconds,
  or None when the convention skips it (see the module docstring)."""
  if clip == "centered":
    start = max(0, int(sr * (t - 0.5)))
    end = min(int(num_samples), int(sr * (t + 0.5)))
    if end - start < sr / 2:
      return None
    return start, end
  if clip == "preceding":
    start = max(0, int(sr * (t - 1)))
    end = min(int(num_samples), int(sr * t))
    if end - start <= 0:
      return None
    return start, end
  raise ValueError(f"unknown clip convention {clip!r}; expected one of {CLIP_CONVENTIONS}")


def frame_time(file_path: str, json_path: os.PathLike | str, where: str = "") -> int:
  """``int(basename(file_path) without extension)``; DataError if not an integer."""
  stem = os.path.splitext(os.path.basename(str(file_path)))[0]
  try:
    return int(stem)
  except ValueError:
    raise DataError(json_path, f"file_path {file_path!r}{' in ' + where if where else ''} "
                               f"does not name a frame number (expected e.g. "
                               f"'frames/00001.png')") from None


def read_camera_path(path: os.PathLike | str) -> tuple[list[str], np.ndarray, np.ndarray]:
  """Parse a ``transforms_*.json`` file.

  Returns:
    (file_paths [N], times [N] int seconds, poses [N, 4, 4] float64), checked:
    keys present, poses rigid.
  """
  data = read_json(path)
  cams = require_key(data, "camera_path", path)
  if not isinstance(cams, list):
    raise DataError(path, f"'camera_path' must be a list, found {type(cams).__name__}")
  files, times, poses = [], [], []
  for i, cam in enumerate(cams):
    where = f"camera_path[{i}]"
    fp = require_key(cam, "file_path", path, where)
    c2w = require_key(cam, "camera_to_world", path, where)
    pose = as_pose(c2w, path, where)
    check_rigid(pose, path, where)
    files.append(str(fp))
    times.append(frame_time(fp, path, where))
    poses.append(pose)
  poses_arr = np.stack(poses) if poses else np.zeros((0, 4, 4))
  return files, np.asarray(times, dtype=np.int64), poses_arr


def check_synchronised(bin_path: pathlib.Path, src_path: pathlib.Path) -> None:
  """DataError when the two tracks of a scene differ in duration by more than
  1 s (by their headers: frames / sample rate). The shorter track is named
  (cut short, or its header's sample rate is wrong), with both durations and
  both header rates."""
  import soundfile as sf
  info = {p: sf.info(str(p)) for p in (bin_path, src_path)}
  dur = {p: i.frames / float(i.samplerate) for p, i in info.items()}
  if abs(dur[bin_path] - dur[src_path]) <= 1.0:
    return
  short, other = ((bin_path, src_path) if dur[bin_path] < dur[src_path]
                  else (src_path, bin_path))
  def desc(p):
    return f"{dur[p]:.2f} s ({info[p].frames} samples at {info[p].samplerate} Hz)"

  raise DataError(short, f"not synchronised with {other.name}: {desc(short)} vs "
                         f"{desc(other)}; cut short, or a wrong sample rate in its header?")


def _resample_notices(paths, sr: int) -> None:
  """One stderr line per track resampled to ``sr`` (given once the
  scene has loaded, so that an error stays the only line)."""
  import sys
  import soundfile as sf
  for p in paths:
    rate = sf.info(str(p)).samplerate
    if rate != sr:
      print(f"note: {p}: {rate} Hz, resampled to {sr} Hz", file=sys.stderr)


def _scene_dir(root, scene) -> tuple[pathlib.Path, str]:
  if isinstance(scene, (int, np.integer)):
    if root is None:
      raise ValueError("root is required when scene is an id")
    d = pathlib.Path(root) / str(int(scene))
    return d, str(int(scene))
  if isinstance(scene, os.PathLike):
    d = pathlib.Path(scene)
    return d, d.name
  scene = str(scene)
  looks_like_path = root is None or "/" in scene or os.sep in scene
  if root is not None and (pathlib.Path(root) / scene).is_dir():
    return pathlib.Path(root) / scene, scene
  if looks_like_path and pathlib.Path(scene).is_dir():
    return pathlib.Path(scene), pathlib.Path(scene).name
  where = pathlib.Path(root) / scene if root is not None else pathlib.Path(scene)
  raise DataError(where, "missing scene folder")


def _cut(track: np.ndarray, rng: tuple[int, int], length: int) -> np.ndarray:
  """track [..., T] -> [..., length], samples [start, end) zero-padded at the end."""
  start, end = rng
  out = np.zeros(track.shape[:-1] + (length,), dtype=np.float32)
  n = min(end - start, length)
  out[..., :n] = track[..., start:start + n]
  return out


def _before(track: np.ndarray, rng: tuple[int, int], length: int) -> np.ndarray:
  """track [..., T] -> [..., length]: the samples just before ``rng``'s start,
  zero-padded in front where the track has fewer."""
  start = rng[0]
  out = np.zeros(track.shape[:-1] + (length,), dtype=np.float32)
  n = min(start, length)
  if n:
    out[..., length - n:] = track[..., start - n:start]
  return out


def _read_tracks(bin_path: pathlib.Path, src_path: pathlib.Path, sr: int,
                 resample: bool) -> tuple[np.ndarray, np.ndarray]:
  """(binaural [2, T], source [T']) at ``sr``; DataError when their lengths
  differ by more than 1 s (not the same recording)."""
  binaural = read_wav(bin_path, channels=2, sample_rate=sr, resample_audio=resample,
                      notice=False)
  source = read_wav(src_path, channels=1, sample_rate=sr, resample_audio=resample,
                    notice=False)[0]
  if abs(binaural.shape[1] - source.shape[0]) > sr:
    check_synchronised(bin_path, src_path)
  return binaural, source


def _read_split(scene_dir: pathlib.Path, split: str, n_samples: int, sr: int,
                bin_path: pathlib.Path):
  """(json path, file paths, times, poses) of ``transforms_scale_{split}.json``,
  checked against the track length."""
  jpath = scene_dir / f"transforms_scale_{split}.json"
  files, times, poses = read_camera_path(jpath)
  check_audio_covers(times, n_samples, sr, bin_path, poses_path=jpath)
  return jpath, files, times, poses


def _cut_clips(tracks: Sequence[np.ndarray], times: Sequence[float], n_samples: int, sr: int,
               clip: str, context: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
  """The clips of the frames at ``times`` that have one, from every track, then
  with ``context`` the ``sr`` samples before each clip of the last track
  (``SceneData.source_context``).

  Returns:
    ([N, ..., sr] float32 per track and the context, [] when no frame has a
    clip), the indices [N] into ``times`` of the frames kept.
  """
  cut = [[] for _ in range(len(tracks) + int(context))]
  keep = []
  for i, t in enumerate(times):
    rng = clip_range(float(t), n_samples, sr, clip)
    if rng is None:
      continue
    for out, track in zip(cut, tracks):
      out.append(_cut(track, rng, sr))
    if context:
      cut[-1].append(_before(tracks[-1], rng, sr))
    keep.append(i)
  return [np.stack(c) if c else c for c in cut], np.asarray(keep, dtype=np.int64)


def _read_meta(scene_dir: pathlib.Path) -> dict:
  """The content of ``scene_meta.json`` ({} when absent)."""
  meta_path = scene_dir / "scene_meta.json"
  if not meta_path.exists():
    return {}
  m = read_json(meta_path)
  if not isinstance(m, dict):
    raise DataError(meta_path, "expected a JSON object")
  return dict(m)


def _source_position(pos_path: pathlib.Path, scene_id: str) -> np.ndarray | None:
  """The scene's ``source_position`` [3] in ``position.json``, or None when the
  file or the scene's entry is absent."""
  if not pos_path.exists():
    return None
  positions = read_json(pos_path)
  if not isinstance(positions, dict):
    raise DataError(pos_path, "expected a JSON object keyed by scene id")
  if scene_id not in positions:
    return None
  sp = require_key(positions[scene_id], "source_position", pos_path, f"entry {scene_id!r}")
  try:
    return np.asarray(sp, dtype=np.float64).reshape(3)
  except (TypeError, ValueError):
    raise DataError(pos_path, f"source_position of scene {scene_id!r} must be "
                              f"3 numbers, found {sp!r}") from None


def load(root: os.PathLike | str | None, scene: int | str | os.PathLike, split: str, *,
         clip: str = "centered", sample_rate: int = 22050, normalize: bool = True,
         resample: bool = True) -> SceneData:
  """Load one split of one RWAVS-layout scene.

  Args:
    root: release root holding ``position.json`` and the scene folders (may be
      None when ``scene`` is a folder path: its parent is used).
    scene: scene id (``1`` or ``"1"``) or the path of a scene folder.
    split: "train" or "val".
    clip: "centered" (AV-NeRF) or "preceding" (AV-Cloud).
    sample_rate: output rate in Hz; clips are ``sample_rate`` samples (1 s).
    normalize: divide by the scene's max binaural clip RMS over both splits.
    resample: resample tracks at another rate (False: DataError).
  Returns:
    SceneData with binaural [N, 2, sr], source [N, sr], poses [N, 4, 4],
    times [N] (seconds), clip_ids = frame file basenames, meta = the content of
    ``scene_meta.json`` if present plus ``scene``, ``split``, ``clip``.
  Raises:
    DataError: missing/malformed files, bad audio, non-rigid poses, audio
      shorter than the frames need.
  """
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  if clip not in CLIP_CONVENTIONS:
    raise ValueError(f"clip must be one of {CLIP_CONVENTIONS}, got {clip!r}")
  scene_dir, scene_id = _scene_dir(root, scene)
  if not scene_dir.is_dir():
    raise DataError(scene_dir, "missing scene folder")
  root_dir = pathlib.Path(root) if root is not None else scene_dir.parent
  sr = int(sample_rate)
  bin_path, src_path = scene_dir / BINAURAL_FILE, scene_dir / SOURCE_FILE
  binaural, source = _read_tracks(bin_path, src_path, sr, resample)
  n_samples = min(binaural.shape[1], source.shape[0])
  per_split = {s: _read_split(scene_dir, s, n_samples, sr, bin_path) for s in SPLITS}
  # Poses of the requested split, normalisation over both.
  both = [t for s in SPLITS for t in per_split[s][2]]
  (both_clips,), _ = _cut_clips([binaural], both, n_samples, sr, clip)
  norm = norm_factor_of([both_clips], normalize)
  jpath, files, times, poses = per_split[split]
  (b_clips, s_clips, s_before), keep = _cut_clips([binaural, source], times, n_samples,
                                                  sr, clip, context=True)
  if not keep.size:
    raise DataError(jpath, f"no frame has a {clip} clip inside the "
                           f"{n_samples / sr:.2f} s track of {bin_path.name}")
  meta = _read_meta(scene_dir)
  meta.update({"scene": scene_id, "split": split, "clip": clip,
               "dataset": meta.get("dataset", "rwavs"),
               "num_skipped_frames": int(len(times) - len(keep))})
  source_position = _source_position(root_dir / "position.json", scene_id)
  _resample_notices((bin_path, src_path), sr)
  return SceneData(
      binaural=b_clips / norm,
      source=s_clips / norm,
      poses=poses[keep],
      times=times[keep].astype(np.float64),
      sample_rate=sr,
      norm_factor=norm,
      source_position=source_position,
      meta=meta,
      clip_ids=[os.path.basename(files[i]) for i in keep],
      source_context=s_before / norm,
  )
