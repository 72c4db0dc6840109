"""Replay-NVAS (AV-Cloud preprocessing): 16 kHz, 2-s clips, held-out camera.

    python -m audiogs_jax.train --config configs/replay_nvas.py \
        --config.data.root /path/to/ReplayNVAS --config.data.scene SC-1025
"""

import pathlib

from audiogs_jax.config import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name("default.py"))
  c.name = "replay_nvas"
  c.workdir = "runs/replay_nvas"
  c.data.kind = "replay_nvas"
  c.data.root = "data/ReplayNVAS"
  c.data.scene = "SC-1025"
  c.data.sample_rate = 16000
  c.data.clip_seconds = 2.0
  c.data.holdout_camera = 1
  c.data.train_split = "train"
  c.data.eval_split = "test"
  # Test clips share content with training clips (other cameras): Audio 3DGS's
  # content mode is the published protocol there.
  c.model.audiogs.content_mode = False
  c.model.audiogs.metres_per_unit = 1.0
  c.model.hop_length = 128
  return c
