"""Writing a simulated scene in the RWAVS release layout.

``OUT/<scene>/`` gets ``binaural_syn_re.wav`` and ``source_syn_re.wav`` (PCM_16,
on the same time axis), ``transforms_scale_{train,val}.json`` (scaled poses),
``transforms_{train,val}.json`` (poses in metres) and ``scene_meta.json``;
``OUT/position.json`` gets the scene's source position (scaled), merged with
the other scenes'. Frame ``t`` is ``frames/<t:05d>.png`` (no image is written).

Scaled poses (``transforms_scale_*``): ``p_scaled = (p - centre) / metres_per_unit``
with ``centre`` the middle of the bounding box of all head positions and the source
and ``metres_per_unit`` its largest half-extent (at least 0.25 m), so everything
lies in [-1, 1]^3; rotations unchanged (:func:`scale_frame`).

Train/val split: frame i (0-based) goes to val when
``floor((i + 1) * val_fraction) > floor(i * val_fraction)`` (every 5th frame for
0.2; :func:`split_is_val`).

JSON files are written atomically (a temporary file renamed into place).
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Sequence

import numpy as np
import soundfile as sf

from .rwavs import BINAURAL_FILE, SOURCE_FILE
from .scene import DataError, read_json

__all__ = ["jsonable", "write_json_atomic", "split_is_val", "scale_frame",
           "write_scene_files", "merge_position"]


def jsonable(v: Any) -> Any:
  """``v`` as JSON-ready values: numpy scalars and arrays, tuples, paths and
  pyroomacoustics Materials converted, anything else unknown as its ``repr``."""
  if isinstance(v, (str, int, float, bool)) or v is None:
    return v
  if isinstance(v, (np.integer,)):
    return int(v)
  if isinstance(v, (np.floating,)):
    return float(v)
  if isinstance(v, (list, tuple, np.ndarray)):
    return [jsonable(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
  if isinstance(v, dict):
    return {str(k): jsonable(x) for k, x in v.items()}
  if isinstance(v, os.PathLike):
    return os.fspath(v)
  if hasattr(v, "energy_absorption"):   # a pyroomacoustics Material
    return {"energy_absorption": jsonable(v.energy_absorption),
            "scattering": jsonable(getattr(v, "scattering", None))}
  return repr(v)


def write_json_atomic(path: pathlib.Path, obj: Any) -> None:
  """Write ``obj`` as indented JSON (trailing newline) through a temporary file."""
  tmp = path.with_name(path.name + f".tmp{os.getpid()}")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(obj, f, indent=1)
    f.write("\n")
  os.replace(tmp, path)


def split_is_val(num_frames: int, val_fraction: float) -> np.ndarray:
  """[num_frames] bool: frame i is in val iff floor((i+1) f) > floor(i f)."""
  i = np.arange(num_frames)
  f = float(val_fraction)
  return np.floor((i + 1) * f + 1e-9) > np.floor(i * f + 1e-9)


def scale_frame(positions: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, float]:
  """(centre [3], metres_per_unit) of the scaled coordinates of head positions
  [N, 3] and a source [3] (see the module docstring)."""
  pts = np.vstack([positions, source[None]])
  lo, hi = pts.min(axis=0), pts.max(axis=0)
  centre = (lo + hi) / 2.0
  return centre, float(max(np.max((hi - lo) / 2.0), 0.25))


def _camera_path(poses: np.ndarray, times: Sequence[int]) -> dict:
  return {"camera_path": [
      {"file_path": f"frames/{int(t):05d}.png",
       "camera_to_world": [float(v) for v in p.reshape(-1)]}
      for p, t in zip(poses, times)]}


def write_scene_files(scene_dir: pathlib.Path, *, binaural: np.ndarray, source: np.ndarray,
                      sample_rate: int, poses: np.ndarray, poses_scaled: np.ndarray,
                      times: np.ndarray, is_val: np.ndarray) -> None:
  """The tracks and the transforms files of a scene (not its metadata).

  Args:
    scene_dir: the scene folder (created).
    binaural: [2, T] float track.
    source: [T] float source signal.
    sample_rate: Hz.
    poses: [N, 4, 4] head-to-world, metres.
    poses_scaled: [N, 4, 4] the same in scaled coordinates.
    times: [N] int frame times in seconds.
    is_val: [N] bool, the val frames.
  """
  scene_dir.mkdir(parents=True, exist_ok=True)
  sf.write(scene_dir / BINAURAL_FILE, binaural.T.astype(np.float32), sample_rate,
           subtype="PCM_16", format="WAV")
  sf.write(scene_dir / SOURCE_FILE, source.astype(np.float32), sample_rate,
           subtype="PCM_16", format="WAV")
  for split, mask in (("train", ~is_val), ("val", is_val)):
    write_json_atomic(scene_dir / f"transforms_scale_{split}.json",
                      _camera_path(poses_scaled[mask], times[mask]))
    write_json_atomic(scene_dir / f"transforms_{split}.json",
                      _camera_path(poses[mask], times[mask]))


def merge_position(out_root: pathlib.Path, scene: str, source_scaled: np.ndarray) -> None:
  """Set scene ``scene``'s source position (scaled) in ``out_root/position.json``,
  keeping the other scenes' (keys sorted)."""
  pos_path = out_root / "position.json"
  positions_json = read_json(pos_path) if pos_path.exists() else {}
  if not isinstance(positions_json, dict):
    raise DataError(pos_path, "expected a JSON object keyed by scene id")
  positions_json[str(scene)] = {"source_position": source_scaled.tolist()}
  write_json_atomic(pos_path, dict(sorted(positions_json.items())))
