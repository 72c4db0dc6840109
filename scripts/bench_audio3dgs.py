"""Speed of the Audio 3DGS model (``audiogs_jax.models.audio3dgs``) on this machine.

Measures, for one 1-s clip at 22050 Hz (F = 257 bins x T = 173 frames) at the
published U-Net width (64):

- ``ms_per_clip``: the whole jitted ``render_batch`` forward (feature maps, U-Net,
  heads, ear split), median over ``repeats`` timed calls after compilation,
  divided by the batch size (``min_ms_per_clip``: the fastest call);
- ``unet_ms_per_clip``: the U-Net alone on the same input (what the PyTorch
  reference computes);
- ``unet_xla_defaults_ms_per_clip``: the U-Net compiled with XLA's default
  options instead of ``backend.conv_compiler_options()`` (which ``train``,
  ``evaluate`` and ``render`` use, and so does every other JAX timing here);
- ``unet_vs_torch``: ``unet_ms_per_clip / torch_ms_per_clip`` (medians of the
  interleaved calls), and ``unet_vs_torch_min`` (fastest calls);
- ``torch_tuned_alloc_ms_per_clip`` and ``unet_vs_torch_tuned_alloc``: PyTorch
  with ``backend.tune_host_allocator()`` too (``torch_ms_per_clip`` is PyTorch
  as its users run it, with glibc's default allocator; the JAX calls always run
  with the tuned one, as ``train``, ``evaluate`` and ``render`` do);
- ``host_steal_fraction``: the share of the host's CPU time the hypervisor
  gave to other machines while the forward passes were timed (None off Linux);
- ``compile_s``: lowering + compiling ``render_batch`` for this batch shape;
- ``train_step_ms`` (batch 1 only): one jitted loss + grad + Adam update;
- ``torch_ms_per_clip``: the same U-Net in PyTorch
  (``scripts/torch_unet_reference.py``, fp32, eval, ``inference_mode``,
  ``torch.set_num_threads(os.cpu_count())``, glibc's default allocator), in
  this process, timed interleaved with the JAX calls so that both see the
  same machine load.

Usage::

    python scripts/bench_audio3dgs.py                      # batch 1 and 8, JSON lines
    python scripts/bench_audio3dgs.py --batch 1 --repeats 7
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from audiogs_jax import backend
from audiogs_jax.models import audio3dgs as a3

NUM_FRAMES = 173  # 1 s at 22050 Hz, hop 128 (librosa centred frames)


def _torch_reference():
  try:
    import torch  # noqa: F401
  except ImportError:
    return None
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
  import torch_unet_reference
  return torch_unet_reference


def _timed(fn, *args):
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - t0


def _inputs(width: int, batch: int, compute_dtype: str, seed: int):
  """Config, parameters, poses ``[B, 4, 4]`` and sources ``[B, F, T]`` of one run."""
  config = a3.Audio3DGSConfig(unet_width=width, compute_dtype=compute_dtype)
  f, t = config.num_freqs, NUM_FRAMES
  rng = np.random.default_rng(seed)
  src = jnp.asarray(rng.standard_normal((batch, f, t)) + 1j * rng.standard_normal((batch, f, t)),
                    jnp.complex64)
  poses = jnp.asarray(np.tile(np.eye(4), (batch, 1, 1)), jnp.float32)
  poses = poses.at[:, :3, 3].set(jnp.asarray(rng.uniform(-1, 1, (batch, 3)), jnp.float32))
  params = a3.init_params(jax.random.PRNGKey(seed), f, t, config=config,
                          source_mag=np.abs(np.asarray(src[0])), spread=0.5)
  return config, params, poses, src


def _torch_call(width: int, maps, seed: int):
  """A warmed-up no-argument call of the PyTorch U-Net on ``maps``, or None without torch."""
  ref = _torch_reference()
  if ref is None:
    return None
  import torch
  torch.set_num_threads(os.cpu_count() or 1)
  torch.manual_seed(seed)
  tmodel = ref.TorchUNet(base_width=width).eval()
  x = torch.from_numpy(np.array(maps)).permute(0, 3, 1, 2).contiguous()

  def call():
    with torch.inference_mode():
      return tmodel(x)
  call()
  return call


def _interleaved(repeats: int, fwd, unet_fwd, unet_default, unet_args, torch_call) -> dict:
  """Timed calls (seconds) of every implementation, interleaved so that all see
  the same load. JAX runs as the entry points run it, with
  backend.tune_host_allocator(); PyTorch as its users run it, with glibc's
  default allocator, and also with the tuned one (it helps PyTorch's per-layer
  allocations, not XLA's). A warm-up call follows each switch, so that every
  timed call sees a settled heap."""
  ts = {k: [] for k in ("render", "unet", "default", "torch", "torch_tuned")}

  def torch_timed():
    t0 = time.perf_counter()
    torch_call()
    return time.perf_counter() - t0

  for _ in range(repeats):
    backend.tune_host_allocator()
    jax.block_until_ready(fwd())
    ts["render"].append(_timed(fwd))
    ts["unet"].append(_timed(unet_fwd, *unet_args))
    ts["default"].append(_timed(unet_default, *unet_args))
    if torch_call is not None:
      torch_call()
      ts["torch_tuned"].append(torch_timed())
      backend.restore_host_allocator()
      torch_call()
      ts["torch"].append(torch_timed())
  backend.tune_host_allocator()
  return ts


def _train_step_ms(params, poses, src, config, options, repeats: int) -> float:
  """Median ms of one jitted loss + grad + Adam update (batch of ``poses``)."""
  opt = optax.adam(1e-3)
  target = jnp.stack([src * 0.5, src * 0.3], axis=1)

  @functools.partial(jax.jit, compiler_options=options)
  def step(p, state):
    (val, _), g = jax.value_and_grad(
        lambda q: a3.loss(a3.render_batch(q, poses, src, config), target), has_aux=True)(p)
    updates, state = opt.update(g, state, p)
    return optax.apply_updates(p, updates), state, val

  state = opt.init(params)
  p, state, _ = jax.block_until_ready(step(params, state))
  step_times = []
  for _ in range(max(2, repeats // 2)):
    t0 = time.perf_counter()
    p, state, _ = jax.block_until_ready(step(p, state))
    step_times.append(time.perf_counter() - t0)
  return 1e3 * statistics.median(step_times)


def _versions(with_torch_ref: bool) -> dict:
  out = {"cpu_count": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
         "jax_version": jax.__version__, "backend": jax.default_backend()}
  if with_torch_ref:
    import torch
    out["torch_version"] = torch.__version__
    out["torch_threads"] = torch.get_num_threads()
  return out


def bench(width: int = 64, batch: int = 1, repeats: int = 5, *, train_step: bool = True,
          with_torch: bool = True, compute_dtype: str = "float32", seed: int = 0) -> dict:
  """Times the JAX render forward (and a train step, batch 1) and the torch U-Net.

  Returns:
    dict: model, batch, width, ms_per_clip, min_ms_per_clip, unet_ms_per_clip,
    compile_s, train_step_ms (batch 1, else None), torch_ms_per_clip and
    torch_min_ms_per_clip (None without torch), plus the machine's core count,
    load average and versions.
  """
  config, params, poses, src = _inputs(width, batch, compute_dtype, seed)
  options = backend.conv_compiler_options()
  render = jax.jit(a3.render_batch, static_argnames="config")
  t0 = time.perf_counter()
  compiled = render.lower(params, poses, src, config=config).compile(compiler_options=options)
  compile_s = time.perf_counter() - t0
  fwd = lambda: compiled(params, poses, src)
  jax.block_until_ready(fwd())

  unet = a3.unet_module(config)
  maps = jax.jit(jax.vmap(a3.feature_maps, in_axes=(None, 0, None)), static_argnums=2)(
      params.points, poses, config)
  unet_fwd = jax.jit(unet.apply).lower(params.unet, maps).compile(compiler_options=options)
  unet_default = jax.jit(unet.apply).lower(params.unet, maps).compile()
  jax.block_until_ready(unet_fwd(params.unet, maps))
  jax.block_until_ready(unet_default(params.unet, maps))
  torch_call = _torch_call(width, maps, seed) if with_torch else None

  import bench as host  # scripts/bench.py: the hypervisor's share of the CPU
  jiffies = host._cpu_jiffies()
  ts = _interleaved(repeats, fwd, unet_fwd, unet_default, (params.unet, maps), torch_call)
  steal = host._steal_fraction(jiffies, host._cpu_jiffies())
  step_ms = None
  if train_step and batch == 1:
    step_ms = _train_step_ms(params, poses, src, config, options, repeats)

  per = lambda k: None if not ts[k] else 1e3 * statistics.median(ts[k]) / batch
  best = lambda k: None if not ts[k] else 1e3 * min(ts[k]) / batch
  ratio = lambda k: None if not ts["torch"] else (
      statistics.median(ts["unet"]) / statistics.median(ts[k]))
  return {
      "model": "audio3dgs_unet", "batch": batch, "width": width,
      "compute_dtype": compute_dtype, "grid": [config.num_freqs, NUM_FRAMES],
      "ms_per_clip": per("render"), "min_ms_per_clip": best("render"),
      "unet_ms_per_clip": per("unet"),
      "unet_xla_defaults_ms_per_clip": per("default"),
      "unet_vs_torch": ratio("torch"),
      "unet_vs_torch_min": None if not ts["torch"] else min(ts["unet"]) / min(ts["torch"]),
      "xla_compiler_options": options, "compile_s": compile_s,
      "train_step_ms": step_ms,
      "torch_ms_per_clip": per("torch"), "torch_min_ms_per_clip": best("torch"),
      "torch_tuned_alloc_ms_per_clip": per("torch_tuned"),
      "unet_vs_torch_tuned_alloc": ratio("torch_tuned"),
      "repeats": repeats, "host_steal_fraction": steal,
      **_versions(torch_call is not None),
  }


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--width", type=int, default=64)
  ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--compute-dtype", default="float32", choices=["float32", "bfloat16"])
  ap.add_argument("--no-train", action="store_true")
  ap.add_argument("--no-torch", action="store_true")
  a = ap.parse_args()
  for b in a.batch:
    print(json.dumps(bench(a.width, b, a.repeats, train_step=not a.no_train,
                           with_torch=not a.no_torch, compute_dtype=a.compute_dtype)),
          flush=True)


if __name__ == "__main__":
  main()
