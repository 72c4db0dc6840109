"""Training: ``python -m audiogs_jax.train [--config FILE] [--workdir DIR] [--config.a.b=v ...]``.

With no arguments it trains AudioGS on the built-in synthetic scene
(``configs/default.py``; the scene is simulated on first use and cached), then
evaluates it (``audiogs_jax.evaluate``): metrics table against the baselines,
WAV files and figures under ``WORKDIR/eval/``.

The pieces, as in the Flax examples:

- ``TrainState``: one pytree (step, model parameters, optimiser state, RNG key,
  scene-normalisation factor), so checkpointing and donation treat it as a value.
- ``create_train_state(config, scene_info, key)`` and ``make_optimizer``: optax
  Adam with one learning rate per parameter field (``config.train.lr``), a
  warm-up + cosine / exponential schedule and global-norm clipping.
- ``make_train_step(model, tx, config, layout)``: a pure ``train_step(state,
  batch) -> (state, metrics)``; ``make_sampled_step`` jit-compiles it once for
  the device mesh (``audiogs_jax.parallel``), with the state donated and the
  batch drawn on the devices, each data shard from its own clips. One device
  is a 1 x 1 mesh: the same code.
- Multi-scene jobs (``--config.data.scenes=1,2,...,13``): one independent
  state per scene, stacked along a leading scene axis (``stack_states``); the
  step is vmapped over the scenes and the scene axis lies over the mesh's
  ``scenes`` axis.
- ``train_and_evaluate(config, workdir)``: the loop (progress bar, TensorBoard
  and ``metrics.jsonl`` logs, periodic validation, orbax checkpoints, resume);
  across several processes (``jax.distributed``) every process runs it, and
  only process 0 logs and prints.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # answer --help and usage errors before importing JAX (seconds)
  from audiogs_jax import cli as _cli
  _cli.preparse("train")

import dataclasses
import json
import os
import pathlib
import shutil
import signal
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from audiogs_jax import checkpoint as ckpt_lib
from audiogs_jax import cli
from audiogs_jax import config as config_lib
from audiogs_jax import dataset
from audiogs_jax import dsp
from audiogs_jax import parallel
from audiogs_jax.models import SceneInfo, compiler_options, get_model

__all__ = ["TrainState", "create_train_state", "stack_states", "scene_state_axes",
           "make_optimizer", "make_train_step", "make_sampled_step", "predict_waveforms",
           "train_and_evaluate", "main"]


@struct.dataclass
class TrainState:
  step: jnp.ndarray          # int32 []
  params: Any
  opt_state: Any
  rng: jnp.ndarray           # uint32 [2], raw PRNG key data
  norm_factor: jnp.ndarray   # float32 [], audio was divided by this


# ----------------------------------------------------------------------------- optimiser

def _schedule(lr: float, config):
  t = config.train
  steps = max(int(t.steps), 1)
  warm = min(int(t.warmup_steps), steps - 1) if steps > 1 else 0
  if t.schedule == "constant":
    return optax.linear_schedule(0.0, lr, max(warm, 1)) if warm else optax.constant_schedule(lr)
  if t.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=lr, warmup_steps=warm, decay_steps=steps,
        end_value=lr * float(t.final_lr_factor))
  if t.schedule == "exponential":
    return optax.warmup_exponential_decay_schedule(
        init_value=0.0, peak_value=lr, warmup_steps=warm,
        transition_steps=max(steps - warm, 1), decay_rate=float(t.final_lr_factor),
        end_value=lr * float(t.final_lr_factor))
  raise ValueError(f"config.train.schedule={t.schedule!r}: use cosine, exponential "
                   "or constant")


def make_optimizer(config, model, params) -> optax.GradientTransformation:
  """Adam per parameter field, with global-norm clipping first."""
  labels = model.labels(params)
  used = sorted(set(jax.tree.leaves(labels)))
  lrs = config.train.lr
  missing = [u for u in used if u not in lrs]
  if missing:
    raise config_lib.ConfigError(f"config.train.lr has no learning rate for {missing}")
  transforms = {name: optax.adam(_schedule(float(lrs[name]), config)) for name in used}
  return optax.chain(optax.clip_by_global_norm(float(config.train.clip_norm)),
                     optax.multi_transform(transforms, labels))


def create_train_state(config, scene_info: SceneInfo, key: jax.Array,
                       norm_factor: float = 1.0):
  """Initial ``TrainState`` and its optimiser."""
  model = get_model(config.model.name)
  k_init, k_train = jax.random.split(key)
  params = model.init(k_init, scene_info, config)
  tx = make_optimizer(config, model, params)
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                     opt_state=tx.init(params), rng=jax.random.key_data(k_train),
                     norm_factor=jnp.asarray(norm_factor, jnp.float32))
  return state, tx


def scene_state_axes() -> TrainState:
  """``vmap`` axes of a multi-scene state: parameters, optimiser state and
  normalisation factor stacked along axis 0; step and RNG key shared."""
  return TrainState(step=None, params=0, opt_state=0, rng=None, norm_factor=0)


def stack_states(states: list) -> TrainState:
  """One multi-scene state (host numpy) from per-scene states made with the
  same config and seed (their step and RNG key are equal; the first's kept)."""
  host = jax.device_get(states)
  stacked = jax.tree.map(lambda *xs: np.stack(xs), *host)
  return stacked.replace(step=host[0].step, rng=host[0].rng)


# ----------------------------------------------------------------------------- steps

def _global_norm(tree):
  norm = getattr(getattr(optax, "tree", None), "norm", None)
  return norm(tree) if norm is not None else optax.global_norm(tree)


def make_train_step(model, tx, config, layout: Optional[parallel.Layout] = None):
  """``train_step(state, batch) -> (state, metrics)``, pure, not yet jitted.

  ``batch``: ``poses [B,4,4]``, ``source_tf [B,T,F]``, ``target_tf [B,2,T,F]``
  (one scene). With a ``layout`` whose ``data`` axis has D > 1 devices the
  batch is rendered as D slices of B / D clips (vmapped, the slice axis over
  ``data``: every device renders its own clips; XLA all-reduces the
  gradients); the loss is the same mean over the whole batch. With Gaussian
  sharding the state's padded Gaussian axes are cut back before rendering.
  """
  d = 1 if layout is None else layout.data_shards
  unpad = (lambda p: p) if layout is None else layout.unpad

  def render(params, poses, source_tf):
    if d == 1:
      return model.render(params, poses, source_tf, config)
    split = lambda x: jax.lax.with_sharding_constraint(
        x.reshape((d, x.shape[0] // d) + x.shape[1:]),
        jax.sharding.NamedSharding(layout.mesh, layout.batch_spec(x.ndim + 1)))
    pred = jax.vmap(lambda p, s: model.render(params, p, s, config),
                    spmd_axis_name="data")(split(poses), split(source_tf))
    return pred.reshape((-1,) + pred.shape[2:])

  def loss_fn(params, batch):
    params = unpad(params)
    pred = render(params, batch["poses"], batch["source_tf"])
    return model.loss(params, pred, batch["target_tf"], batch["source_tf"], config)

  def train_step(state: TrainState, batch):
    (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "grad_norm": _global_norm(grads), **parts}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return train_step


def make_sampled_step(model, tx, config, layout: Optional[parallel.Layout] = None,
                      state: Optional[TrainState] = None,
                      data: Optional[dataset.ClipShards] = None):
  """Jitted ``step(state, data: ClipShards) -> (state, metrics)`` drawing its
  batch on the devices (``dataset.sample_shards``).

  The batch key is ``fold_in(state.rng, state.step)``: the data order depends
  only on the seed, the step and the number of data shards, so a resumed run
  sees the same batches. With a ``layout`` (and the ``state`` and ``data``
  it will be called with, for their shardings) the step is compiled once for
  that mesh, the state sharded by ``layout.state_shardings`` and the metrics
  replicated; for a multi-scene layout the step is vmapped over the scenes
  and every metric is ``[S]``. Without one, a plain single-scene ``jit``.
  """
  train_step = make_train_step(model, tx, config, layout)
  batch_size = int(config.train.batch_size)
  frame_roll = bool(config.train.get("frame_roll", False))

  def scene_step(state: TrainState, data: dataset.ClipShards):
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    batch = dataset.sample_shards(data, key, batch_size, frame_roll=frame_roll)
    if layout is not None and layout.data_shards > 1:
      batch = jax.tree.map(lambda x: jax.lax.with_sharding_constraint(
          x, jax.sharding.NamedSharding(layout.mesh, layout.batch_spec(x.ndim))), batch)
    batch = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), batch)
    return train_step(state, batch)

  options = compiler_options(model)
  if layout is None:
    return jax.jit(scene_step, donate_argnums=0, compiler_options=options)
  step = scene_step
  if layout.num_scenes:
    axes = scene_state_axes()
    step = jax.vmap(scene_step, in_axes=(axes, 0), out_axes=(axes, 0),
                    spmd_axis_name="scenes")
  state_sh = layout.state_shardings(state, tx)
  data_sh = jax.tree.map(lambda x: layout.clip_sharding(x.ndim), data)
  return jax.jit(step, donate_argnums=0, in_shardings=(state_sh, data_sh),
                 out_shardings=(state_sh, layout.replicated), compiler_options=options)


def make_predict(model, config):
  """Jitted ``(params, poses [B,4,4], source_tf [B,T,F], length) -> [B,2,L]``."""
  kw = dataset.stft_kwargs(config)

  def predict(params, poses, source_tf, length_ref):
    spec = model.render(params, poses, source_tf, config)
    return dsp.istft_frames(spec, length=length_ref.shape[-1], **kw)

  return jax.jit(predict, compiler_options=compiler_options(model))


def predict_waveforms(model, params, poses, source_tf, length: int, config,
                      batch_size: int = 16, predict=None) -> np.ndarray:
  """Render every clip, in fixed-size batches (the last one padded, so one
  compilation serves all): returns numpy ``[N, 2, length]``."""
  predict = predict or make_predict(model, config)
  n = poses.shape[0]
  ref = jnp.zeros((length,), jnp.float32)
  out = []
  for i in range(0, n, batch_size):
    p, s = poses[i:i + batch_size], source_tf[i:i + batch_size]
    pad = batch_size - p.shape[0]
    if pad:
      p = jnp.concatenate([p, jnp.repeat(p[-1:], pad, 0)])
      s = jnp.concatenate([s, jnp.repeat(s[-1:], pad, 0)])
    y = np.asarray(predict(params, p, s, ref))
    out.append(y[:batch_size - pad] if pad else y)
  return np.concatenate(out, 0)


# ----------------------------------------------------------------------------- loop helpers

def scene_info_of(scene, config) -> SceneInfo:
  kw = dataset.stft_kwargs(config)
  frames = dsp.num_frames(scene.clip_length, kw["n_fft"], kw["hop_length"])
  src_mag = None
  if config.model.name != "audiogs":
    s = np.asarray(dsp.stft(jnp.asarray(scene.source), **kw))
    src_mag = np.mean(np.abs(s), axis=0).astype(np.float32)       # [F, T]
  source_est = None
  if config.model.get("init_position", "listeners") == "itd":
    from audiogs_jax import localize
    source_est = tuple(float(v) for v in localize.estimate_source(
        scene.poses, scene.binaural, scene.sample_rate))
  return SceneInfo(num_freqs=kw["n_fft"] // 2 + 1, num_frames=frames,
                   sample_rate=scene.sample_rate, center=dataset.listener_center(scene),
                   metres_per_unit=dataset.metres_per_unit(scene), source_mag=src_mag,
                   source_estimate=source_est)


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


def best_metric_name(config) -> str:
  return "mag_avcloud" if config.data.kind == "replay_nvas" else "mag_avnerf"


def _is_main() -> bool:
  return parallel.is_main()


class _Logger:
  """metrics.jsonl + TensorBoard event files (process 0 only).

  A resumed run (``resume_step``) continues both logs from its checkpoint:
  rows logged after that step by the interrupted run (which the resumed run
  computes again) are dropped from ``metrics.jsonl``, and the TensorBoard
  event file is rewritten from the kept rows, so that every step appears
  once and TensorBoard shows one curve per scalar (one event file).
  """

  def __init__(self, workdir: pathlib.Path, resume_step: int = 0):
    self.enabled = _is_main()
    self.jsonl = None
    self.tb = None
    if not self.enabled:
      return
    path = workdir / "metrics.jsonl"
    kept = _kept_rows(path, resume_step)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    tmp.replace(path)
    self.jsonl = open(path, "a", buffering=1)
    try:
      from tensorboardX import SummaryWriter
    except ImportError:  # logging still goes to metrics.jsonl
      return
    tb_dir = workdir / "tb"
    for old in tb_dir.glob("events.out.tfevents.*") if tb_dir.is_dir() else []:
      old.unlink()
    self.tb = SummaryWriter(str(tb_dir))
    for r in kept:
      self._tb_write(r["step"], {k: v for k, v in r.items() if k not in ("step", "split")},
                     r.get("split", "train"))

  def _tb_write(self, step: int, scalars: dict, prefix: str) -> None:
    for k, v in scalars.items():
      if v is not None:
        self.tb.add_scalar(f"{prefix}/{k}", float(v), int(step))

  def write(self, step: int, scalars: dict, prefix: str = "train") -> None:
    if not self.enabled:
      return
    rec = {"step": int(step), "split": prefix,
           **{k: (None if v is None else float(v)) for k, v in scalars.items()}}
    self.jsonl.write(json.dumps(rec) + "\n")
    if self.tb is not None:
      self._tb_write(step, scalars, prefix)

  def close(self):
    if self.jsonl:
      self.jsonl.close()
    if self.tb is not None:
      self.tb.close()


def _kept_rows(path: pathlib.Path, upto: int) -> list:
  """The rows of a ``metrics.jsonl`` up to step ``upto`` (a torn last line,
  from a kill in the middle of a write, is dropped)."""
  rows = []
  if not path.is_file():
    return rows
  for line in path.read_text().splitlines():
    try:
      r = json.loads(line)
    except json.JSONDecodeError:
      continue
    if isinstance(r, dict) and isinstance(r.get("step"), int) and r["step"] <= upto:
      rows.append(r)
  return rows


def validate(model, params, eval_data, scene, config, predict) -> dict:
  """Quick validation metrics (MAG both protocols, ENV, LRE) on a split, on
  the recording's scale: the same numbers as ``evaluate``'s table."""
  from audiogs_jax import metrics
  pred = predict_waveforms(model, params, eval_data.poses, eval_data.source_tf,
                           scene.clip_length, config, int(config.eval.batch_size), predict)
  # On the recording's scale (normalisation undone), as the evaluation tables.
  nf = float(scene.norm_factor)
  pred, tgt = pred * nf, scene.binaural * nf
  return {"mag_avnerf": float(np.mean(metrics.mag_avnerf(pred, tgt))),
          "mag_avcloud": float(np.mean(metrics.mag_avcloud(pred, tgt))),
          "env": float(np.mean(metrics.env(pred, tgt))),
          "lre": float(np.mean(metrics.lre(pred, tgt)))}


# ----------------------------------------------------------------------------- main loop

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


def _host_state(config, model, scenes: _Scenes, train_split: str):
  """Initial host state (stacked for several scenes), optimiser and meta."""
  states, metas = [], []
  tx = None
  for i, c in enumerate(scenes.configs):
    scene = scenes.split(i, train_split)
    info = scene_info_of(scene, c)
    st, tx = create_train_state(c, info, jax.random.PRNGKey(int(config.seed)),
                                norm_factor=scene.norm_factor)
    states.append(jax.device_get(st))
    metas.append({"scene": str(c.data.scene), **scene_meta(scene, info)})
  if not scenes.ids:
    return states[0], tx, {"model": config.model.name,
                           **{k: v for k, v in metas[0].items() if k != "scene"}}
  meta = {"model": config.model.name, "scenes": list(scenes.ids), "per_scene": metas,
          "clip_length": metas[0]["clip_length"]}
  return stack_states(states), tx, meta


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
                       progress: bool = True, change_schedule: bool = False) -> TrainState:
  """Train (resuming from ``workdir`` when it has a checkpoint), then evaluate.

  Runs on every device JAX sees, laid out by ``config.mesh``; with several
  processes (``jax.distributed``) every process calls it. Returns the final
  state (global arrays; for Gaussian sharding, still padded). A resume that
  would change the learning-rate schedule (``config_lib.SCHEDULE_FIELDS``)
  raises ``ConfigError`` unless ``change_schedule``.
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
    host, tx, meta = _host_state(config, model, scenes, config.data.train_split)
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
                        progress)
  finally:
    ckpt.close()
  if evaluate_at_end and _is_main():
    if jax.process_count() > 1:  # evaluation is single-process work
      print(f"trained on {jax.process_count()} processes; evaluate with: python -m "
            f"audiogs_jax.evaluate --workdir {workdir}", file=sys.stderr)
    else:
      from audiogs_jax import evaluate
      evaluate.evaluate_workdir(workdir, split=config.data.eval_split, progress=progress)
  return state


def _train_loop(config, workdir, model, scenes, layout, host, tx, meta, ckpt, progress):
  """The training loop proper (see ``train_and_evaluate``); SystemExit(130)
  after a SIGTERM / Ctrl-C, once the state is saved."""
  from tqdm import tqdm
  train_split, eval_split = config.data.train_split, config.data.eval_split
  step = int(host.step)
  padded = layout.pad_state(host, tx)
  state = parallel.put_global(padded, layout.state_shardings(padded, tx))
  del host, padded
  train_data = dataset.shard_clips(lambda i: scenes.split(i, train_split),
                                   len(scenes.ids), config, layout)
  eval_data = [dataset.to_device(scenes.split(i, eval_split), c)
               for i, c in enumerate(scenes.configs)]

  step_fn = make_sampled_step(model, tx, config, layout, state, train_data)
  predict = make_predict(model, config)
  params_of, to_save = _state_views(scenes, layout, tx)
  logger = _Logger(workdir, resume_step=step)
  total = int(config.train.steps)
  log_every = max(int(config.train.log_every), 1)
  eval_every = int(config.train.eval_every)
  ckpt_every = max(int(config.train.checkpoint_every), 1)
  best_name = best_metric_name(config)

  interrupted = {"flag": False}   # a SIGTERM / Ctrl-C seen by this process
  stop = False                    # agreed by every process: save and stop now
  old_handler = _catch_sigterm(interrupted)

  bar = tqdm(total=total, initial=step, desc="train", unit="step",
             disable=not (progress and _is_main()), dynamic_ncols=True)
  t_last, s_last = time.perf_counter(), step
  pending = None  # the previous step's loss: counted on the bar once computed
  try:
    while step < total and not stop:
      state, m = step_fn(state, train_data)
      step += 1
      if pending is not None:  # one step in flight: the bar counts completed steps
        jax.block_until_ready(pending)
        bar.update(1)
      pending = m["loss"]
      if step % log_every == 0 or step == total:
        m = jax.device_get(parallel.local_copy(m))
        bar.update(1)
        pending = None
        now = time.perf_counter()
        rate = (step - s_last) / max(now - t_last, 1e-9)
        t_last, s_last = now, step
        scalars = _scalars(m, scenes.ids)
        scalars["steps_per_s"] = rate
        logger.write(step, scalars)
        bar.set_postfix(loss=f"{scalars['loss']:.4g}", steps_s=f"{rate:.2f}")
        stop = _agreed(interrupted["flag"])
      if eval_every > 0 and (step % eval_every == 0 or step == total):
        val = _validate_all(model, scenes, eval_data, params_of, state.params, config,
                            predict)
        logger.write(step, val, prefix=eval_split)
        ckpt.save(step, to_save(state), {**meta, "step": step, "val": val},
                  score=val[best_name], best=True)
        if _is_main():
          bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in val.items()
                                                 if "/scene_" not in k))
      if step % ckpt_every == 0 or step == total:
        ckpt.save(step, to_save(state), {**meta, "step": step})
      if jax.process_count() == 1:
        stop = interrupted["flag"]
  except KeyboardInterrupt:
    interrupted["flag"] = stop = True
  finally:
    if pending is not None:
      bar.update(1)
    bar.close()
    if stop and step > (ckpt.latest_step() or 0):
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
  from jax.experimental import multihost_utils
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


_parser = cli.train_parser


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


class _WorkdirGuard:
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
    if not _is_main() or not self.workdir.is_dir() or self._steps() - self.steps:
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


def _check_model_name(cfg) -> None:
  try:
    get_model(cfg.model.name)
  except ValueError as e:
    raise config_lib.ConfigError(f"--{e}") from None


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  debug = "--debug" in argv
  try:
    overrides, rest = config_lib.parse_config_args(argv)
    args = _parser().parse_args(rest)
    cfg = resolve_config(args, overrides)
    config_lib.check_config(cfg)
    _check_model_name(cfg)
    workdir = pathlib.Path(args.workdir or cfg.workdir)
    check_workdir(workdir)
  except config_lib.ConfigError as e:
    if debug:
      raise
    cli.fail(e)
  cli.quiet_absl()
  parallel.initialize_distributed(args.coordinator_address, args.num_processes,
                                  args.process_id, auto=args.distributed)
  from audiogs_jax import runtime
  runtime.tune_host_allocator()
  guard = _WorkdirGuard(workdir)
  try:
    train_and_evaluate(cfg, workdir, evaluate_at_end=not args.no_eval,
                       progress=not args.no_progress, change_schedule=args.change_schedule)
  except cli.user_errors() as e:
    guard.undo()
    if debug:
      raise
    cli.fail(e)
  except KeyboardInterrupt:  # before the loop (which saves and exits 130 itself)
    guard.undo()
    print("interrupted before training started; nothing saved", file=sys.stderr)
    raise SystemExit(130) from None
  return 0


if __name__ == "__main__":
  sys.exit(main())
