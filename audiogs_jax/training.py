"""``train_and_evaluate(config, workdir)``: the training loop.

Progress bar, TensorBoard and ``metrics.jsonl`` logs (``logs``), periodic
validation, orbax checkpoints and resume (bit for bit: the batch order depends
only on the seed and the step), SIGTERM / Ctrl-C saved before exit; then the
evaluation (``evaluation.evaluate_workdir``). Across several processes
(``jax.distributed``) every process runs it, and only process 0 logs and prints.
"""

from __future__ import annotations

import contextlib
import pathlib
import signal
import sys
import time

import jax
import numpy as np
from jax.experimental import multihost_utils
from tqdm import tqdm

from audiogs_jax import checkpoint as ckpt_lib
from audiogs_jax import config as config_lib
from audiogs_jax import dataset
from audiogs_jax import evaluation
from audiogs_jax import metrics
from audiogs_jax import parallel
from audiogs_jax import predict as predict_lib
from audiogs_jax import workdir as workdir_lib
from audiogs_jax.logs import Logger
from audiogs_jax.models import get_model
from audiogs_jax.trainstate import (TrainState, create_train_state, make_sampled_step,
                                    prepare_fit, stack_states)

__all__ = ["train_and_evaluate", "validate", "best_metric_name"]


def best_metric_name(config) -> str:
  return "mag_avcloud" if config.data.kind == "replay_nvas" else "mag_avnerf"


def _is_main() -> bool:
  return parallel.is_main()


def validate(model, params, eval_data, scene, config, predict) -> dict:
  """Validation MAG (both protocols), ENV and LRE on a split: ``evaluate``'s numbers."""
  pred = predict_lib.predict_waveforms(model, params, eval_data.poses, eval_data.source_tf,
                           scene.clip_length, config, int(config.eval.batch_size), predict)
  # On the recording's scale (normalisation undone), as the evaluation tables.
  nf = float(scene.norm_factor)
  pred, tgt = pred * nf, scene.binaural * nf
  return {"mag_avnerf": float(np.mean(metrics.mag_avnerf(pred, tgt))),
          "mag_avcloud": float(np.mean(metrics.mag_avcloud(pred, tgt))),
          "env": float(np.mean(metrics.env(pred, tgt))),
          "lre": float(np.mean(metrics.lre(pred, tgt)))}


class _Scenes:
  """The scenes of a job, read lazily and kept: ``configs[i]`` is scene i's
  single-scene config (one config, the job's own, for a single-scene job)."""

  def __init__(self, config, progress: bool):
    self.ids = dataset.scene_ids(config)
    self.configs = ([dataset.scene_config(config, s) for s in self.ids]
                    if self.ids else [config])
    self.progress = progress
    self._cache = {}

  def __len__(self) -> int:
    return len(self.configs)

  def split(self, i: int, name: str):
    if (i, name) not in self._cache:
      self._cache[(i, name)] = dataset.load_split(self.configs[i], name,
                                                  progress=self.progress)
    return self._cache[(i, name)]


def _host_state(config, model, scenes: _Scenes, train_split: str, fit: bool):
  """Initial host state (stacked for several scenes), optimiser, meta and ``init_s``
  (the seconds of the scene analysis and, with ``fit``, the model's data-driven
  start; not the data's loading). A resumed run (``fit`` False) needs no fit."""
  states, metas = [], []
  tx = None
  init_s = 0.0
  for i, c in enumerate(scenes.configs):
    scene = scenes.split(i, train_split)
    t0 = time.perf_counter()
    start = prepare_fit(c, scene) if fit else None    # may compile while the scene is read
    info = workdir_lib.scene_info_of(scene, c)
    st, tx = create_train_state(c, info, jax.random.PRNGKey(int(config.seed)),
                                norm_factor=scene.norm_factor, fit=start)
    if fit and jax.process_count() > 1:   # every process starts from process 0's fit
      st = st.replace(params=multihost_utils.broadcast_one_to_all(st.params))
    states.append(jax.device_get(st))
    init_s += time.perf_counter() - t0
    metas.append({"scene": str(c.data.scene), **workdir_lib.scene_meta(scene, info)})
  if not scenes.ids:
    return states[0], tx, {"model": config.model.name,
                           **{k: v for k, v in metas[0].items() if k != "scene"}}, init_s
  meta = {"model": config.model.name, "scenes": list(scenes.ids), "per_scene": metas,
          "clip_length": metas[0]["clip_length"]}
  return stack_states(states), tx, meta, init_s


