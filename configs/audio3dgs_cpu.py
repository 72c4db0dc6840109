"""Audio 3DGS on the built-in synthetic scene at a width a 2-core CPU trains
in half an hour: U-Net base width 8 (8..128 channels, 4 levels),
batch 2, 1000 steps. The published size is configs/audio3dgs_unet.py (width 64).

    python -m audiogs_jax.train --config configs/audio3dgs_cpu.py
    python -m audiogs_jax.evaluate --workdir runs/default --workdir runs/audio3dgs_cpu
"""

import pathlib

from audiogs_jax.config import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name("audio3dgs_unet.py"))
  c.name = "audio3dgs_cpu"
  c.workdir = "runs/audio3dgs_cpu"
  c.model.audio3dgs_unet.unet_width = 8
  c.train.batch_size = 2
  c.train.steps = 1000
  c.train.eval_every = 500
  c.train.checkpoint_every = 500
  return c
