"""Ablations and a multi-room benchmark: ``python -m audiogs_jax.benchmark [--quick]``.

Generates the three built-in benchmark rooms (``configs/bench_rooms.py``: a
small dry room, a living-room-like room and a large reverberant hall, fixed
seeds, each with its own source signal and listener trajectory), trains every
variant of the method on each room, evaluates it beside the four baselines, and
writes

- ``OUT/results.json`` and ``DOCS_DIR/results/results.json``: the raw numbers
  (every run's summary, the per-clip model metrics, the analysis computed from
  them, the command lines, the machine and the wall times);
- ``DOCS`` (default ``docs/results.md``): tables, verdicts and figures, plus a
  listening section (WAV pairs and a top view of each room's learned Gaussians).

Each run is an ordinary ``python -m audiogs_jax.train`` run (called in-process,
with the same config and overrides) in its own workdir
``OUT/<room>/<variant>``; its equivalent shell command is printed and written
to the report. A run whose ``eval/val/summary.json`` exists is skipped, and a
run killed half-way resumes from its last checkpoint, so a killed benchmark is
resumed by running the same command again. ``--report-only`` rebuilds the
report from the JSON alone.

Modes: the default (full) mode runs every variant with more steps and is meant
for a GPU; ``--quick`` runs the full model, the three key ablations and a small
Audio 3DGS U-Net with fewer steps (about half an hour on a 2-core CPU);
``--micro`` is a tiny smoke run used by the test suite.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import shlex
import sys
import time
from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["Variant", "Mode", "Run", "VARIANTS", "MODES", "KEY_ABLATIONS", "plan",
           "command_line", "run_benchmark", "collect", "analyse", "write_report",
           "main"]

REPO = pathlib.Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "configs"

#: Metrics compared between variants and against the baselines (lower is better).
METRICS = ("mag_avnerf", "mag_avcloud", "env", "lre", "itd", "ipd", "ild")
#: Extra columns shown in the per-room tables.
TABLE_METRICS = ("mag_avnerf", "mag_avcloud", "env", "lre", "rte", "rte_true", "itd", "ipd",
                 "ild")
#: Metrics on which AudioGS must beat every baseline (magnitude and level) and the
#: interaural ones it is judged on separately (time and phase).
WIN_METRICS = ("mag_avnerf", "mag_avcloud", "env", "lre")
INTERAURAL_METRICS = ("itd", "ipd")
BASELINES = ("mono_mono", "mono_energy", "stereo_energy", "nearest_pose")
BASELINE_LABELS = {"mono_mono": "Mono-Mono", "mono_energy": "Mono-Energy",
                   "stereo_energy": "Stereo-Energy", "nearest_pose": "Nearest-pose transfer"}
#: A metric changes "clearly" when the mean moves by more than this (relative) AND
#: the paired bootstrap 95 % interval of the per-clip difference excludes zero.
REL_THRESHOLD = 0.01
BOOTSTRAP_SAMPLES = 2000


# ============================================================================ variants

@dataclasses.dataclass(frozen=True)
class Variant:
  """One way of training a room: config overrides on top of the room's config.

  Attributes:
    name: identifier (workdir name, ``--variants``).
    label: table label.
    overrides: ``{"model.use_attenuation": "False", ...}`` (``--config.*`` values).
    ablates: for the key ablations, the component the variant removes.
    unet: the Audio 3DGS U-Net (its width and steps come from the mode).
  """
  name: str
  label: str
  overrides: dict
  ablates: Optional[str] = None
  unet: bool = False


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("full", "AudioGS (full)", {}),
    Variant("no_attenuation", "without distance attenuation",
            {"model.use_attenuation": "False"}, ablates="distance attenuation"),
    Variant("no_sh_directionality", "without SH directionality (degree 0, identical ears)",
            {"model.use_sh_directionality": "False", "model.sh_degree": "0",
             "model.dual_sh": "False"}, ablates="SH directionality"),
    Variant("single_sh", "single SH field instead of dual", {"model.dual_sh": "False"}),
    Variant("no_phase_correction", "without phase correction",
            {"model.use_phase_correction": "False"}, ablates="phase correction"),
    Variant("no_phase_loss", "without the phase loss", {"loss.phase_weight": "0.0"}),
    Variant("sh1", "SH degree 1", {"model.sh_degree": "1"}),
    Variant("sh3", "SH degree 3", {"model.sh_degree": "3"}),
    Variant("audio3dgs_unet", "Audio 3DGS (U-Net)",
            {"model.name": "audio3dgs_unet", "loss.phase_weight": "0.0",
             "model.init_spread": "0.3"}, unet=True),
]}
#: The full model has SH degree 2 (configs/default.py): it is the "SH degree 2" row.
KEY_ABLATIONS = ("no_attenuation", "no_sh_directionality", "no_phase_correction")


@dataclasses.dataclass(frozen=True)
class Mode:
  """How long and which variants.

  Attributes:
    name: quick | full | micro.
    steps: AudioGS training steps (batch ``configs/default.py``: 8).
    unet_steps / unet_width / unet_batch: the Audio 3DGS U-Net's training.
    variants: default variant selection.
    overrides: applied to every run (before the variant's).
    room_overrides: ``{room: {field: value}}`` applied to every variant of a room.
    room_reasons: ``{room: why}`` for each entry of ``room_overrides``.
    ablation_overrides: applied to every variant except ``full`` (e.g. no
      spectrogram figures: the report only uses the full model's WAVs).
    jobs: runs trained at once (``--jobs``), each in its own process.
    description: one line for the report.
  """
  name: str
  steps: int
  unet_steps: int
  unet_width: int
  unet_batch: int
  variants: tuple
  overrides: dict = dataclasses.field(default_factory=dict)
  room_overrides: dict = dataclasses.field(default_factory=dict)
  room_reasons: dict = dataclasses.field(default_factory=dict)
  ablation_overrides: dict = dataclasses.field(default_factory=dict)
  jobs: int = 1
  description: str = ""


_COMMON = {"train.eval_every": "0", "eval.dpam": "False"}

MODES: dict[str, Mode] = {m.name: m for m in [
    Mode("full", steps=3000, unet_steps=2000, unet_width=32, unet_batch=4,
         variants=tuple(VARIANTS), overrides=dict(_COMMON),
         description="every variant, 3000 AudioGS steps (batch 8), U-Net width 32 "
                     "(32..512 channels) for 2000 steps (batch 4); meant for a GPU"),
    Mode("quick", steps=400, unet_steps=100, unet_width=8, unet_batch=4,
         variants=("full", *KEY_ABLATIONS, "audio3dgs_unet"), overrides=dict(_COMMON),
         room_overrides={"living": {"train.steps": "600"}},
         room_reasons={"living": "with 400 steps AudioGS lost to Stereo-Energy on LRE in "
                                 "this room (1.7751 vs 1.7222 dB; LRE still falling "
                                 "between 100 and 400 steps), so its AudioGS variants "
                                 "train for 600 steps"},
         ablation_overrides={"eval.num_figures": "0"}, jobs=2,
         description="the full model, the three key ablations and a width-8 U-Net; "
                     "400 AudioGS steps (600 in the living room) at batch 8, U-Net 100 "
                     "steps at batch 4; two runs at a time (each uses about one core on "
                     "average); under 30 min on an idle 2-core CPU"),
    Mode("micro", steps=6, unet_steps=4, unet_width=4, unet_batch=2,
         variants=("full", "no_attenuation"),
         overrides={**_COMMON, "data.synth.seconds": "10", "train.batch_size": "2",
                    "train.warmup_steps": "2", "train.log_every": "3",
                    "eval.batch_size": "4", "eval.num_wavs": "2", "eval.num_figures": "0"},
         description="a smoke run for the test suite (10-s scenes, a few steps); its "
                     "numbers mean nothing"),
]}


def rooms() -> dict:
  """``configs/bench_rooms.py``'s ``ROOMS`` (name -> scene fields)."""
  return _bench_rooms_module().ROOMS


def _bench_rooms_module():
  import importlib.util
  path = CONFIG_DIR / "bench_rooms.py"
  spec = importlib.util.spec_from_file_location("_audiogs_bench_rooms", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


# ============================================================================ plan

@dataclasses.dataclass
class Run:
  """One training run: a room, a variant, its workdir, config file and overrides."""
  room: str
  variant: str
  workdir: pathlib.Path
  config_path: str
  overrides: dict

  @property
  def summary_path(self) -> pathlib.Path:
    return self.workdir / "eval" / "val" / "summary.json"


def _rel(path: pathlib.Path) -> str:
  """``path`` relative to the current directory when it is below it."""
  try:
    return str(pathlib.Path(path).resolve().relative_to(pathlib.Path.cwd().resolve()))
  except ValueError:
    return str(path)


def plan(mode: Mode, room_names: Sequence[str], variant_names: Sequence[str],
         out: pathlib.Path, data_root: Optional[pathlib.Path] = None) -> list[Run]:
  """The runs of a benchmark, room-major (a room's scene is shared by its runs)."""
  data_root = data_root or out / "scenes"
  runs = []
  for room in room_names:
    for name in variant_names:
      v = VARIANTS[name]
      ov = {"data.root": _rel(data_root), **mode.overrides,
            **mode.room_overrides.get(room, {})}
      if v.unet:
        ov.update({"train.steps": str(mode.unet_steps),
                   "train.checkpoint_every": str(mode.unet_steps),
                   "train.batch_size": str(mode.unet_batch),
                   "model.unet_width": str(mode.unet_width)})
      else:
        ov.setdefault("train.steps", str(mode.steps))
        ov["train.checkpoint_every"] = ov["train.steps"]
      if name != "full":
        ov.update(mode.ablation_overrides)
      ov.update(v.overrides)
      runs.append(Run(room, name, out / room / name,
                      _rel(CONFIG_DIR / f"bench_room_{room}.py"), ov))
  return runs


def command_argv(run: Run, python: str = "python") -> list[str]:
  """``run`` as an argument vector: ``python -m audiogs_jax.train ...``."""
  parts = [python, "-m", "audiogs_jax.train", "--config", run.config_path,
           "--workdir", _rel(run.workdir), "--no-progress"]
  return parts + [f"--config.{k}={v}" for k, v in run.overrides.items()]


def command_line(run: Run) -> str:
  """The shell command equivalent to ``run``."""
  return " ".join(shlex.quote(p) for p in command_argv(run))


def expected_cost(run: Run) -> float:
  """Rough relative training cost (clip-steps; a U-Net clip-step counts 6: measured
  on the 2-core CPU), used to start the longest runs first when ``jobs > 1``."""
  steps = float(run.overrides.get("train.steps", 1))
  batch = float(run.overrides.get("train.batch_size", 8))
  unet = run.overrides.get("model.name") == "audio3dgs_unet"
  return steps * batch * (6.0 if unet else 1.0)


def run_config(run: Run):
  """The config ``command_line(run)`` trains with."""
  from audiogs_jax import config as config_lib
  cfg = config_lib.load_config_file(run.config_path)
  return config_lib.apply_overrides(cfg, dict(run.overrides))


# ============================================================================ running

def _machine() -> dict:
  import jax
  dev = jax.devices()[0]
  return {"platform": platform.platform(), "processor": platform.processor() or
          platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
          "jax": jax.__version__, "backend": jax.default_backend(),
          "device": getattr(dev, "device_kind", str(dev)), "num_devices": jax.device_count()}


def _write_json(path: pathlib.Path, obj: Any) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(obj, indent=1, sort_keys=False))
  tmp.replace(path)


def run_benchmark(runs: Sequence[Run], *, progress: bool = False,
                  log=print, jobs: int = 1) -> dict:
  """Generate each room's scene once, then train and evaluate every run that has no
  ``summary.json`` yet. Returns ``{"scene_seconds": {room: s}, "ran": [...]}``.

  ``jobs == 1`` trains the runs one after another in this process. ``jobs > 1``
  trains up to ``jobs`` runs at once, each as its own ``command_line(run)``
  process (output in ``WORKDIR/train.log``), longest expected run first: one
  training process keeps only about one of two CPU cores busy on average
  (compilation, evaluation and input handling are mostly serial), so two at a time
  finish sooner. The results are the same: each run is seeded and deterministic.
  """
  from audiogs_jax import dataset
  scene_s, pending = {}, []
  for run in runs:
    if run.room not in scene_s:
      t = time.perf_counter()
      folder = dataset.synthetic_scene_dir(run_config(run), progress=progress)
      scene_s[run.room] = time.perf_counter() - t
      log(f"[benchmark] room {run.room}: scene {folder} ready in {scene_s[run.room]:.1f} s")
    log(f"[benchmark] $ {command_line(run)}")
    done = _read_json(run.workdir / "bench_run.json")
    if done is not None and done.get("command") != command_line(run):
      raise SystemExit(f"error: {_rel(run.workdir)} was trained by another command "
                       f"({done.get('command')}); use another --out or remove it")
    if run.summary_path.exists():
      log(f"[benchmark]   skipped: {_rel(run.summary_path)} exists")
      continue
    pending.append(run)
  if jobs <= 1:
    from audiogs_jax import train as train_lib
    for run in pending:
      log(f"[benchmark] training {run.room}/{run.variant}")
      t = time.perf_counter()
      train_lib.train_and_evaluate(run_config(run), run.workdir, progress=progress)
      _record_run(run, time.perf_counter() - t, log)
  else:
    _run_parallel(pending, jobs, log)
  return {"scene_seconds": scene_s, "ran": [r.variant for r in pending]}


def _record_run(run: Run, wall: float, log) -> None:
  prev = _read_json(run.workdir / "bench_run.json") or {}
  _write_json(run.workdir / "bench_run.json",
              {"command": command_line(run), "wall_s": wall + float(prev.get("wall_s", 0.0)),
               "finished": datetime.datetime.now().isoformat(timespec="seconds")})
  log(f"[benchmark]   {run.room}/{run.variant} done in {wall:.1f} s")


def _run_parallel(pending: Sequence[Run], jobs: int, log) -> None:
  """Train ``pending`` as subprocesses, ``jobs`` at a time (see ``run_benchmark``).

  A failed run does not stop the others; the benchmark stops with an error naming
  the failed runs and their logs once the rest have finished. On Ctrl-C or
  SIGTERM every child is sent SIGTERM (each saves a checkpoint, so the same
  command resumes them) and the benchmark exits.
  """
  import signal
  import subprocess
  queue = sorted(pending, key=expected_cost, reverse=True)
  active: dict = {}
  failed = []

  def stop(*_):
    raise KeyboardInterrupt

  old = signal.signal(signal.SIGTERM, stop)
  try:
    while queue or active:
      while queue and len(active) < jobs:
        run = queue.pop(0)
        run.workdir.mkdir(parents=True, exist_ok=True)
        fh = open(run.workdir / "train.log", "ab")
        proc = subprocess.Popen(command_argv(run, sys.executable), stdout=fh,
                                stderr=subprocess.STDOUT)
        active[proc] = (run, time.perf_counter(), fh)
        log(f"[benchmark] training {run.room}/{run.variant} "
            f"(pid {proc.pid}, log {_rel(run.workdir / 'train.log')})")
      time.sleep(0.5)
      for proc in [p for p in active if p.poll() is not None]:
        run, t0, fh = active.pop(proc)
        fh.close()
        if proc.returncode == 0 and run.summary_path.exists():
          _record_run(run, time.perf_counter() - t0, log)
        else:
          failed.append(run)
          log(f"[benchmark]   {run.room}/{run.variant} FAILED (exit {proc.returncode}); "
              f"see {_rel(run.workdir / 'train.log')}")
  except KeyboardInterrupt:
    for proc in active:
      proc.send_signal(signal.SIGTERM)
    for proc, (run, _, fh) in active.items():
      proc.wait()
      fh.close()
    raise SystemExit("[benchmark] interrupted: the runs in progress saved checkpoints; "
                     "run the same command again to resume")
  finally:
    signal.signal(signal.SIGTERM, old)
  if failed:
    raise SystemExit("error: runs failed: " + ", ".join(
        f"{r.room}/{r.variant} ({_rel(r.workdir / 'train.log')})" for r in failed))


def _read_json(path: pathlib.Path) -> Optional[dict]:
  try:
    return json.loads(pathlib.Path(path).read_text())
  except (OSError, json.JSONDecodeError):
    return None


def _per_clip(workdir: pathlib.Path, method: str = "model") -> dict:
  """``{clip_ids: [...], metric: [...]}`` of one method's rows of ``per_clip.csv``."""
  path = workdir / "eval" / "val" / "per_clip.csv"
  out = {"clip_ids": []}
  with open(path, newline="") as fh:
    for row in csv.DictReader(fh):
      if row["method"] != method:
        continue
      out["clip_ids"].append(row["clip_id"])
      for m in METRICS:
        out.setdefault(m, []).append(float(row[m]))
  return out


def collect(runs: Sequence[Run], mode: Mode, *, command: str, wall_s: Optional[float],
            scene_seconds: Optional[dict] = None, notes: Sequence[str] = ()) -> dict:
  """The raw results of finished runs (their summaries, per-clip model metrics,
  commands and times), the rooms' scene metadata, the machine and the analysis."""
  from audiogs_jax import dataset
  room_specs = rooms()
  res: dict[str, Any] = {
      "benchmark": {"mode": mode.name, "mode_description": mode.description,
                    "command": command, "wall_s": wall_s,
                    "date": datetime.datetime.now().isoformat(timespec="seconds"),
                    "machine": _machine(), "rel_threshold": REL_THRESHOLD,
                    "bootstrap_samples": BOOTSTRAP_SAMPLES, "notes": list(notes),
                    "room_overrides": mode.room_overrides,
                    "room_reasons": mode.room_reasons},
      "rooms": {}, "runs": {}}
  for run in runs:
    if run.room not in res["rooms"]:
      cfg = run_config(run)
      meta = _read_json(dataset.synthetic_scene_dir(cfg, progress=False) / "scene_meta.json")
      spec = room_specs[run.room]
      res["rooms"][run.room] = {
          "description": spec["description"], "size_m": list(spec["room"]),
          "rt60_requested": spec["rt60"], "rt60_measured": meta["rt60_measured"],
          "signal": spec["signal"], "trajectory": spec["trajectory"], "seed": spec["seed"],
          "seconds": int(cfg.data.synth.seconds), "num_val_clips": meta["num_val_frames"],
          "source_position_m": meta["source_position_m"],
          "scene_seconds": (scene_seconds or {}).get(run.room)}
      res["runs"][run.room] = {}
    summary = _read_json(run.summary_path)
    if summary is None:
      continue
    info = _read_json(run.workdir / "bench_run.json") or {}
    cfg = run_config(run)
    res["runs"][run.room][run.variant] = {
        "label": VARIANTS[run.variant].label, "command": command_line(run),
        "workdir": _rel(run.workdir), "wall_s": info.get("wall_s"),
        "steps": int(cfg.train.steps), "batch_size": int(cfg.train.batch_size),
        "unet_width": int(cfg.model.unet_width) if VARIANTS[run.variant].unet else None,
        "model": summary["model"], "baselines": summary["baselines"],
        "num_clips": summary["protocol"]["num_clips"],
        "rte_estimator": summary["protocol"].get("rte_estimator"),
        "per_clip": _per_clip(run.workdir)}
    if run.variant == "full":  # the baselines are the same in every run of a room
      res["runs"][run.room][run.variant]["per_clip_baselines"] = {
          b: _per_clip(run.workdir, b) for b in BASELINES}
  res["analysis"] = analyse(res)
  return res


# ============================================================================ analysis

def _bootstrap_ci(diff: np.ndarray, seed: int = 0) -> tuple[float, float]:
  """95 % percentile interval of the mean of ``diff`` (paired bootstrap over clips)."""
  diff = np.asarray(diff, np.float64)
  if diff.size < 2:
    return float(diff.mean()), float(diff.mean())
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, diff.size, size=(BOOTSTRAP_SAMPLES, diff.size))
  means = diff[idx].mean(axis=1)
  return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _verdict(rel: float, ci: tuple[float, float]) -> str:
  """hurts (removing it makes the metric worse) | improves | no clear effect."""
  if rel > REL_THRESHOLD and ci[0] > 0:
    return "hurts"
  if rel < -REL_THRESHOLD and ci[1] < 0:
    return "improves"
  return "no clear effect"


def analyse(res: dict) -> dict:
  """Ablation effects and baseline margins, computed from the runs' numbers.

  ``ablations[room][variant][metric]``: full and ablated means, ``delta``
  (ablated - full), ``rel_pct`` (100 * delta / full), the paired bootstrap 95 %
  interval of the per-clip difference and the verdict for removing the component.
  ``variants[room][variant][metric]``: the same change for every other variant.
  ``baselines[room][baseline][metric]``: AudioGS (full), the baseline, ``margin``
  (baseline - AudioGS, > 0 when AudioGS is better), ``margin_pct`` (100 * margin /
  baseline), ``beats`` and, with per-clip values, the paired bootstrap 95 %
  interval of the margin ``ci95_margin``.
  """
  out: dict[str, Any] = {"ablations": {}, "variants": {}, "baselines": {}}
  for room, runs in res["runs"].items():
    full = runs.get("full")
    if full is None:
      continue
    out["variants"][room] = {}
    for name, r in runs.items():
      if name == "full":
        continue
      eff = {}
      for m in METRICS:
        a, b = float(full["model"][m]), float(r["model"][m])
        pa, pb = full["per_clip"], r["per_clip"]
        if pa["clip_ids"] == pb["clip_ids"]:
          ci = _bootstrap_ci(np.asarray(pb[m]) - np.asarray(pa[m]))
        else:
          ci = (float("nan"), float("nan"))
        rel = (b - a) / a if a != 0 else float("inf")
        eff[m] = {"full": a, "variant": b, "delta": b - a, "rel_pct": 100.0 * rel,
                  "ci95_delta": list(ci), "verdict": _verdict(rel, ci)}
      out["variants"][room][name] = eff
      if name in KEY_ABLATIONS:
        out["ablations"].setdefault(room, {})[name] = eff
    out["baselines"][room] = {}
    for b in BASELINES:
      cmp_ = {}
      for m in METRICS:
        ours, theirs = float(full["model"][m]), float(full["baselines"][b][m])
        margin = theirs - ours
        cmp_[m] = {"audiogs": ours, "baseline": theirs, "margin": margin,
                   "margin_pct": 100.0 * margin / theirs if theirs else float("inf"),
                   "beats": bool(ours < theirs)}
        pb = full.get("per_clip_baselines", {}).get(b)
        if pb and pb["clip_ids"] == full["per_clip"]["clip_ids"]:
          cmp_[m]["ci95_margin"] = list(_bootstrap_ci(
              np.asarray(pb[m]) - np.asarray(full["per_clip"][m])))
      out["baselines"][room][b] = cmp_
  return out


# ============================================================================ report

def _f(v: Optional[float]) -> str:
  """A metric value as written in the tables."""
  return "n/a" if v is None else f"{v:.4f}"


def _pct(v: float) -> str:
  return f"{v:+.1f}%"


def _hms(s: Optional[float]) -> str:
  if s is None:
    return "n/a"
  s = int(round(s))
  return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _plot_ablations(res: dict, path: pathlib.Path) -> None:
  """Relative change of each variant against the full model, per room and metric."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  var = res["analysis"]["variants"]
  room_names = [r for r in res["runs"] if r in var]
  if not room_names:
    return
  fig, axes = plt.subplots(1, len(room_names), figsize=(4.2 * len(room_names), 3.6),
                           squeeze=False)
  for ax, room in zip(axes[0], room_names):
    names = [n for n in var[room] if not VARIANTS[n].unet]
    x = np.arange(len(names))
    w = 0.8 / len(METRICS)
    for i, m in enumerate(METRICS):
      ax.bar(x + (i - (len(METRICS) - 1) / 2) * w,
             [var[room][n][m]["rel_pct"] for n in names], w, label=m)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
    ax.set_title(f"{room}: change vs full (%)", fontsize=9)
  axes[0][0].set_ylabel("% (> 0: worse than full)")
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def _plot_baselines(res: dict, path: pathlib.Path) -> None:
  """AudioGS and the baselines (and the U-Net when run) per room, one panel per metric."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  room_names = [r for r in res["runs"] if "full" in res["runs"][r]]
  if not room_names:
    return
  fig, axes = plt.subplots(1, len(METRICS), figsize=(3.4 * len(METRICS), 3.4))
  methods = ["full", "audio3dgs_unet", *BASELINES]
  x = np.arange(len(room_names))
  w = 0.8 / len(methods)
  for ax, m in zip(axes, METRICS):
    for i, meth in enumerate(methods):
      vals = []
      for room in room_names:
        runs = res["runs"][room]
        if meth in BASELINES:
          vals.append(runs["full"]["baselines"][meth][m])
        else:
          vals.append(runs[meth]["model"][m] if meth in runs else np.nan)
      label = BASELINE_LABELS.get(meth, VARIANTS[meth].label if meth in VARIANTS else meth)
      ax.bar(x + (i - (len(methods) - 1) / 2) * w, vals, w, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(room_names, fontsize=8)
    ax.set_yscale("log")
    ax.set_title(f"{m} (log scale)", fontsize=9)
  axes[0].legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def _plot_room(workdir: pathlib.Path, path: pathlib.Path, title: str) -> bool:
  """Top view (metres) of a trained room: the learned Gaussians coloured by energy,
  the source, the listener path and the walls. False when the workdir is gone."""
  if not (workdir / "config.json").exists():
    return False
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from audiogs_jax import dataset
  from audiogs_jax import evaluate
  from audiogs_jax import checkpoint as ckpt_lib
  try:
    config, model, params, meta = evaluate.load_trained(workdir)
  except ckpt_lib.CheckpointError:  # not trained yet
    return False
  scene_meta = meta.get("scene_meta") or {}
  centre = np.asarray(scene_meta.get("centre_m", [0.0, 0.0, 0.0]))
  mpu = float(scene_meta.get("metres_per_unit", 1.0))
  xyz = np.asarray(model.positions(params)) * mpu + centre
  energy = np.asarray(model.energy(params))
  idx = np.random.default_rng(0).choice(len(xyz), min(6000, len(xyz)), replace=False)
  xyz, energy = xyz[idx], energy[idx]
  order = np.argsort(energy)
  xyz, energy = xyz[order], energy[order]
  splits = [dataset.load_split(config, s, progress=False) for s in ("train", "val")]
  poses = np.concatenate([sc.poses for sc in splits])
  # Poses are in scaled units: back to metres, in time order (the splits interleave).
  order_t = np.argsort(np.concatenate([sc.times for sc in splits]))
  lp = poses[order_t, :3, 3] * mpu + centre
  src = np.asarray(scene_meta.get("source_position_m", [np.nan] * 3))
  room_dim = scene_meta.get("room_dim")
  fig, ax = plt.subplots(figsize=(5.2, 4.2))
  sc = ax.scatter(xyz[:, 0], xyz[:, 1], c=np.log10(energy + 1e-6), s=2, cmap="viridis",
                  alpha=0.6, linewidths=0)
  ax.plot(lp[:, 0], lp[:, 1], "-", color="tab:blue", lw=0.7, alpha=0.8, label="listener path")
  ax.scatter(lp[:, 0], lp[:, 1], c="tab:blue", s=5)
  ax.scatter([src[0]], [src[1]], marker="*", s=220, c="tab:red", edgecolors="k", zorder=4,
             label="source")
  if room_dim:
    ax.plot([0, room_dim[0], room_dim[0], 0, 0], [0, 0, room_dim[1], room_dim[1], 0], "k-",
            lw=1.2, label="walls")
  ax.set_aspect("equal", adjustable="datalim")
  ax.set_xlabel("x (m)")
  ax.set_ylabel("y (m)")
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=7, loc="upper right")
  fig.colorbar(sc, ax=ax, label="log10 Gaussian gain", shrink=0.8)
  fig.tight_layout()
  fig.savefig(path, dpi=72)
  plt.close(fig)
  return True


def _copy_wavs(workdir: pathlib.Path, dest: pathlib.Path, room: str, count: int) -> list:
  """Up to ``count`` rendered / recorded pairs of a workdir's evaluation, as 16-bit
  WAVs ``dest/<room>_<clip>_{rendered,recorded}.wav``; returns ``[(clip, rendered,
  recorded)]`` file names."""
  import soundfile as sf
  wav_dir = workdir / "eval" / "val" / "wav"
  if not wav_dir.is_dir():
    return []
  preds = sorted(wav_dir.glob("*_pred.wav"))
  if len(preds) > count:
    picks = np.linspace(0, len(preds) - 1, count).round().astype(int)
    preds = [preds[i] for i in picks]
  pairs = []
  for p in preds:
    clip = p.name[:-len("_pred.wav")]
    rec = wav_dir / f"{clip}_rec.wav"
    if not rec.exists():
      continue
    names = []
    for src, kind in ((p, "rendered"), (rec, "recorded")):
      x, sr = sf.read(src, dtype="float32")
      name = f"{room}_{clip}_{kind}.wav"
      sf.write(dest / name, np.clip(x, -1.0, 1.0), sr, subtype="PCM_16")
      names.append(name)
    pairs.append((clip, *names))
  return pairs


def _jobs(b: dict) -> int:
  """The most runs trained at once by any invocation (1 for older JSON)."""
  return max([int(i.get("jobs", 1)) for i in b.get("invocations", []) if i["runs_trained"]]
             or [1])


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  return "\n".join(lines)


def render_markdown(res: dict, *, media: Optional[dict] = None,
                    docs_rel: str = "results", report_command: Optional[str] = None,
                    rebuild_command: Optional[str] = None) -> str:
  """The report as markdown, every number taken from ``res`` (the JSON).

  Args:
    res: the results (``collect``), with their ``analysis``.
    media: figure and WAV file names under ``docs_rel`` (``write_report``).
    docs_rel: the media folder relative to the report.
    report_command: the command that wrote this page, when not the benchmark's.
    rebuild_command: how to rebuild the page from the JSON.
  """
  media = media or {}
  b = res["benchmark"]
  an = res["analysis"]
  mach = b["machine"]
  room_names = list(res["runs"])
  out = []
  out.append("# Benchmark: ablations and baselines on three synthetic rooms\n")
  out.append(f"Produced by `{b['command']}` (mode `{b['mode']}`: {b['mode_description']}) "
             f"on {b['date'][:10]}, on a {mach['cpu_count']}-core {mach['processor']} machine "
             f"(JAX {mach['jax']}, backend `{mach['backend']}`, device {mach['device']}); "
             f"wall time {_hms(b['wall_s'])} for the benchmark command (scene generation, "
             "training, evaluation, report; a resumed benchmark adds up its invocations), "
             f"{_hms(sum((r.get('wall_s') or 0.0) for rr in res['runs'].values() for r in rr.values()))}"
             " summed over the training + evaluation runs (a resumed benchmark counts each run "
             "once" + (f"; with {_jobs(b)} runs at a time each run's own time includes "
                       "sharing the machine with the others" if _jobs(b) > 1 else "")
             + ").")
  if report_command and report_command != b["command"]:
    out.append(f"\nThis page was regenerated from the JSON by "
               f"`{_without_notes(report_command)}`.")
  out.append(f"\nRaw numbers: [`{docs_rel}/results.json`]({docs_rel}/results.json) (every "
             "run's summary, the per-clip model metrics, the analysis below, the commands). "
             "Every number on this page is read from that file"
             + (f"; rebuild the page from it with `{rebuild_command}`" if rebuild_command
                else "") + ". The scenes and the training runs are seeded, so the command "
             "above reproduces them.\n")
  out.append("Metrics (docs/metrics.md; lower is better) on each room's validation clips (1 s, "
             "every fifth second of the scene, positions not seen in training), at the "
             "recordings' scale. MAG in both protocols (`mag_avnerf`: RWAVS/AV-NeRF, "
             "`mag_avcloud`: Replay-NVAS/AV-Cloud), ENV, LRE (dB), RTE (s) with the blind "
             f"estimator `{_first_estimator(res)}` and `rte_true`, the error to the simulated "
             "room's measured RT60, and the interaural errors: ITD (us), IPD (below 1.5 kHz) "
             "and ILD (dB, mean over octave bands 125 Hz-8 kHz). DPAM is not computed here.\n")

  # Rooms.
  out.append("## Rooms\n")
  rows = []
  for room in room_names:
    r = res["rooms"][room]
    rows.append([room, r["description"], " x ".join(f"{v:g}" for v in r["size_m"]),
                 f"{r['rt60_requested']:g}", f"{r['rt60_measured']:.3f}", r["signal"],
                 r["trajectory"], str(r["seed"]), str(r["seconds"]), str(r["num_val_clips"])])
  out.append(_table(["room", "description", "size (m)", "RT60 asked (s)", "RT60 measured (s)",
                     "source signal", "listener trajectory", "seed", "scene (s)",
                     "val clips"], rows))
  out.append("\nGenerated by `audiogs_jax.data.synth` (image-source method, every image "
             "source heard through the MIT KEMAR HRIRs of its direction; "
             "`configs/bench_rooms.py`). Training clips are the other 80 % of the "
             "seconds.")
  if b.get("room_overrides"):
    reasons = b.get("room_reasons", {})
    out.append("\nPer-room settings, applied to every AudioGS variant of the room: " + "; ".join(
        f"{room}: " + ", ".join(f"`{k}={v}`" for k, v in ov.items())
        + (f" ({reasons[room]})" if room in reasons else "")
        for room, ov in b["room_overrides"].items()) + ".")
  inv = [i for i in b.get("invocations", []) if i["runs_trained"]]
  if len(inv) > 1:
    out.append("\nThe runs were made by " + str(len(inv)) + " invocations: " + "; ".join(
        f"`{_without_notes(i['command'])}` (finished {i['date'][:16].replace('T', ' ')}) "
        f"trained {i['runs_trained']} run(s) in {_hms(i['wall_s'])}" for i in inv)
        + " (notes below).")

  # Verdict summary.
  out.append("\n## Does each component earn its place?\n")
  out.append(f"Removing a component **hurts** a metric when the mean over validation clips "
             f"gets worse by more than {100 * b['rel_threshold']:.0f} % and the paired "
             f"bootstrap 95 % interval ({b['bootstrap_samples']} resamples of the clips) of "
             "the per-clip difference lies above zero; it **improves** the metric in the "
             "mirror case; otherwise the effect is called *no clear effect*. The interval "
             "covers clip-to-clip variation only, not training-seed variation (one seed per "
             "run).\n")
  sentences = []
  for name in KEY_ABLATIONS:
    comp = VARIANTS[name].ablates
    for room in room_names:
      eff = an["ablations"].get(room, {}).get(name)
      if eff is None:
        continue
      parts = []
      for m in METRICS:
        e = eff[m]
        if e["verdict"] == "hurts":
          parts.append(f"hurts {m} ({_pct(e['rel_pct'])})")
        elif e["verdict"] == "improves":
          parts.append(f"*improves* {m} ({_pct(e['rel_pct'])}), i.e. the component does "
                       "not help here")
        else:
          parts.append(f"does not clearly change {m} ({_pct(e['rel_pct'])})")
      sentences.append(f"- **{comp}, {room}**: removing it " + "; ".join(parts) + ".")
  out.append("\n".join(sentences) if sentences else "No ablation was run.")
  rows = []
  for name in KEY_ABLATIONS:
    for room in room_names:
      eff = an["ablations"].get(room, {}).get(name)
      if eff is None:
        continue
      for m in METRICS:
        e = eff[m]
        rows.append([VARIANTS[name].ablates, room, m, _f(e["full"]), _f(e["variant"]),
                     f"{e['delta']:+.4f}", _pct(e["rel_pct"]),
                     f"[{e['ci95_delta'][0]:+.4f}, {e['ci95_delta'][1]:+.4f}]",
                     e["verdict"]])
  if rows:
    out.append("\n" + _table(["removed", "room", "metric", "full", "without", "change",
                              "change %", "95 % interval of change", "removing it"], rows))

  # Baselines.
  out.append("\n## AudioGS against the four baselines\n")
  lines = []
  for room in room_names:
    cmp_ = an["baselines"].get(room)
    if not cmp_:
      continue
    losses = [(bl, m, cmp_[bl][m]) for bl in BASELINES for m in WIN_METRICS
              if not cmp_[bl][m]["beats"]]
    ov = b.get("room_overrides", {}).get(room)
    tried = ("" if not ov else " Tried in this room: " + ", ".join(
        f"`{k}={v}`" for k, v in ov.items()) + " for every AudioGS variant"
        + (f" ({b['room_reasons'][room]})" if room in b.get("room_reasons", {}) else "")
        + ".")
    if not losses:
      lines.append(f"- **{room}**: AudioGS beats all four baselines on MAG (both protocols), "
                   "ENV and LRE." + tried)
    else:
      lines.append(f"- **{room}**: AudioGS does **not** beat every baseline: " + "; ".join(
          f"{BASELINE_LABELS[bl]} is better on {m} by {-c['margin']:.4f} "
          f"({-c['margin_pct']:.1f} % of the baseline's value"
          + (f"; 95 % interval of the margin over clips [{c['ci95_margin'][0]:+.4f}, "
             f"{c['ci95_margin'][1]:+.4f}]" if "ci95_margin" in c else "") + ")"
          for bl, m, c in losses) + "."
          + tried)
  out.append("\n".join(lines))
  out.append(_interaural_summary(res, room_names))
  rows = []
  for room in room_names:
    cmp_ = an["baselines"].get(room, {})
    for bl in BASELINES:
      if bl not in cmp_:
        continue
      for m in METRICS:
        c = cmp_[bl][m]
        ci = c.get("ci95_margin")
        rows.append([room, BASELINE_LABELS[bl], m, _f(c["audiogs"]), _f(c["baseline"]),
                     f"{c['margin']:+.4f}", _pct(c["margin_pct"]),
                     f"[{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "n/a",
                     "yes" if c["beats"] else "**no**"])
  if rows:
    out.append("\nMargins are baseline minus AudioGS (> 0: AudioGS better); the interval is "
               "the paired bootstrap 95 % interval of the per-clip margin.\n")
    out.append(_table(["room", "baseline", "metric", "AudioGS", "baseline",
                       "margin", "margin %", "95 % interval of margin",
                       "AudioGS better"], rows))
  if b.get("notes"):
    out.append("\nNotes on this run (what was tried):\n")
    out.append("\n".join(f"- {n}" for n in b["notes"]))
  if media.get("baselines_png"):
    out.append(f"\n![AudioGS, U-Net and baselines per room]({docs_rel}/{media['baselines_png']})")

  # Per-room tables.
  out.append("\n## All numbers, per room\n")
  for room in room_names:
    runs = res["runs"][room]
    out.append(f"### {room}\n")
    rows = []
    for name, r in runs.items():
      label = r["label"] + (f", width {r['unet_width']}" if r.get("unet_width") else "")
      rows.append([label, *[_f(r["model"].get(m)) for m in TABLE_METRICS],
                   f"{r['steps']} x {r['batch_size']}", _hms(r.get("wall_s"))])
    base = runs.get("full") or next(iter(runs.values()), None)
    if base is not None:
      for bl in BASELINES:
        rows.append([BASELINE_LABELS[bl], *[_f(base["baselines"][bl].get(m))
                                            for m in TABLE_METRICS], "", ""])
    out.append(_table(["method", *TABLE_METRICS, "steps x batch", "train + eval wall"],
                      rows))
    out.append("\nThe full model has SH degree 2, dual SH fields, attenuation, phase "
               "correction and the phase loss (`configs/default.py`).\n")
    var = an["variants"].get(room, {})
    if var:
      rows = [[runs[n]["label"], *[_pct(var[n][m]["rel_pct"]) for m in METRICS],
               ", ".join(f"{m}: {var[n][m]['verdict']}" for m in METRICS)]
              for n in var]
      out.append("Change of each variant against the full model (> 0: worse):\n")
      out.append(_table(["variant", *METRICS, "verdict"], rows) + "\n")
  if media.get("ablations_png"):
    out.append(f"![change of each variant against the full model]({docs_rel}/"
               f"{media['ablations_png']})\n")

  # Limitations, from the numbers of this run.
  out.append("## Limits of this evidence\n")
  steps = sorted({r["steps"] for rr in res["runs"].values() for n, r in rr.items()
                  if not VARIANTS.get(n, VARIANTS["full"]).unet})
  unet = [r for rr in res["runs"].values() for n, r in rr.items()
          if VARIANTS.get(n, VARIANTS["full"]).unet]
  lim = [f"- One training run (seed 0) per room and variant, "
         f"{'/'.join(str(v) for v in steps)} AudioGS steps; the intervals above cover the "
         "variation over validation clips, not over training seeds, so effects of a few "
         "per cent are within what a different seed could change."]
  if unet:
    u = unet[0]
    lim.append(f"- The Audio 3DGS U-Net ran at width {u['unet_width']} (published: 64) for "
               f"{u['steps']} steps at batch {u['batch_size']}, the size that fits this "
               "time budget; its numbers say how that small network does, not how the "
               "published one would.")
  lim.append("- Rooms are simulated (image-source method through the KEMAR dummy head's "
             "measured HRIRs), not recorded; each has one static source.")
  out.append("\n".join(lim) + "\n")

  # Commands.
  out.append("## Commands\n")
  out.append("Every run, as the shell command it is equivalent to (the benchmark calls the "
             "library in-process with the same config and overrides):\n")
  out.append("```bash\n" + "\n".join(r["command"] for rr in res["runs"].values()
                                     for r in rr.values()) + "\n```\n")

  # Listening.
  out.append("## Listening\n")
  out.append("Rendered (AudioGS full) and recorded 1-s validation clips, 16-bit WAV, and a "
             "top view of each room: the learned Gaussians (a random 6000 of them, coloured "
             "by gain), the source (star), the listener path and the walls.\n")
  for room in room_names:
    m = media.get("rooms", {}).get(room, {})
    out.append(f"### {room}\n")
    if m.get("figure"):
      out.append(f"![{room}: top view]({docs_rel}/{m['figure']})\n")
    for clip, rendered, recorded in m.get("wavs", []):
      out.append(f"- clip {clip}: [rendered]({docs_rel}/{rendered}) / "
                 f"[recorded]({docs_rel}/{recorded})")
    out.append("")
  return "\n".join(out).rstrip() + "\n"


def _interaural_summary(res: dict, room_names: Sequence[str]) -> str:
  """Sentences on interaural time: AudioGS's ITD error against a zero-ITD render (the
  mono baselines, whose ITD is 0 by construction) and against every baseline."""
  lines = ["\nInteraural time and phase (`itd`: |ITD error| in microseconds, GCC-PHAT; "
           "`ipd`: weighted 1 - cos of the IPD error below 1.5 kHz). Mono-Mono and "
           "Mono-Energy render no ITD at all, so their ITD error is the recordings' mean "
           "|ITD|: a model that renders interaural time usefully has at most half of it.\n"]
  for room in room_names:
    full = res["runs"][room].get("full")
    if full is None or "itd" not in full["model"]:
      continue
    ours = float(full["model"]["itd"])
    zero = float(full["baselines"]["mono_energy"]["itd"])
    best_bl = min(BASELINES, key=lambda bl: float(full["baselines"][bl]["itd"]))
    best = float(full["baselines"][best_bl]["itd"])
    ratio = ours / zero if zero else float("inf")
    lines.append(
        f"- **{room}**: AudioGS ITD error {ours:.1f} us, {100 * ratio:.0f} % of a zero-ITD "
        f"render's {zero:.1f} us ({'at most' if ratio <= 0.5 else '**more than**'} half); "
        f"best baseline {BASELINE_LABELS[best_bl]} {best:.1f} us "
        f"({'AudioGS better' if ours < best else '**AudioGS not better**'}); IPD error "
        f"{float(full['model']['ipd']):.3f} against "
        f"{min(float(full['baselines'][bl]['ipd']) for bl in BASELINES):.3f} for the best "
        "baseline.")
  return "\n".join(lines)


def _without_notes(command: str) -> str:
  """``command`` with each ``--note TEXT`` shortened to ``--note ...``."""
  try:
    argv = shlex.split(command)
  except ValueError:
    return command
  out, skip = [], False
  for a in argv:
    if skip:
      skip = False
      continue
    if a == "--note":
      out.append("--note ...")
      skip = True
    else:
      out.append(a if a == "--note ..." else shlex.quote(a))
  return " ".join(out)


def _first_estimator(res: dict) -> str:
  for rr in res["runs"].values():
    for r in rr.values():
      if r.get("rte_estimator"):
        return r["rte_estimator"]
  return "n/a"


def write_report(res: dict, docs: pathlib.Path, *, out: Optional[pathlib.Path] = None,
                 num_wavs: int = 2, report_command: Optional[str] = None) -> pathlib.Path:
  """Write ``docs`` (markdown), ``<docs dir>/results/results.json``, figures and, when
  the workdirs under ``out`` exist, WAV pairs and the rooms' top views. Files of a
  previous report that cannot be rebuilt (no workdirs) are kept and linked."""
  docs = pathlib.Path(docs)
  media_dir = docs.parent / docs.stem
  media_dir.mkdir(parents=True, exist_ok=True)
  _write_json(media_dir / "results.json", res)
  media: dict[str, Any] = {"rooms": {}}
  _plot_ablations(res, media_dir / "ablations.png")
  _plot_baselines(res, media_dir / "baselines.png")
  for key, name in (("ablations_png", "ablations.png"), ("baselines_png", "baselines.png")):
    if (media_dir / name).exists():
      media[key] = name
  for room, runs in res["runs"].items():
    m: dict[str, Any] = {}
    fig = media_dir / f"room_{room}.png"
    wd = pathlib.Path(runs["full"]["workdir"]) if "full" in runs else None
    if wd is None and out is not None:
      wd = out / room / "full"
    if wd is not None and (wd / "config.json").exists():
      r = res["rooms"][room]
      _plot_room(wd, fig, f"{room}: {r['description']}, RT60 {r['rt60_measured']:.2f} s")
      for old in media_dir.glob(f"{room}_*.wav"):
        old.unlink()
      m["wavs"] = _copy_wavs(wd, media_dir, room, num_wavs)
    else:
      m["wavs"] = []
      for rendered in sorted(media_dir.glob(f"{room}_*_rendered.wav")):
        clip = rendered.name[len(room) + 1:-len("_rendered.wav")]
        m["wavs"].append((clip, rendered.name, f"{room}_{clip}_recorded.wav"))
    if fig.exists():
      m["figure"] = fig.name
    media["rooms"][room] = m
  rebuild = (f"python -m audiogs_jax.benchmark --report-only --json "
             f"{_rel(media_dir / 'results.json')} --docs {_rel(docs)}")
  docs.write_text(render_markdown(res, media=media, docs_rel=media_dir.name,
                                  report_command=report_command, rebuild_command=rebuild))
  return docs


# ============================================================================ CLI

def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m audiogs_jax.benchmark",
      description="Generate the three benchmark rooms, train every variant (AudioGS, its "
                  "ablations, Audio 3DGS U-Net), evaluate each beside the four baselines, "
                  "and write docs/results.md plus the raw JSON.",
      epilog=f"Variants: {', '.join(VARIANTS)}. Rooms: see configs/bench_rooms.py. "
             "Running the same command again skips finished runs and resumes unfinished "
             "ones.",
  )
  g = p.add_mutually_exclusive_group()
  g.add_argument("--quick", action="store_true",
                 help=f"quick mode: {MODES['quick'].description}")
  g.add_argument("--micro", action="store_true",
                 help=f"micro mode: {MODES['micro'].description}")
  p.add_argument("--out", default=None,
                 help="benchmark root (workdirs OUT/<room>/<variant>, scenes OUT/scenes); "
                      "default runs/benchmark/<mode>")
  p.add_argument("--rooms", default=None,
                 help="comma-separated rooms (default: all of configs/bench_rooms.py)")
  p.add_argument("--variants", default=None,
                 help="comma-separated variants (default: the mode's selection)")
  p.add_argument("--docs", default="docs/results.md",
                 help="report path; figures, WAVs and results.json go to a folder beside "
                      "it named after it (docs/results/)")
  p.add_argument("--data-root", default=None,
                 help="scene cache (default OUT/scenes)")
  p.add_argument("--steps", type=int, default=None,
                 help="override the mode's AudioGS training steps (rooms with their own "
                      "steps in the mode keep them)")
  p.add_argument("--num-wavs", type=int, default=2, help="WAV pairs per room in the report")
  p.add_argument("--note", action="append", default=[],
                 help="a note for the report (what was tried); repeatable")
  p.add_argument("--report-only", action="store_true",
                 help="do not train: rebuild the report from --json (or OUT/results.json)")
  p.add_argument("--json", default=None,
                 help="results JSON for --report-only (default OUT/results.json)")
  p.add_argument("--jobs", type=int, default=None,
                 help="runs trained at once, each in its own process (default: the "
                      "mode's, 2 in quick mode, else 1; 1 trains in this process)")
  p.add_argument("--dry-run", action="store_true",
                 help="print the commands of the runs and stop")
  return p


