"""A config small enough for the test suite: a 10-second scene, a few steps."""

import pathlib
import importlib.util

_spec = importlib.util.spec_from_file_location(
    "_default", pathlib.Path(__file__).with_name("default.py"))
_default = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_default)


def get_config():
  c = _default.get_config()
  c.name = "smoke"
  c.workdir = "runs/smoke"
  c.data.synth.seconds = 12
  c.data.synth.rt60 = 0.3
  c.train.steps = 40
  c.train.batch_size = 4
  c.train.warmup_steps = 5
  c.train.log_every = 10
  c.train.eval_every = 20
  c.train.checkpoint_every = 20
  c.train.keep = 2
  c.eval.batch_size = 4
  c.eval.num_wavs = 1
  c.eval.num_figures = 1
  c.eval.dpam = False
  c.model.unet_width = 4
  return c
