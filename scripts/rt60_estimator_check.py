"""How well does the blind RT60 estimator read a synthetic scene's recordings? (JSON)

The RTE metrics compare blind RT60 estimates (``reverb.rt60_blind``, named
``reverb.ESTIMATOR_NAME`` in every report): ``rte`` against the recording's own estimate,
``rte_true`` against the simulator's measured RT60. This script applies the estimator to
the recordings themselves and reports their ``rte_true``: what a render identical to the
recordings would score, the floor of ``rte_true`` for a faithful renderer on that scene
(README, "The reverberant tail").

    python scripts/rt60_estimator_check.py [--config configs/default.py] [--split val]
    python scripts/rt60_estimator_check.py --room living --data-root SCENES
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def check(scene) -> dict:
  """``{"rt60_true", "blind_median", "blind_mean", "rte_true_of_recordings", "clips"}``
  for a loaded split (``data.scene.SceneData``) of a synthetic scene."""
  from audiogs_jax import reverb
  true = scene.meta.get("rt60_true")
  if true is None:
    raise SystemExit("the scene has no simulated RT60 (rt60_true): not a synthetic scene")
  est = reverb.rt60_blind_batch(scene.binaural.astype(np.float64), scene.sample_rate)
  return {"rt60_true": float(true), "blind_median": float(np.nanmedian(est)),
          "blind_mean": float(np.nanmean(est)), "clips": int(len(est)),
          "rte_true_of_recordings": float(np.nanmean(np.abs(est - float(true)))),
          "signal": scene.meta.get("signal"), "estimator": reverb.ESTIMATOR_NAME}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default=None,
                 help="a synthetic-scene config (default: configs/default.py, or the room's "
                      "benchmark config with --room)")
  p.add_argument("--room", default=None, help="a benchmark room (configs/bench_room_ROOM.py)")
  p.add_argument("--data-root", default=None, help="where the scene is (data.root)")
  p.add_argument("--split", default="val", help="the split (val)")
  a = p.parse_args(argv)
  from audiogs_jax import config as config_lib
  from audiogs_jax import dataset
  config = a.config or (f"configs/bench_room_{a.room}.py" if a.room else "configs/default.py")
  try:
    cfg = config_lib.load_config_file(config)
    if a.data_root:
      cfg.data.root = a.data_root
    scene = dataset.load_split(cfg, a.split, progress=False)
  except config_lib.ConfigError as e:
    p.error(str(e))
  out = {"config": config, "split": a.split, **check(scene)}
  print(json.dumps(out, indent=2))
  return out


if __name__ == "__main__":
  main()
