"""Audio 3DGS at a tiny U-Net width, small enough for the test suite."""

import pathlib

from audiogs_jax.config import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name("smoke.py"))
  c.name, c.workdir = "audio3dgs_smoke", "runs/audio3dgs_smoke"
  c.model.name = "audio3dgs_unet"
  c.model.audio3dgs_unet.update(unet_width=4, unet_levels=4)
  c.train.lr.sh = 5e-3               # as configs/audio3dgs_unet.py
  return c
