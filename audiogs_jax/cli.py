"""Command-line plumbing shared by the entry points, importable without JAX.

The argument parsers of ``train``, ``evaluate`` and ``render`` live here so
that ``python -m audiogs_jax.<entry> --help`` (and a usage error) is answered
before the entry module imports JAX, which takes seconds: each entry module
calls ``preparse`` at its very top when run as ``__main__``.

User errors (a bad config override, pose, trajectory, WAV, JSON or workdir)
end as ONE line on stderr, ``error: <file or option>: <what is wrong>``, and
exit status 2 (``fail``); ``--debug`` re-raises them with the traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn, Optional, Sequence

from audiogs_jax import config as config_lib

__all__ = ["train_parser", "evaluate_parser", "render_parser", "preparse", "fail",
           "one_line", "TRAJECTORY_HELP"]

TRAJECTORY_HELP = """\
trajectory file (JSON): keyframes {"time": seconds, "pose": 16 numbers (a 4x4
head-to-world matrix, row-major) or a nested 4x4 / 3x4 list}, given as
{"poses": [keyframe, ...]} or as the list alone, with finite times strictly
increasing; or an RWAVS-style {"camera_path": [{"file_path":
"frames/00001.png", "camera_to_world": 4x4}, ...]} (time = the frame number
in seconds). Between keyframes the position is interpolated linearly and the
orientation by spherical interpolation; before the first and after the last
keyframe the pose is held. Example: {"poses": [{"time": 0, "pose":
[1,0,0,0, 0,1,0,0, 0,0,1,0, 0,0,0,1]}, {"time": 2.5, "pose": [...]}]}"""


class _Parser(argparse.ArgumentParser):
  """An ``ArgumentParser`` whose usage errors are one line (``fail``)."""

  def error(self, message: str) -> NoReturn:
    fail(f"{self.prog}: {message} (see --help)")


_PROG = "python -m audiogs_jax."
TRAIN_HELP = ("Train an audio Gaussian splatting model (AudioGS or Audio 3DGS) on a scene, "
              "then evaluate it. With no arguments: AudioGS on the built-in synthetic "
              "scene (generated on first use, cached).")
TRAIN_EPILOG = ("Any config field can be overridden: --config.train.steps=2000 "
                "--config.model.audiogs.sh_degree=3 --config.data.root=/data/release ... "
                "Running again on the same --workdir resumes from its latest checkpoint "
                "(with the workdir's saved config unless --config is given).")
EVALUATE_HELP = ("Evaluate a trained workdir: metrics (MAG, ENV, LRE, RTE, ITD, IPD, ILD, "
                 "DPAM) of the model beside the four baselines, per-clip CSV, WAV pairs, "
                 "figures. Written to WORKDIR/eval/<split>/ (the latest checkpoint) or "
                 "WORKDIR/eval/<split>_best/ (--checkpoint best).")
EVALUATE_EPILOG = ("DPAM (the dpam extra, CDPAM on PyTorch) takes minutes on a CPU, against "
                   "seconds without it.")
RENDER_HELP = ("Render what a listener hears at a pose (or along a trajectory) from a "
               "trained workdir, for a source WAV of any length. Poses are 4x4 "
               "head-to-world matrices (columns right, up, backward; translation in "
               "column 3) in the scene's coordinates.")


def _debug(p: argparse.ArgumentParser) -> None:
  p.add_argument("--debug", action="store_true",
                 help="on an error, show the full Python traceback instead of one line")


def train_parser() -> argparse.ArgumentParser:
  p = _Parser(prog=_PROG + "train", description=TRAIN_HELP, epilog=TRAIN_EPILOG)
  p.add_argument("--config", default=None,
                 help="config file (default: configs/default.py; or a saved workdir's "
                      "config when resuming)")
  p.add_argument("--workdir", default=None,
                 help="output folder: checkpoints, logs, evaluation "
                      "(default: the config's workdir, runs/<name>)")
  p.add_argument("--no-eval", action="store_true", help="skip the evaluation at the end")
  p.add_argument("--no-progress", action="store_true", help="no progress bars")
  p.add_argument("--change-schedule", action="store_true",
                 help="allow resuming with different train.steps / warm-up / schedule / "
                      "learning rates: the learning-rate schedule of the whole run changes")
  _debug(p)
  g = p.add_argument_group(
      "multi-process (jax.distributed)",
      "Started automatically when JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
      "JAX_PROCESS_ID are set, or in a multi-task SLURM / Open MPI job or on a "
      "multi-host Cloud TPU; these flags set it explicitly.")
  g.add_argument("--distributed", action="store_true",
                 help="call jax.distributed.initialize() and let JAX detect the cluster "
                      "(Cloud TPU pod, SLURM, Open MPI)")
  g.add_argument("--coordinator-address", default=None,
                 help="host:port of process 0's coordinator")
  g.add_argument("--num-processes", type=int, default=None, help="number of processes")
  g.add_argument("--process-id", type=int, default=None, help="this process's index")
  return p


def evaluate_parser() -> argparse.ArgumentParser:
  p = _Parser(prog=_PROG + "evaluate", description=EVALUATE_HELP, epilog=EVALUATE_EPILOG)
  p.add_argument("--workdir", required=True, action="append",
                 help="a training workdir; give several (trained on the same scene) for "
                      "one table of all their models beside the baselines")
  p.add_argument("--split", default=None, help="split to evaluate (default: the config's "
                 "eval split, val)")
  p.add_argument("--checkpoint", default="latest", choices=("latest", "best"),
                 help="which checkpoint: the latest, or the best by validation MAG")
  p.add_argument("--force", action="store_true",
                 help="with several workdirs: evaluate each again even when it already has "
                      "a summary for the split (default: reuse it)")
  p.add_argument("--out", default=None,
                 help="with several workdirs: also write the combined table (markdown) here")
  p.add_argument("--no-progress", action="store_true",
                 help="no progress bars (scene loading, DPAM)")
  _debug(p)
  return p


def render_parser() -> argparse.ArgumentParser:
  p = _Parser(prog=_PROG + "render", description=RENDER_HELP,
              epilog="Trajectory format: " + TRAJECTORY_HELP,
              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--workdir", required=True, help="a training workdir")
  p.add_argument("--source", required=True, help="mono source WAV (resampled if needed)")
  g = p.add_mutually_exclusive_group(required=True)
  g.add_argument("--pose", help="4x4 head-to-world pose: 16 numbers (row-major) or a "
                                ".json/.npy file holding a 4x4")
  g.add_argument("--trajectory", help="JSON of time-stamped poses (format below)")
  p.add_argument("--out", required=True, help="output WAV (2 channels, float32)")
  p.add_argument("--checkpoint", default="latest", choices=("latest", "best"),
                 help="which checkpoint renders: the latest, or the best by validation "
                      "MAG (default: latest)")
  p.add_argument("--scene", default=None,
                 help="the scene to render, for a multi-scene workdir (required there)")
  p.add_argument("--batch-size", type=int, default=8, help="chunks rendered at once")
  _debug(p)
  return p


_PARSERS = {"train": train_parser, "evaluate": evaluate_parser, "render": render_parser}


def preparse(entry: str, argv: Optional[Sequence[str]] = None) -> None:
  """Parse ``argv`` as entry point ``entry`` would, before any heavy import:
  ``--help`` prints and exits 0, a usage error or a malformed ``--config.*``
  override exits 2. Returns when the arguments parse."""
  argv = list(sys.argv[1:] if argv is None else argv)
  rest = argv
  if entry == "train":
    try:
      _, rest = config_lib.parse_config_args(argv)
    except config_lib.ConfigError as e:
      fail(e)
  _PARSERS[entry]().parse_args(rest)


def one_line(msg) -> str:
  """``msg`` as a single line (newlines and runs of spaces collapsed)."""
  return " ".join(str(msg).split())


def fail(msg) -> NoReturn:
  """``error: msg`` on stderr (one line) and exit status 2."""
  print(f"error: {one_line(msg)}", file=sys.stderr)
  raise SystemExit(2)
