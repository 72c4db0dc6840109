"""The options of ``python -m audiogs_jax.benchmark`` (parsed before JAX loads, so
that ``--help`` and usage errors answer at once)."""

from __future__ import annotations

import argparse

from audiogs_jax.benchmark.plans import MODES, VARIANTS

__all__ = ["parser"]

OPTIONS = (
    ("--out", dict(help="benchmark root (workdirs OUT/<room>/<variant>, scenes OUT/scenes, "
                        "results OUT/results.json, report OUT/report.md); default "
                        "runs/benchmark/<mode>")),
    ("--rooms", dict(help="comma-separated rooms (default: all of configs/bench_rooms.py)")),
    ("--variants", dict(help="comma-separated variants (default: the mode's selection)")),
    ("--docs", dict(help="report path (default OUT/report.md); figures, WAVs and "
                         "results.json go to a folder beside it named after it "
                         "(OUT/report/)")),
    ("--data-root", dict(help="scene cache (default OUT/scenes)")),
    ("--steps", dict(type=int, help="override the mode's AudioGS training steps (rooms "
                                    "with their own steps in the mode keep them)")),
    ("--num-wavs", dict(type=int, default=2, help="WAV pairs per room in the report")),
    ("--note", dict(action="append", default=[],
                    help="a note for the report (what was tried); repeatable")),
    ("--report-only", dict(action="store_true", help="do not train: rebuild the report "
                                                     "from --json (or OUT/results.json)")),
    ("--json", dict(help="results JSON for --report-only (default OUT/results.json)")),
    ("--jobs", dict(type=int, help="runs trained at once, each in its own process "
                                   "(default: the mode's, 2 in quick mode, else 1; 1 "
                                   "trains in this process)")),
    ("--dry-run", dict(action="store_true", help="print the commands of the runs and stop")),
)


def parser() -> argparse.ArgumentParser:
  """The benchmark's options: a mode (``--quick``, ``--micro``, else full), then
  ``OPTIONS``."""
  p = argparse.ArgumentParser(
      prog="python -m audiogs_jax.benchmark",
      description="Generate the three benchmark rooms, train every variant (AudioGS, its "
                  "ablations, Audio 3DGS U-Net), evaluate each beside the four baselines, "
                  "and write a report (OUT/report.md, or --docs) plus the raw JSON.",
      epilog=f"Variants: {', '.join(VARIANTS)}. Rooms: see configs/bench_rooms.py. "
             "Running the same command again skips finished runs and resumes unfinished "
             "ones.",
  )
  g = p.add_mutually_exclusive_group()
  for name in ("quick", "micro"):
    g.add_argument(f"--{name}", action="store_true",
                   help=f"{name} mode: {MODES[name].description}")
  for flag, kwargs in OPTIONS:
    p.add_argument(flag, **kwargs)
  return p
