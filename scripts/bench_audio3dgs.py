"""Speed of the Audio 3DGS model (``audiogs_jax.models.audio3dgs``) on this machine.

Measures, for one 1-s clip at 22050 Hz (F = 257 bins x T = 173 frames) at the
published U-Net width (64):

- ``ms_per_clip``: the whole jitted ``render_batch`` forward (feature maps, U-Net,
  heads, ear split), median over ``repeats`` timed calls after compilation,
  divided by the batch size (``min_ms_per_clip``: the fastest call);
- ``unet_ms_per_clip``: the U-Net alone on the same input (what the PyTorch
  reference computes);
- ``unet_xla_defaults_ms_per_clip``: the U-Net compiled with XLA's default
  options instead of ``runtime.conv_compiler_options()`` (which ``train``,
  ``evaluate`` and ``render`` use, and so does every other JAX timing here);
- ``unet_vs_torch``: ``unet_ms_per_clip / torch_ms_per_clip`` (medians of the
  interleaved calls), and ``unet_vs_torch_min`` (fastest calls);
- ``torch_tuned_alloc_ms_per_clip`` and ``unet_vs_torch_tuned_alloc``: PyTorch
  with ``runtime.tune_host_allocator()`` too (``torch_ms_per_clip`` is PyTorch
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

from audiogs_jax import runtime
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


def bench(width: int = 64, batch: int = 1, repeats: int = 5, *, train_step: bool = True,
          with_torch: bool = True, compute_dtype: str = "float32", seed: int = 0) -> dict:
  """Times the JAX render forward (and a train step, batch 1) and the torch U-Net.

  Returns:
    dict: model, batch, width, ms_per_clip, min_ms_per_clip, unet_ms_per_clip,
    compile_s, train_step_ms (batch 1, else None), torch_ms_per_clip and
    torch_min_ms_per_clip (None without torch), plus the machine's core count,
    load average and versions.
  """
  config = a3.Audio3DGSConfig(unet_width=width, compute_dtype=compute_dtype)
  f, t = config.num_freqs, NUM_FRAMES
  rng = np.random.default_rng(seed)
  src = jnp.asarray(rng.standard_normal((batch, f, t)) + 1j * rng.standard_normal((batch, f, t)),
                    jnp.complex64)
  poses = jnp.asarray(np.tile(np.eye(4), (batch, 1, 1)), jnp.float32)
  poses = poses.at[:, :3, 3].set(jnp.asarray(rng.uniform(-1, 1, (batch, 3)), jnp.float32))
  params = a3.init_params(jax.random.PRNGKey(seed), f, t, config=config,
                          source_mag=np.abs(np.asarray(src[0])), spread=0.5)

  options = runtime.conv_compiler_options()
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

  ref = _torch_reference() if with_torch else None
  torch_call = None
  if ref is not None:
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(seed)
    tmodel = ref.TorchUNet(base_width=width).eval()
    x = torch.from_numpy(np.array(maps)).permute(0, 3, 1, 2).contiguous()

    def torch_call():
      with torch.inference_mode():
        return tmodel(x)
    torch_call()

  import bench as host  # scripts/bench.py: the hypervisor's share of the CPU
  jiffies = host._cpu_jiffies()
  times, unet_times, default_times, torch_times, torch_tuned_times = [], [], [], [], []

  def torch_timed():
    t0 = time.perf_counter()
    torch_call()
    return time.perf_counter() - t0

  # Interleaved, so that every implementation sees the same load. JAX runs as
  # the entry points run it, with runtime.tune_host_allocator(); PyTorch as its
  # users run it, with glibc's default allocator, and also with the tuned one
  # (it helps PyTorch's per-layer allocations, not XLA's). A warm-up call
  # follows each switch, so that every timed call sees a settled heap.
  for _ in range(repeats):
    runtime.tune_host_allocator()
    jax.block_until_ready(fwd())
    times.append(_timed(fwd))
    unet_times.append(_timed(unet_fwd, params.unet, maps))
    default_times.append(_timed(unet_default, params.unet, maps))
    if torch_call is not None:
      torch_call()
      torch_tuned_times.append(torch_timed())
      runtime.restore_host_allocator()
      torch_call()
      torch_times.append(torch_timed())
  runtime.tune_host_allocator()

  steal = host._steal_fraction(jiffies, host._cpu_jiffies())
  step_ms = None
  if train_step and batch == 1:
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
    step_ms = 1e3 * statistics.median(step_times)

  per = lambda ts: None if not ts else 1e3 * statistics.median(ts) / batch
  best = lambda ts: None if not ts else 1e3 * min(ts) / batch
  out = {
      "model": "audio3dgs_unet", "batch": batch, "width": width,
      "compute_dtype": compute_dtype, "grid": [f, t],
      "ms_per_clip": per(times), "min_ms_per_clip": best(times),
      "unet_ms_per_clip": per(unet_times),
      "unet_xla_defaults_ms_per_clip": per(default_times),
      "unet_vs_torch": None if not torch_times else (
          statistics.median(unet_times) / statistics.median(torch_times)),
      "unet_vs_torch_min": None if not torch_times else min(unet_times) / min(torch_times),
      "xla_compiler_options": options, "compile_s": compile_s,
      "train_step_ms": step_ms,
      "torch_ms_per_clip": per(torch_times), "torch_min_ms_per_clip": best(torch_times),
      "torch_tuned_alloc_ms_per_clip": per(torch_tuned_times),
      "unet_vs_torch_tuned_alloc": None if not torch_times else (
          statistics.median(unet_times) / statistics.median(torch_tuned_times)),
      "repeats": repeats, "host_steal_fraction": steal, "cpu_count": os.cpu_count(),
      "load_avg_1min": os.getloadavg()[0], "jax_version": jax.__version__,
      "backend": jax.default_backend(),
  }
  if ref is not None:
    import torch
    out["torch_version"] = torch.__version__
    out["torch_threads"] = torch.get_num_threads()
  return out


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
