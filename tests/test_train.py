"""End-to-end training: outputs of a smoke run, loss decrease, resume (in-process,
after SIGTERM, after SIGKILL, past a half-written checkpoint), CLI errors, --help."""

from __future__ import annotations

import copy
import json
import pathlib
import shutil
import signal
import struct
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from audiogs_jax import checkpoint as ckpt_lib
from audiogs_jax import cli
from audiogs_jax import config as config_lib
from audiogs_jax import dataset
from audiogs_jax import train
from audiogs_jax import trainstate
from audiogs_jax import workdir as workdir_lib
from audiogs_jax.models import audiogs, get_model
from audiogs_jax.renderer import fit as fit_lib

REPO = pathlib.Path(__file__).resolve().parent.parent


def _restore_state(workdir, step=None):
  """The full ``TrainState`` (params, optimiser state, RNG, step) of a workdir."""
  config = config_lib.load_saved_config(pathlib.Path(workdir) / "config.json")
  ck = ckpt_lib.Checkpointer(workdir, keep=int(config.train.keep), async_save=False)
  try:
    meta = ck.restore_meta()
    info = workdir_lib.scene_info_from_meta(meta)
    template, _ = trainstate.create_train_state(config, info, jax.random.PRNGKey(0))
    state, meta = ck.restore(template, step)
  finally:
    ck.close()
  return state, meta


def _assert_states_equal(a, b):
  la, ta = jax.tree.flatten_with_path(a)
  lb, tb = jax.tree.flatten_with_path(b)
  assert ta == tb
  assert len(la) > 5
  for (path, x), (_, y) in zip(la, lb):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y),
                                  err_msg=jax.tree_util.keystr(path))


def _complete_steps(workdir) -> list:
  d = pathlib.Path(workdir) / "checkpoints"
  if not d.is_dir():
    return []
  return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit())


# ----------------------------------------------------------------------------- outputs

def test_smoke_run_writes_logs_checkpoints_and_config(trained_workdir, smoke):
  wd = trained_workdir
  saved = config_lib.load_saved_config(wd / "config.json")
  assert saved.train.steps == smoke.steps
  assert saved.data.root == str(smoke.data_root)
  # The scene went to the configured cache, not ~/.cache.
  assert any(smoke.data_root.iterdir())

  assert smoke.steps in _complete_steps(wd)
  state, meta = _restore_state(wd)
  assert int(state.step) == smoke.steps == meta["step"]
  assert meta["norm_factor"] > 0 and float(state.norm_factor) == pytest.approx(
      meta["norm_factor"])
  # Validation ran (eval_every) and kept a best checkpoint.
  ck = ckpt_lib.Checkpointer(wd, async_save=False)
  try:
    assert ck.latest_step("best") in (smoke.ckpt_every, smoke.steps)
  finally:
    ck.close()

  recs = [json.loads(line) for line in (wd / "metrics.jsonl").read_text().splitlines()]
  train_recs = [r for r in recs if r["split"] == "train"]
  val_recs = [r for r in recs if r["split"] == "val"]
  assert [r["step"] for r in train_recs] == list(range(4, smoke.steps + 1, 4))
  for r in train_recs:
    for k in ("loss", "grad_norm", "mag", "ipd", "steps_per_s"):
      assert np.isfinite(r[k]), (k, r)
  assert [r["step"] for r in val_recs] == [smoke.ckpt_every, smoke.steps]
  for r in val_recs:
    assert set(r) >= {"mag_avnerf", "mag_avcloud", "env", "lre"}
    assert all(np.isfinite(r[k]) for k in ("mag_avnerf", "mag_avcloud", "env", "lre"))


def _tfrecords(path: pathlib.Path):
  """Payloads of a TFRecord file (the TensorBoard event file format)."""
  data = path.read_bytes()
  i = 0
  while i < len(data):
    (n,) = struct.unpack("<Q", data[i:i + 8])
    yield data[i + 12:i + 12 + n]
    i += 12 + n + 4
  assert i == len(data), "truncated event file"


def test_logged_train_seconds_grow(trained_workdir, smoke):
  """Every train and validation row logs ``train_s`` (training seconds,
  validation excluded): positive and non-decreasing with the step, and a
  validation row's at least its step's train row's."""
  lines = (trained_workdir / "metrics.jsonl").read_text().splitlines()
  recs = [json.loads(line) for line in lines]
  for split in ("train", "val"):
    times = [r["train_s"] for r in recs if r["split"] == split]
    assert len(times) >= 2 and times[0] > 0 and times == sorted(times), (split, times)
  train_at = {r["step"]: r["train_s"] for r in recs if r["split"] == "train"}
  for r in recs:
    if r["split"] == "val" and r["step"] in train_at:
      assert r["train_s"] >= train_at[r["step"]]


