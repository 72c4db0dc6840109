"""The training state and the compiled training step (as in the Flax examples).

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
- Multi-scene jobs: one independent state per scene, stacked along a leading
  scene axis (``stack_states``); the step is vmapped over the scenes and the
  scene axis lies over the mesh's ``scenes`` axis.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from audiogs_jax import backend
from audiogs_jax import config as config_lib
from audiogs_jax import dataset
from audiogs_jax import parallel
from audiogs_jax.models import RenderModel, SceneInfo, get_model

__all__ = ["TrainState", "create_train_state", "prepare_fit", "stack_states", "scene_state_axes",
           "make_optimizer", "make_train_step", "make_sampled_step", "compiler_options"]


@struct.dataclass
class TrainState:
  step: jnp.ndarray          # int32 []
  params: Any
  opt_state: Any
  rng: jnp.ndarray           # uint32 [2], raw PRNG key data
  norm_factor: jnp.ndarray   # float32 [], audio was divided by this


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


def prepare_fit(config, scene):
  """The model's data-driven start on the training split ``scene``
  (``RenderModel.fit``), a function ``params -> params``, or None (the model or its
  config has none). Called before the scene analysis (``workdir.scene_info_of``), so
  that what the model prepares in the background (AudioGS: compiling its start)
  overlaps that analysis and ``init``."""
  model = get_model(config.model.name)
  return None if model.fit is None else model.fit(scene, config)


def create_train_state(config, scene_info: SceneInfo, key: jax.Array,
                       norm_factor: float = 1.0, scene=None, fit=None):
  """Initial ``TrainState`` and its optimiser; with ``fit`` (``prepare_fit``'s) or
  the training split ``scene`` (``data.scene.SceneData``), the model's data-driven
  start."""
  model = get_model(config.model.name)
  k_init, k_train = jax.random.split(key)
  params = model.init(k_init, scene_info, config)
  if fit is None and scene is not None:
    fit = prepare_fit(config, scene)
  if fit is not None:
    params = fit(params)
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


def compiler_options(model: RenderModel) -> Optional[dict]:
  """The backend's XLA options for jitting ``model``'s programs (None: defaults)."""
  return backend.compiler_options(model.convolutional)


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
