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
orientation by spherical interpolation (``poses``; also in ``--help``).

``--help`` and usage errors are answered before JAX is imported.

A multi-scene workdir (``--config.data.scenes=...``) holds one model per
scene: ``--scene ID`` picks it (and its normalisation factor).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # answer --help and usage errors before importing JAX
  from audiogs_jax import cli as _cli
  _cli.preparse("render")

import pathlib

import numpy as np
import soundfile as sf

from audiogs_jax import backend
from audiogs_jax import checkpoint as ckpt_lib
from audiogs_jax import cli
from audiogs_jax import poses
from audiogs_jax import predict as predict_lib
from audiogs_jax import workdir as workdir_lib
from audiogs_jax.data.scene import DataError

__all__ = ["main"]


def main(argv=None) -> int:
  args = cli.render_parser().parse_args(argv)
  backend.tune_host_allocator()
  ckpt_lib.quiet_absl()
  try:
    y, sr = _render(args)
  except workdir_lib.USER_ERRORS as e:
    if args.debug:
      raise
    cli.fail(e)
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  sf.write(str(out), y.T, sr, subtype="FLOAT")
  print(f"wrote {out} ({y.shape[1] / sr:.2f} s, 2 channels, {sr} Hz)")
  return 0


def _render(args) -> tuple[np.ndarray, int]:
  """``(audio [2, T], rate)`` for the parsed arguments; every input is checked
  before the model runs, and the output before anything is written."""
  if args.pose is not None:
    pose = poses.parse_pose(args.pose)
    pose_at = lambda t: np.repeat(pose[None], len(np.atleast_1d(t)), 0)
  else:
    pose_at = poses.trajectory_fn(*poses.load_trajectory(args.trajectory))
  config, model, params, meta = workdir_lib.load_trained(args.workdir, args.checkpoint,
                                                      scene=args.scene)
  sr = int(config.data.sample_rate)
  source = poses.load_source(args.source, sr)
  if args.batch_size < 1:
    raise DataError("--batch-size", f"must be at least 1, got {args.batch_size}")
  clip = int(meta.get("clip_length") or round(sr * float(config.data.clip_seconds)))
  y = predict_lib.render_long(source, pose_at, model=model, params=params, config=config,
                  clip_length=clip, norm_factor=float(meta.get("norm_factor", 1.0)),
                  batch_size=args.batch_size)
  if not np.all(np.isfinite(y)):
    raise DataError(args.out, f"not written: the model rendered "
                              f"{int(np.sum(~np.isfinite(y)))} NaN/Inf samples "
                              f"(checkpoint {args.checkpoint} of {args.workdir})")
  return y, sr


if __name__ == "__main__":
  sys.exit(main())
