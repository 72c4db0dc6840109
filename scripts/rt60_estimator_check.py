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
  from itd_estimator_check import add_scene_arguments, load_scene   # scripts/, beside this
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  add_scene_arguments(p, "val")
  config, split, scene = load_scene(p, p.parse_args(argv), "val")
  out = {"config": config, "split": split, **check(scene)}
  print(json.dumps(out, indent=2))
  return out


if __name__ == "__main__":
  main()