def test_new_run_logs_its_initialisation_time(trained_workdir):
  """The ``init`` row (step 0) holds the seconds the start took (scene analysis and
  the closed-form fit); the clock of every later row starts there."""
  recs = [json.loads(line) for line in
          (trained_workdir / "metrics.jsonl").read_text().splitlines()]
  init = [r for r in recs if r["split"] == "init"]
  assert len(init) == 1 and init[0]["step"] == 0
  assert init[0]["init_s"] > 0 and init[0]["train_s"] == init[0]["init_s"]
  assert min(r["train_s"] for r in recs if r["split"] == "train") > init[0]["init_s"]


def test_eval_at_start_validates_the_fitted_start(smoke, tmp_path, jax_compile_cache):
  """``train.eval_at_start``: a validation row at step 0 (logged at the init time),
  of the fitted start, which differs from the constant start's."""
  rows = {}
  for fit in (2, 0):
    wd = tmp_path / f"fit{fit}"
    assert train.main(["--config", smoke.config_path, "--workdir", str(wd), "--no-eval",
                       "--no-progress", *smoke.overrides(
                           train__steps=1, train__eval_every=1, train__eval_at_start=True,
                           model__audiogs__init_fit=fit)]) == 0
    recs = [json.loads(line) for line in (wd / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in recs if r["split"] == "val"]
    assert [r["step"] for r in val] == [0, 1]
    init = next(r for r in recs if r["split"] == "init")
    assert val[0]["train_s"] >= init["init_s"]
    rows[fit] = val[0]
  assert rows[2]["mag_avnerf"] < rows[0]["mag_avnerf"]


def test_tensorboard_event_file_holds_scalars(trained_workdir, smoke):
  from tensorboardX.proto import event_pb2
  files = list((trained_workdir / "tb").glob("events.out.tfevents.*"))
  assert len(files) == 1
  tags = {}
  for rec in _tfrecords(files[0]):
    ev = event_pb2.Event.FromString(rec)
    for v in ev.summary.value:
      tags.setdefault(v.tag, []).append((ev.step, v.simple_value))
  assert [s for s, _ in tags["train/loss"]] == list(range(4, smoke.steps + 1, 4))
  assert "val/mag_avnerf" in tags and "train/grad_norm" in tags


def test_training_reduces_the_loss(trained_workdir, smoke):
  """Loss on every training clip: the start training began from (the closed-form
  fit, same seed), the constant start and an uninformed start, against the trained
  parameters."""
  config = config_lib.load_saved_config(trained_workdir / "config.json")
  assert config.model.audiogs.init_fit > 0
  scene = dataset.load_split(config, "train", progress=False)
  data = dataset.to_device(scene, config)
  info = workdir_lib.scene_info_of(scene, config)
  key = jax.random.PRNGKey(int(config.seed))
  fitted, _ = trainstate.create_train_state(config, info, key, scene=scene)
  constant, _ = trainstate.create_train_state(config, info, key)
  trained, _ = _restore_state(trained_workdir)
  model = get_model(config.model.name)

  # The parameter sets as host arrays: one signature, one compilation.
  params = jax.device_get((fitted.params, constant.params, trained.params))

  @jax.jit
  def full_loss(params):
    pred = model.render(params, data.poses, data.source_tf, config)
    return model.loss(params, pred, data.target_tf, data.source_tf, config)[0]

  start, const, after = (float(full_loss(p)) for p in params)
  assert np.isfinite([start, const, after]).all()
  # The closed-form fit starts far below the constant start, and training still
  # improves on it.
  assert start < 0.8 * const, (const, start)
  assert after < 0.98 * start, (start, after)
  # The Gaussians start at the source estimated from the clips' ITDs; an uninformed
  # start (around the listeners' centroid, no fit) is far worse than the result.
  blind = copy.deepcopy(config)
  with blind.unlocked():
    blind.model.audiogs.init_position, blind.model.audiogs.init_spread = "listeners", 0.3
  blind_state, _ = trainstate.create_train_state(blind, workdir_lib.scene_info_of(scene, blind),
                                                 key)
  uninformed = float(full_loss(jax.device_get(blind_state.params)))
  assert after < 0.6 * uninformed, (uninformed, after)


def test_prepared_start_is_the_jitted_start(trained_workdir, monkeypatch):
  """``prepare_fit`` compiles the closed-form start in the background while the
  scene is analysed; what it returns applies that compiled program (not a second
  compilation) and gives the jitted ``renderer.fit.start``'s parameters bit for bit."""
  config = config_lib.load_saved_config(trained_workdir / "config.json")
  scene = dataset.load_split(config, "train", progress=False)
  info = workdir_lib.scene_info_of(scene, config)
  start = trainstate.prepare_fit(config, scene)
  assert callable(start)
  params = get_model("audiogs").init(jax.random.PRNGKey(3), info, config)
  data = dataset.to_device(scene, config)
  rc, kw = audiogs.fit_arguments(config)
  assert kw["iterations"] == config.model.audiogs.init_fit > 0
  expected = fit_lib.start(params, data.poses, data.source_tf, data.target_tf, rc, **kw)

  for compiling in audiogs._STARTS.values():
    compiling.result()

  def not_again(*a, **k):
    raise AssertionError("the prepared start compiled the start again")
  monkeypatch.setattr(fit_lib, "start", not_again)
  got = start(params)
  assert jax.tree.structure(got) == jax.tree.structure(expected)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.array_equal(np.asarray(got.sh), np.asarray(params.sh))   # it did fit
  # Without a start in the config there is nothing to prepare.
  with config.unlocked():
    config.model.audiogs.init_fit = 0
  assert trainstate.prepare_fit(config, scene) is None


# ----------------------------------------------------------------------------- resume

def test_resume_after_sigterm_matches_uninterrupted_run(trained_workdir, smoke, tmp_path,
                                                        monkeypatch):
  """2N steps in one go (the session's run) == N steps, SIGTERM, restart, N more."""
  n = smoke.ckpt_every
  assert smoke.steps == 2 * n
  # Validation does not touch the state: skip it here (faster), as on restart.
  config = smoke.config(train__eval_every=0)
  wd = tmp_path / "resumed"
  orig_save = ckpt_lib.Checkpointer.save

  def save_then_preempt(self, step, state, meta, **kw):
    orig_save(self, step, state, meta, **kw)
    if step == n and not kw.get("best"):
      handler = signal.getsignal(signal.SIGTERM)
      assert callable(handler), "train_and_evaluate installed no SIGTERM handler"
      signal.raise_signal(signal.SIGTERM)

  monkeypatch.setattr(ckpt_lib.Checkpointer, "save", save_then_preempt)
  with pytest.raises(SystemExit) as e:
    train.train_and_evaluate(config, wd, evaluate_at_end=False, progress=False)
  assert e.value.code == 130
  assert _complete_steps(wd) == [n]
  monkeypatch.setattr(ckpt_lib.Checkpointer, "save", orig_save)

  final = train.train_and_evaluate(smoke.config(train__eval_every=0), wd,
                                   evaluate_at_end=False, progress=False)
  assert int(final.step) == 2 * n
  resumed, _ = _restore_state(wd)
  reference, _ = _restore_state(trained_workdir)
  _assert_states_equal(resumed, reference)
  _assert_states_equal(jax.device_get(final), reference)
  # Logged steps continue where the first process stopped.
  steps = [json.loads(l)["step"] for l in (wd / "metrics.jsonl").read_text().splitlines()
           if json.loads(l)["split"] == "train"]
  assert steps == list(range(4, 2 * n + 1, 4))


def test_sigkill_then_restart_resumes_from_last_complete_checkpoint(
    trained_workdir, smoke, tmp_path, subprocess_env):
  """SIGKILL while training, plus a half-written (orbax temporary) checkpoint left
  behind as by a crash during a save: the restart ignores it, resumes from the
  last complete checkpoint and ends with the same state as an uninterrupted run."""
  wd = tmp_path / "killed"

  def cmd(checkpoint_every):
    return [sys.executable, "-m", "audiogs_jax.train", "--config", smoke.config_path,
            "--workdir", str(wd), "--no-eval", "--no-progress",
            *smoke.overrides(train__checkpoint_every=checkpoint_every,
                             train__eval_every=0)]

  # First run: a checkpoint every step, killed as soon as one is complete.
  log1 = open(tmp_path / "run1.log", "w")
  proc = subprocess.Popen(cmd(1), cwd=str(REPO), env=subprocess_env, stdout=log1,
                          stderr=subprocess.STDOUT)
  try:
    deadline = time.monotonic() + 400
    while not _complete_steps(wd):
      assert proc.poll() is None, (tmp_path / "run1.log").read_text()[-3000:]
      assert time.monotonic() < deadline, "no checkpoint appeared"
      time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
    log1.close()
  done = _complete_steps(wd)
  last = max(done)
  assert last < smoke.steps

  # A crash in the middle of saving the next step: orbax's temporary folder,
  # half written (no commit marker, no manifest), plus an older-style one. (The
  # kill may already have left a real one behind, mid-save: then keep that.)
  ckdir = wd / "checkpoints"
  partial = ckdir / f"{last + 1}.orbax-checkpoint-tmp"
  if not partial.exists():
    shutil.copytree(ckdir / str(last), partial)
    for f in partial.rglob("*"):
      if f.is_file() and f.name in ("commit_success.txt", "manifest.ocdbt", "_METADATA"):
        f.unlink()
  stale = ckdir / f"{last + 2}.orbax-checkpoint-tmp-1700000000"
  (stale / "state").mkdir(parents=True)
  (stale / "state" / "_METADATA").write_text("{truncated")

  # Restart (checkpointing less often: saves do not change the trained state).
  run2 = subprocess.run(cmd(smoke.ckpt_every), cwd=str(REPO), env=subprocess_env,
                        capture_output=True, text=True, timeout=500)
  assert run2.returncode == 0, run2.stderr[-3000:]
  assert f"resuming from {wd}/checkpoints/{last}" in run2.stderr
  assert smoke.steps in _complete_steps(wd)
  state, meta = _restore_state(wd)
  assert int(state.step) == meta["step"] == smoke.steps
  reference, _ = _restore_state(trained_workdir)
  _assert_states_equal(state, reference)


# ----------------------------------------------------------------------------- CLI

def test_unknown_override_is_a_clear_error(capsys, tmp_path):
  with pytest.raises(SystemExit) as e:
    train.main(["--config", "configs/smoke.py", "--workdir", str(tmp_path / "w"),
                "--config.train.stepz=3"])
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert "stepz" in err and "config.train" in err
  assert "steps" in err  # the fields that do exist are listed
  assert "Traceback" not in err
  assert not (tmp_path / "w").exists()


def test_missing_config_file_is_a_clear_error(capsys, tmp_path):
  with pytest.raises(SystemExit) as e:
    train.main(["--config", str(tmp_path / "nope.py"), "--workdir", str(tmp_path / "w")])
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert "nope.py" in err and "not found" in err


def test_bad_override_value_is_a_clear_error(capsys, tmp_path):
  with pytest.raises(SystemExit) as e:
    train.main(["--config", "configs/smoke.py", "--workdir", str(tmp_path / "w"),
                "--config.data.normalize=maybe"])
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert "config.data.normalize" in err and "maybe" in err


def test_resume_into_another_model_is_a_clear_error(trained_workdir, smoke, tmp_path,
                                                    capsys):
  """An override that changes the parameter shapes cannot resume the workdir's
  checkpoint: a clear error naming it, and the workdir's config is left as is."""
  wd = tmp_path / "w"
  shutil.copytree(trained_workdir, wd, ignore=shutil.ignore_patterns("eval", "tb", "best"))
  before = (wd / "config.json").read_text()
  with pytest.raises(SystemExit) as e:
    train.main(["--workdir", str(wd), "--no-eval", "--no-progress",
                "--config.model.audiogs.sh_degree=1"])
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert f"{wd / 'checkpoints' / str(smoke.steps)}: does not match" in err
  assert "Traceback" not in err
  assert (wd / "config.json").read_text() == before
  assert _complete_steps(wd) == [smoke.ckpt_every, smoke.steps]


def test_resume_reads_the_saved_config(trained_workdir, smoke, tmp_path):
  """Without --config, a workdir's own config.json is used (its steps, root...)."""
  args = cli.train_parser().parse_args(["--workdir", str(trained_workdir)])
  cfg = workdir_lib.resolve_config(args, {"train.log_every": "2"})
  assert cfg.train.steps == smoke.steps
  assert cfg.data.root == str(smoke.data_root)
  assert cfg.train.log_every == 2


def test_help(help_outputs):
  r = help_outputs["train"]
  assert r.returncode == 0, r.stderr
  for opt in ("--config", "--workdir", "--no-eval", "--config.train.steps"):
    assert opt in r.stdout