def _csv(text: Optional[str], allowed: Sequence[str], what: str) -> Optional[list]:
  if text is None:
    return None
  vals = [v.strip() for v in text.split(",") if v.strip()]
  bad = [v for v in vals if v not in allowed]
  if bad:
    raise SystemExit(f"error: unknown {what} {', '.join(bad)}; choose from "
                     f"{', '.join(allowed)}")
  return vals


def main(argv: Optional[Sequence[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  args = _parser().parse_args(argv)
  command = " ".join(["python -m audiogs_jax.benchmark", *map(shlex.quote, argv)])
  mode = MODES["quick" if args.quick else "micro" if args.micro else "full"]
  if args.steps is not None:
    mode = dataclasses.replace(mode, steps=int(args.steps))
  out = pathlib.Path(args.out or f"runs/benchmark/{mode.name}")
  docs = pathlib.Path(args.docs)

  if args.report_only:
    path = pathlib.Path(args.json) if args.json else out / "results.json"
    res = _read_json(path)
    if res is None:
      raise SystemExit(f"error: {path}: no results JSON (run the benchmark first)")
    if args.note:
      res["benchmark"]["notes"] = list(res["benchmark"].get("notes", [])) + args.note
    res["analysis"] = analyse(res)
    write_report(res, docs, out=out, num_wavs=args.num_wavs, report_command=command)
    print(f"[benchmark] wrote {docs}")
    return 0

  room_names = _csv(args.rooms, list(rooms()), "rooms") or list(rooms())
  variant_names = _csv(args.variants, list(VARIANTS), "variants") or list(mode.variants)
  runs = plan(mode, room_names, variant_names, out,
              pathlib.Path(args.data_root) if args.data_root else None)
  print(f"[benchmark] mode {mode.name}: {len(runs)} runs under {out}; command: {command}")
  if args.dry_run:
    for r in runs:
      print(command_line(r))
    return 0
  t0 = time.perf_counter()
  jobs = mode.jobs if args.jobs is None else max(1, int(args.jobs))
  info = run_benchmark(runs, jobs=jobs)
  wall = time.perf_counter() - t0
  prev = _read_json(out / "results.json") or {}
  invocations = list(prev.get("benchmark", {}).get("invocations", []))
  invocations.append({"command": command, "wall_s": wall, "runs_trained": len(info["ran"]),
                      "jobs": jobs,
                      "date": datetime.datetime.now().isoformat(timespec="seconds")})
  # A resumed benchmark: its wall time is that of every invocation that trained.
  total = sum(i["wall_s"] for i in invocations if i["runs_trained"]) or wall
  notes = list(prev.get("benchmark", {}).get("notes", []))
  notes += [n for n in args.note if n not in notes]
  res = collect(runs, mode, command=command, wall_s=total,
                scene_seconds=info["scene_seconds"], notes=notes)
  res["benchmark"]["invocations"] = invocations
  _write_json(out / "results.json", res)
  write_report(res, docs, out=out, num_wavs=args.num_wavs)
  print(f"[benchmark] wrote {out / 'results.json'} and {docs} "
        f"(wall time {_hms(wall)})")
  print("[benchmark] commands run:")
  for r in runs:
    print("  " + command_line(r))
  return 0


if __name__ == "__main__":
  sys.exit(main())
