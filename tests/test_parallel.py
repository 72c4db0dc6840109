"""Scaling out: meshes, data parallelism, Gaussian sharding, multi-scene jobs,
multi-process (jax.distributed) training.

The multi-device checks need 4 CPU devices, which must be forced before JAX
starts: they run once, in a subprocess (``tests/_multidevice_run.py`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``), whose results these
tests read. The multi-process test starts 2 processes with
``scripts/launch_local_multihost.sh``.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiogs_jax import config as config_lib
from audiogs_jax import dataset
from audiogs_jax import evaluate
from audiogs_jax import evaluation
from audiogs_jax import parallel
from audiogs_jax import render as render_cli
from audiogs_jax import trainstate
from audiogs_jax import workdir as workdir_lib

from _jitutil import fast_jit

REPO = pathlib.Path(__file__).resolve().parent.parent
# The subprocesses compile without LLVM optimisations (half the compile time);
# compiler options change only float32 rounding, which the tolerances allow.
FAST_XLA = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
# Parameters that agree to these fractions of the change training made to them
# (per field, in L2 norm / at the worst element) are equal up to float32
# rounding: summing a batch's gradients in another order moves a few
# near-zero gradients, which Adam (g / (|g| + eps)) turns into visible
# differences of those elements' updates. A missing or wrong all-reduce, a
# wrong batch or scene differs by O(1). With the reverberant tail the learned
# phase's gradient (from the interaural loss alone) has more such elements: its
# worst element moved by up to 5 % of the largest change (L2 stays below 3e-4).
L2_TOL, MAX_TOL = 1e-3, 1e-1
STEPS = 3
# One smoke config for every run here: the 4-device runs, the 2-process run
# and its single-process reference must train the same thing.
OVERRIDES = {"train__steps": STEPS, "train__eval_every": 0, "train__checkpoint_every": STEPS,
             "train__log_every": 1, "train__warmup_steps": 1}


def _env(subprocess_env: dict, **extra) -> dict:
  env = {k: v for k, v in subprocess_env.items() if k != "XLA_FLAGS"}
  env.update(extra)
  env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
  return env


class _Background:
  """The module's two long subprocess jobs, started together on first use so
  that they overlap: the 4-device checks (``tests/_multidevice_run.py``) and
  the 2-process training (``scripts/launch_local_multihost.sh``)."""

  def __init__(self, root: pathlib.Path, smoke, subprocess_env: dict):
    self.multidevice = root / "multidevice"
    self.multihost = root / "multihost" / "workdir"
    self.logs = root / "multihost" / "logs"
    self.multidevice.mkdir(parents=True)
    (self.multidevice / "args.json").write_text(json.dumps(smoke.overrides(**OVERRIDES)))
    env = _env(subprocess_env,
               XLA_FLAGS=f"--xla_force_host_platform_device_count=4 {FAST_XLA}")
    self.procs = {
        "multidevice": subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "_multidevice_run.py"),
             str(self.multidevice)], cwd=str(REPO), env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True),
        "multihost": subprocess.Popen(
            [str(REPO / "scripts" / "launch_local_multihost.sh"), "2",
             "--config", smoke.config_path, "--workdir", str(self.multihost),
             "--no-progress", *smoke.overrides(**OVERRIDES)], cwd=str(REPO),
            env=_env(subprocess_env, AUDIOGS_LOG_DIR=str(self.logs), XLA_FLAGS=FAST_XLA),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)}
    self.done = {}

  def wait(self, name: str) -> subprocess.CompletedProcess:
    if name not in self.done:
      p = self.procs[name]
      out, err = p.communicate(timeout=600)
      self.done[name] = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    return self.done[name]

  def close(self):
    for p in self.procs.values():
      if p.poll() is None:
        p.kill()
        p.communicate()


@pytest.fixture(scope="module")
def background(tmp_path_factory, smoke, subprocess_env):
  jobs = _Background(tmp_path_factory.mktemp("parallel"), smoke, subprocess_env)
  yield jobs
  jobs.close()


@pytest.fixture(scope="module")
def multidevice(background) -> pathlib.Path:
  """Output folder of ``tests/_multidevice_run.py`` (4 forced CPU devices)."""
  r = background.wait("multidevice")
  assert r.returncode == 0, r.stderr[-4000:]
  return background.multidevice


@pytest.fixture(scope="module")
def results(multidevice) -> dict:
  return json.loads((multidevice / "results.json").read_text())


def _leaves(npz_path) -> list:
  z = np.load(npz_path)
  return [z[f"arr_{i}"] for i in range(len(z.files))]


def _init_leaves(smoke, scene: str = "1") -> list:
  """Scene ``scene``'s initial parameters (the runs here start from them)."""
  cfg = smoke.config(data__scene=scene, **OVERRIDES)
  info = workdir_lib.scene_info_of(dataset.load_split(cfg, "train", progress=False), cfg)
  state, _ = trainstate.create_train_state(cfg, info, jax.random.PRNGKey(int(cfg.seed)))
  return [np.asarray(x) for x in jax.tree.leaves(state.params)]


