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
- ``make_train_step(model, tx, config)``: a pure ``train_step(state, batch) ->
  (state, metrics)``; ``make_sampled_step`` jit-compiles it once, with the state
  donated and the batch drawn on the device from the scene's clips.
- ``train_and_evaluate(config, workdir)``: the loop (progress bar, TensorBoard
  and ``metrics.jsonl`` logs, periodic validation, orbax checkpoints, resume).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import signal
import sys
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from audiogs_jax import checkpoint as ckpt_lib
from audiogs_jax import config as config_lib
from audiogs_jax import dataset
from audiogs_jax import dsp
from audiogs_jax.models import SceneInfo, get_model

__all__ = ["TrainState", "create_train_state", "make_optimizer", "make_train_step",
           "make_sampled_step", "predict_waveforms", "train_and_evaluate", "main"]


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


# ----------------------------------------------------------------------------- steps

def _global_norm(tree):
  norm = getattr(getattr(optax, "tree", None), "norm", None)
  return norm(tree) if norm is not None else optax.global_norm(tree)


def make_train_step(model, tx, config):
  """``train_step(state, batch) -> (state, metrics)``, pure, not yet jitted.

  ``batch``: ``poses [B,4,4]``, ``source_tf [B,T,F]``, ``target_tf [B,2,T,F]``.
  """

  def loss_fn(params, batch):
    pred = model.render(params, batch["poses"], batch["source_tf"], config)
    return model.loss(params, pred, batch["target_tf"], batch["source_tf"], config)

  def train_step(state: TrainState, batch):
    (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "grad_norm": _global_norm(grads), **parts}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return train_step


def make_sampled_step(model, tx, config):
  """Jitted ``step(state, data) -> (state, metrics)`` drawing its batch on device.

  The batch key is ``fold_in(state.rng, state.step)``: the data order depends
  only on the seed and the step, so a resumed run sees the same batches.
  """
  train_step = make_train_step(model, tx, config)
  batch_size = int(config.train.batch_size)

  def step(state: TrainState, data: dataset.DeviceData):
    key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    batch = dataset.sample_batch(data, key, batch_size,
                                 frame_roll=bool(config.train.get("frame_roll", False)))
    return train_step(state, batch)

  return jax.jit(step, donate_argnums=0)


def make_predict(model, config):
  """Jitted ``(params, poses [B,4,4], source_tf [B,T,F], length) -> [B,2,L]``."""
  kw = dataset.stft_kwargs(config)

  @jax.jit
  def predict(params, poses, source_tf, length_ref):
    spec = model.render(params, poses, source_tf, config)
    return dsp.istft_frames(spec, length=length_ref.shape[-1], **kw)

  return predict


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
  return SceneInfo(num_freqs=kw["n_fft"] // 2 + 1, num_frames=frames,
                   sample_rate=scene.sample_rate, center=dataset.listener_center(scene),
                   metres_per_unit=dataset.metres_per_unit(scene), source_mag=src_mag)


def scene_info_from_meta(meta: dict) -> SceneInfo:
  s = dict(meta["scene_info"])
  return SceneInfo(num_freqs=int(s["num_freqs"]), num_frames=int(s["num_frames"]),
                   sample_rate=int(s["sample_rate"]), center=tuple(s["center"]),
                   metres_per_unit=s.get("metres_per_unit"), source_mag=None)


def best_metric_name(config) -> str:
  return "mag_avcloud" if config.data.kind == "replay_nvas" else "mag_avnerf"


def _is_main() -> bool:
  return jax.process_index() == 0


