"""Evaluation of a trained workdir: metrics, tables, WAV files and figures.

Renders every clip of a split, and computes the metrics of metrics.md (MAG in
both protocols, ENV, LRE, RTE with the blind estimator named in the report,
RT60 error to the simulator's true value on synthetic scenes, interaural ITD /
IPD / ILD, DPAM when the ``dpam`` extra is installed) for the model and the four
baselines. Writes to ``WORKDIR/eval/<split>/`` (``<split>_best`` for the best
checkpoint):

- ``summary.json``: ``{"model": {metric: value}, "baselines": {name: {...}},
  "protocol": {...}}``
- ``per_clip.csv``: one row per clip and method
- ``table.md``: the markdown table (also printed)
- ``wav/``: predicted / recorded pairs (scaled back to the recording's level)
- ``figures/``: spectrograms (prediction, recording, difference) and the
  Gaussians' positions coloured by energy, with source and listener poses.

A multi-scene workdir is evaluated scene by scene into
``WORKDIR/eval/<split>/scene_<id>/``, and ``WORKDIR/eval/<split>/summary.json`` /
``table.md`` aggregate them as metrics.md does for RWAVS: the mean per scene,
per environment (office 1-5, house 6-8, apartment 9-11, outdoor 12-13) and
overall (the mean of the environment means); scene ids that are not RWAVS's
1-13 are averaged directly (``overall`` only).
"""

from __future__ import annotations

import csv
import json
import pathlib
import sys
from typing import Optional

import numpy as np
import soundfile as sf
from tqdm import tqdm

from audiogs_jax import baselines as baselines_lib
from audiogs_jax import dataset
from audiogs_jax import metrics as metrics_lib
from audiogs_jax import predict as predict_lib
from audiogs_jax import vis
from audiogs_jax import workdir as workdir_lib
from audiogs_jax.tables import format_table

__all__ = ["evaluate_workdir", "evaluate_scenes", "eval_dir"]


def _file_stem(clip_id: str) -> str:
  """A clip id as part of a file name: "frames/00005.png" -> "frames_00005"."""
  stem = clip_id.replace("/", "_")
  for ext in (".png", ".jpg", ".jpeg", ".wav"):
    if stem.lower().endswith(ext):
      return stem[:-len(ext)]
  return stem


def _write_wav(path: pathlib.Path, x: np.ndarray, sr: int) -> None:
  x = np.asarray(x, np.float32)
  peak = float(np.max(np.abs(x))) if x.size else 0.0
  if peak > 1.0:  # never clip silently: scale the pair's file down
    x = x / peak
  sf.write(str(path), x.T if x.ndim == 2 else x, sr, subtype="FLOAT")


def evaluate_workdir(workdir, split: Optional[str] = None, *, which: Optional[str] = None,
                     progress: bool = True, quiet: bool = False) -> dict:
  """Evaluate a trained workdir on a split; returns the summary dict (for a
  multi-scene workdir, the aggregate of ``evaluate_scenes``)."""
  workdir = pathlib.Path(workdir)
  config, model, params, meta = workdir_lib.load_state(workdir, which or "latest")
  split = split or config.data.eval_split
  if workdir_lib.scene_ids_of(meta):
    return evaluate_scenes(workdir, config, model, params, meta, split, which=which,
                           progress=progress, quiet=quiet)
  return _evaluate_scene(workdir, eval_dir(workdir, split, which), config, model, params,
                         meta, split, which=which, progress=progress, quiet=quiet)


def eval_dir(workdir, split: str, which: Optional[str] = None) -> pathlib.Path:
  """``WORKDIR/eval/<split>`` for the latest checkpoint, ``<split>_best`` for
  the best one (so that neither overwrites the other)."""
  name = split if (which or "latest") == "latest" else f"{split}_{which}"
  return pathlib.Path(workdir) / "eval" / name


def _protocol(config, model, meta, split: str, which, num_clips: int, sr: int,
              rt60_true, with_dpam: bool) -> dict:
  """What a summary's numbers mean: split, checkpoint, metric protocols."""
  return {
      "split": split, "num_clips": num_clips, "sample_rate": sr,
      "model": config.model.name, "model_label": model.label,
      "checkpoint_step": int(meta.get("step", -1)), "checkpoint": which or "latest",
      "mag_avnerf": "RWAVS/AV-NeRF: n_fft 512, hop 128, win 512, Hann, centred; "
                    "2 * mean (|P| - |G|)^2",
      "mag_avcloud": "Replay-NVAS/AV-Cloud: n_fft 512, hop 160, win 400, Hamming, "
                     "centred; sum over ears of mean ||P| - |G||",
      "rte_estimator": metrics_lib.ESTIMATOR_NAME,
      "rte_true": (f"|RT60_blind(pred) - RT60 of the simulated room ({rt60_true:.3f} s)|"
                   if rt60_true else None),
      "scale": "metrics on the recordings' scale (normalisation undone)",
      "dpam": "CDPAM (cdpam package)" if with_dpam else "DPAM: not installed",
      "data": {"kind": config.data.kind, "scene": str(config.data.scene),
               "clip": config.data.clip},
  }


