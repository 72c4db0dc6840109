"""``python -m audiogs_jax.evaluate --workdir DIR [--split val]``.

Restores the trained model from the workdir (its config and normalisation
factor are stored there) and evaluates it against the four baselines
(``evaluation.evaluate_workdir``: metrics, ``summary.json``, ``per_clip.csv``,
``table.md``, WAV files and figures under ``WORKDIR/eval/<split>/``). Several
workdirs (``--workdir A B ...``) are evaluated and compared side by side
(``compare``). ``--checkpoint best`` evaluates the best checkpoint into
``WORKDIR/eval/<split>_best/``.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # answer --help and usage errors before importing JAX
  from audiogs_jax import cli as _cli
  _cli.preparse("evaluate")

import pathlib

from audiogs_jax import backend
from audiogs_jax import checkpoint as ckpt_lib
from audiogs_jax import cli
from audiogs_jax import compare
from audiogs_jax import config as config_lib
from audiogs_jax import evaluation
from audiogs_jax import workdir as workdir_lib
from audiogs_jax.evaluation import evaluate_workdir

__all__ = ["evaluate_workdir", "main"]


def main(argv=None) -> int:
  args = cli.evaluate_parser().parse_args(argv)
  backend.tune_host_allocator()
  ckpt_lib.quiet_absl()
  try:
    if len(args.workdir) == 1:
      evaluation.evaluate_workdir(args.workdir[0], args.split, which=args.checkpoint,
                       progress=not args.no_progress)
      return 0
    split = args.split or config_lib.load_saved_config(
        pathlib.Path(args.workdir[0]) / "config.json").data.eval_split
    folder = evaluation.eval_dir(".", split, args.checkpoint).name
    for w in args.workdir:
      have = (pathlib.Path(w) / "eval" / folder / "summary.json").is_file()
      if have and not args.force:
        print(f"{w}: using its existing eval/{folder}/summary.json (--force to redo)")
      else:
        evaluation.evaluate_workdir(w, split, which=args.checkpoint, progress=not args.no_progress,
                         quiet=True)
    print(compare.compare_workdirs(args.workdir, folder, args.out))
  except (*workdir_lib.USER_ERRORS, compare.CompareError) as e:
    if args.debug:
      raise
    cli.fail(e)
  return 0


if __name__ == "__main__":
  sys.exit(main())
