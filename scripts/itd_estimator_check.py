"""How well does the ITD estimator recover a clip's direct-path ITD? (JSON on stdout)

For each training clip of a built-in synthetic scene, the reference is the ITD of the
direct sound alone (the source heard through the scene's head in free field at the
clip's pose); the estimate is GCC-PHAT on the reverberant recording, whitened over all
bins or only up to ``--fmax`` values. This is the evidence behind ``interaural.ITD_MAX_HZ``:

    python scripts/itd_estimator_check.py [--config configs/default.py] [--fmax 1500,3000]
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def _gcc(x: np.ndarray, sr: int, fmax: float | None) -> np.ndarray:
  """GCC-PHAT ITD [B] in microseconds (as ``interaural.itd``) with a chosen band limit."""
  from audiogs_jax import interaural
  old = interaural.ITD_MAX_HZ
  interaural.ITD_MAX_HZ = float("inf") if fmax is None else float(fmax)
  try:
    return 1e6 * interaural.itd(x, sr)
  finally:
    interaural.ITD_MAX_HZ = old


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", default="configs/default.py", help="a synthetic-scene config")
  p.add_argument("--fmax", default="1500,2000,3000,5000",
                 help="comma-separated band limits in Hz to compare with broadband")
  a = p.parse_args(argv)
  from audiogs_jax import config as config_lib
  from audiogs_jax import dataset
  from audiogs_jax.data import ears, heads, room

  cfg = config_lib.load_config_file(a.config)
  scene = dataset.load_split(cfg, cfg.data.train_split, progress=False)
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
  out = {"config": a.config, "clips": int(len(direct)),
         "mean_abs_direct_itd_us": float(np.mean(np.abs(direct))), "estimators": {}}
  for fmax in [None] + [float(v) for v in a.fmax.split(",") if v]:
    err = np.abs(_gcc(rec, sr, fmax) - direct)
    out["estimators"]["broadband" if fmax is None else f"<= {fmax:g} Hz"] = {
        "mean_error_us": float(err.mean()), "median_error_us": float(np.median(err)),
        "fraction_over_200us": float(np.mean(err > 200))}
  print(json.dumps(out, indent=2))
  return out


if __name__ == "__main__":
  main()