class _Logger:
  """metrics.jsonl + TensorBoard event files (process 0 only)."""

  def __init__(self, workdir: pathlib.Path):
    self.enabled = _is_main()
    self.jsonl = None
    self.tb = None
    if not self.enabled:
      return
    self.jsonl = open(workdir / "metrics.jsonl", "a", buffering=1)
    try:
      from tensorboardX import SummaryWriter
      self.tb = SummaryWriter(str(workdir / "tb"))
    except ImportError:  # logging still goes to metrics.jsonl
      self.tb = None

  def write(self, step: int, scalars: dict, prefix: str = "train") -> None:
    if not self.enabled:
      return
    rec = {"step": int(step), "split": prefix,
           **{k: (None if v is None else float(v)) for k, v in scalars.items()}}
    self.jsonl.write(json.dumps(rec) + "\n")
    if self.tb is not None:
      for k, v in scalars.items():
        if v is not None:
          self.tb.add_scalar(f"{prefix}/{k}", float(v), int(step))

  def close(self):
    if self.jsonl:
      self.jsonl.close()
    if self.tb is not None:
      self.tb.close()


def validate(model, params, eval_data, scene, config, predict) -> dict:
  """Quick validation metrics (MAG both protocols, ENV, LRE) on a split."""
  from audiogs_jax import metrics
  pred = predict_waveforms(model, params, eval_data.poses, eval_data.source_tf,
                           scene.clip_length, config, int(config.eval.batch_size), predict)
  tgt = scene.binaural
  return {"mag_avnerf": float(np.mean(metrics.mag_avnerf(pred, tgt))),
          "mag_avcloud": float(np.mean(metrics.mag_avcloud(pred, tgt))),
          "env": float(np.mean(metrics.env(pred, tgt))),
          "lre": float(np.mean(metrics.lre(pred, tgt)))}


# ----------------------------------------------------------------------------- main loop

