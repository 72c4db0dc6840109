"""A config small enough for the test suite: a 12-second scene, 40 steps."""

import pathlib

from audiogs_jax.config import load_config_file


def get_config():
  c = load_config_file(pathlib.Path(__file__).with_name("default.py"))
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
  c.model.audio3dgs_unet.unet_width = 4
  return c
