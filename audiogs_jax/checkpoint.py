"""Orbax checkpoints of the whole train state, atomic and resumable.

Layout of a workdir::

    WORKDIR/config.json          the resolved config (evaluate/render need only the workdir)
    WORKDIR/checkpoints/<step>/  the latest ``config.train.keep`` states
    WORKDIR/best/<step>/         the state with the best validation MAG so far

Each checkpoint holds two items: ``state`` (the ``TrainState`` pytree) and
``meta`` (JSON: step, scene-normalisation factor, scene info, config; for a
multi-scene job ``scenes`` and one such record per scene in ``per_scene``,
the state's arrays then stacked along a leading scene axis). Orbax
writes a checkpoint into a temporary folder and renames it into place when it is
complete, so a run killed in the middle of a save (even with SIGKILL) leaves the
previous checkpoints intact and resumes from the last complete one.

Across processes (``jax.distributed``) every process calls ``save`` with the
same global arrays and orbax writes each array once, from the processes that
hold its shards; the result is an ordinary checkpoint that one process can
restore onto any devices (``restore(..., sharding=...)``).
"""

from __future__ import annotations

import pathlib
from typing import Optional

import jax
import orbax.checkpoint as ocp
from absl import logging as absl_logging

__all__ = ["Checkpointer", "CheckpointError"]


class CheckpointError(RuntimeError):
  """A workdir without a usable checkpoint; the message says what was found."""


def _manager(path: pathlib.Path, keep: int, best: bool, async_save: bool):
  # Both managers may save the same step at once (the last step is validated and
  # checkpointed); across processes their coordination barriers (named after the
  # step) must not collide, so each gets its own barrier key prefix.
  options = ocp.CheckpointManagerOptions(
      multiprocessing_options=ocp.options.MultiprocessingOptions(
          barrier_sync_key_prefix=path.name),
      max_to_keep=keep,
      create=True,
      enable_async_checkpointing=async_save,
      best_fn=(lambda m: float(m["score"])) if best else None,
      best_mode="min",
      keep_checkpoints_without_metrics=not best,
  )
  return ocp.CheckpointManager(path, options=options, item_names=("state", "meta"))


class Checkpointer:
  """The latest ``keep`` checkpoints plus the best one by a validation score."""

  def __init__(self, workdir, keep: int = 3, async_save: bool = True):
    self.workdir = pathlib.Path(workdir).absolute()
    self.latest = _manager(self.workdir / "checkpoints", max(int(keep), 1), False, async_save)
    self.best = _manager(self.workdir / "best", 1, True, async_save)

  def latest_step(self, which: str = "latest") -> Optional[int]:
    mgr = self.best if which == "best" else self.latest
    if which == "best":
      return mgr.best_step()
    return mgr.latest_step()

  def save(self, step: int, state, meta: dict, *, score: Optional[float] = None,
           best: bool = False) -> None:
    args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                              meta=ocp.args.JsonSave(meta))
    if best:
      self.best.save(int(step), args=args, metrics={"score": float(score)}, force=True)
    else:
      self.latest.save(int(step), args=args, force=True)

  def restore(self, template, step: Optional[int] = None, which: str = "latest",
              sharding: Optional[jax.sharding.Sharding] = None):
    """Restore ``(state, meta)``; ``template`` gives the pytree structure.

    ``template`` leaves are arrays or ``jax.ShapeDtypeStruct``s; the restored
    arrays take ``sharding`` when given (e.g. replicated over a mesh, or one
    device), else the template leaves' own.

    Raises ``CheckpointError`` when there is nothing to restore.
    """
    mgr = self.best if which == "best" else self.latest
    if step is None:
      step = mgr.best_step() if which == "best" else mgr.latest_step()
    if step is None:
      raise CheckpointError(
          f"{mgr.directory}: no {which} checkpoint (train first: "
          f"python -m audiogs_jax.train --workdir {self.workdir})")
    if sharding is not None:
      abstract = jax.tree.map(
          lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), template)
    else:
      abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    try:
      out = mgr.restore(int(step), args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    except (ValueError, KeyError, TypeError) as e:
      # Saved by another version of the code or with a different model config:
      # say which checkpoint, not a traceback from deep inside orbax.
      raise CheckpointError(
          f"{mgr.directory / str(step)}: does not match the model of the current "
          f"code and config ({_mismatch_detail(e)})") from e
    return out.state, out.meta

  def restore_meta(self, which: str = "latest") -> dict:
    mgr = self.best if which == "best" else self.latest
    step = mgr.best_step() if which == "best" else mgr.latest_step()
    if step is None:
      raise CheckpointError(f"{mgr.directory}: no {which} checkpoint")
    try:
      meta = mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    except (ValueError, KeyError, TypeError, OSError) as e:
      raise CheckpointError(f"{mgr.directory / str(step)}: unreadable checkpoint "
                            f"metadata ({_mismatch_detail(e)})") from e
    if not isinstance(meta, dict):
      raise CheckpointError(f"{mgr.directory / str(step)}: checkpoint without metadata")
    return meta

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()


def _mismatch_detail(e: Exception) -> str:
  """orbax's error as a short clause: its first line, without the sentences
  about restoring with ``strict=False`` / truncating or padding (an orbax
  argument the user cannot pass; silently cut or padded arrays would be wrong)."""
  text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
  sentences = [x.strip() for x in text.replace("; ", ". ").split(". ")]
  keep = [x.rstrip(".") for x in sentences
          if x and "strict" not in x and "runcat" not in x and "padding" not in x]
  text = " ".join(". ".join(keep).split()) or "array shapes differ"
  return (text[:200] + "...") if len(text) > 200 else text


def check_model(meta: dict, model_name: str, where,
                config_where: str = "config.model.name") -> None:
  """CheckpointError when a checkpoint's meta names another model than the
  config (e.g. an AudioGS workdir resumed or evaluated as Audio 3DGS)."""
  saved = meta.get("model")
  if saved is not None and str(saved) != str(model_name):
    raise CheckpointError(f"{where}: holds an {saved!r} model, but {config_where} is "
                          f"{model_name!r}")


def has_checkpoint(workdir) -> bool:
  d = pathlib.Path(workdir) / "checkpoints"
  return d.is_dir() and any(p.name.isdigit() for p in d.iterdir())


def quiet_absl() -> None:
  """Keep absl's (orbax's) INFO/WARNING log lines off the console: a resume
  after a kill makes orbax warn about the temporary folders it cleans up,
  which is expected, not the user's business. Errors still show."""
  absl_logging.set_verbosity(absl_logging.ERROR)
  absl_logging.set_stderrthreshold(absl_logging.ERROR)
