"""The command line of ``python -m audiogs_jax.benchmark``: plan, train, collect and
report, or rebuild the report from the JSON alone (``--report-only``)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import pathlib
import shlex
import sys
import time
from typing import Optional, Sequence

from audiogs_jax.benchmark import args as args_lib
from audiogs_jax.benchmark.analysis import analyse, collect
from audiogs_jax.benchmark.markdown import hms
from audiogs_jax.benchmark.paths import read_json, write_json
from audiogs_jax.benchmark.plans import MODES, VARIANTS, Mode, command_line, plan, rooms
from audiogs_jax.benchmark.report import write_report
from audiogs_jax.benchmark.runner import run_benchmark

__all__ = ["main"]

#: ``(flag, add_argument keywords)`` of every option but the mode.




def _csv(text: Optional[str], allowed: Sequence[str], what: str) -> Optional[list]:
  """The comma-separated names in ``text`` (None when not given); an unknown name is
  an error naming the choices."""
  if text is None:
    return None
  vals = [v.strip() for v in text.split(",") if v.strip()]
  bad = [v for v in vals if v not in allowed]
  if bad:
    raise SystemExit(f"error: unknown {what} {', '.join(bad)}; choose from "
                     f"{', '.join(allowed)}")
  return vals


def _report_only(args: argparse.Namespace, out: pathlib.Path, docs: pathlib.Path,
                 command: str) -> int:
  """Rebuild the report from the results JSON (``--json``, else OUT/results.json)."""
  path = pathlib.Path(args.json) if args.json else out / "results.json"
  res = read_json(path)
  if res is None:
    raise SystemExit(f"error: {path}: no results JSON (run the benchmark first)")
  if args.note:
    res["benchmark"]["notes"] = list(res["benchmark"].get("notes", [])) + args.note
  res["analysis"] = analyse(res)
  write_report(res, docs, out=out, num_wavs=args.num_wavs, report_command=command)
  print(f"[benchmark] wrote {docs}")
  return 0


def _invocations(prev: dict, command: str, wall: float, ran: int, jobs: int) -> list:
  """The previous invocations of this benchmark (OUT/results.json) and this one."""
  invocations = list(prev.get("benchmark", {}).get("invocations", []))
  invocations.append({"command": command, "wall_s": wall, "runs_trained": ran,
                      "jobs": jobs,
                      "date": datetime.datetime.now().isoformat(timespec="seconds")})
  return invocations


def _train_and_report(args: argparse.Namespace, mode: Mode, runs: list,
                      out: pathlib.Path, docs: pathlib.Path, command: str) -> int:
  """Train the unfinished runs, collect every finished one, write the JSON and the
  report."""
  t0 = time.perf_counter()
  jobs = mode.jobs if args.jobs is None else max(1, int(args.jobs))
  info = run_benchmark(runs, jobs=jobs)
  wall = time.perf_counter() - t0
  prev = read_json(out / "results.json") or {}
  invocations = _invocations(prev, command, wall, len(info["ran"]), jobs)
  # A resumed benchmark: its wall time is that of every invocation that trained.
  total = sum(i["wall_s"] for i in invocations if i["runs_trained"]) or wall
  notes = list(prev.get("benchmark", {}).get("notes", []))
  notes += [n for n in args.note if n not in notes]
  res = collect(runs, mode, command=command, wall_s=total,
                scene_seconds=info["scene_seconds"], notes=notes)
  res["benchmark"]["invocations"] = invocations
  write_json(out / "results.json", res)
  write_report(res, docs, out=out, num_wavs=args.num_wavs)
  print(f"[benchmark] wrote {out / 'results.json'} and {docs} "
        f"(wall time {hms(wall)})")
  print("[benchmark] commands run:")
  for r in runs:
    print("  " + command_line(r))
  return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Run the benchmark as ``python -m audiogs_jax.benchmark ARGV`` does; returns the
  exit status (errors exit through ``SystemExit``)."""
  argv = sys.argv[1:] if argv is None else list(argv)
  args = args_lib.parser().parse_args(argv)
  command = " ".join(["python -m audiogs_jax.benchmark", *map(shlex.quote, argv)])
  mode = MODES["quick" if args.quick else "micro" if args.micro else "full"]
  if args.steps is not None:
    mode = dataclasses.replace(mode, steps=int(args.steps))
  out = pathlib.Path(args.out or f"runs/benchmark/{mode.name}")
  docs = pathlib.Path(args.docs) if args.docs else out / "report.md"
  if args.report_only:
    return _report_only(args, out, docs, command)
  room_names = _csv(args.rooms, list(rooms()), "rooms") or list(rooms())
  variant_names = _csv(args.variants, list(VARIANTS), "variants") or list(mode.variants)
  runs = plan(mode, room_names, variant_names, out,
              pathlib.Path(args.data_root) if args.data_root else None)
  print(f"[benchmark] mode {mode.name}: {len(runs)} runs under {out}; command: {command}")
  if args.dry_run:
    for r in runs:
      print(command_line(r))
    return 0
  return _train_and_report(args, mode, runs, out, docs, command)