def _assert_close(a: list, b: list, init: list):
  """Parameters equal up to float32 rounding (``L2_TOL``, ``MAX_TOL``)."""
  assert len(a) == len(b) == len(init) > 3
  for x, y, i in zip(a, b, init):
    assert x.shape == y.shape
    change = x - i
    assert np.max(np.abs(change)) > 0
    assert np.linalg.norm(x - y) < L2_TOL * np.linalg.norm(change), x.shape
    assert np.max(np.abs(x - y)) < MAX_TOL * np.max(np.abs(change)), x.shape


# ----------------------------------------------------------------------------- mesh, config

def test_mesh_shape_from_config(smoke):
  cfg = smoke.config()
  assert parallel.mesh_shape(cfg, 0, 4) == (1, 4)            # default: all on data
  cfg = smoke.config(mesh__scenes=2)
  assert parallel.mesh_shape(cfg, 4, 8) == (2, 4)
  with pytest.raises(config_lib.ConfigError, match="multi-scene"):
    parallel.mesh_shape(cfg, 0, 8)
  with pytest.raises(config_lib.ConfigError, match="3 scenes"):
    parallel.mesh_shape(cfg, 3, 8)
  with pytest.raises(config_lib.ConfigError, match="does not use"):
    parallel.mesh_shape(smoke.config(mesh__data=3), 0, 4)
  mesh = parallel.make_mesh(smoke.config())
  assert mesh.axis_names == ("scenes", "data") and mesh.devices.size == jax.device_count()


