"""Runs in a subprocess with 4 forced CPU devices (``tests/test_parallel.py``).

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/_multidevice_run.py OUT

``OUT/args.json`` holds the smoke config's ``--config.*`` overrides. Writes to
``OUT``:

- ``results.json``: the clip layout over 4 shards, and how the parameters
  after two train steps on one fixed batch differ between a 1-device mesh and
  a 4-device mesh, with the Gaussians replicated and with them sharded
  (padded from T = 173 to 176 frames), relative to the change the steps
  made (``compare``).
- ``single_<scene>.npz``: the parameters after ``train.steps`` sampled steps
  of scene 1 and scene 2, each trained alone on a ``1 x 2`` mesh (two data
  shards);
- ``multi/``: the workdir of ``train_and_evaluate`` training scenes 1 and 2
  together (``data.scenes=1,2``) on a ``2 x 2`` mesh (scenes x data): a
  multi-scene checkpoint that the parent test compares with the single runs,
  evaluates and renders from.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

if "xla_force_host_platform_device_count=4" not in os.environ.get("XLA_FLAGS", ""):
  raise SystemExit("run with XLA_FLAGS=--xla_force_host_platform_device_count=4")

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from audiogs_jax import config as config_lib  # noqa: E402
from audiogs_jax import dataset, parallel, train, training, trainstate  # noqa: E402
from audiogs_jax.models import get_model  # noqa: E402


def _config(overrides: list, **extra):
  over, rest = config_lib.parse_config_args(overrides)
  assert not rest
  over.update({k: str(v) for k, v in extra.items()})
  return config_lib.apply_overrides(config_lib.load_config_file(REPO / "configs" / "smoke.py"),
                                    over)


def _flat(tree) -> list:
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def _place_batch(batch: dict, layout) -> dict:
  spec = lambda x: P("data", *([None] * (x.ndim - 1)))
  return jax.tree.map(lambda x: parallel.put_global(x, NamedSharding(layout.mesh, spec(x))),
                      batch)


def compare(a: list, b: list, init: list) -> dict:
  """Per parameter field, how far ``a`` and ``b`` differ, relative to the change
  training made (``a - init``): in L2 norm, and at the worst element."""
  l2 = [float(np.linalg.norm(x - y) / np.linalg.norm(x - i)) for x, y, i in zip(a, b, init)]
  worst = [float(np.max(np.abs(x - y)) / np.max(np.abs(x - i))) for x, y, i in zip(a, b, init)]
  moved = [float(np.max(np.abs(x - i))) for x, i in zip(a, init)]
  return {"l2": l2, "max": worst, "update": moved}


def data_parallel_step(overrides: list) -> dict:
  """Two train steps on one fixed batch of 8 clips: 1 device, then 4 devices
  with the Gaussians replicated and with them sharded."""
  devices = jax.devices()
  assert len(devices) == 4
  cfg = _config(overrides, **{"train.batch_size": 8})
  model = get_model(cfg.model.name)
  scenes = training._Scenes(cfg, progress=False)
  host, tx, _, _ = training._host_state(cfg, model, scenes, "train", fit=False)
  scene = scenes.split(0, "train")
  dev = dataset.to_device(scene, cfg)
  idx = np.arange(8) % len(scene)
  batch = {"poses": np.asarray(dev.poses)[idx], "source_tf": np.asarray(dev.source_tf)[idx],
           "target_tf": np.asarray(dev.target_tf)[idx]}
  out, finals = {}, {}
  for name, n, shard in (("one", 1, False), ("replicated", 4, False), ("sharded", 4, True)):
    c = _config(overrides, **{"train.batch_size": 8, "mesh.shard_gaussians": shard,
                              "mesh.data": n})
    layout = parallel.make_layout(c, 0, model, devices=devices[:n]).for_params(host.params)
    padded = layout.pad_state(host, tx)
    sh = layout.state_shardings(padded, tx)
    state = parallel.put_global(padded, sh)
    b = _place_batch(batch, layout)
    step = jax.jit(trainstate.make_train_step(model, tx, c, layout), donate_argnums=0,
                   in_shardings=(sh, jax.tree.map(lambda x: x.sharding, b)),
                   out_shardings=(sh, layout.replicated))
    for _ in range(2):
      state, metrics = step(state, b)
    if shard:
      out["sharded_specs"] = [str(x.sharding.spec) for x in jax.tree.leaves(state.params)]
      out["sharded_shapes"] = [list(x.shape) for x in jax.tree.leaves(state.params)]
    unpadded = jax.jit(lambda s: layout.unpad_state(s, tx))(state)
    finals[name] = (_flat(unpadded.params), float(jax.device_get(metrics["loss"])))
  init = _flat(host.params)
  for name in ("replicated", "sharded"):
    out[name] = {**compare(finals["one"][0], finals[name][0], init),
                 "loss_1": finals["one"][1], "loss_4": finals[name][1]}
  return out


def clip_layout(overrides: list) -> dict:
  """ClipShards of the smoke scene's training clips over 4 data shards."""
  cfg = _config(overrides)
  model = get_model(cfg.model.name)
  scenes = training._Scenes(cfg, progress=False)
  layout = parallel.make_layout(cfg, 0, model)
  data = dataset.shard_clips(lambda i: scenes.split(i, "train"), 0, cfg, layout)
  poses = np.asarray(jax.device_get(data.poses))
  scene = scenes.split(0, "train")
  count = np.asarray(jax.device_get(data.count))
  n = len(scene)
  ok = True
  for k in range(4):
    a = k * n // 4
    ok &= bool(np.array_equal(poses[k, :count[k]], scene.poses[a:a + count[k]]))
    ok &= bool(np.all(poses[k, count[k]:] == 0))
  return {"count": count.tolist(), "num_clips": n, "rows_match": ok,
          "pose_spec": str(data.poses.sharding.spec),
          "devices_per_shard": [len({s.device for s in data.poses.addressable_shards
                                     if s.index[0] == slice(k, k + 1)}) for k in range(4)]}