def _validate_all(model, scenes: _Scenes, eval_data: list, params_of, params, config,
                  predict) -> dict:
  """Validation metrics; for several scenes, ``metric/scene_<id>`` per scene
  and ``metric`` their mean. Every process computes them (the same values);
  process 0 logs them."""
  vals = []
  for i, c in enumerate(scenes.configs):
    p = parallel.local_copy(params_of(params, i))
    vals.append(validate(model, p, eval_data[i], scenes.split(i, c.data.eval_split), c,
                         predict))
  if not scenes.ids:
    return vals[0]
  out = {k: float(np.mean([v[k] for v in vals])) for k in vals[0]}
  for sid, v in zip(scenes.ids, vals):
    out.update({f"{k}/scene_{sid}": x for k, x in v.items()})
  return out


def _scalars(metrics: dict, ids: list) -> dict:
  """Logged training scalars: as they are for one scene; for several, the mean
  over scenes and ``name/scene_<id>`` per scene."""
  m = {k: np.asarray(v) for k, v in metrics.items()}
  if not ids:
    return {k: float(v) for k, v in m.items()}
  out = {k: float(np.mean(v)) for k, v in m.items()}
  for k, v in m.items():
    out.update({f"{k}/scene_{sid}": float(x) for sid, x in zip(ids, v)})
  return out


def _check_resume(config, ckpt, workdir: pathlib.Path, start: int,
                  change_schedule: bool) -> None:
  """Before any work: a resumed workdir must hold the config's model, and the
  learning-rate schedule may change only when asked (``change_schedule``)."""
  ckpt_lib.check_model(ckpt.restore_meta(), config.model.name,
                       workdir / "checkpoints" / str(start))
  saved_path = workdir / "config.json"
  if not saved_path.is_file():
    return
  saved = config_lib.load_saved_config(saved_path)
  changed = [f for f in config_lib.SCHEDULE_FIELDS
             if config_lib.get_dotted(saved, f) != config_lib.get_dotted(config, f)]
  if not changed:
    return
  what = ", ".join(f"{f}={config_lib.get_dotted(saved, f)!r} -> "
                   f"{config_lib.get_dotted(config, f)!r}" for f in changed)
  if not change_schedule:
    raise config_lib.ConfigError(
        f"--config.{changed[0]}: {workdir} was trained with a different learning-rate "
        f"schedule ({what}); resuming at step {start} would change it for the whole "
        f"run: pass --change-schedule to do so, or train into a new --workdir")
  if _is_main():
    print(f"note: resuming at step {start} with a changed learning-rate schedule "
          f"({what})", file=sys.stderr)