def _score_methods(methods: dict, target, sr: int, rt60_true, with_dpam: bool,
                   progress: bool) -> dict:
  """Per-clip metrics ``{method: {metric: [N]}}`` of every method's waveforms."""
  names = list(methods)
  if with_dpam and progress:  # CDPAM on a CPU: minutes, not seconds
    print(f"DPAM (CDPAM) on {len(target)} clips x {len(methods)} methods: this takes "
          f"minutes on a CPU", file=sys.stderr)
    names = tqdm(names, desc="metrics with DPAM", unit="method", dynamic_ncols=True)
  return {name: metrics_lib.compute_metrics(methods[name], target, sr, rt60_true=rt60_true,
                                            with_dpam=with_dpam) for name in names}


def _write_tables(out: pathlib.Path, workdir, split: str, scene, summary: dict,
                  per_clip: dict) -> str:
  """``summary.json``, ``table.md`` and ``per_clip.csv``; returns the table."""
  (out / "summary.json").write_text(json.dumps(summary, indent=2))
  table = format_table(summary)
  (out / "table.md").write_text(
      f"Evaluation of `{workdir}` on split `{split}` ({len(scene)} clips), "
      f"step {summary['protocol']['checkpoint_step']}.\n"
      f"RTE: blind estimator `{metrics_lib.ESTIMATOR_NAME}`. "
      f"{summary['protocol']['dpam']}.\n\n{table}\n")
  with open(out / "per_clip.csv", "w", newline="") as fh:
    keys = sorted({k for pc in per_clip.values() for k in pc})
    w = csv.writer(fh)
    w.writerow(["clip_id", "method", *keys])
    for method, pc in per_clip.items():
      for i, cid in enumerate(scene.clip_ids):
        w.writerow([cid, method, *[f"{float(pc[k][i]):.6g}" if k in pc else "" for k in keys]])
  return table


def _write_media(out: pathlib.Path, config, model, params, scene, train_scene, pred,
                 target, source, label: str) -> None:
  """Listening material and figures, scaled back to the recording's level."""
  sr = scene.sample_rate
  num = min(int(config.eval.num_wavs), len(scene))
  picks = np.linspace(0, len(scene) - 1, num).round().astype(int) if num else []
  for i in picks:
    cid = _file_stem(scene.clip_ids[i])
    _write_wav(out / "wav" / f"{cid}_pred.wav", pred[i], sr)
    _write_wav(out / "wav" / f"{cid}_rec.wav", target[i], sr)
    _write_wav(out / "wav" / f"{cid}_source.wav", source[i], sr)
  nfig = min(int(config.eval.num_figures), len(scene))
  for i in (picks[:nfig] if len(picks) else []):
    cid = _file_stem(scene.clip_ids[i])
    vis.plot_spectrograms(pred[i], target[i], sr, out / "figures" / f"spec_{cid}.png",
                          title=f"clip {cid}")
  vis.plot_gaussians(np.asarray(model.positions(params)), np.asarray(model.energy(params)),
                     out / "figures" / "gaussians.png",
                     source_position=scene.source_position,
                     listener_poses=np.concatenate([train_scene.poses, scene.poses]),
                     title=f"{label} Gaussians")


def _evaluate_scene(workdir, out: pathlib.Path, config, model, params, meta, split: str, *,
                    which: Optional[str], progress: bool, quiet: bool,
                    predict=None) -> dict:
  """Evaluate one scene's model into ``out``; returns its summary dict.
  ``predict``: a ``predict.make_predict`` to reuse (one compilation for many scenes)."""
  (out / "wav").mkdir(parents=True, exist_ok=True)
  (out / "figures").mkdir(parents=True, exist_ok=True)
  train_scene = dataset.load_split(config, config.data.train_split, progress=progress)
  scene = dataset.load_split(config, split, progress=progress)
  sr = scene.sample_rate
  data = dataset.to_device(scene, config)
  pred = predict_lib.predict_waveforms(model, params, data.poses, data.source_tf,
                                       scene.clip_length, config,
                                       int(config.eval.batch_size), predict)
  # Metrics on the recordings' own scale: undo the scene normalisation.
  nf = float(meta.get("norm_factor", 1.0))
  pred, target, source = pred * nf, scene.binaural * nf, scene.source * nf
  rt60_true = (scene.meta or {}).get("rt60_true") or (scene.meta or {}).get("rt60_measured")
  with_dpam = bool(config.eval.dpam) and metrics_lib.dpam_available()
  base_preds = baselines_lib.all_baselines(source, scene.poses, train_scene.source * nf,
                                           train_scene.binaural * nf, train_scene.poses)
  per_clip = _score_methods({"model": pred, **base_preds}, target, sr, rt60_true, with_dpam,
                            progress)
  summary = {
      "model": metrics_lib.summarize(per_clip["model"]),
      "baselines": {k: metrics_lib.summarize(per_clip[k]) for k in base_preds},
      "protocol": _protocol(config, model, meta, split, which, int(len(scene)), sr,
                            rt60_true, with_dpam)}
  for block in (summary["model"], *summary["baselines"].values()):
    block.setdefault("dpam", None)
  table = _write_tables(out, workdir, split, scene, summary, per_clip)
  _write_media(out, config, model, params, scene, train_scene, pred, target, source,
               model.label)
  if not quiet:
    which_scene = "" if out.parent.name == "eval" else f", scene {config.data.scene}"
    print(f"\n{model.label} vs baselines on {split}{which_scene} "
          f"({len(scene)} clips; RTE estimator {metrics_lib.ESTIMATOR_NAME}; "
          f"{summary['protocol']['dpam']}):\n{table}\n\nwritten to {out}")
  return summary