def single_scene_runs(overrides: list, out: pathlib.Path) -> None:
  """Scenes 1 and 2, each alone, ``train.steps`` sampled steps on a 1 x 2 mesh."""
  for scene in ("1", "2"):
    cfg = _config(overrides, **{"data.scene": scene, "mesh.data": 2})
    model = get_model(cfg.model.name)
    scenes = training._Scenes(cfg, progress=False)
    layout = parallel.make_layout(cfg, 0, model, devices=jax.devices()[:2])
    host, tx, _, _ = training._host_state(cfg, model, scenes, "train", fit=True)
    state = parallel.put_global(host, layout.state_shardings(host, tx))
    data = dataset.shard_clips(lambda i: scenes.split(i, "train"), 0, cfg, layout)
    step = trainstate.make_sampled_step(model, tx, cfg, layout, state, data)
    for _ in range(int(cfg.train.steps)):
      state, _ = step(state, data)
    np.savez(out / f"single_{scene}.npz", *_flat(state.params))


def main() -> int:
  out = pathlib.Path(sys.argv[1])
  overrides = json.loads((out / "args.json").read_text())
  seconds = {}
  t = time.perf_counter()
  results = {"clip_layout": clip_layout(overrides)}
  seconds["clip_layout"], t = time.perf_counter() - t, time.perf_counter()
  results["data_parallel"] = data_parallel_step(overrides)
  seconds["data_parallel"], t = time.perf_counter() - t, time.perf_counter()
  single_scene_runs(overrides, out)
  seconds["single_scene_runs"], t = time.perf_counter() - t, time.perf_counter()
  cfg = _config(overrides, **{"data.scenes": "1,2", "mesh.scenes": 2})
  train.train_and_evaluate(cfg, out / "multi", evaluate_at_end=False, progress=False)
  seconds["multi_scene_run"] = time.perf_counter() - t
  results["seconds"] = seconds
  (out / "results.json").write_text(json.dumps(results, indent=2))
  return 0


if __name__ == "__main__":
  sys.exit(main())
