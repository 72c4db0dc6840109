"""Evaluation: ``python -m audiogs_jax.evaluate --workdir DIR [--split val]``.

Restores the trained model from the workdir (its config and normalisation
factor are stored there), renders every clip of the split, and computes the
metrics of metrics.md (MAG in both protocols, ENV, LRE, RTE with the blind
estimator named in the report, RT60 error to the simulator's true value on
synthetic scenes, DPAM when the ``dpam`` extra is installed) for the model and
the four baselines. Writes to ``WORKDIR/eval/<split>/``:

- ``summary.json``: ``{"model": {metric: value}, "baselines": {name: {...}},
  "protocol": {...}}``
- ``per_clip.csv``: one row per clip and method
- ``table.md``: the markdown table (also printed)
- ``wav/``: predicted / recorded pairs (scaled back to the recording's level)
- ``figures/``: spectrograms (prediction, recording, difference) and the
  Gaussians' positions coloured by energy, with source and listener poses.
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import sys
from typing import Optional

import jax
import numpy as np

from audiogs_jax import baselines as baselines_lib
from audiogs_jax import checkpoint as ckpt_lib
from audiogs_jax import config as config_lib
from audiogs_jax import dataset
from audiogs_jax import metrics as metrics_lib
from audiogs_jax.models import get_model

__all__ = ["load_trained", "evaluate_workdir", "format_table", "main"]

METHOD_LABELS = {"model": None, "mono_mono": "Mono-Mono", "mono_energy": "Mono-Energy",
                 "stereo_energy": "Stereo-Energy", "nearest_pose": "Nearest-pose transfer"}
COLUMNS = ("mag_avnerf", "mag_avcloud", "env", "lre", "rte", "rte_true", "dpam")


def load_trained(workdir, which: str = "latest"):
  """``(config, model, params, meta)`` of a training workdir.

  Raises ``CheckpointError`` / ``ConfigError`` with the path when the workdir
  has no config or no checkpoint.
  """
  from audiogs_jax import train as train_lib
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise ckpt_lib.CheckpointError(f"{workdir}: no such workdir")
  config = config_lib.load_saved_config(workdir / "config.json")
  ckpt = ckpt_lib.Checkpointer(workdir, keep=int(config.train.keep), async_save=False)
  try:
    meta = ckpt.restore_meta(which)
    info = train_lib.scene_info_from_meta(meta)
    template, _ = train_lib.create_train_state(config, info, jax.random.PRNGKey(0))
    state, meta = ckpt.restore(template, which=which)
  finally:
    ckpt.close()
  return config, get_model(config.model.name), state.params, meta


def _file_stem(clip_id: str) -> str:
  """A clip id as part of a file name: "frames/00005.png" -> "frames_00005"."""
  stem = clip_id.replace("/", "_")
  for ext in (".png", ".jpg", ".jpeg", ".wav"):
    if stem.lower().endswith(ext):
      return stem[:-len(ext)]
  return stem


def _write_wav(path: pathlib.Path, x: np.ndarray, sr: int) -> None:
  import soundfile as sf
  x = np.asarray(x, np.float32)
  peak = float(np.max(np.abs(x))) if x.size else 0.0
  if peak > 1.0:  # never clip silently: scale the pair's file down
    x = x / peak
  sf.write(str(path), x.T if x.ndim == 2 else x, sr, subtype="FLOAT")


def format_table(summary: dict) -> str:
  """Markdown table: the model beside the baselines."""
  model_label = summary.get("protocol", {}).get("model_label", "model")
  rows = [(model_label, summary["model"])]
  rows += [(METHOD_LABELS.get(k, k), v) for k, v in summary["baselines"].items()]
  cols = [c for c in COLUMNS if any(c in r for _, r in rows)]
  head = "| method | " + " | ".join(cols) + " |"
  sep = "|---|" + "---|" * len(cols)
  lines = [head, sep]
  for name, r in rows:
    cells = []
    for c in cols:
      v = r.get(c)
      cells.append("n/a" if v is None else f"{v:.4f}")
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def evaluate_workdir(workdir, split: Optional[str] = None, *, which: Optional[str] = None,
                     progress: bool = True, quiet: bool = False) -> dict:
  """Evaluate a trained workdir on a split; returns the summary dict."""
  from audiogs_jax import train as train_lib
  workdir = pathlib.Path(workdir)
  config, model, params, meta = load_trained(workdir, which or "latest")
  split = split or config.data.eval_split
  out = workdir / "eval" / split
  (out / "wav").mkdir(parents=True, exist_ok=True)
  (out / "figures").mkdir(parents=True, exist_ok=True)

  train_scene = dataset.load_split(config, config.data.train_split, progress=progress)
  scene = dataset.load_split(config, split, progress=progress)
  sr = scene.sample_rate
  data = dataset.to_device(scene, config)
  pred = train_lib.predict_waveforms(model, params, data.poses, data.source_tf,
                                     scene.clip_length, config, int(config.eval.batch_size))
  # Metrics on the recordings' own scale: undo the scene normalisation.
  nf = float(meta.get("norm_factor", 1.0))
  pred = pred * nf
  target = scene.binaural * nf
  source = scene.source * nf
  rt60_true = (scene.meta or {}).get("rt60_true") or (scene.meta or {}).get("rt60_measured")
  with_dpam = bool(config.eval.dpam) and metrics_lib.dpam_available()

  def score(p):
    return metrics_lib.compute_metrics(p, target, sr, rt60_true=rt60_true,
                                       with_dpam=with_dpam)

  per_clip = {"model": score(pred)}
  base_preds = baselines_lib.all_baselines(source, scene.poses, train_scene.source * nf,
                                           train_scene.binaural * nf, train_scene.poses)
  for name, p in base_preds.items():
    per_clip[name] = score(p)

  summary = {
      "model": metrics_lib.summarize(per_clip["model"]),
      "baselines": {k: metrics_lib.summarize(per_clip[k]) for k in base_preds},
      "protocol": {
          "split": split, "num_clips": int(len(scene)), "sample_rate": sr,
          "model": config.model.name,
          "model_label": {"audiogs": "AudioGS", "audio3dgs_unet": "Audio 3DGS (U-Net)"}.get(
              config.model.name, config.model.name),
          "checkpoint_step": int(meta.get("step", -1)),
          "checkpoint": which or "latest",
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
      },
  }
  for k in ("model", *base_preds):
    summary_block = summary["model"] if k == "model" else summary["baselines"][k]
    summary_block.setdefault("dpam", None)

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

  # Listening material and figures, scaled back to the recording's level.
  from audiogs_jax import vis
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
                     title=f"{summary['protocol']['model_label']} Gaussians")
  if not quiet:
    print(f"\n{summary['protocol']['model_label']} vs baselines on {split} "
          f"({len(scene)} clips; RTE estimator {metrics_lib.ESTIMATOR_NAME}; "
          f"{summary['protocol']['dpam']}):\n{table}\n\nwritten to {out}")
  return summary


def main(argv=None) -> int:
  p = argparse.ArgumentParser(
      prog="python -m audiogs_jax.evaluate",
      description="Evaluate a trained workdir: metrics (MAG, ENV, LRE, RTE, DPAM) of the "
                  "model beside the four baselines, per-clip CSV, WAV pairs, figures.")
  p.add_argument("--workdir", required=True, help="a training workdir")
  p.add_argument("--split", default=None, help="split to evaluate (default: the config's "
                 "eval split, val)")
  p.add_argument("--checkpoint", default="latest", choices=("latest", "best"),
                 help="which checkpoint: the latest, or the best by validation MAG")
  p.add_argument("--no-progress", action="store_true")
  args = p.parse_args(argv)
  from audiogs_jax.data.scene import DataError
  try:
    evaluate_workdir(args.workdir, args.split, which=args.checkpoint,
                     progress=not args.no_progress)
  except (ckpt_lib.CheckpointError, config_lib.ConfigError, DataError) as e:
    config_lib.error_exit(str(e))
  return 0


if __name__ == "__main__":
  sys.exit(main())
