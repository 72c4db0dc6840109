"""Audio 3DGS at a tiny U-Net width, small enough for the test suite."""

import pathlib

from audiogs_jax.config import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name("smoke.py"))
  c.name = "audio3dgs_smoke"
  c.workdir = "runs/audio3dgs_smoke"
  c.model.name = "audio3dgs_unet"
  c.model.audio3dgs_unet.unet_width = 4
  c.model.audio3dgs_unet.unet_levels = 4
  return c
