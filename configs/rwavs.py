"""RWAVS (AV-NeRF) scenes: 22050 Hz, 1-s clips, AV-NeRF clip convention.

    python -m audiogs_jax.train --config configs/rwavs.py \
        --config.data.root /path/to/release --config.data.scene 1
"""

import pathlib

from audiogs_jax.config import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name("default.py"))
  c.name, c.workdir = "rwavs", "runs/rwavs"
  c.data.update(kind="rwavs", root="data/RWAVS/release", scene="1", clip="centered",
                sample_rate=22050, clip_seconds=1.0)
  c.model.audiogs.metres_per_unit = 0.0      # unknown for RWAVS: learned from 5.0 m/unit
  c.train.steps = 1500
  # Pull each frequency bin's per-frame Gaussians together (losses.frame_tie).
  # On a simulated 150-s RWAVS-layout speech scene it takes validation
  # mag_avnerf from 0.881 (loses to Mono-Energy's 0.880) to 0.828 (wins); see README.
  c.model.audiogs.frame_tie_weight = 10.0
  return c
