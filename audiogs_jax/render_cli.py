"""``python -m audiogs_jax.render``: render a source of any length for a listener.

    python -m audiogs_jax.render --workdir runs/default --source in.wav \
        --pose "1,0,0,0, 0,1,0,0, 0,0,1,0, 0,0,0,1" --out out.wav
    python -m audiogs_jax.render --workdir runs/default --source in.wav \
        --trajectory poses.json --out out.wav

The model renders fixed-length clips (the training clip length). A longer
source is cut into clip-length chunks with 50% overlap; each chunk is rendered
at the listener pose of its centre time, weighted by a periodic Hann window
(the shifted windows sum to exactly 1) and overlap-added, so chunk boundaries
are crossfaded rather than cut. The output is scaled back by the scene's stored
normalisation factor.

Poses are 4x4 head-to-world matrices in the scene's (normalised) coordinates:
``--pose`` takes 16 numbers (row-major) or a .json/.npy file holding a 4x4;
``--trajectory`` takes a JSON file, either ``{"poses": [{"time": seconds,
"pose": 4x4 or 16 numbers}, ...]}`` (or that list alone), or an RWAVS-style
``{"camera_path": [{"file_path": "frames/00001.png", "camera_to_world": ...}]}``
(time = the frame number in seconds); times must be finite and strictly
increasing. Between keyframes the position is interpolated linearly and the
orientation by spherical interpolation (``cli.TRAJECTORY_HELP``, also in
``--help``).

JAX is imported only after the arguments are parsed (``--help`` is instant).

A multi-scene workdir (``--config.data.scenes=...``) holds one model per
scene: ``--scene ID`` picks it (and its normalisation factor).
"""

from __future__ import annotations

import os
import pathlib
import sys
import warnings
from typing import Callable, Optional

import numpy as np

from audiogs_jax import cli
from audiogs_jax.data.scene import DataError, as_pose, check_rigid, read_json

__all__ = ["load_source", "parse_pose", "load_trajectory", "chunk_plan", "render_long",
           "main"]


def load_source(path, sample_rate: int) -> np.ndarray:
  """Mono float32 source at ``sample_rate``: resampled with a warning when the
  file's rate differs, refused (DataError naming the file) on NaN/Inf."""
  import soundfile as sf
  from audiogs_jax.data.scene import read_wav
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
    from audiogs_jax.data.rwavs import frame_time
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
  from scipy.spatial.transform import Rotation, Slerp
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


def chunk_plan(num_samples: int, clip: int) -> tuple[int, int, np.ndarray]:
  """``(pad, hop, starts)``: the padded signal's chunk starts (hop = clip // 2).

  The source is padded with ``pad = hop`` zeros in front and enough behind; the
  chunks ``[s, s + clip)`` with periodic-Hann weights then cover every original
  sample with weights summing to exactly 1.
  """
  if clip % 2:
    raise ValueError(f"clip length {clip} must be even for 50% overlap")
  hop = clip // 2
  total = num_samples + 2 * hop
  k = max(int(np.ceil((total - clip) / hop)) + 1, 1)
  return hop, hop, np.arange(k) * hop


def render_long(source: np.ndarray, pose_at: Callable, *, model, params, config,
                clip_length: int, norm_factor: float, batch_size: int = 8) -> np.ndarray:
  """Render a mono source of any length: returns ``[2, len(source)]``."""
  import jax.numpy as jnp
  from audiogs_jax import dataset
  from audiogs_jax import dsp
  from audiogs_jax import train as train_lib
  sr = int(config.data.sample_rate)
  n = source.shape[0]
  pad, hop, starts = chunk_plan(n, clip_length)
  total = int(starts[-1]) + clip_length
  x = np.zeros(total, np.float32)
  x[pad:pad + n] = source / norm_factor
  chunks = np.stack([x[s:s + clip_length] for s in starts])          # [K, L]
  centres = (starts + clip_length / 2 - pad) / sr
  poses = jnp.asarray(pose_at(centres), jnp.float32)                 # [K, 4, 4]
  src_tf = dsp.stft_frames(jnp.asarray(chunks), **dataset.stft_kwargs(config))
  y = train_lib.predict_waveforms(model, params, poses, src_tf, clip_length, config,
                                  batch_size)                        # [K, 2, L]
  w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(clip_length) / clip_length)
  out = np.zeros((2, total), np.float32)
  for i, s in enumerate(starts):  # host-side overlap-add of a few chunks, not per step
    out[:, s:s + clip_length] += y[i] * w
  return out[:, pad:pad + n] * norm_factor


def main(argv=None) -> int:
  args = cli.render_parser().parse_args(argv)
  from audiogs_jax import evaluate
  from audiogs_jax import runtime
  import soundfile as sf
  runtime.tune_host_allocator()
  cli.quiet_absl()
  try:
    y, sr = _render(args, evaluate)
  except cli.user_errors() as e:
    if args.debug:
      raise
    cli.fail(e)
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  sf.write(str(out), y.T, sr, subtype="FLOAT")
  print(f"wrote {out} ({y.shape[1] / sr:.2f} s, 2 channels, {sr} Hz)")
  return 0


def _render(args, evaluate) -> tuple[np.ndarray, int]:
  """``(audio [2, T], rate)`` for the parsed arguments; every input is checked
  before the model runs, and the output before anything is written."""
  if args.pose is not None:
    pose = parse_pose(args.pose)
    pose_at = lambda t: np.repeat(pose[None], len(np.atleast_1d(t)), 0)
  else:
    pose_at = trajectory_fn(*load_trajectory(args.trajectory))
  config, model, params, meta = evaluate.load_trained(args.workdir, args.checkpoint,
                                                      scene=args.scene)
  sr = int(config.data.sample_rate)
  source = load_source(args.source, sr)
  if args.batch_size < 1:
    raise DataError("--batch-size", f"must be at least 1, got {args.batch_size}")
  clip = int(meta.get("clip_length") or round(sr * float(config.data.clip_seconds)))
  y = render_long(source, pose_at, model=model, params=params, config=config,
                  clip_length=clip, norm_factor=float(meta.get("norm_factor", 1.0)),
                  batch_size=args.batch_size)
  if not np.all(np.isfinite(y)):
    raise DataError(args.out, f"not written: the model rendered "
                              f"{int(np.sum(~np.isfinite(y)))} NaN/Inf samples "
                              f"(checkpoint {args.checkpoint} of {args.workdir})")
  return y, sr


if __name__ == "__main__":
  sys.exit(main())
