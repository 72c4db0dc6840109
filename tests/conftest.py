"""Session-scoped fixtures for the end-to-end tests (train / evaluate / render CLI).

Everything here is built once per test session and shared:

- ``smoke``: how the suite runs ``configs/smoke.py`` (``smoke.overrides()``:
  the ``--config.*`` arguments every smoke training run shares;
  ``smoke.config()``: the same as a config object).
- ``smoke_data_root``: a temporary cache folder; the built-in synthetic scene of
  ``configs/smoke.py`` is generated into it on first use (not into ~/.cache).
- ``jax_compile_cache``: a temporary persistent XLA compilation cache, so the
  training step (the one expensive compilation) is compiled once per input
  signature (a fresh state; a restored one, which carries sharding annotations)
  although the resume and kill tests start training again, in this process and
  in subprocesses (through ``subprocess_env``).
- ``trained_workdir``: ``configs/smoke.py`` trained in-process through
  ``train.main`` (``SMOKE_STEPS`` steps, validation and checkpoints every
  ``SMOKE_CKPT_EVERY``), then evaluated: the workdir that the evaluate and render
  tests read and that the resume tests compare against.
- ``tiny_workdir``: ``configs/smoke.py`` trained for 2 steps (one checkpoint,
  no validation, no evaluation): the workdir the bad-input matrix and the log
  tests read or copy.
- ``help_outputs``: ``python -m audiogs_jax.{train,evaluate,render} --help``, run
  concurrently in subprocesses.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SMOKE_CONFIG = str(REPO / "configs" / "smoke.py")
SMOKE_STEPS = 24          # long enough for the training loss to drop clearly
SMOKE_CKPT_EVERY = 12


class Smoke:
  """How the suite runs ``configs/smoke.py``: the config file and the overrides
  shared by every smoke training run (scene cached under ``data_root``)."""

  config_path = SMOKE_CONFIG
  steps = SMOKE_STEPS
  ckpt_every = SMOKE_CKPT_EVERY

  def __init__(self, data_root: pathlib.Path):
    self.data_root = data_root

  def overrides(self, **extra) -> list:
    """``--config.a.b=v`` arguments; ``extra`` keys use ``__`` for dots."""
    over = {"data.root": str(self.data_root), "train.steps": SMOKE_STEPS,
            "train.eval_every": SMOKE_CKPT_EVERY,
            "train.checkpoint_every": SMOKE_CKPT_EVERY, "train.log_every": 4}
    over.update({k.replace("__", "."): v for k, v in extra.items()})
    return [f"--config.{k}={v}" for k, v in over.items()]

  def config(self, **extra):
    """The config of ``overrides(**extra)``, resolved as the CLI does."""
    from audiogs_jax import config as config_lib
    overrides, rest = config_lib.parse_config_args(self.overrides(**extra))
    assert not rest
    return config_lib.apply_overrides(config_lib.load_config_file(SMOKE_CONFIG), overrides)


@pytest.fixture(scope="session")
def smoke_data_root(tmp_path_factory) -> pathlib.Path:
  return tmp_path_factory.mktemp("scene_cache")


@pytest.fixture(scope="session")
def smoke(smoke_data_root) -> Smoke:
  return Smoke(smoke_data_root)


@pytest.fixture(scope="session")
def jax_compile_cache(tmp_path_factory):
  import jax
  from jax.experimental.compilation_cache import compilation_cache as cc
  path = tmp_path_factory.mktemp("xla_cache")
  old = jax.config.jax_compilation_cache_dir
  jax.config.update("jax_compilation_cache_dir", str(path))
  cc.reset_cache()  # re-read the setting even if something compiled already
  yield path
  jax.config.update("jax_compilation_cache_dir", old)
  cc.reset_cache()


@pytest.fixture(scope="session")
def subprocess_env(jax_compile_cache) -> dict:
  env = dict(os.environ)
  env["JAX_COMPILATION_CACHE_DIR"] = str(jax_compile_cache)
  env["PYTHONUNBUFFERED"] = "1"
  return env


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory, smoke, jax_compile_cache) -> pathlib.Path:
  from audiogs_jax import train
  workdir = tmp_path_factory.mktemp("smoke_run") / "workdir"
  rc = train.main(["--config", smoke.config_path, "--workdir", str(workdir),
                   "--no-progress", *smoke.overrides()])
  assert rc == 0
  return workdir


@pytest.fixture(scope="session")
def tiny_workdir(tmp_path_factory, smoke, jax_compile_cache) -> pathlib.Path:
  from audiogs_jax import train
  wd = tmp_path_factory.mktemp("tiny") / "workdir"
  rc = train.main(["--config", smoke.config_path, "--workdir", str(wd), "--no-eval",
                   "--no-progress", *smoke.overrides(train__steps=2, train__eval_every=0,
                                                     train__checkpoint_every=2,
                                                     train__log_every=1)])
  assert rc == 0
  return wd


@pytest.fixture(scope="session")
def help_outputs() -> dict:
  """``{module: CompletedProcess-like (returncode, stdout, stderr)}``."""
  mods = ("train", "evaluate", "render")
  procs = {m: subprocess.Popen([sys.executable, "-m", f"audiogs_jax.{m}", "--help"],
                               cwd=str(REPO), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for m in mods}
  out = {}
  for m, p in procs.items():
    stdout, stderr = p.communicate(timeout=300)
    out[m] = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
  return out