def train_and_evaluate(config, workdir, *, evaluate_at_end: bool = True,
                       progress: bool = True, change_schedule: bool = False,
                       stop_when=None) -> TrainState:
  """Train (resuming from ``workdir`` when it has a checkpoint), then evaluate.

  Runs on every device JAX sees, laid out by ``config.mesh``; with several
  processes (``jax.distributed``) every process calls it. Returns the final
  state (global arrays; for Gaussian sharding, still padded). A resume that
  would change the learning-rate schedule (``config_lib.SCHEDULE_FIELDS``)
  raises ``ConfigError`` unless ``change_schedule``. ``stop_when(step, val) ->
  bool``, called after each validation with its metrics (``validate``), ends the
  training at that step when it returns True (saved as the last step is; the
  learning-rate schedule is the config's, as if the run went on).
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  model = get_model(config.model.name)
  ckpt = ckpt_lib.Checkpointer(workdir, keep=int(config.train.keep))
  try:
    start = ckpt.latest_step()
    if start is not None:
      _check_resume(config, ckpt, workdir, start, change_schedule)
    scenes = _Scenes(config, progress and _is_main())
    layout = parallel.make_layout(config, len(scenes.ids), model)
    host, tx, meta, init_s = _host_state(config, model, scenes, config.data.train_split,
                                         fit=start is None)
    layout = layout.for_params(host.params)
    if start is not None:
      restored, _ = ckpt.restore(host, start, sharding=layout.replicated)
      host = jax.device_get(parallel.local_copy(restored))
      if _is_main():
        print(f"resuming from {workdir}/checkpoints/{start}", file=sys.stderr)
  except BaseException:
    ckpt.close()
    raise
  # Saved once the config is known to fit the workdir's checkpoints, so that a
  # failed resume (say, an override that changes the model) leaves it intact.
  if _is_main():
    config_lib.save_config(config, workdir / "config.json")
  try:
    state = _train_loop(config, workdir, model, scenes, layout, host, tx, meta, ckpt,
                        progress, init_s, stop_when)
  finally:
    ckpt.close()
  if evaluate_at_end and _is_main():
    if jax.process_count() > 1:  # evaluation is single-process work
      print(f"trained on {jax.process_count()} processes; evaluate with: python -m "
            f"audiogs_jax.evaluate --workdir {workdir}", file=sys.stderr)
    else:
      evaluation.evaluate_workdir(workdir, split=config.data.eval_split, progress=progress)
  return state


def _train_loop(config, workdir, model, scenes, layout, host, tx, meta, ckpt, progress,
                init_s: float, stop_when=None):
  """The training loop proper (see ``train_and_evaluate``); SystemExit(130)
  after a SIGTERM / Ctrl-C, once the state is saved. Train and validation rows
  log ``train_s`` (``_TrainClock``; a new run's clock starts at ``init_s``, the
  seconds its initialisation took, logged as the ``init`` row of step 0)."""
  timer = _TrainClock()
  step = int(host.step)
  padded = layout.pad_state(host, tx)
  state = parallel.put_global(padded, layout.state_shardings(padded, tx))
  del host, padded
  params_of, to_save = _state_views(scenes, layout, tx)
  logger = Logger(workdir, resume_step=step)
  timer.offset = logger.last_train_s if step else init_s
  if not step:
    logger.write(0, {"init_s": init_s, "train_s": init_s}, prefix="init")
  total, log_every, eval_every, ckpt_every = _intervals(config)
  validation = _Validation(config, model, scenes, params_of, to_save, meta, ckpt, logger,
                           timer, stop_when)

  interrupted = {"flag": False}   # a SIGTERM / Ctrl-C seen by this process
  stop = False                    # agreed by every process: save and stop now
  old_handler = _catch_sigterm(interrupted)

  bar = tqdm(total=total, initial=step, desc="train", unit="step",
             disable=not (progress and _is_main()), dynamic_ncols=True)
  done = False                    # stop_when said so: end here, as at the last step
  if not step and eval_every > 0 and config.train.get("eval_at_start", False):
    done = validation(0, state, bar)   # the start as it is: before the training data
  pending = None  # the previous step's loss: counted on the bar once computed
  try:
    train_data = dataset.shard_clips(lambda i: scenes.split(i, config.data.train_split),
                                     len(scenes.ids), config, layout)
    step_fn = make_sampled_step(model, tx, config, layout, state, train_data)
    clock = (time.perf_counter(), step)
    while step < total and not stop and not done:
      state, m = step_fn(state, train_data)
      step += 1
      if pending is not None:  # one step in flight: the bar counts completed steps
        jax.block_until_ready(pending)
        bar.update(1)
      pending = m["loss"]
      if step % log_every == 0 or step == total:
        bar.update(1)
        pending = None
        clock = _log_step(step, m, clock, scenes.ids, logger, bar, timer)
        stop = _agreed(interrupted["flag"])
      if eval_every > 0 and (step % eval_every == 0 or step == total):
        done = validation(step, state, bar)
      if step % ckpt_every == 0 or step == total or done:
        ckpt.save(step, to_save(state), {**meta, "step": step})
      if jax.process_count() == 1:
        stop = interrupted["flag"]
  except KeyboardInterrupt:
    interrupted["flag"] = stop = True
  finally:
    if pending is not None:
      bar.update(1)
    bar.close()
    if (stop or done) and (ckpt.latest_step() is None or step > ckpt.latest_step()):
      ckpt.save(step, to_save(state), {**meta, "step": step})
    ckpt.wait()
    logger.close()
    if old_handler is not None:
      signal.signal(signal.SIGTERM, old_handler)

  if stop:
    if _is_main():
      saved = ckpt.latest_step()
      print(f"interrupted at step {step} of {total}: saved step {saved} in "
            f"{workdir}/checkpoints/{saved}; resume with: python -m audiogs_jax.train "
            f"--workdir {workdir}", file=sys.stderr)
    raise SystemExit(130)
  return state


class _Validation:
  """Validation during training: ``__call__(step, state, bar)`` validates,
  logs the metrics with ``train_s`` (outside the training clock), keeps the best
  checkpoint (not step 0's) and returns whether ``stop_when(step, val)`` ends
  the run."""

  def __init__(self, config, model, scenes, params_of, to_save, meta, ckpt, logger,
               timer, stop_when):
    self.config, self.model, self.scenes, self.params_of = config, model, scenes, params_of
    self.to_save, self.meta, self.ckpt, self.logger = to_save, meta, ckpt, logger
    self.timer, self.stop_when = timer, stop_when
    self.split = config.data.eval_split
    with timer.paused():
      self.data = [dataset.to_device(scenes.split(i, self.split), c)
                   for i, c in enumerate(scenes.configs)]
    self.predict = predict_lib.make_predict(model, config)

  def __call__(self, step: int, state, bar) -> bool:
    train_s = self.timer.seconds(state.params)
    with self.timer.paused():
      val = _validate_all(self.model, self.scenes, self.data, self.params_of, state.params,
                          self.config, self.predict)
      self.logger.write(step, {**val, "train_s": train_s}, prefix=self.split)
      if step:
        self.ckpt.save(step, self.to_save(state), {**self.meta, "step": step, "val": val},
                       score=val[best_metric_name(self.config)], best=True)
      if _is_main():
        bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in val.items()
                                               if "/scene_" not in k))
    return self.stop_when is not None and bool(self.stop_when(step, val))


def _intervals(config) -> tuple:
  """(total steps, log_every, eval_every, checkpoint_every) of the config."""
  return (int(config.train.steps), max(int(config.train.log_every), 1),
          int(config.train.eval_every), max(int(config.train.checkpoint_every), 1))


class _TrainClock:
  """Training wall-clock seconds: since the loop started (device placement and
  compilation included), less the time spent inside ``paused()`` (validation:
  its data, compilation, metrics and best checkpoint), plus ``offset`` (the
  ``train_s`` a resumed run had logged at its checkpoint)."""

  def __init__(self):
    self.start = time.perf_counter()
    self.excluded = 0.0
    self.offset = 0.0

  def seconds(self, *wait) -> float:
    """``train_s`` now, once the arrays ``wait`` (the step's outputs) are computed."""
    jax.block_until_ready(wait)
    return self.offset + time.perf_counter() - self.start - self.excluded

  @contextlib.contextmanager
  def paused(self):
    t0 = time.perf_counter()
    try:
      yield
    finally:
      self.excluded += time.perf_counter() - t0


def _log_step(step: int, m: dict, clock: tuple, ids: list, logger: Logger, bar,
              timer: _TrainClock) -> tuple:
  """Log the step's training scalars, the step rate since ``clock`` (time,
  step) and ``train_s`` (``timer``); returns the new clock."""
  m = jax.device_get(parallel.local_copy(m))
  now = time.perf_counter()
  rate = (step - clock[1]) / max(now - clock[0], 1e-9)
  scalars = _scalars(m, ids)
  scalars["steps_per_s"] = rate
  scalars["train_s"] = timer.seconds()
  logger.write(step, scalars)
  bar.set_postfix(loss=f"{scalars['loss']:.4g}", steps_s=f"{rate:.2f}")
  return now, step


def _state_views(scenes, layout, tx):
  """Jitted ``params_of(params, i)``: scene ``i``'s unpadded parameters,
  replicated on every device (validation); ``to_save(state)``: the
  checkpointed state, unpadded (the identity without Gaussian sharding)."""
  pick = (lambda p, i: p) if not scenes.ids else (
      lambda p, i: jax.tree.map(lambda x: jax.lax.dynamic_index_in_dim(x, i, 0, False), p))
  params_of = jax.jit(lambda p, i: layout.unpad(pick(p, i)),
                      out_shardings=layout.replicated)
  to_save = ((lambda s: s) if not layout.shard_gaussians else
             jax.jit(lambda s: layout.unpad_state(s, tx)))
  return params_of, to_save


def _catch_sigterm(flag: dict):
  """SIGTERM sets ``flag["flag"]`` (the loop then saves and stops); returns the
  previous handler, or None when not in the main thread (no handler set)."""
  def on_sigterm(signum, frame):
    flag["flag"] = True
  try:
    return signal.signal(signal.SIGTERM, on_sigterm)
  except ValueError:
    return None


def _agreed(flag: bool) -> bool:
  """``flag`` of any process: every process of a multi-process job stops at the
  same step (the save after a SIGTERM is collective); one process: ``flag``."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.int32))))
