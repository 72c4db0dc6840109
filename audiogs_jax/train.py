"""``python -m audiogs_jax.train [--config FILE] [--workdir DIR] [--config.a.b=v ...]``.

With no arguments it trains AudioGS on the built-in synthetic scene
(``configs/default.py``; the scene is simulated on first use and cached), then
evaluates it: metrics table against the baselines, WAV files and figures under
``WORKDIR/eval/``. The work is ``training.train_and_evaluate(config, workdir)``;
this module parses the command line, checks the inputs and reports errors in
one line (exit status 2).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # answer --help and usage errors before importing JAX
  from audiogs_jax import cli as _cli
  _cli.preparse("train")

import pathlib

from audiogs_jax import backend
from audiogs_jax import checkpoint as ckpt_lib
from audiogs_jax import cli
from audiogs_jax import config as config_lib
from audiogs_jax import parallel
from audiogs_jax import training
from audiogs_jax import workdir as workdir_lib
from audiogs_jax.models import get_model
from audiogs_jax.training import train_and_evaluate

__all__ = ["train_and_evaluate", "main"]


def _check_model_name(cfg) -> None:
  try:
    get_model(cfg.model.name)
  except ValueError as e:
    raise config_lib.ConfigError(f"--{e}") from None


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  debug = "--debug" in argv
  try:
    overrides, rest = config_lib.parse_config_args(argv)
    args = cli.train_parser().parse_args(rest)
    cfg = workdir_lib.resolve_config(args, overrides)
    config_lib.check_config(cfg)
    _check_model_name(cfg)
    workdir = pathlib.Path(args.workdir or cfg.workdir)
    workdir_lib.check_workdir(workdir)
  except config_lib.ConfigError as e:
    if debug:
      raise
    cli.fail(e)
  ckpt_lib.quiet_absl()
  parallel.initialize_distributed(args.coordinator_address, args.num_processes,
                                  args.process_id, auto=args.distributed)
  backend.tune_host_allocator()
  guard = workdir_lib.WorkdirGuard(workdir)
  try:
    training.train_and_evaluate(cfg, workdir, evaluate_at_end=not args.no_eval,
                       progress=not args.no_progress, change_schedule=args.change_schedule)
  except workdir_lib.USER_ERRORS as e:
    guard.undo()
    if debug:
      raise
    cli.fail(e)
  except KeyboardInterrupt:  # before the loop (which saves and exits 130 itself)
    guard.undo()
    print("interrupted before training started; nothing saved", file=sys.stderr)
    raise SystemExit(130) from None
  return 0


if __name__ == "__main__":
  sys.exit(main())
