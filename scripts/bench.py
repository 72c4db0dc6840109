"""Benchmarks (not tests): render and train-step speed and memory, as JSON.

    python scripts/bench.py                      # render + train step, AudioGS (+ Audio 3DGS)
    python scripts/bench.py --quick              # fewer repeats
    python scripts/bench.py --out bench.json

Render: one 1-s binaural clip at 22050 Hz (F = 257, T = 173, N = 44,461
Gaussians), batches of 1 and 32 poses, after compilation; the time includes the
ISTFT to waveforms. Two paths are timed: from the ``Gaussians`` pytree (the
re-layout to frames-major planes fused into the call) and from ``Planes``
prepared once per scene (``render.prepare``), the inference path. Memory: the
compiled program's temporary + output bytes (XLA memory analysis), and the
device's peak bytes in use where the backend reports it (GPU/TPU).

Runs on whatever device JAX finds. Timings are medians of repeated runs; the
machine may be noisy, so compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audiogs_jax import dsp, geometry  # noqa: E402
from audiogs_jax import render as render_lib  # noqa: E402
from audiogs_jax.gaussians import init_gaussians  # noqa: E402

SR, F, T, L = 22050, 257, 173, 22050


def _time(fn, *args, repeats: int) -> tuple[float, float]:
  """(compile+first call seconds, median seconds of later calls)."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t0
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    ts.append(time.perf_counter() - t0)
  return first, float(np.median(ts))


def _memory(jitted, *args) -> dict:
  out = {}
  try:
    ma = jitted.lower(*args).compile().memory_analysis()
    if ma is not None:
      out["temp_mb"] = ma.temp_size_in_bytes / 2**20
      out["output_mb"] = ma.output_size_in_bytes / 2**20
      out["argument_mb"] = ma.argument_size_in_bytes / 2**20
  except Exception as e:  # not every backend implements it
    out["memory_analysis"] = f"unavailable: {type(e).__name__}"
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    out["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20
  return out


def _scene(key, batch: int, sh_degree: int = 2):
  g = init_gaussians(key, F, T, sh_degree=sh_degree, center=(0.0, 0.0, 0.0), spread=0.5,
                     log_scale=0.0)
  k1, k2, k3 = jax.random.split(key, 3)
  g = g.replace(sh=g.sh + 0.1 * jax.random.normal(k1, g.sh.shape),
                decay=0.3 * jax.random.normal(k2, g.decay.shape))
  rng = np.random.default_rng(0)
  poses = np.stack([geometry.yaw_pose(rng.uniform(-1, 1, 3), rng.uniform(0, 6.28))
                    for _ in range(batch)])
  src = rng.standard_normal((batch, L)).astype(np.float32)
  src_tf = dsp.stft_frames(jnp.asarray(src))
  return g, jnp.asarray(poses, jnp.float32), src_tf


def bench_render(batches=(1, 32), repeats: int = 20, sh_degree: int = 2) -> list:
  cfg = render_lib.RenderConfig(sample_rate=SR)
  out = []
  for b in batches:
    g, poses, src_tf = _scene(jax.random.PRNGKey(b), b, sh_degree)

    @jax.jit
    def from_gaussians(g, poses, src_tf):
      return render_lib.render_waveform_batch(g, poses, src_tf, cfg, length=L,
                                              frames_major=True)

    @jax.jit
    def from_planes(planes, poses, src_tf):
      return render_lib.render_waveform_batch(planes, poses, src_tf, cfg, length=L,
                                              frames_major=True)

    prep = jax.jit(render_lib.prepare, static_argnums=1)
    planes = jax.block_until_ready(prep(g, cfg))
    c1, t1 = _time(from_gaussians, g, poses, src_tf, repeats=repeats)
    c2, t2 = _time(from_planes, planes, poses, src_tf, repeats=repeats)
    _, tp = _time(prep, g, cfg, repeats=repeats)
    out.append({"model": "audiogs", "batch": b, "sh_degree": sh_degree,
                "ms_per_clip": 1e3 * t2 / b, "compile_s": c2,
                "ms_per_clip_from_gaussians": 1e3 * t1 / b, "compile_s_from_gaussians": c1,
                "prepare_ms": 1e3 * tp, "num_gaussians": F * T,
                **_memory(from_planes, planes, poses, src_tf)})
  return out


def bench_train_step(batch: int = 8, repeats: int = 10) -> list:
  from audiogs_jax import config as config_lib
  from audiogs_jax import dataset
  from audiogs_jax import train as train_lib
  from audiogs_jax.models import SceneInfo, get_model
  out = []
  for custom in (True, False):
    cfg = config_lib.load_config_file(ROOT / "configs" / "default.py")
    cfg.train.batch_size = batch
    cfg.model.metres_per_unit = 1.0
    info = SceneInfo(F, T, SR, (0.0, 0.0, 0.0), 1.0)
    state, tx = train_lib.create_train_state(cfg, info, jax.random.PRNGKey(0))
    model = get_model("audiogs")
    if not custom:  # the same model with JAX's autodiff backward, for comparison
      from audiogs_jax.models import audiogs as audiogs_model

      def _render(params, poses, source_tf, config):
        rc = dataclasses.replace(audiogs_model.render_config(config), custom_backward=False)
        return render_lib.render_batch_tf(params, poses, source_tf, rc)
      model = dataclasses.replace(model, render=_render)
    n = 16
    _, poses, src_tf = _scene(jax.random.PRNGKey(1), n)
    rng = np.random.default_rng(1)
    tgt = rng.standard_normal((n, 2, L)).astype(np.float32)
    data = dataset.DeviceData(poses=poses, source_tf=src_tf,
                              target_tf=dsp.stft_frames(jnp.asarray(tgt)),
                              source=jnp.zeros((n, L)), target=jnp.asarray(tgt))
    step = train_lib.make_sampled_step(model, tx, cfg)
    t0 = time.perf_counter()
    state, m = step(state, data)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    ts = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      state, m = step(state, data)
      jax.block_until_ready(m)
      ts.append(time.perf_counter() - t0)
    out.append({"model": "audiogs", "batch": batch,
                "backward": "custom_vjp" if custom else "autodiff",
                "ms_per_step": 1e3 * float(np.median(ts)), "compile_s": compile_s})
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--quick", action="store_true", help="fewer repeats")
  p.add_argument("--out", default=None, help="also write the JSON here")
  p.add_argument("--no-train", action="store_true", help="render only")
  p.add_argument("--no-audio3dgs", action="store_true", help="skip the U-Net model")
  args = p.parse_args(argv)
  reps = 5 if args.quick else 20
  d = jax.devices()[0]
  result = {"device": f"{d.platform}:{d.device_kind}", "num_devices": jax.device_count(),
            "jax": jax.__version__, "render": bench_render(repeats=reps)}
  if not args.no_train:
    result["train_step"] = bench_train_step(repeats=max(reps // 2, 3))
  if not args.no_audio3dgs:
    try:
      sys.path.insert(0, str(ROOT / "scripts"))
      import bench_audio3dgs
      a3 = bench_audio3dgs.bench(width=64, batch=1)
      result["render"].append(a3)
    except ImportError as e:
      result["audio3dgs"] = f"skipped: {e}"
  text = json.dumps(result, indent=2)
  print(text)
  if args.out:
    pathlib.Path(args.out).write_text(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
