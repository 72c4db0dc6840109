"""Audio 3DGS at a tiny U-Net width, small enough for the test suite."""

import pathlib
import importlib.util

_spec = importlib.util.spec_from_file_location(
    "_smoke", pathlib.Path(__file__).with_name("smoke.py"))
_smoke = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_smoke)


def get_config():
  c = _smoke.get_config()
  c.name = "audio3dgs_smoke"
  c.workdir = "runs/audio3dgs_smoke"
  c.model.name = "audio3dgs_unet"
  c.model.unet_width = 4
  c.model.unet_levels = 4
  c.loss.phase_weight = 0.0
  return c
