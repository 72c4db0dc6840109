"""The streaming renderer's benchmark (``scripts/bench.py --stream``), as JSON rows.

Speed (``bench_stream``): ``audiogs_jax.stream``'s jitted step as the
listening page's server calls it (host block in, host binaural block out) on
a 1-s-clip AudioGS model (F = 257, T = 173: 44,461 Gaussians, SH degree 2) with
the default config's render settings (Woodworth ITD),
for each block size and gain mode, with the pose still (the gains are cached)
and with a new pose every block (the gains recomputed every block: a head
that never stops turning). Per row: ``ms_per_block`` (median; ``min_ms`` the
best), ``realtime_factor`` = block duration / time per block, and
``latency_ms`` = pose-to-ear latency = block duration (a pose waits at most
one block) + STFT look-ahead (``n_fft - hop`` samples) + the moving-pose
render time. ``host_steal_fraction`` and ``loadavg`` say how busy the
(shared) machine was.

Cost (``stream_mag``): MAG (AV-NeRF protocol) on a trained workdir's
validation clips of the clip renderer and of each clip streamed at its pose
(``stream.stream_clips``) with each gain mode.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from audiogs_jax import config as config_lib
from audiogs_jax import dataset, metrics, predict, renderer, stream, workdir
from audiogs_jax.models import audiogs
from audiogs_jax.gaussians import GaussianGrid
from audiogs_jax.renderer import tail as tail_lib

SR, F, T = 22050, 257, 173
MODES = (("gain_mean", 1), ("gain_mean", 4), ("gain_mean", 8), ("gain_mean", 16),
         ("param_mean", 1))


def _model(seed=0, tail_frames=0):
  """A 1-s-clip AudioGS grid like ``init_gaussians`` + noise (built in numpy: fast),
  with a ``tail_frames``-tap reverberant tail when asked."""
  rng = np.random.default_rng(seed)
  sh = np.zeros((2, 9, T, F), np.float32)
  sh[:, 0] = 1.0 / 0.28209479177387814
  sh += 0.1 * rng.standard_normal(sh.shape).astype(np.float32)
  return GaussianGrid(xyz=0.5 * rng.standard_normal((3, T, F)).astype(np.float32),
                      sh=jnp.asarray(sh),
                      decay=0.3 * rng.standard_normal((T, F)).astype(np.float32),
                      phase=np.zeros((2, T, F), np.float32), rotation=None,
                      log_scale=np.float32(0.0),
                      tail=tail_lib.init(jax.random.PRNGKey(seed), F, hop_length=128,
                                         sample_rate=SR)
                      if tail_frames else None)


def _render_config(tail_frames=None) -> renderer.RenderConfig:
  """The default config's AudioGS render settings (Woodworth ITD, fast math, its
  reverberant tail; ``tail_frames`` overrides the tail's length)."""
  rc = audiogs.render_config(config_lib.load_config_file(config_lib.default_config_path()))
  return rc if tail_frames is None else dataclasses.replace(rc, tail_frames=tail_frames)


def _poses(n: int) -> np.ndarray:
  view = stream.TopView()
  t = np.linspace(0.0, 2 * np.pi, n)
  return np.stack([view.pose(0.8 * np.cos(a), 0.8 * np.sin(a), a + 1.0) for a in t])


