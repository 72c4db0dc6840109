"""A training workdir: what it records about its scenes, and loading it back.

A workdir holds ``config.json`` (the resolved config), ``checkpoints/`` and
``best/`` (orbax; each step's meta records the scene: normalisation factor,
``SceneInfo``, clip length, source position), ``metrics.jsonl``, ``tb/`` and
``eval/``. ``load_trained(workdir)`` gives ``(config, model, params, meta)`` for
evaluation, rendering and streaming.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from typing import Optional

import jax

from audiogs_jax import checkpoint as ckpt_lib
from audiogs_jax import config as config_lib
from audiogs_jax import dataset
from audiogs_jax import dsp
from audiogs_jax import parallel
from audiogs_jax.data.scene import DataError
from audiogs_jax.models import SceneInfo, get_model
from audiogs_jax.trainstate import create_train_state

#: Exceptions that mean bad input (one ``error:`` line, exit status 2), not a bug.
USER_ERRORS = (DataError, config_lib.ConfigError, ckpt_lib.CheckpointError)

__all__ = ["USER_ERRORS", "scene_info_of", "scene_info_from_meta", "scene_meta", "state_template",
           "load_trained", "select_scene", "scene_ids_of", "ckpt_dir", "resolve_config",
           "check_workdir", "WorkdirGuard"]


def scene_info_of(scene, config) -> SceneInfo:
  """``SceneInfo`` of a loaded split (``dataset.SceneData``), with the extra fields
  the configured model asks for (``RenderModel.scene_extras``)."""
  kw = dataset.stft_kwargs(config)
  frames = dsp.num_frames(scene.clip_length, kw["n_fft"], kw["hop_length"])
  model = get_model(config.model.name)
  extras = model.scene_extras(scene, config) if model.scene_extras else {}
  return SceneInfo(num_freqs=kw["n_fft"] // 2 + 1, num_frames=frames,
                   sample_rate=scene.sample_rate, center=dataset.listener_center(scene),
                   metres_per_unit=dataset.metres_per_unit(scene), **extras)


def scene_info_from_meta(meta: dict) -> SceneInfo:
  """``SceneInfo`` of a single-scene checkpoint's meta (or of one entry of a
  multi-scene checkpoint's ``meta["per_scene"]``)."""
  s = dict(meta["scene_info"])
  return SceneInfo(num_freqs=int(s["num_freqs"]), num_frames=int(s["num_frames"]),
                   sample_rate=int(s["sample_rate"]), center=tuple(s["center"]),
                   metres_per_unit=s.get("metres_per_unit"), source_mag=None)


def scene_meta(scene, info: SceneInfo) -> dict:
  """What a checkpoint records about one scene (evaluate/render need it)."""
  return {"norm_factor": float(scene.norm_factor),
          "scene_info": {"num_freqs": info.num_freqs, "num_frames": info.num_frames,
                         "sample_rate": info.sample_rate, "center": list(info.center),
                         "metres_per_unit": info.metres_per_unit},
          "clip_length": scene.clip_length,
          "source_position": (None if scene.source_position is None
                              else [float(v) for v in scene.source_position]),
          "scene_meta": scene.meta}


def state_template(config, meta: dict):
  """Abstract ``TrainState`` (shapes and dtypes) of a workdir's checkpoint,
  single- or multi-scene, from its meta."""
  def one(m):
    info = scene_info_from_meta(m)
    return jax.eval_shape(lambda k: create_train_state(config, info, k)[0],
                          jax.random.PRNGKey(0))
  if not meta.get("scenes"):
    return one(meta)
  states = [one(m) for m in meta["per_scene"]]
  stacked = jax.tree.map(
      lambda *xs: jax.ShapeDtypeStruct((len(xs),) + xs[0].shape, xs[0].dtype), *states)
  return stacked.replace(step=states[0].step, rng=states[0].rng)


def scene_params(params, index: int):
  """One scene's parameters from a multi-scene (stacked) parameter tree."""
  return jax.tree.map(lambda x: x[index], params)


def load_state(workdir, which: str):
  """``(config, model, params, meta)`` as checkpointed (a multi-scene
  workdir's parameters stacked along a leading scene axis)."""
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise ckpt_lib.CheckpointError(f"{workdir}: no such workdir")
  config = config_lib.load_saved_config(workdir / "config.json")
  ckpt = ckpt_lib.Checkpointer(workdir, keep=int(config.train.keep), async_save=False)
  try:
    meta = ckpt.restore_meta(which)
    ckpt_lib.check_model(meta, config.model.name, workdir / ckpt_dir(which),
                         f"model.name in {workdir / 'config.json'}")
    template = state_template(config, meta)
    # Onto this process's first device, whatever the mesh that wrote it.
    one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    state, meta = ckpt.restore(template, which=which, sharding=one)
  finally:
    ckpt.close()
  return config, get_model(config.model.name), state.params, meta


