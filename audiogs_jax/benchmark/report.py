"""Writing the report: the markdown page, and beside it a media folder with the
results JSON, the figures and the rooms' WAV pairs.

A report ``DIR/NAME.md`` keeps its media in ``DIR/NAME/`` and links to them
relatively, so the page and its folder can be moved together.
"""

from __future__ import annotations

import pathlib
from typing import Any, Optional

import numpy as np
import soundfile as sf

from audiogs_jax import checkpoint as ckpt_lib
from audiogs_jax import dataset
from audiogs_jax import workdir as workdir_lib
from audiogs_jax.benchmark.analysis import BASELINE_LABELS, BASELINES, METRICS
from audiogs_jax.benchmark.markdown import render_markdown
from audiogs_jax.benchmark.paths import rel, write_json
from audiogs_jax.benchmark.plans import VARIANTS

__all__ = ["write_report"]


def _pyplot():
  """``matplotlib.pyplot`` on the file-only Agg backend (imported on first use)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def _save(fig, path: pathlib.Path, dpi: int) -> None:
  """Lay out ``fig``, write it to ``path`` and free it."""
  plt = _pyplot()
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  plt.close(fig)


def _plot_ablations(res: dict, path: pathlib.Path) -> None:
  """Relative change of each variant against the full model, per room and metric."""
  var = res["analysis"]["variants"]
  room_names = [r for r in res["runs"] if r in var]
  if not room_names:
    return
  plt = _pyplot()
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
  _save(fig, path, dpi=80)


def _plot_baselines(res: dict, path: pathlib.Path) -> None:
  """AudioGS and the baselines (and the U-Net when run) per room, one panel per metric."""
  room_names = [r for r in res["runs"] if "full" in res["runs"][r]]
  if not room_names:
    return
  plt = _pyplot()
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
  _save(fig, path, dpi=80)


def _listener_path(config, centre: np.ndarray, mpu: float) -> np.ndarray:
  """``[P, 3]`` listener positions in metres of the train and val clips, in time
  order (poses are in the scene's scaled units and the splits interleave)."""
  splits = [dataset.load_split(config, s, progress=False) for s in ("train", "val")]
  poses = np.concatenate([sc.poses for sc in splits])
  order_t = np.argsort(np.concatenate([sc.times for sc in splits]))
  return poses[order_t, :3, 3] * mpu + centre


def _plot_room(workdir: pathlib.Path, path: pathlib.Path, title: str) -> None:
  """Top view (metres) of a trained room: a random 6000 of the learned Gaussians
  coloured by log gain, the source, the listener path and the walls. Nothing is
  drawn when the workdir has no checkpoint yet."""
  try:
    config, model, params, meta = workdir_lib.load_trained(workdir)
  except ckpt_lib.CheckpointError:
    return
  scene_meta = meta.get("scene_meta") or {}
  centre = np.asarray(scene_meta.get("centre_m", [0.0, 0.0, 0.0]))
  mpu = float(scene_meta.get("metres_per_unit", 1.0))
  xyz = np.asarray(model.positions(params)) * mpu + centre
  energy = np.asarray(model.energy(params))
  idx = np.random.default_rng(0).choice(len(xyz), min(6000, len(xyz)), replace=False)
  xyz, energy = xyz[idx], energy[idx]
  order = np.argsort(energy)
  xyz, energy = xyz[order], energy[order]
  lp = _listener_path(config, centre, mpu)
  src = np.asarray(scene_meta.get("source_position_m", [np.nan] * 3))
  room_dim = scene_meta.get("room_dim")
  fig, ax = _pyplot().subplots(figsize=(5.2, 4.2))
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
  _save(fig, path, dpi=72)


def _copy_wavs(workdir: pathlib.Path, dest: pathlib.Path, room: str, count: int) -> list:
  """Up to ``count`` rendered / recorded pairs of a workdir's evaluation, as 16-bit
  WAVs ``dest/<room>_<clip>_{rendered,recorded}.wav``; returns ``[(clip, rendered,
  recorded)]`` file names."""
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


def _room_media(res: dict, room: str, media_dir: pathlib.Path,
                out: Optional[pathlib.Path], num_wavs: int) -> dict:
  """A room's top view and WAV pairs: rebuilt from the full model's workdir when it
  exists, else the files of a previous report in ``media_dir``."""
  runs = res["runs"][room]
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
  return m


def write_report(res: dict, docs: pathlib.Path, *, out: Optional[pathlib.Path] = None,
                 num_wavs: int = 2, report_command: Optional[str] = None) -> pathlib.Path:
  """Write the report ``docs`` (markdown) and its media folder ``<docs dir>/<docs
  stem>/``: ``results.json``, the figures and, when the workdirs (recorded in
  ``res`` or under ``out``) exist, WAV pairs and the rooms' top views. Files of a
  previous report that cannot be rebuilt (no workdirs) are kept and linked.
  Returns ``docs``."""
  docs = pathlib.Path(docs)
  media_dir = docs.parent / docs.stem
  media_dir.mkdir(parents=True, exist_ok=True)
  write_json(media_dir / "results.json", res)
  media: dict[str, Any] = {"rooms": {}}
  _plot_ablations(res, media_dir / "ablations.png")
  _plot_baselines(res, media_dir / "baselines.png")
  for key, name in (("ablations_png", "ablations.png"), ("baselines_png", "baselines.png")):
    if (media_dir / name).exists():
      media[key] = name
  for room in res["runs"]:
    media["rooms"][room] = _room_media(res, room, media_dir, out, num_wavs)
  rebuild = (f"python -m audiogs_jax.benchmark --report-only --json "
             f"{rel(media_dir / 'results.json')} --docs {rel(docs)}")
  docs.write_text(render_markdown(res, media=media, docs_rel=media_dir.name,
                                  report_command=report_command, rebuild_command=rebuild))
  return docs
