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

The best checkpoint (``--checkpoint best``) is evaluated into
``WORKDIR/eval/<split>_best/`` instead, beside the latest's results.

A multi-scene workdir (``--config.data.scenes=1,2,...``) is evaluated scene by
scene into ``WORKDIR/eval/<split>/scene_<id>/`` (the files above), and
``WORKDIR/eval/<split>/summary.json`` / ``table.md`` aggregate them as
metrics.md does for RWAVS: the mean per scene, per environment (office 1-5,
house 6-8, apartment 9-11, outdoor 12-13) and overall (the mean of the
environment means); scene ids that are not RWAVS's 1-13 are averaged
directly (``overall`` only).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # answer --help and usage errors before importing JAX (seconds)
  from audiogs_jax import cli as _cli
  _cli.preparse("evaluate")

import csv
import json
import pathlib
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
COLUMNS = ("mag_avnerf", "mag_avcloud", "env", "lre", "rte", "rte_true", "itd", "ipd", "ild",
           "dpam")


def _load_state(workdir, which: str):
  """``(config, model, params, meta)`` as checkpointed (a multi-scene
  workdir's parameters stacked along a leading scene axis)."""
  from audiogs_jax import train as train_lib
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise ckpt_lib.CheckpointError(f"{workdir}: no such workdir")
  config = config_lib.load_saved_config(workdir / "config.json")
  ckpt = ckpt_lib.Checkpointer(workdir, keep=int(config.train.keep), async_save=False)
  try:
    meta = ckpt.restore_meta(which)
    ckpt_lib.check_model(meta, config.model.name, workdir / ckpt_dir(which),
                         f"model.name in {workdir / 'config.json'}")
    template = train_lib.state_template(config, meta)
    # Onto this process's first device, whatever the mesh that wrote it.
    one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    state, meta = ckpt.restore(template, which=which, sharding=one)
  finally:
    ckpt.close()
  return config, get_model(config.model.name), state.params, meta


def ckpt_dir(which: str) -> str:
  """The workdir's folder of the ``latest`` or ``best`` checkpoints."""
  return "best" if which == "best" else "checkpoints"


def scene_ids_of(meta: dict) -> list:
  """The scenes of a multi-scene checkpoint's meta; ``[]`` for one scene."""
  return list(meta.get("scenes") or [])


def select_scene(config, params, meta: dict, scene: str):
  """One scene of a multi-scene checkpoint: ``(config, params, meta)`` as a
  single-scene workdir would give them. Raises ``CheckpointError`` naming the
  scenes when ``scene`` is not one of them."""
  from audiogs_jax import train as train_lib
  ids = scene_ids_of(meta)
  if str(scene) not in ids:
    raise ckpt_lib.CheckpointError(
        f"scene {scene!r} is not in this workdir (scenes: {', '.join(ids)})")
  i = ids.index(str(scene))
  scene_meta = {k: v for k, v in meta.items() if k not in ("per_scene", "scenes", "val")}
  scene_meta.update(meta["per_scene"][i])
  return (dataset.scene_config(config, scene), train_lib.scene_params(params, i),
          scene_meta)


def load_trained(workdir, which: str = "latest", scene: Optional[str] = None):
  """``(config, model, params, meta)`` of a training workdir.

  For a multi-scene workdir ``scene`` picks the scene (its single-scene
  config, parameters and meta); it is required there. For a single-scene
  workdir ``scene`` may be omitted or name the workdir's scene.

  Raises ``CheckpointError`` / ``ConfigError`` with the path when the workdir
  has no config or no checkpoint, or ``scene`` does not fit it.
  """
  config, model, params, meta = _load_state(workdir, which)
  ids = scene_ids_of(meta)
  if ids:
    if scene is None:
      raise ckpt_lib.CheckpointError(
          f"{workdir} holds {len(ids)} scenes ({', '.join(ids)}): pick one with --scene")
    config, params, meta = select_scene(config, params, meta, scene)
  elif scene is not None and str(scene) != str(config.data.scene):
    raise ckpt_lib.CheckpointError(
        f"{workdir} was trained on scene {config.data.scene}, not {scene}")
  return config, model, params, meta


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
  """Evaluate a trained workdir on a split; returns the summary dict (for a
  multi-scene workdir, the aggregate of ``evaluate_scenes``)."""
  workdir = pathlib.Path(workdir)
  config, model, params, meta = _load_state(workdir, which or "latest")
  split = split or config.data.eval_split
  if scene_ids_of(meta):
    return evaluate_scenes(workdir, config, model, params, meta, split, which=which,
                           progress=progress, quiet=quiet)
  return _evaluate_scene(workdir, eval_dir(workdir, split, which), config, model, params,
                         meta, split, which=which, progress=progress, quiet=quiet)


