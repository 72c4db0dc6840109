"""Running the planned training jobs: each room's scene once, then every run that has
not finished, in this process or as parallel subprocesses."""

from __future__ import annotations

import datetime
import signal
import subprocess
import sys
import time
from typing import Callable, Sequence

from audiogs_jax import dataset
from audiogs_jax import training
from audiogs_jax.benchmark.paths import read_json, rel, write_json
from audiogs_jax.benchmark.plans import Run, command_argv, command_line, expected_cost, \
    run_config

__all__ = ["run_benchmark", "run_parallel"]


def _pending(runs: Sequence[Run], progress: bool, log: Callable) -> tuple[dict, list]:
  """Generate (or find cached) each room's scene and pick the runs still to train.

  Returns ``({room: scene seconds}, [unfinished runs])``. A workdir trained by a
  different command stops the benchmark: its results would not be this run's.
  """
  scene_s, pending = {}, []
  for run in runs:
    if run.room not in scene_s:
      t = time.perf_counter()
      folder = dataset.synthetic_scene_dir(run_config(run), progress=progress)
      scene_s[run.room] = time.perf_counter() - t
      log(f"[benchmark] room {run.room}: scene {folder} ready in {scene_s[run.room]:.1f} s")
    log(f"[benchmark] $ {command_line(run)}")
    done = read_json(run.workdir / "bench_run.json")
    if done is not None and done.get("command") != command_line(run):
      raise SystemExit(f"error: {rel(run.workdir)} was trained by another command "
                       f"({done.get('command')}); use another --out or remove it")
    if run.summary_path.exists():
      log(f"[benchmark]   skipped: {rel(run.summary_path)} exists")
      continue
    pending.append(run)
  return scene_s, pending


def run_benchmark(runs: Sequence[Run], *, progress: bool = False,
                  log: Callable = print, jobs: int = 1) -> dict:
  """Generate each room's scene once, then train and evaluate every run that has no
  ``summary.json`` yet. Returns ``{"scene_seconds": {room: s}, "ran": [variant, ...]}``.

  ``jobs == 1`` trains the runs one after another in this process
  (``train.train_and_evaluate``). ``jobs > 1`` trains up to ``jobs`` runs at once,
  each as its own ``command_line(run)`` process (output in ``WORKDIR/train.log``),
  longest expected run first: one training process does not keep every core busy
  (compilation, evaluation and input handling are mostly serial). The results are
  the same either way: each run is seeded and deterministic.
  """
  scene_s, pending = _pending(runs, progress, log)
  if jobs <= 1:
    for run in pending:
      log(f"[benchmark] training {run.room}/{run.variant}")
      t = time.perf_counter()
      training.train_and_evaluate(run_config(run), run.workdir, progress=progress)
      _record_run(run, time.perf_counter() - t, log)
  else:
    run_parallel(pending, jobs, log)
  return {"scene_seconds": scene_s, "ran": [r.variant for r in pending]}


def _record_run(run: Run, wall: float, log: Callable) -> None:
  """Write ``WORKDIR/bench_run.json``: the command and the wall time (added up over
  the invocations that trained the run, for a resumed run)."""
  prev = read_json(run.workdir / "bench_run.json") or {}
  write_json(run.workdir / "bench_run.json",
             {"command": command_line(run), "wall_s": wall + float(prev.get("wall_s", 0.0)),
              "finished": datetime.datetime.now().isoformat(timespec="seconds")})
  log(f"[benchmark]   {run.room}/{run.variant} done in {wall:.1f} s")


def _start(run: Run, active: dict, log: Callable) -> None:
  """Start ``run``'s command as a subprocess logging to ``WORKDIR/train.log``; record
  it in ``active`` as ``{process: (run, start time, log file)}``."""
  run.workdir.mkdir(parents=True, exist_ok=True)
  fh = open(run.workdir / "train.log", "ab")
  proc = subprocess.Popen(command_argv(run, sys.executable), stdout=fh,
                          stderr=subprocess.STDOUT)
  active[proc] = (run, time.perf_counter(), fh)
  log(f"[benchmark] training {run.room}/{run.variant} "
      f"(pid {proc.pid}, log {rel(run.workdir / 'train.log')})")


def _reap(active: dict, failed: list, log: Callable) -> None:
  """Collect the finished subprocesses of ``active``: record each finished run, add
  each failed one (non-zero exit or no summary) to ``failed``."""
  for proc in [p for p in active if p.poll() is not None]:
    run, t0, fh = active.pop(proc)
    fh.close()
    if proc.returncode == 0 and run.summary_path.exists():
      _record_run(run, time.perf_counter() - t0, log)
    else:
      failed.append(run)
      log(f"[benchmark]   {run.room}/{run.variant} FAILED (exit {proc.returncode}); "
          f"see {rel(run.workdir / 'train.log')}")


def run_parallel(pending: Sequence[Run], jobs: int, log: Callable) -> None:
  """Train ``pending`` as subprocesses, ``jobs`` at a time (see ``run_benchmark``).

  A failed run does not stop the others; the benchmark stops with an error naming
  the failed runs and their logs once the rest have finished. On Ctrl-C or
  SIGTERM every child is sent SIGTERM (each saves a checkpoint, so the same
  command resumes them) and the benchmark exits.
  """
  queue = sorted(pending, key=expected_cost, reverse=True)
  active: dict = {}
  failed: list = []

  def stop(*_):
    raise KeyboardInterrupt

  old = signal.signal(signal.SIGTERM, stop)
  try:
    while queue or active:
      while queue and len(active) < jobs:
        _start(queue.pop(0), active, log)
      time.sleep(0.5)
      _reap(active, failed, log)
  except KeyboardInterrupt:
    for proc in active:
      proc.send_signal(signal.SIGTERM)
    for proc, (_, _, fh) in active.items():
      proc.wait()
      fh.close()
    raise SystemExit("[benchmark] interrupted: the runs in progress saved checkpoints; "
                     "run the same command again to resume")
  finally:
    signal.signal(signal.SIGTERM, old)
  if failed:
    raise SystemExit("error: runs failed: " + ", ".join(
        f"{r.room}/{r.variant} ({rel(r.workdir / 'train.log')})" for r in failed))
