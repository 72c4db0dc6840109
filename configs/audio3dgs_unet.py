"""Audio 3DGS (Yoshida et al., IEEE VRW 2025) at its published size on the
built-in synthetic scene: U-Net 64..1024 channels, 4 levels.

    python -m audiogs_jax.train --config configs/audio3dgs_unet.py

On a 2-core CPU the published width is slow to train; a GPU user keeps it, a
CPU user may pass --config.model.unet_width=16.
"""

import pathlib

from audiogs_jax.config import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name("default.py"))
  c.name = "audio3dgs_unet"
  c.workdir = "runs/audio3dgs_unet"
  c.model.name = "audio3dgs_unet"
  c.model.audio3dgs_unet.unet_width = 64
  c.model.audio3dgs_unet.unet_levels = 4
  c.model.audio3dgs_unet.init_spread = 0.3
  c.train.batch_size = 4
  c.train.steps = 2000
  c.train.lr.network = 1e-3
  c.train.lr.sh = 5e-3               # its SH start is constant, not fitted
  return c
