"""Ablations and a multi-room benchmark: ``python -m audiogs_jax.benchmark [--quick]``.

Generates the three built-in benchmark rooms (``configs/bench_rooms.py``: a
small dry room, a living-room-like room and a large reverberant hall, fixed
seeds, each with its own source signal and listener trajectory), trains every
variant of the method on each room, evaluates it beside the four baselines, and
writes, under the benchmark root ``OUT`` (``--out``):

- ``OUT/results.json``: the raw numbers (every run's summary, the per-clip model
  metrics, the analysis computed from them, the command lines, the machine and
  the wall times);
- the report ``OUT/report.md`` (``--docs PATH`` puts it elsewhere): tables,
  verdicts and figures, plus a listening section (WAV pairs and a top view of
  each room's learned Gaussians), with its media and a copy of the JSON in a
  folder beside it named after it (``OUT/report/``).

Each run is an ordinary ``python -m audiogs_jax.train`` run (called in-process,
with the same config and overrides) in its own workdir
``OUT/<room>/<variant>``; its equivalent shell command is printed and written
to the report. A run whose ``eval/val/summary.json`` exists is skipped, and a
run killed half-way resumes from its last checkpoint, so a killed benchmark is
resumed by running the same command again. ``--report-only`` rebuilds the
report from the JSON alone.

Modes: the default (full) mode runs every variant with more steps and is meant
for a GPU; ``--quick`` runs the full model, the four key ablations and a small
Audio 3DGS U-Net with fewer steps, sized for a CPU; ``--micro`` is a tiny smoke
run used by the test suite.

Modules: ``plans`` (rooms, variants, modes, runs and their commands),
``runner`` (training the runs, in this process or as parallel subprocesses),
``analysis`` (collecting the results, bootstrap intervals, verdicts),
``markdown`` (the report's sections), ``report`` (the report file, figures and
WAV copies), ``paths`` (path display, JSON files), ``args`` (the options) and ``cli``
(``main``: the command line).
"""