def _aggregate(per_scene: dict) -> dict:
  """RWAVS aggregation (per scene, per environment, overall) of
  ``{scene_id: {metric: value}}``; a plain mean over scenes (``overall``)
  when the ids are not RWAVS's 1-13."""
  ids = list(per_scene)
  if all(str(i).isdigit() and 1 <= int(i) <= 13 for i in ids):
    return metrics_lib.aggregate_rwavs(per_scene)
  keys = [k for k in next(iter(per_scene.values()))]
  mean = lambda vals: None if any(v is None for v in vals) else float(np.mean(vals))
  return {"per_scene": {str(i): dict(per_scene[i]) for i in ids}, "per_environment": {},
          "overall": {k: mean([per_scene[i].get(k) for i in ids]) for k in keys}}


def evaluate_scenes(workdir, config, model, params, meta, split: str, *,
                    which: Optional[str] = None, progress: bool = True,
                    quiet: bool = False) -> dict:
  """Evaluate every scene of a multi-scene workdir, then aggregate.

  Writes each scene's files to ``eval/<split>/scene_<id>/`` and
  ``eval/<split>/summary.json``: ``{"scenes": ids, "model": {"per_scene",
  "per_environment", "overall"}, "baselines": {name: same}, "protocol"}``,
  and ``table.md`` (overall and per-environment tables).
  """
  workdir = pathlib.Path(workdir)
  out = eval_dir(workdir, split, which)
  ids = workdir_lib.scene_ids_of(meta)
  predict = predict_lib.make_predict(model, config)
  summaries = {}
  for sid in ids:
    c, p, m = workdir_lib.select_scene(config, params, meta, sid)
    summaries[sid] = _evaluate_scene(workdir, out / f"scene_{sid}", c, model, p, m, split,
                                     which=which, progress=progress, quiet=True,
                                     predict=predict)
  first = summaries[ids[0]]
  methods = list(first["baselines"])
  summary = {
      "scenes": ids,
      "model": _aggregate({s: summaries[s]["model"] for s in ids}),
      "baselines": {b: _aggregate({s: summaries[s]["baselines"][b] for s in ids})
                    for b in methods},
      "protocol": {**{k: v for k, v in first["protocol"].items() if k != "data"},
                   "num_clips": {s: summaries[s]["protocol"]["num_clips"] for s in ids},
                   "aggregation": "metrics.md (RWAVS): mean per scene, per environment "
                                  "(office 1-5, house 6-8, apartment 9-11, outdoor 12-13), "
                                  "overall = mean of the environment means",
                   "data": {"kind": config.data.kind, "scenes": ids,
                            "clip": config.data.clip}},
  }
  (out / "summary.json").write_text(json.dumps(summary, indent=2))

  def table(pick) -> str:
    return format_table({"model": pick(summary["model"]),
                         "baselines": {b: pick(v) for b, v in summary["baselines"].items()},
                         "protocol": summary["protocol"]})

  parts = [f"Evaluation of `{workdir}` on split `{split}`, {len(ids)} scenes "
           f"({', '.join(ids)}), step {summary['protocol']['checkpoint_step']}.\n"
           f"RTE: blind estimator `{metrics_lib.ESTIMATOR_NAME}`. "
           f"{summary['protocol']['dpam']}.\n", "## Overall\n", table(lambda a: a["overall"])]
  for env in summary["model"]["per_environment"]:
    parts += [f"\n## {env}\n", table(lambda a, e=env: a["per_environment"][e])]
  for sid in ids:
    parts += [f"\n## scene {sid}\n", table(lambda a, s=sid: a["per_scene"][s])]
  text = "\n".join(parts) + "\n"
  (out / "table.md").write_text(text)
  if not quiet:
    print(f"\n{summary['protocol']['model_label']} vs baselines on {split}, "
          f"{len(ids)} scenes:\n" + table(lambda a: a["overall"]) + f"\n\nwritten to {out}")
  return summary
