"""Benchmarks (not tests): render and train-step speed and memory, as JSON.

    python scripts/bench.py                      # render + train step, AudioGS (+ Audio 3DGS)
    python scripts/bench.py --quick              # fewer repeats
    python scripts/bench.py --out bench.json
    python scripts/bench.py --scaling [--quick]  # train step vs devices, batch, clip length
    python scripts/bench.py --stream [--stream-workdir DIR]   # streaming step only
    python scripts/bench.py --time-to-quality [--plot ttq.png]  # metrics vs training time
    python scripts/bench.py --time-to-quality --ttq-compare --ttq-rooms  # vs the previous recipe
    python scripts/bench.py --tail [--quick]     # the reverberant tail's cost

``stream``: the streaming renderer's step (``audiogs_jax.stream``) per block
size and gain mode, with a still and a moving pose: ms per block, real-time
factor and pose-to-ear latency (block + STFT look-ahead + render); with
``--stream-workdir``, MAG of the streamed validation clips against the clip
renderer's (``scripts/bench_stream.py``). Included in the default run.

``--time-to-quality``: one training run of ``--ttq-config`` (default
``configs/default.py``), validation MAG (both protocols), ENV and LRE against
training seconds and steps, the best baseline's values, and when AudioGS first
beats them all (``scripts/bench_ttq.py``); ``--ttq-compare`` also trains with the
previous recipe (the constant start of the published method) until it beats them,
``--ttq-rooms`` on the
three benchmark rooms too.

``tail``: the train step and the render with and without the reverberant tail
(``renderer.tail``), interleaved in one run (``scripts/bench_tail.py``). Included in
the default run.

Render: one 1-s binaural clip at 22050 Hz (F = 257, T = 173, N = 44,461
Gaussians), batches of 1 and 32 poses, after compilation; the time includes the
ISTFT to waveforms. Timed with ``backend.tune_host_allocator()``, as the entry points run
(``train``, ``evaluate`` and ``render`` call it). Two paths are timed: from the
``GaussianGrid`` parameters (``renderer.fields`` fused into the call) and from their
``renderer.fields`` prepared once per scene, the inference path, for batch 32 also in
chunks of 2 poses (``lax.map``), each with glibc's default allocator and with
``backend.tune_host_allocator()``: ``interleaved_ms_per_clip`` holds
the four combinations, timed interleaved (same machine load), medians, and
``interleaved_min_ms_per_clip`` the best of the repeats; ``host_steal_fraction``
is the share of the host's CPU time the hypervisor gave to other tenants while
they ran (Linux ``/proc/stat``; on the 2-core VM it ranged from 6 % to 38 %).
Memory: the
compiled program's temporary + output bytes (XLA memory analysis), and the
device's peak bytes in use where the backend reports it (GPU/TPU).

``--scaling``: the AudioGS train step (``trainstate.make_sampled_step`` on a
``parallel.Layout``) against the number of devices (data parallel; on CPU
forced host devices, one subprocess per count, which share the CPU's cores;
on GPU/TPU the first 1, 2, 4 real devices), the batch size and the clip
length (1, 2, 4 s: 44,461, 88,665 and 177,330 Gaussians).

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

from audiogs_jax import backend, dataset, dsp, geometry, parallel, renderer  # noqa: E402
from audiogs_jax import trainstate, workdir  # noqa: E402
from audiogs_jax.data.scene import SceneData  # noqa: E402
from audiogs_jax import config as config_lib  # noqa: E402
from audiogs_jax.gaussians import init_gaussians, to_grid  # noqa: E402
from audiogs_jax.models import SceneInfo, get_model  # noqa: E402
from audiogs_jax.models import audiogs as audiogs_model  # noqa: E402

SR, F, T, L = 22050, 257, 173, 22050
CHUNK = 2  # poses per lax.map step in the chunked inference path


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


def _time_step(step, state, data, repeats: int) -> tuple[float, float]:
  """(compile + first step seconds, median seconds of ``repeats`` later steps) of a
  donating ``step(state, data) -> (state, metrics)``; the state is threaded through."""
  t0 = time.perf_counter()
  state, m = step(state, data)
  jax.block_until_ready(m)
  first = time.perf_counter() - t0
  ts = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    state, m = step(state, data)
    jax.block_until_ready(m)
    ts.append(time.perf_counter() - t0)
  return first, float(np.median(ts))


def _cpu_jiffies() -> "tuple[int, int] | None":
  """(steal, total) CPU jiffies of the host from /proc/stat (Linux), else None.

  On a virtual machine "steal" is time the hypervisor gave this VM's virtual
  CPUs to someone else; the 2-core CI-like VM loses 6-38 % of its CPU time that
  way, which moves wall-clock timings by the same order."""
  try:
    with open("/proc/stat") as fh:
      vals = [int(v) for v in fh.readline().split()[1:]]
  except (OSError, ValueError):
    return None
  return (vals[7] if len(vals) > 7 else 0), sum(vals[:8])


def _steal_fraction(before, after) -> "float | None":
  """Share of all CPU time stolen by the hypervisor between two ``_cpu_jiffies``."""
  if before is None or after is None or after[1] <= before[1]:
    return None
  return (after[0] - before[0]) / (after[1] - before[1])


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
  return to_grid(g, F), jnp.asarray(poses, jnp.float32), src_tf


def _waves(cfg, chunk=None):
  """Jitted ``(params, poses [B,4,4], src_tf [B,T,F]) -> [B, 2, L]``: the render and
  its ISTFT, the whole batch at once or ``chunk`` poses at a time (``lax.map``)."""
  def whole(params, poses, src_tf):
    return dsp.istft_frames(renderer.render(params, poses, src_tf, cfg), length=L,
                            **cfg.stft_kwargs())

  def chunked(params, poses, src_tf):
    b = poses.shape[0]
    split = lambda x: x.reshape((b // chunk, chunk) + x.shape[1:])
    out = jax.lax.map(lambda a: whole(params, *a), (split(poses), split(src_tf)))
    return out.reshape((b,) + out.shape[2:])

  return jax.jit(whole if chunk is None else chunked)


def _interleaved(variants: dict, args, b: int, repeats: int) -> dict:
  """The variants timed interleaved (same machine load), each with glibc's default
  mmap threshold and with ``backend.tune_host_allocator()``: ms per clip."""
  ts = {(k, a): [] for k in variants for a in ("default", "tuned")}
  j0 = _cpu_jiffies()
  for _ in range(repeats):
    for (k, a), lst in ts.items():
      (backend.tune_host_allocator if a == "tuned" else backend.restore_host_allocator)()
      jax.block_until_ready(variants[k](*args))  # allocator warm-up
      t0 = time.perf_counter()
      jax.block_until_ready(variants[k](*args))
      lst.append(time.perf_counter() - t0)
  backend.tune_host_allocator()
  return {"interleaved_ms_per_clip": {f"{k}_{a}_alloc": 1e3 * float(np.median(v)) / b
                                      for (k, a), v in ts.items()},
          # Best of the repeats: the least disturbed by other tenants.
          "interleaved_min_ms_per_clip": {f"{k}_{a}_alloc": 1e3 * float(np.min(v)) / b
                                          for (k, a), v in ts.items()},
          "host_steal_fraction": _steal_fraction(j0, _cpu_jiffies())}


def bench_render(batches=(1, 32), repeats: int = 20, sh_degree: int = 2) -> list:
  # As the entry points (train, evaluate, render) run: with the tuned allocator.
  backend.tune_host_allocator()
  cfg = renderer.RenderConfig(sample_rate=SR)
  out = []
  for b in batches:
    g, poses, src_tf = _scene(jax.random.PRNGKey(b), b, sh_degree)
    whole = _waves(cfg)
    prep = jax.jit(renderer.fields, static_argnums=1)
    fields = jax.block_until_ready(prep(g, cfg))
    c1, t1 = _time(whole, g, poses, src_tf, repeats=repeats)
    j0 = _cpu_jiffies()
    c2, t2 = _time(whole, fields, poses, src_tf, repeats=repeats)
    steal = _steal_fraction(j0, _cpu_jiffies())
    extra = {}
    if b > CHUNK:
      chunked = _waves(cfg, CHUNK)
      c3, _ = _time(chunked, fields, poses, src_tf, repeats=1)
      extra = {"chunk_size": CHUNK, "compile_s_chunked": c3,
               **_interleaved({"whole": whole, "chunked": chunked}, (fields, poses, src_tf),
                              b, repeats)}
    _, tp = _time(prep, g, cfg, repeats=repeats)
    out.append({"model": "audiogs", "batch": b, "sh_degree": sh_degree,
                "ms_per_clip": 1e3 * t2 / b, "compile_s": c2,
                "host_steal_fraction_ms_per_clip": steal, **extra,
                "ms_per_clip_from_gaussians": 1e3 * t1 / b, "compile_s_from_gaussians": c1,
                "prepare_ms": 1e3 * tp, "num_gaussians": F * T,
                **_memory(whole, fields, poses, src_tf)})
  return out


def bench_train_step(batch: int = 8, repeats: int = 10) -> list:
  out = []
  for custom in (True, False):
    cfg = config_lib.load_config_file(ROOT / "configs" / "default.py")
    cfg.train.batch_size = batch
    cfg.model.audiogs.metres_per_unit = 1.0
    info = SceneInfo(F, T, SR, (0.0, 0.0, 0.0), 1.0)
    state, tx = trainstate.create_train_state(cfg, info, jax.random.PRNGKey(0))
    model = get_model("audiogs")
    if not custom:  # the same model with JAX's autodiff backward, for comparison
      def _render(params, poses, source_tf, config):
        rc = dataclasses.replace(audiogs_model.render_config(config), custom_backward=False)
        return renderer.render(params, poses, source_tf, rc)
      model = dataclasses.replace(model, render=_render)
    n = 16
    _, poses, src_tf = _scene(jax.random.PRNGKey(1), n)
    rng = np.random.default_rng(1)
    tgt = rng.standard_normal((n, 2, L)).astype(np.float32)
    # All n clips in one data shard (one device), as the training loop lays them out.
    data = dataset.ClipShards(poses=poses[None], source_tf=src_tf[None],
                              target_tf=dsp.stft_frames(jnp.asarray(tgt))[None],
                              count=jnp.asarray([n], jnp.int32))
    step = trainstate.make_sampled_step(model, tx, cfg)
    compile_s, t = _time_step(step, state, data, repeats)
    out.append({"model": "audiogs", "batch": batch,
                "backward": "custom_vjp" if custom else "autodiff",
                "ms_per_step": 1e3 * t, "compile_s": compile_s})
  return out


# ----------------------------------------------------------------------------- --scaling

SCALING_NOTE = (
    "AudioGS train step (sample a batch on the devices, forward, custom backward, "
    "Adam), default config, one random 16-clip scene; data-parallel over a mesh of "
    "`devices` (all on the data axis, Gaussians replicated). Medians after "
    "compilation. On CPU the devices are forced host devices "
    "(--xla_force_host_platform_device_count) sharing the machine's cores: "
    "device-count rows there show the cost of the sharded program, not a speed-up.")


def _scaling_row(devices: int, batch: int, seconds: float, repeats: int) -> dict:
  """ms per train step on the first ``devices`` devices of this process."""
  cfg = config_lib.load_config_file(ROOT / "configs" / "default.py")
  cfg.train.batch_size = batch
  cfg.model.audiogs.metres_per_unit = 1.0
  cfg.mesh.data = devices
  length = int(round(SR * seconds))
  n = 16
  rng = np.random.default_rng(0)
  poses = np.stack([geometry.yaw_pose(rng.uniform(-1, 1, 3), rng.uniform(0, 6.28))
                    for _ in range(n)]).astype(np.float32)
  scene = SceneData(binaural=0.1 * rng.standard_normal((n, 2, length)),
                    source=0.1 * rng.standard_normal((n, length)), poses=poses,
                    times=np.arange(n, dtype=np.float64), sample_rate=SR,
                    clip_ids=[str(i) for i in range(n)])
  model = get_model("audiogs")
  layout = parallel.make_layout(cfg, 0, model, devices=jax.devices()[:devices])
  info = workdir.scene_info_of(scene, cfg)
  host, tx = trainstate.create_train_state(cfg, info, jax.random.PRNGKey(0))
  host = jax.device_get(host)
  state = parallel.put_global(host, layout.state_shardings(host, tx))
  data = dataset.shard_clips(lambda i: scene, 0, cfg, layout)
  step = trainstate.make_sampled_step(model, tx, cfg, layout, state, data)
  compile_s, t = _time_step(step, state, data, repeats)
  ms = 1e3 * t
  return {"devices": devices, "batch": batch, "clip_seconds": seconds,
          "frames": info.num_frames, "num_gaussians": info.num_frames * info.num_freqs,
          "ms_per_step": ms, "clips_per_s": 1e3 * batch / ms, "compile_s": compile_s}


def _scaling_plan(devices: list, batches: list, seconds: list) -> list:
  """(devices, batch, clip seconds) points: a device sweep at the first batch size
  and clip length, then batch and clip-length sweeps on one device."""
  b0, s0 = batches[0], seconds[0]
  plan = [(d, b0, s0) for d in devices]
  plan += [(devices[0], b, s0) for b in batches if b != b0]
  plan += [(devices[0], b0, s) for s in seconds if s != s0]
  return plan


def bench_scaling(devices: list, batches: list, seconds: list, repeats: int) -> dict:
  """Train-step time against device count, batch size and Gaussians (clip length).

  On CPU each device count runs in a subprocess with that many forced host
  devices; on GPU/TPU the rows use the first 1, 2, 4... real devices.
  """
  import os
  import subprocess
  plan = _scaling_plan(devices, batches, seconds)
  platform = jax.devices()[0].platform
  rows = []
  if platform == "cpu":
    for d in sorted({p[0] for p in plan}):
      points = [p for p in plan if p[0] == d]
      env = dict(os.environ)
      env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                          f" --xla_force_host_platform_device_count={d}").strip()
      spec = json.dumps({"points": points, "repeats": repeats})
      r = subprocess.run([sys.executable, __file__, "--scaling-worker", spec], env=env,
                         capture_output=True, text=True, check=False)
      if r.returncode != 0:
        raise RuntimeError(f"scaling worker ({d} devices) failed:\n{r.stderr[-3000:]}")
      rows += json.loads(r.stdout.strip().splitlines()[-1])
  else:
    usable = [p for p in plan if p[0] <= jax.device_count()]
    rows = [_scaling_row(d, b, s, repeats) for d, b, s in usable]
  d0, b0, s0 = devices[0], batches[0], seconds[0]
  return {
      "mode": "scaling", "platform": platform,
      "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__,
      "host_cpus": os.cpu_count(), "repeats": repeats, "note": SCALING_NOTE,
      "vs_devices": [r for r in rows if r["batch"] == b0 and r["clip_seconds"] == s0],
      "vs_batch": [r for r in rows if r["devices"] == d0 and r["clip_seconds"] == s0],
      "vs_clip_seconds": [r for r in rows if r["devices"] == d0 and r["batch"] == b0],
  }


def _ints(text: str) -> list:
  return [int(v) for v in text.split(",") if v]


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  if argv[:1] == ["--scaling-worker"]:  # one process of --scaling (CPU)
    spec = json.loads(argv[1])
    rows = [_scaling_row(d, b, s, spec["repeats"]) for d, b, s in spec["points"]]
    print(json.dumps(rows))
    return 0
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--scaling", action="store_true",
                 help="only: train-step time against device count, batch size and "
                      "clip length (number of Gaussians)")
  p.add_argument("--devices", default="1,2,4", help="--scaling device counts")
  p.add_argument("--batches", default="8,4,16", help="--scaling batch sizes (first: "
                 "the one of the device and clip-length sweeps)")
  p.add_argument("--seconds", default="1,2,4", help="--scaling clip lengths in seconds")
  p.add_argument("--quick", action="store_true", help="fewer repeats")
  p.add_argument("--out", default=None, help="also write the JSON here")
  p.add_argument("--no-train", action="store_true", help="render only")
  p.add_argument("--no-audio3dgs", action="store_true", help="skip the U-Net model")
  p.add_argument("--stream", action="store_true", help="only: the streaming step")
  p.add_argument("--no-stream", action="store_true", help="skip the streaming step")
  p.add_argument("--tail", action="store_true",
                 help="only: the reverberant tail's train-step and render cost")
  p.add_argument("--no-tail", action="store_true", help="skip the tail's cost")
  p.add_argument("--stream-workdir", default=None,
                 help="also: MAG of streamed vs clip-rendered validation clips of this "
                      "trained workdir")
  sys.path.insert(0, str(ROOT / "scripts"))
  import bench_ttq
  bench_ttq.add_arguments(p)
  args = p.parse_args(argv)
  reps = 5 if args.quick else 20
  if args.time_to_quality:
    return _emit(bench_ttq.section(args, ROOT), args.out)
  if args.start_cost:
    j0 = _cpu_jiffies()
    result = bench_ttq.start_section(args, ROOT)
    return _emit({**result, "host_steal_fraction": _steal_fraction(j0, _cpu_jiffies())},
                 args.out)
  if args.stream:
    return _emit(_stream_section(args), args.out)
  if args.tail:
    return _emit(_tail_section(args), args.out)
  if args.scaling:
    result = bench_scaling(_ints(args.devices), _ints(args.batches),
                           [float(v) for v in args.seconds.split(",") if v],
                           repeats=3 if args.quick else 10)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
      pathlib.Path(args.out).write_text(text)
    return 0
  d = jax.devices()[0]
  result = {"device": f"{d.platform}:{d.device_kind}", "num_devices": jax.device_count(),
            "jax": jax.__version__, "render": bench_render(repeats=reps)}
  if not args.no_train:
    result["train_step"] = bench_train_step(repeats=max(reps // 2, 3))
  if not args.no_audio3dgs:
    try:
      sys.path.insert(0, str(ROOT / "scripts"))
      import bench_audio3dgs
      a3 = bench_audio3dgs.bench(width=64, batch=1, repeats=max(reps // 2, 5))
      result["render"].append(a3)
    except ImportError as e:
      result["audio3dgs"] = f"skipped: {e}"
  if not args.no_stream:
    result.update(_stream_section(args))
  if not args.no_tail:
    result.update(_tail_section(args))
  return _emit(result, args.out)


def _tail_section(args) -> dict:
  sys.path.insert(0, str(ROOT / "scripts"))
  import bench_tail
  return {"tail": bench_tail.bench_tail(repeats=4 if args.quick else 12)}


def _stream_section(args) -> dict:
  sys.path.insert(0, str(ROOT / "scripts"))
  import bench_stream
  backend.tune_host_allocator()
  out = {"stream": bench_stream.bench_stream(repeats=100 if args.quick else 400)}
  if args.stream_workdir:
    out["stream_mag"] = bench_stream.stream_mag(args.stream_workdir)
  return out


def _emit(result: dict, out) -> int:
  text = json.dumps(result, indent=2)
  print(text)
  if out:
    pathlib.Path(out).write_text(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
