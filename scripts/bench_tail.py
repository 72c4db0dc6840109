"""The reverberant tail's cost (``renderer.tail``): train step and render, with and
without it, timed interleaved in one run (same machine load), as JSON rows.

    python scripts/bench.py --tail [--quick] [--out tail.json]

Train step: ``trainstate.make_sampled_step`` of the default config (batch 8, custom
backward, Adam) on a random 16-clip scene, ``model.audiogs.tail_frames`` = 0 (the
paper's renderer) and each K asked for. Render: 32 poses of a 1-s clip to
waveforms (render + ISTFT) from ``renderer.fields`` prepared once, as the library
renders (``predict.make_predict``: with a tail, the direct part and then the tail
with the ISTFT, two compiled programs), and, for the largest K, as one jitted
program (``"programs": 1``). Medians of the interleaved repeats; ``ratio`` is each
row's median over the K = 0 row's.
"""

from __future__ import annotations

import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

from audiogs_jax import backend, dataset, dsp, predict, renderer, trainstate
from audiogs_jax import config as config_lib
from audiogs_jax.gaussians import init_gaussians, to_grid
from audiogs_jax.models import SceneInfo, get_model
from audiogs_jax.models import audiogs as audiogs_model

SR, L = 22050, 22050
ROOT = pathlib.Path(__file__).resolve().parent.parent


def _config(k: int):
  cfg = config_lib.load_config_file(ROOT / "configs" / "default.py")
  cfg.model.audiogs.tail_frames = k
  cfg.model.audiogs.metres_per_unit = 1.0
  return cfg


def _step_fn(k: int, n: int = 16):
  """A zero-argument callable running one train step (state carried inside)."""
  cfg = _config(k)
  kw = dataset.stft_kwargs(cfg)
  t = dsp.num_frames(L, kw["n_fft"], kw["hop_length"])
  f = kw["n_fft"] // 2 + 1
  state, tx = trainstate.create_train_state(cfg, SceneInfo(f, t, SR, (0.0, 0.0, 0.0), 1.0),
                                            jax.random.PRNGKey(0))
  rng = np.random.default_rng(1)
  src = jnp.asarray(rng.standard_normal((n, L)).astype(np.float32))
  ctx = jnp.asarray(rng.standard_normal((n, L)).astype(np.float32))
  poses = jnp.asarray(np.tile(np.eye(4, dtype=np.float32), (n, 1, 1)))
  poses = poses.at[:, :3, 3].set(jnp.asarray(rng.uniform(-1, 1, (n, 3)), jnp.float32))
  tgt = jnp.asarray(rng.standard_normal((n, 2, L)).astype(np.float32))
  data = dataset.ClipShards(poses=poses[None],
                            source_tf=dataset.source_frames(src, ctx, cfg)[None],
                            target_tf=dsp.stft_frames(tgt, **kw)[None],
                            count=jnp.asarray([n], jnp.int32))
  step = trainstate.make_sampled_step(get_model("audiogs"), tx, cfg)
  box = [state]

  def run():
    box[0], metrics = step(box[0], data)
    return metrics

  return run


def _render_fn(k: int, b: int = 32, mode: str = "predict"):
  cfg = _config(k)
  rc = audiogs_model.render_config(cfg)
  kw = rc.stft_kwargs()
  t = dsp.num_frames(L, kw["n_fft"], kw["hop_length"])
  key = jax.random.PRNGKey(2)
  g = to_grid(init_gaussians(key, rc.num_freqs, t, sh_degree=2, center=(0.0, 0.0, 0.0),
                             spread=0.5, log_scale=0.0), rc.num_freqs)
  if k:
    from audiogs_jax.renderer import tail as tail_lib
    g = g.replace(tail=tail_lib.init(key, rc.num_freqs, hop_length=rc.hop_length,
                                     sample_rate=SR))
  fields = jax.jit(renderer.fields, static_argnums=1)(g, rc)
  rng = np.random.default_rng(3)
  src = jnp.asarray(rng.standard_normal((b, L)).astype(np.float32))
  src_tf = dataset.source_frames(src, src, cfg)
  poses = jnp.asarray(np.tile(np.eye(4, dtype=np.float32), (b, 1, 1)))
  if mode == "one_program":     # render + ISTFT as one jitted program
    fn = jax.jit(lambda f, p, s: dsp.istft_frames(renderer.render(f, p, s, rc), length=L,
                                                  **kw))
    return lambda: fn(fields, poses, src_tf)
  # The library's path (predict.make_predict: with a tail, two programs).
  fn = predict.make_predict(get_model("audiogs"), cfg)
  ref = jnp.zeros((L,), jnp.float32)
  return lambda: fn(fields, poses, src_tf, ref)


def bench_tail(frames=(64, 128), repeats: int = 10) -> list:
  """Rows ``{"what", "tail_frames", "ms_per_step" | "ms_per_clip", "compile_s",
  "ratio"}`` (module docstring); the render rows say ``"programs"``: how the
  library renders (``predict.make_predict``: two programs with a tail) and, for the
  largest K, the same render as one jitted program, for comparison."""
  backend.tune_host_allocator()
  rows = []
  for what, unit in (("train_step", "ms_per_step"), ("render_batch32", "ms_per_clip")):
    fns, compile_s = {}, {}
    keys = [(k, "predict") for k in (0, *frames)]
    if what.startswith("render"):
      keys.append((max(frames), "one_program"))
    for key in keys:
      fns[key] = _step_fn(key[0]) if what == "train_step" else _render_fn(key[0], mode=key[1])
      t0 = time.perf_counter()
      jax.block_until_ready(fns[key]())
      compile_s[key] = time.perf_counter() - t0
    times = {key: [] for key in fns}
    for _ in range(repeats):
      for key, fn in fns.items():
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times[key].append(time.perf_counter() - t0)
    per = 32 if what.startswith("render") else 1
    base = float(np.median(times[(0, "predict")]))
    for key in fns:
      med = float(np.median(times[key]))
      row = {"what": what, "tail_frames": key[0], unit: 1e3 * med / per,
             "compile_s": compile_s[key], "ratio": med / base}
      if what.startswith("render"):
        row["programs"] = 1 if key[1] == "one_program" or not key[0] else 2
      rows.append(row)
  return rows
