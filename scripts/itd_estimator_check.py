"""How well does the ITD estimator recover a clip's direct-path ITD? (JSON on stdout)

For each training clip of a built-in synthetic scene, the reference is the ITD of the
direct sound alone (the source heard through the scene's head in free field at the
clip's pose); the estimate is GCC-PHAT on the reverberant recording, whitened over all
bins or only up to ``--fmax`` values. This is the evidence behind ``interaural.ITD_MAX_HZ``:

    python scripts/itd_estimator_check.py [--config configs/default.py] [--fmax 1500,3000]

With ``--results RESULTS.json --room ROOM`` (the benchmark's ``results.json``; the
config is then ``configs/bench_room_<ROOM>.py``, the split ``val``, the clips the
benchmark evaluated) it also splits each method's per-clip ITD error (``itd``, the
metric of the tables) by whether the recording's GCC-PHAT ITD is within
``--agree-us`` of the direct-path ITD: where it is, the recording's interaural time is
the direct sound's, which a renderer can reproduce from the geometry; where it is
not, a reflection or the reverberant field sets the estimate (README, "Where the ITD
error comes from, clip by clip").
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def _gcc(x: np.ndarray, sr: int, fmax: float | None) -> np.ndarray:
  """GCC-PHAT ITD [B] in microseconds (``interaural.itd``) from the bins up to ``fmax``
  (None: every bin)."""
  from audiogs_jax import interaural
  return 1e6 * interaural.itd(x, sr, max_hz=float("inf") if fmax is None else float(fmax))


def add_scene_arguments(p: argparse.ArgumentParser, split_default: str) -> None:
  """``--config``, ``--room``, ``--data-root`` and ``--split``: which synthetic scene and
  split to read (``load_scene``); ``split_default`` describes the default split."""
  p.add_argument("--config", default=None,
                 help="a synthetic-scene config (default: configs/default.py, or the room's "
                      "benchmark config with --room)")
  p.add_argument("--room", default=None,
                 help="a benchmark room (configs/bench_room_ROOM.py)")
  p.add_argument("--data-root", default=None, help="where the scene is (data.root)")
  p.add_argument("--split", default=None, help=f"the split (default: {split_default})")


def load_scene(p: argparse.ArgumentParser, a, split=None) -> tuple:
  """``(config path, split, SceneData)`` of ``add_scene_arguments``' options (the split:
  ``--split``, else ``split``, else the config's training split); a missing config or
  bad data root is ``p.error`` (one line, exit status 2)."""
  from audiogs_jax import config as config_lib
  from audiogs_jax import dataset
  config = a.config or (f"configs/bench_room_{a.room}.py" if a.room else "configs/default.py")
  try:
    cfg = config_lib.load_config_file(config)
    if a.data_root:
      cfg.data.root = a.data_root
    split = a.split or split or cfg.data.train_split
    return config, split, dataset.load_split(cfg, split, progress=False)
  except config_lib.ConfigError as e:
    p.error(str(e))


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  add_scene_arguments(p, "training; val with --room")
  p.add_argument("--results", default=None,
                 help="a benchmark results.json whose per-clip ITD errors to break down "
                      "(with --room)")
  p.add_argument("--agree-us", type=float, default=200.0,
                 help="largest |recording - direct| ITD (us) counted as the direct sound's")
  p.add_argument("--fmax", default="1500,2000,3000,5000",
                 help="comma-separated band limits in Hz to compare with broadband")
  a = p.parse_args(argv)
  from audiogs_jax import interaural
  from audiogs_jax.data import ears, heads, room

  if (a.results is None) != (a.room is None):
    p.error("--results and --room go together")
  if a.results:
    try:
      runs = json.load(open(a.results)).get("runs", {})
    except (OSError, ValueError) as e:
      p.error(f"--results {a.results}: cannot read it as JSON ({e})")
    if a.room not in runs or "full" not in runs[a.room]:
      p.error(f"--results {a.results}: no full-model run of room {a.room!r} "
              f"(rooms: {', '.join(sorted(runs)) or 'none'})")
  config, split, scene = load_scene(p, a, "val" if a.room else None)
  meta, sr = scene.meta, scene.sample_rate
  head = heads.load_head(meta.get("ears", "kemar"), None, sr)
  if head is None:
    raise SystemExit("the scene has cardioid ears: no measured head to compare with")
  mpu, centre = meta["metres_per_unit"], np.asarray(meta["centre_m"])
  src = room.ImageSources(np.asarray([meta["source_position_m"]]), np.ones((1, 1)),
                           np.zeros(1), np.zeros(1, int))
  direct = []
  for pose in scene.poses:
    pose = pose.copy()
    pose[:3, 3] = pose[:3, 3] * mpu + centre
    ir = ears.binaural_ir(src, pose, sample_rate=sr, ir_seconds=0.1, head=head)
    direct.append(_gcc(ir[None], sr, None)[0])
  direct = np.asarray(direct)
  rec = scene.binaural.astype(np.float64)
  out = {"config": config, "split": split, "clips": int(len(direct)),
         "mean_abs_direct_itd_us": float(np.mean(np.abs(direct))), "estimators": {}}
  for fmax in [None] + [float(v) for v in a.fmax.split(",") if v]:
    err = np.abs(_gcc(rec, sr, fmax) - direct)
    out["estimators"]["broadband" if fmax is None else f"<= {fmax:g} Hz"] = {
        "mean_error_us": float(err.mean()), "median_error_us": float(np.median(err)),
        "fraction_over_200us": float(np.mean(err > 200))}
  if a.results:
    out["run_errors"] = run_errors(a.results, a.room, scene.clip_ids,
                                   np.abs(1e6 * interaural.itd(rec, sr) - direct),
                                   a.agree_us)
  print(json.dumps(out, indent=2))
  return out


def run_errors(results: str, room: str, clip_ids: list, rec_vs_direct: np.ndarray,
               agree_us: float) -> dict:
  """Mean per-clip ITD error of every run in ``room`` of a benchmark ``results.json``
  (AudioGS ``full``, its ablations, the U-Net) and of the baselines (from ``full``'s
  evaluation), over the clips whose recording's ITD (the metric's estimator) is within
  ``agree_us`` of the direct path's (``rec_vs_direct [N]``, us, in ``clip_ids`` order)
  and over the others."""
  runs = json.load(open(results))["runs"][room]
  methods = {}
  for variant, run in runs.items():
    ids = run["per_clip"]["clip_ids"]
    if sorted(ids) != sorted(clip_ids):
      raise SystemExit(f"{results}: the {room} {variant} run's clips are not the split's "
                       "(another scene?)")
    agree = (rec_vs_direct[[list(clip_ids).index(c) for c in ids]] <= agree_us)
    methods[variant] = (run["per_clip"]["itd"], agree)
    if variant == "full":
      methods.update({b: (v["itd"], agree) for b, v in run["per_clip_baselines"].items()})
  mean = lambda x, m: float(np.mean(np.asarray(x)[m])) if m.any() else None
  agree = rec_vs_direct <= agree_us
  return {"room": room, "agree_us": agree_us, "clips_direct": int(agree.sum()),
          "clips_reverberant": int((~agree).sum()),
          "mean_itd_error_us": {k: {"all": float(np.mean(v)), "direct": mean(v, m),
                                    "reverberant": mean(v, ~m)}
                                for k, (v, m) in methods.items()}}


if __name__ == "__main__":
  main()