def train_and_evaluate(config, workdir, *, evaluate_at_end: bool = True,
                       progress: bool = True) -> TrainState:
  """Train (resuming from ``workdir`` when it has a checkpoint), then evaluate."""
  from tqdm import tqdm

  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  model = get_model(config.model.name)

  train_scene = dataset.load_split(config, config.data.train_split, progress=progress)
  eval_scene = dataset.load_split(config, config.data.eval_split, progress=progress)
  info = scene_info_of(train_scene, config)
  train_data = dataset.to_device(train_scene, config)
  eval_data = dataset.to_device(eval_scene, config)

  state, tx = create_train_state(config, info, jax.random.PRNGKey(int(config.seed)),
                                 norm_factor=train_scene.norm_factor)
  meta = {"norm_factor": float(train_scene.norm_factor), "model": config.model.name,
          "scene_info": {"num_freqs": info.num_freqs, "num_frames": info.num_frames,
                         "sample_rate": info.sample_rate, "center": list(info.center),
                         "metres_per_unit": info.metres_per_unit},
          "clip_length": train_scene.clip_length,
          "source_position": (None if train_scene.source_position is None
                              else [float(v) for v in train_scene.source_position]),
          "scene_meta": train_scene.meta}
  ckpt = ckpt_lib.Checkpointer(workdir, keep=int(config.train.keep))
  start = ckpt.latest_step()
  if start is not None:
    try:
      state, _ = ckpt.restore(state, start)
    except ckpt_lib.CheckpointError:
      ckpt.close()
      raise
    if _is_main():
      print(f"resuming from {workdir}/checkpoints/{start}", file=sys.stderr)
  # Saved once the config is known to fit the workdir's checkpoints, so that a
  # failed resume (say, an override that changes the model) leaves it intact.
  if _is_main():
    config_lib.save_config(config, workdir / "config.json")

  step_fn = make_sampled_step(model, tx, config)
  predict = make_predict(model, config)
  logger = _Logger(workdir)
  total = int(config.train.steps)
  log_every = max(int(config.train.log_every), 1)
  eval_every = int(config.train.eval_every)
  ckpt_every = max(int(config.train.checkpoint_every), 1)
  best_name = best_metric_name(config)
  step = int(state.step)

  interrupted = {"flag": False}

  def _on_sigterm(signum, frame):  # save and stop cleanly on SIGTERM
    interrupted["flag"] = True

  old_handler = None
  try:
    old_handler = signal.signal(signal.SIGTERM, _on_sigterm)
  except ValueError:  # not in the main thread
    pass

  bar = tqdm(total=total, initial=step, desc="train", unit="step",
             disable=not (progress and _is_main()), dynamic_ncols=True)
  t_last, s_last = time.perf_counter(), step
  try:
    while step < total and not interrupted["flag"]:
      state, m = step_fn(state, train_data)
      step += 1
      bar.update(1)
      if step % log_every == 0 or step == total:
        m = jax.device_get(m)
        now = time.perf_counter()
        rate = (step - s_last) / max(now - t_last, 1e-9)
        t_last, s_last = now, step
        scalars = {k: float(v) for k, v in m.items()}
        scalars["steps_per_s"] = rate
        logger.write(step, scalars)
        bar.set_postfix(loss=f"{scalars['loss']:.4g}", steps_s=f"{rate:.1f}")
      if eval_every > 0 and (step % eval_every == 0 or step == total):
        val = validate(model, state.params, eval_data, eval_scene, config, predict)
        logger.write(step, val, prefix=config.data.eval_split)
        ckpt.save(step, state, {**meta, "step": step, "val": val},
                  score=val[best_name], best=True)
        bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in val.items()))
      if step % ckpt_every == 0 or step == total:
        ckpt.save(step, state, {**meta, "step": step})
  except KeyboardInterrupt:
    interrupted["flag"] = True
  finally:
    bar.close()
    if interrupted["flag"] and step > (ckpt.latest_step() or 0):
      ckpt.save(step, state, {**meta, "step": step})
      print(f"interrupted: saved step {step} to {workdir}/checkpoints", file=sys.stderr)
    ckpt.wait()
    ckpt.close()
    logger.close()
    if old_handler is not None:
      signal.signal(signal.SIGTERM, old_handler)

  if interrupted["flag"]:
    raise SystemExit(130)
  if evaluate_at_end and _is_main():
    from audiogs_jax import evaluate
    evaluate.evaluate_workdir(workdir, split=config.data.eval_split, progress=progress)
  return state


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m audiogs_jax.train",
      description="Train an audio Gaussian splatting model (AudioGS or Audio 3DGS) on a "
                  "scene, then evaluate it. With no arguments: AudioGS on the built-in "
                  "synthetic scene (generated on first use, cached).",
      epilog="Any config field can be overridden: --config.train.steps=2000 "
             "--config.model.sh_degree=3 --config.data.root=/data/release ... "
             "Running again on the same --workdir resumes from its latest checkpoint.")
  p.add_argument("--config", default=None,
                 help="config file (default: configs/default.py; or a saved workdir's "
                      "config when resuming)")
  p.add_argument("--workdir", default=None,
                 help="output folder: checkpoints, logs, evaluation "
                      "(default: the config's workdir, runs/<name>)")
  p.add_argument("--no-eval", action="store_true", help="skip the evaluation at the end")
  p.add_argument("--no-progress", action="store_true", help="no progress bars")
  return p


def resolve_config(args, overrides: dict):
  """Config from --config, else from a resumed workdir, else the default."""
  saved = pathlib.Path(args.workdir) / "config.json" if args.workdir else None
  if args.config is None and saved is not None and saved.exists():
    cfg = config_lib.load_saved_config(saved)
  else:
    cfg = config_lib.load_config_file(args.config or config_lib.default_config_path())
  return config_lib.apply_overrides(cfg, overrides)


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  try:
    overrides, rest = config_lib.parse_config_args(argv)
    args = _parser().parse_args(rest)
    cfg = resolve_config(args, overrides)
  except config_lib.ConfigError as e:
    config_lib.error_exit(str(e))
  workdir = args.workdir or cfg.workdir
  from audiogs_jax.data.scene import DataError
  try:
    train_and_evaluate(cfg, workdir, evaluate_at_end=not args.no_eval,
                       progress=not args.no_progress)
  except (DataError, config_lib.ConfigError, ckpt_lib.CheckpointError) as e:
    config_lib.error_exit(str(e))
  return 0


if __name__ == "__main__":
  sys.exit(main())