def test_distributed_env_detection():
  assert parallel.distributed_env({}) is None
  assert parallel.distributed_env({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) is None
  assert parallel.distributed_env({
      "JAX_COORDINATOR_ADDRESS": "h:1234", "JAX_NUM_PROCESSES": "4",
      "JAX_PROCESS_ID": "3"}) == {"coordinator_address": "h:1234", "num_processes": 4,
                                  "process_id": 3}
  assert parallel.distributed_env({"SLURM_NTASKS": "8", "SLURM_PROCID": "2"}) == {}
  assert parallel.distributed_env({"OMPI_COMM_WORLD_SIZE": "2"}) == {}
  assert parallel.distributed_env({"TPU_WORKER_HOSTNAMES": "a,b,c,d"}) == {}
  assert parallel.distributed_env({"TPU_WORKER_HOSTNAMES": "a"}) is None
  assert not parallel.initialize_distributed()   # a plain single-process run


def test_scene_ids_and_configs(smoke):
  assert dataset.scene_ids(smoke.config()) == []
  cfg = smoke.config(data__scenes="3, 1,12")
  assert dataset.scene_ids(cfg) == ["3", "1", "12"]
  one = dataset.scene_config(cfg, "12")
  assert one.data.scene == "12" and one.data.scenes == "" and cfg.data.scenes == "3, 1,12"
  # Synthetic scenes get their own simulator seed; scene 1 keeps the configured one.
  assert dataset.synthetic_seed(dataset.scene_config(cfg, "1")) == cfg.data.synth.seed
  assert dataset.synthetic_seed(one) == cfg.data.synth.seed + 11
  with pytest.raises(config_lib.ConfigError, match="twice"):
    dataset.scene_ids(smoke.config(data__scenes="1,2,1"))


def _shards(num: list, n: int, t: int = 3, f: int = 2) -> dataset.ClipShards:
  """ClipShards with clip c of shard d marked by pose[0, 3] = 100 d + c."""
  d = len(num)
  poses = np.zeros((d, n, 4, 4), np.float32)
  for k in range(d):
    poses[k, :num[k], 0, 3] = 100 * k + np.arange(num[k])
  src = jnp.asarray(poses[..., :1, 3:].repeat(t, -2).repeat(f, -1), jnp.complex64)
  return dataset.ClipShards(poses=jnp.asarray(poses), source_tf=src,
                            target_tf=jnp.stack([src, 2 * src], -3),
                            count=jnp.asarray(num, jnp.int32))


_sample_shards = fast_jit(dataset.sample_shards, static_argnums=(2, 3))
_sample_batch = fast_jit(dataset.sample_batch, static_argnums=(2, 3))


def test_sample_shards_one_shard_is_sample_batch():
  """One data shard draws exactly the single-device batches."""
  data = _shards([7], 7)
  full = dataset.DeviceData(poses=data.poses[0], source_tf=data.source_tf[0],
                            target_tf=data.target_tf[0], source=None, target=None)
  key = jax.random.key(3)
  for roll in (False, True):
    a = _sample_shards(data, key, 6, roll)
    b = _sample_batch(full, key, 6, roll)
    for k in ("poses", "source_tf", "target_tf"):
      np.testing.assert_array_equal(np.asarray(a[k])[0], np.asarray(b[k]))


def test_sample_shards_draws_each_shard_from_its_own_clips():
  data = _shards([2, 3, 3], 3)
  seen = set()
  for s in range(20):
    b = _sample_shards(data, jax.random.key(s), 6, False)
    assert b["poses"].shape == (3, 2, 4, 4) and b["target_tf"].shape == (3, 2, 2, 3, 2)
    tag = np.asarray(b["poses"])[:, :, 0, 3]
    for k in range(3):
      assert set(tag[k] // 100) == {k}                          # its own shard
      assert np.all(tag[k] % 100 < [2, 3, 3][k])                # never a padding row
    src = np.asarray(b["source_tf"])[:, :, 0, 0].real
    np.testing.assert_array_equal(src, tag)                     # source with its pose
    seen.update(tag.ravel().tolist())
  assert seen == {0, 1, 100, 101, 102, 200, 201, 202}
  with pytest.raises(config_lib.ConfigError, match="batch_size=5"):
    dataset.sample_shards(data, jax.random.key(0), 5)


def test_rwavs_style_aggregation_of_scene_ids():
  per = {"1": {"mag": 1.0}, "2": {"mag": 3.0}, "7": {"mag": 5.0}}
  agg = evaluation._aggregate(per)
  assert agg["per_environment"]["office"]["mag"] == 2.0
  assert agg["per_environment"]["house"]["mag"] == 5.0
  assert agg["overall"]["mag"] == 3.5                           # mean of environments
  named = evaluation._aggregate({"a": {"mag": 1.0, "dpam": None}, "b": {"mag": 2.0,
                                                                       "dpam": None}})
  assert named["overall"] == {"mag": 1.5, "dpam": None} and named["per_environment"] == {}


# ----------------------------------------------------------------------------- 4 devices

def test_clip_layout_over_four_shards(results):
  r = results["clip_layout"]
  n = r["num_clips"]
  assert sum(r["count"]) == n and max(r["count"]) - min(r["count"]) <= 1
  assert r["rows_match"]                     # shard d holds clips [d N/4, ...) in order
  assert r["pose_spec"] == "P('data', None, None, None)"     # [D, n, 4, 4]
  assert r["devices_per_shard"] == [1, 1, 1, 1]


@pytest.mark.parametrize("kind", ["replicated", "sharded"])
def test_data_parallel_step_matches_one_device(results, kind):
  """Two train steps on one batch of 8 clips: a 4-device mesh (2 clips per
  device; Gaussians replicated, or split over the devices) updates the
  parameters as one device does, to float32 rounding of the update."""
  r = results["data_parallel"][kind]
  assert len(r["l2"]) > 3 and min(r["update"]) > 1e-6       # every field moved
  assert max(r["l2"]) < L2_TOL and max(r["max"]) < MAX_TOL, r
  assert r["loss_1"] == pytest.approx(r["loss_4"], rel=1e-5)


def test_gaussian_sharding_splits_the_padded_frames_axis(results):
  """T = 173 frames (prime) is padded to 176 and split 4 ways; the checkpointed
  state is unpadded (compared above against the 1-device step)."""
  shapes, specs = results["data_parallel"]["sharded_shapes"], results["data_parallel"][
      "sharded_specs"]
  grid = [(s, p) for s, p in zip(shapes, specs) if len(s) >= 2 and s[-2] > 2]   # [..., T, F]
  assert grid and all(s[-2] == 176 and "'data'" in p for s, p in grid)
  # The reverberant tail's fields ([2, F], [F]: per ear and bin) stay whole.
  tail = [(s, p) for s, p in zip(shapes, specs) if len(s) >= 2 and s[-2] == 2]
  assert tail and all("'data'" not in p for s, p in tail)


def test_multi_scene_job_equals_single_scene_runs(multidevice, smoke):
  """data.scenes=1,2 on a 2 x 2 mesh (scenes x data) ends where scene 1 and
  scene 2 trained alone (on 1 x 2 meshes) end, scene by scene."""
  config, model, params, meta = workdir_lib.load_state(multidevice / "multi", "latest")
  assert meta["scenes"] == ["1", "2"] and meta["step"] == STEPS
  stacked = [np.asarray(x) for x in jax.tree.leaves(params)]
  assert all(x.shape[0] == 2 for x in stacked)
  for i, scene in enumerate(("1", "2")):
    single = _leaves(multidevice / f"single_{scene}.npz")
    mine = [x[i] for x in stacked]
    _assert_close(mine, single, _init_leaves(smoke, scene))
  # The two scenes are different recordings, so their models differ.
  assert not np.allclose(stacked[0][0], stacked[0][1])


def test_multi_scene_evaluate_and_render(multidevice, tmp_path, capsys):
  wd = tmp_path / "multi"
  shutil.copytree(multidevice / "multi", wd)
  summary = evaluate.evaluate_workdir(wd, progress=False, quiet=True)
  assert summary["scenes"] == ["1", "2"]
  out = wd / "eval" / "val"
  for sid in ("1", "2"):
    per = json.loads((out / f"scene_{sid}" / "summary.json").read_text())
    assert per["protocol"]["data"]["scene"] == sid
    assert summary["model"]["per_scene"][sid]["mag_avnerf"] == pytest.approx(
        per["model"]["mag_avnerf"])
  office = summary["model"]["per_environment"]["office"]     # scenes 1, 2: office
  for k in ("mag_avnerf", "env", "lre"):
    want = np.mean([summary["model"]["per_scene"][s][k] for s in ("1", "2")])
    assert office[k] == pytest.approx(want) == summary["model"]["overall"][k]
  assert set(summary["baselines"]) == {"mono_mono", "mono_energy", "stereo_energy",
                                       "nearest_pose"}
  table = (out / "table.md").read_text()
  assert "## Overall" in table and "## office" in table and "## scene 2" in table

  # Render picks a scene; without --scene a multi-scene workdir is a clear error.
  import soundfile as sf
  src = tmp_path / "src.wav"
  sf.write(str(src), (0.1 * np.random.default_rng(0).standard_normal(30000)).astype(
      np.float32), 22050, subtype="FLOAT")
  pose = " ".join(str(v) for v in np.eye(4).ravel())
  with pytest.raises(SystemExit) as e:
    render_cli.main(["--workdir", str(wd), "--source", str(src), "--pose", pose,
                     "--out", str(tmp_path / "x.wav")])
  assert e.value.code == 2 and "pick one with --scene" in capsys.readouterr().err
  ys = {}
  for sid in ("1", "2"):
    assert render_cli.main(["--workdir", str(wd), "--source", str(src), "--pose", pose,
                            "--scene", sid, "--out", str(tmp_path / f"{sid}.wav")]) == 0
    ys[sid], _ = sf.read(str(tmp_path / f"{sid}.wav"))
  assert ys["1"].shape == (30000, 2) and not np.allclose(ys["1"], ys["2"])
  with pytest.raises(SystemExit):
    render_cli.main(["--workdir", str(wd), "--source", str(src), "--pose", pose,
                     "--scene", "7", "--out", str(tmp_path / "7.wav")])
  assert "scenes: 1, 2" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 2 processes

def test_two_process_training_checkpoint_restores_in_one_process(
    background, multidevice, smoke):
  """2 processes (jax.distributed, 1 CPU device each) train scene 1 and write
  one checkpoint; this process restores it onto its single device, finds the
  parameters of scene 1 trained by one process on 2 devices (the same two data
  shards), and evaluates it."""
  r = background.wait("multihost")
  wd, logs = background.multihost, background.logs
  assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
  assert "evaluate with: python -m audiogs_jax.evaluate" in r.stdout
  other = (logs / "process_1.log").read_text()
  assert "evaluate with" not in other              # only process 0 prints
  recs = [json.loads(l) for l in (wd / "metrics.jsonl").read_text().splitlines()]
  assert [(x["step"], x["split"]) for x in recs] == (            # logged once
      [(0, "init")] + [(s, "train") for s in range(1, STEPS + 1)])
  assert sorted(p.name for p in (wd / "checkpoints").iterdir()) == [str(STEPS)]

  config, model, params, meta = workdir_lib.load_trained(wd)
  assert meta["step"] == STEPS
  assert all(len(x.sharding.device_set) == 1 for x in jax.tree.leaves(params))
  leaves = [np.asarray(x) for x in jax.tree.leaves(params)]
  _assert_close(leaves, _leaves(multidevice / "single_1.npz"), _init_leaves(smoke))

  summary = evaluate.evaluate_workdir(wd, progress=False, quiet=True)
  assert summary["protocol"]["checkpoint_step"] == STEPS
  assert np.isfinite(summary["model"]["mag_avnerf"])
  assert (wd / "eval" / "val" / "table.md").exists()


def test_launch_script_stops_the_others_when_a_process_fails(tmp_path, subprocess_env):
  """Process 1 cannot even start (its log path is a folder) while process 0
  waits in jax.distributed.initialize for it: the script stops process 0 at
  once and exits non-zero, instead of waiting out the 300-s join timeout."""
  logs = tmp_path / "logs"
  (logs / "process_1.log").mkdir(parents=True)
  t0 = time.monotonic()
  r = subprocess.run([str(REPO / "scripts" / "launch_local_multihost.sh"), "2",
                      "--config", "configs/smoke.py", "--workdir", str(tmp_path / "w")],
                     cwd=str(REPO), env=_env(subprocess_env, AUDIOGS_LOG_DIR=str(logs)),
                     capture_output=True, text=True, timeout=120)
  assert r.returncode != 0
  assert "stopping the others" in r.stderr
  assert time.monotonic() - t0 < 60
  assert not (tmp_path / "w" / "checkpoints").exists()
