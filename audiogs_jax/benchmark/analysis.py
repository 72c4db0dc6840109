"""The results of a benchmark and what they show: collecting the finished runs'
numbers, then the ablation effects and baseline margins with paired bootstrap
intervals over the validation clips."""

from __future__ import annotations

import csv
import datetime
import os
import pathlib
import platform
from typing import Any, Optional, Sequence

import jax
import numpy as np

from audiogs_jax import dataset
from audiogs_jax.benchmark.paths import read_json, rel
from audiogs_jax.benchmark.plans import KEY_ABLATIONS, VARIANTS, Mode, Run, command_line, \
    rooms, run_config

__all__ = ["METRICS", "TABLE_METRICS", "WIN_METRICS", "BASELINES", "BASELINE_LABELS",
           "REL_THRESHOLD", "BOOTSTRAP_SAMPLES", "collect", "analyse"]

#: Metrics compared between variants and against the baselines (lower is better).
METRICS = ("mag_avnerf", "mag_avcloud", "env", "lre", "rte", "rte_true", "itd", "ipd", "ild")
#: Extra columns shown in the per-room tables.
TABLE_METRICS = ("mag_avnerf", "mag_avcloud", "env", "lre", "rte", "rte_true", "itd", "ipd",
                 "ild")
#: Metrics on which AudioGS must beat every baseline (magnitude and level).
WIN_METRICS = ("mag_avnerf", "mag_avcloud", "env", "lre")
BASELINES = ("mono_mono", "mono_energy", "stereo_energy", "nearest_pose")
BASELINE_LABELS = {"mono_mono": "Mono-Mono", "mono_energy": "Mono-Energy",
                   "stereo_energy": "Stereo-Energy", "nearest_pose": "Nearest-pose transfer"}
#: A metric changes "clearly" when the mean moves by more than this (relative) AND
#: the paired bootstrap 95 % interval of the per-clip difference excludes zero.
REL_THRESHOLD = 0.01
BOOTSTRAP_SAMPLES = 2000


def _machine() -> dict:
  """The machine and JAX backend the benchmark ran on, for the report's first line."""
  dev = jax.devices()[0]
  return {"platform": platform.platform(), "processor": platform.processor() or
          platform.machine(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
          "jax": jax.__version__, "backend": jax.default_backend(),
          "device": getattr(dev, "device_kind", str(dev)), "num_devices": jax.device_count()}


def _per_clip(workdir: pathlib.Path, method: str = "model") -> dict:
  """``{"clip_ids": [C], metric: [C] for metric in METRICS}``: one method's rows of
  the run's ``eval/val/per_clip.csv`` (C validation clips)."""
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


def _room_entry(run: Run, spec: dict, scene_seconds: Optional[float]) -> dict:
  """A room's scene as the report describes it: its spec in ``configs/bench_rooms.py``
  and the generated scene's ``scene_meta.json`` (measured RT60, source, clips)."""
  cfg = run_config(run)
  meta = read_json(dataset.synthetic_scene_dir(cfg, progress=False) / "scene_meta.json")
  return {"description": spec["description"], "size_m": list(spec["room"]),
          "rt60_requested": spec["rt60"], "rt60_measured": meta["rt60_measured"],
          "signal": spec["signal"], "trajectory": spec["trajectory"], "seed": spec["seed"],
          "seconds": int(cfg.data.synth.seconds), "num_val_clips": meta["num_val_frames"],
          "source_position_m": meta["source_position_m"], "scene_seconds": scene_seconds}


def _run_entry(run: Run, summary: dict) -> dict:
  """A finished run: its command, length, wall time, summary and per-clip metrics;
  the full model also keeps the baselines' per-clip metrics (the same in every run
  of a room)."""
  info = read_json(run.workdir / "bench_run.json") or {}
  cfg = run_config(run)
  entry = {
      "label": VARIANTS[run.variant].label, "command": command_line(run),
      "workdir": rel(run.workdir), "wall_s": info.get("wall_s"),
      "steps": int(cfg.train.steps), "batch_size": int(cfg.train.batch_size),
      "unet_width": int(cfg.model.audio3dgs_unet.unet_width) if VARIANTS[run.variant].unet else None,
      "model": summary["model"], "baselines": summary["baselines"],
      "num_clips": summary["protocol"]["num_clips"],
      "rte_estimator": summary["protocol"].get("rte_estimator"),
      "per_clip": _per_clip(run.workdir)}
  if run.variant == "full":
    entry["per_clip_baselines"] = {b: _per_clip(run.workdir, b) for b in BASELINES}
  return entry


def collect(runs: Sequence[Run], mode: Mode, *, command: str, wall_s: Optional[float],
            scene_seconds: Optional[dict] = None, notes: Sequence[str] = ()) -> dict:
  """The raw results of finished runs (their summaries, per-clip model metrics,
  commands and times), the rooms' scene metadata, the machine and the analysis:
  ``{"benchmark": {...}, "rooms": {room: ...}, "runs": {room: {variant: ...}},
  "analysis": analyse(...)}``; unfinished runs are left out."""
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
      res["rooms"][run.room] = _room_entry(run, room_specs[run.room],
                                           (scene_seconds or {}).get(run.room))
      res["runs"][run.room] = {}
    summary = read_json(run.summary_path)
    if summary is not None:
      res["runs"][run.room][run.variant] = _run_entry(run, summary)
  res["analysis"] = analyse(res)
  return res


def _bootstrap_ci(diff: np.ndarray, seed: int = 0) -> tuple[float, float]:
  """95 % percentile interval of the mean of ``diff [C]`` (per-clip differences,
  resampled over clips ``BOOTSTRAP_SAMPLES`` times)."""
  diff = np.asarray(diff, np.float64)
  if diff.size < 2:
    return float(diff.mean()), float(diff.mean())
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, diff.size, size=(BOOTSTRAP_SAMPLES, diff.size))
  means = diff[idx].mean(axis=1)
  return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _verdict(rel_change: float, ci: tuple[float, float]) -> str:
  """hurts (removing it makes the metric worse) | improves | no clear effect."""
  if rel_change > REL_THRESHOLD and ci[0] > 0:
    return "hurts"
  if rel_change < -REL_THRESHOLD and ci[1] < 0:
    return "improves"
  return "no clear effect"


def _variant_effect(full: dict, r: dict) -> dict:
  """``{metric: effect}`` of one variant against the full model (see ``analyse``)."""
  eff = {}
  for m in METRICS:
    a, b = float(full["model"][m]), float(r["model"][m])
    pa, pb = full["per_clip"], r["per_clip"]
    if pa["clip_ids"] == pb["clip_ids"]:
      ci = _bootstrap_ci(np.asarray(pb[m]) - np.asarray(pa[m]))
    else:
      ci = (float("nan"), float("nan"))
    rel_change = (b - a) / a if a != 0 else float("inf")
    eff[m] = {"full": a, "variant": b, "delta": b - a, "rel_pct": 100.0 * rel_change,
              "ci95_delta": list(ci), "verdict": _verdict(rel_change, ci)}
  return eff


def _baseline_margins(full: dict, b: str) -> dict:
  """``{metric: comparison}`` of the full model against baseline ``b`` (see
  ``analyse``)."""
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
  return cmp_


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
      eff = _variant_effect(full, r)
      out["variants"][room][name] = eff
      if name in KEY_ABLATIONS:
        out["ablations"].setdefault(room, {})[name] = eff
    out["baselines"][room] = {b: _baseline_margins(full, b) for b in BASELINES}
  return out