def _time_blocks(s: stream.Streamer, poses: np.ndarray, repeats: int) -> list:
  """Seconds per ``step`` call (host arrays in and out), one per block."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((repeats, s.config.block)).astype(np.float32)
  state = s.init(poses[0])
  for i in range(5):  # compile and warm up
    state, y = s.step(state, x[i % repeats], poses[i % len(poses)])
  np.asarray(y)
  ts = []
  for i in range(repeats):
    t0 = time.perf_counter()
    state, y = s.step(state, x[i], poses[i % len(poses)])
    np.asarray(y)
    ts.append(time.perf_counter() - t0)
  return ts


def bench_stream(blocks=(128, 256, 512), repeats: int = 400, modes=MODES,
                 without_tail=((256, "gain_mean", 4),)) -> list:
  """Rows per block size and gain mode with the default config's tail, and for the
  ``without_tail`` settings also without it (the tail's cost in one run)."""
  import bench  # the parent script's steal counters
  k = _render_config().tail_frames
  plan = [(b, m, st, k) for b in blocks for m, st in modes]
  plan += [(b, m, st, 0) for b, m, st in without_tail if k]
  rows = []
  for block, mode, stride, tail in plan:
    cfg = stream.StreamConfig(render=_render_config(tail), block=block, gain_mode=mode,
                              frame_stride=stride)
    s = stream.Streamer(sp=stream.stream_params(_model(tail_frames=tail), cfg),
                        config=cfg)
    moving = _poses(repeats)
    still = moving[:1]
    j0, load0 = bench._cpu_jiffies(), os.getloadavg()[0]
    t_move, t_still = [], []
    for _ in range(4):  # interleaved: both see the same machine load
      t_move += _time_blocks(s, moving, repeats // 4)
      t_still += _time_blocks(s, still, repeats // 4)
    steal = bench._steal_fraction(j0, bench._cpu_jiffies())
    block_ms = 1000.0 * block / SR
    look_ms = 1000.0 * stream.latency_samples(cfg) / SR
    for pose_kind, ts in (("moving", t_move), ("still", t_still)):
      ms = 1000.0 * float(np.median(ts))
      rows.append({
          "bench": "stream_step", "block": block, "block_ms": round(block_ms, 3),
          "gain_mode": mode, "frame_stride": stride, "pose": pose_kind,
          "tail_frames": tail,
          "gaussians_per_pose": int(np.prod(s.sp.xyz.shape[1:])),
          "ms_per_block": round(ms, 4), "min_ms": round(1000.0 * min(ts), 4),
          "p90_ms": round(1000.0 * float(np.percentile(ts, 90)), 4),
          "realtime_factor": round(block_ms / ms, 1),
          "latency_ms": round(block_ms + look_ms + ms, 2),
          "lookahead_ms": round(look_ms, 2), "host_steal_fraction": steal,
          "loadavg": round(load0, 2), "cpu_count": os.cpu_count(),
      })
  return rows


def stream_mag(workdir_path, split: str = "val", modes=MODES) -> list:
  """MAG of the clip renderer and of the streamed clips on ``split``."""
  config, model, params, meta = workdir.load_trained(workdir_path)
  scene = dataset.load_split(config, split, progress=False)
  data = dataset.to_device(scene, config)
  nf = float(meta.get("norm_factor", 1.0))
  target = scene.binaural * nf
  clip = predict.predict_waveforms(model, params, data.poses, data.source_tf,
                                   scene.clip_length, config, 4)
  ref = float(np.mean(metrics.mag_avnerf(clip * nf, target)))
  rows = [{"bench": "stream_mag", "workdir": str(workdir_path), "split": split,
           "num_clips": len(scene), "renderer": "clip", "mag_avnerf": round(ref, 5)}]
  for mode, stride in modes:
    s = stream.load_streamer(workdir_path, gain_mode=mode, frame_stride=stride)
    run = jax.jit(lambda a, b, s=s: stream.stream_clips(s.sp, a, b, s.config))
    y = np.asarray(run(jnp.asarray(scene.source), data.poses)) * nf
    mag = float(np.mean(metrics.mag_avnerf(y, target)))
    rows.append({"bench": "stream_mag", "workdir": str(workdir_path), "split": split,
                 "num_clips": len(scene), "renderer": "stream", "gain_mode": mode,
                 "frame_stride": stride, "mag_avnerf": round(mag, 5),
                 "cost_vs_clip_percent": round(100.0 * (mag - ref) / ref, 2)})
  return rows