def ckpt_dir(which: str) -> str:
  """The workdir's folder of the ``latest`` or ``best`` checkpoints."""
  return "best" if which == "best" else "checkpoints"


def scene_ids_of(meta: dict) -> list:
  """The scenes of a multi-scene checkpoint's meta; ``[]`` for one scene."""
  return list(meta.get("scenes") or [])


def select_scene(config, params, meta: dict, scene: str):
  """One scene of a multi-scene checkpoint: ``(config, params, meta)`` as a
  single-scene workdir would give them. Raises ``CheckpointError`` naming the
  scenes when ``scene`` is not one of them."""
  ids = scene_ids_of(meta)
  if str(scene) not in ids:
    raise ckpt_lib.CheckpointError(
        f"scene {scene!r} is not in this workdir (scenes: {', '.join(ids)})")
  i = ids.index(str(scene))
  scene_meta = {k: v for k, v in meta.items() if k not in ("per_scene", "scenes", "val")}
  scene_meta.update(meta["per_scene"][i])
  return (dataset.scene_config(config, scene), scene_params(params, i),
          scene_meta)


def load_trained(workdir, which: str = "latest", scene: Optional[str] = None):
  """``(config, model, params, meta)`` of a training workdir.

  For a multi-scene workdir ``scene`` picks the scene (its single-scene
  config, parameters and meta); it is required there. For a single-scene
  workdir ``scene`` may be omitted or name the workdir's scene.

  Raises ``CheckpointError`` / ``ConfigError`` with the path when the workdir
  has no config or no checkpoint, or ``scene`` does not fit it.
  """
  config, model, params, meta = load_state(workdir, which)
  ids = scene_ids_of(meta)
  if ids:
    if scene is None:
      raise ckpt_lib.CheckpointError(
          f"{workdir} holds {len(ids)} scenes ({', '.join(ids)}): pick one with --scene")
    config, params, meta = select_scene(config, params, meta, scene)
  elif scene is not None and str(scene) != str(config.data.scene):
    raise ckpt_lib.CheckpointError(
        f"{workdir} was trained on scene {config.data.scene}, not {scene}")
  return config, model, params, meta


def resolve_config(args, overrides: dict):
  """Config from --config, else from a resumed workdir, else the default."""
  saved = pathlib.Path(args.workdir) / "config.json" if args.workdir else None
  if args.config is None and saved is not None and saved.is_file():
    cfg = config_lib.load_saved_config(saved)
  else:
    cfg = config_lib.load_config_file(args.config or config_lib.default_config_path())
  return config_lib.apply_overrides(cfg, overrides)


def check_workdir(workdir: pathlib.Path) -> None:
  """ConfigError naming ``--workdir`` when it cannot be a training folder: a
  file, a link to nowhere, a read-only folder, or under a file."""
  where = f"--workdir {workdir}"
  if workdir.is_symlink() and not workdir.exists():
    raise config_lib.ConfigError(f"{where}: a symbolic link to {os.readlink(workdir)}, "
                                 f"which does not exist")
  if workdir.exists() and not workdir.is_dir():
    raise config_lib.ConfigError(f"{where}: exists and is not a folder")
  probe = workdir
  while not probe.exists():
    probe = probe.parent
  if not probe.is_dir():
    raise config_lib.ConfigError(f"{where}: {probe} is a file, not a folder")
  mode = probe.stat().st_mode
  if not os.access(probe, os.W_OK) or not mode & 0o222:
    what = "is read-only" if probe == workdir else f"cannot be created in {probe} (read-only)"
    raise config_lib.ConfigError(f"{where}: {what}")


class WorkdirGuard:
  """What a run adds to its workdir, removed again when the run fails before
  saving a checkpoint (a bad input): nothing the user had is touched, and a
  run that trained something keeps it."""

  def __init__(self, workdir: pathlib.Path):
    self.workdir = workdir
    self.existed = workdir.is_dir()
    self.root = workdir  # the highest folder this run may create
    while not self.root.parent.exists():
      self.root = self.root.parent
    self.before = set(os.listdir(workdir)) if self.existed else set()
    self.steps = self._steps()

  def _steps(self) -> set:
    d = self.workdir / "checkpoints"
    return {p.name for p in d.iterdir() if p.name.isdigit()} if d.is_dir() else set()

  def undo(self) -> None:
    if not parallel.is_main() or not self.workdir.is_dir() or self._steps() - self.steps:
      return
    if not self.existed:
      shutil.rmtree(self.root, ignore_errors=True)
      return
    for name in set(os.listdir(self.workdir)) - self.before:
      p = self.workdir / name
      if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
      else:
        p.unlink(missing_ok=True)