def eval_dir(workdir, split: str, which: Optional[str] = None) -> pathlib.Path:
  """``WORKDIR/eval/<split>`` for the latest checkpoint, ``<split>_best`` for
  the best one (so that neither overwrites the other)."""
  name = split if (which or "latest") == "latest" else f"{split}_{which}"
  return pathlib.Path(workdir) / "eval" / name


def _evaluate_scene(workdir, out: pathlib.Path, config, model, params, meta, split: str, *,
                    which: Optional[str], progress: bool, quiet: bool,
                    predict=None) -> dict:
  """Evaluate one scene's model into ``out``; returns its summary dict.
  ``predict``: a ``train.make_predict`` to reuse (one compilation for many scenes)."""
  from audiogs_jax import train as train_lib
  (out / "wav").mkdir(parents=True, exist_ok=True)
  (out / "figures").mkdir(parents=True, exist_ok=True)

  train_scene = dataset.load_split(config, config.data.train_split, progress=progress)
  scene = dataset.load_split(config, split, progress=progress)
  sr = scene.sample_rate
  data = dataset.to_device(scene, config)
  pred = train_lib.predict_waveforms(model, params, data.poses, data.source_tf,
                                     scene.clip_length, config, int(config.eval.batch_size),
                                     predict)
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

  base_preds = baselines_lib.all_baselines(source, scene.poses, train_scene.source * nf,
                                           train_scene.binaural * nf, train_scene.poses)
  methods = {"model": pred, **base_preds}
  if with_dpam and progress:  # CDPAM on a CPU: minutes, not seconds
    from tqdm import tqdm
    print(f"DPAM (CDPAM) on {len(scene)} clips x {len(methods)} methods: this takes "
          f"minutes on a CPU", file=sys.stderr)
    names = tqdm(list(methods), desc="metrics with DPAM", unit="method",
                 dynamic_ncols=True)
  else:
    names = list(methods)
  per_clip = {name: score(methods[name]) for name in names}

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
    which_scene = "" if out.parent.name == "eval" else f", scene {config.data.scene}"
    print(f"\n{summary['protocol']['model_label']} vs baselines on {split}{which_scene} "
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
  from audiogs_jax import train as train_lib
  ids = scene_ids_of(meta)
  predict = train_lib.make_predict(model, config)
  summaries = {}
  for sid in ids:
    c, p, m = select_scene(config, params, meta, sid)
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


def main(argv=None) -> int:
  from audiogs_jax import cli
  args = cli.evaluate_parser().parse_args(argv)
  from audiogs_jax import compare
  from audiogs_jax import runtime
  runtime.tune_host_allocator()
  cli.quiet_absl()
  try:
    if len(args.workdir) == 1:
      evaluate_workdir(args.workdir[0], args.split, which=args.checkpoint,
                       progress=not args.no_progress)
      return 0
    split = args.split or config_lib.load_saved_config(
        pathlib.Path(args.workdir[0]) / "config.json").data.eval_split
    folder = eval_dir(".", split, args.checkpoint).name
    for w in args.workdir:
      have = (pathlib.Path(w) / "eval" / folder / "summary.json").is_file()
      if have and not args.force:
        print(f"{w}: using its existing eval/{folder}/summary.json (--force to redo)")
      else:
        evaluate_workdir(w, split, which=args.checkpoint, progress=not args.no_progress,
                         quiet=True)
    print(compare.compare_workdirs(args.workdir, folder, args.out))
  except (*cli.user_errors(), compare.CompareError) as e:
    if args.debug:
      raise
    cli.fail(e)
  return 0


if __name__ == "__main__":
  sys.exit(main())
