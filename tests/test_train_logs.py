"""Logs that tell the truth: a resumed run logs each step once (metrics.jsonl
and one TensorBoard event file), validation is on the recording's scale (the
evaluation table's numbers), SIGTERM / Ctrl-C say which step was saved and how
to resume, and a resume that would change the learning-rate schedule is
refused unless asked."""

from __future__ import annotations

import json
import pathlib
import shlex
import shutil
import signal

import pytest

from audiogs_jax import checkpoint as ckpt_lib
from audiogs_jax import logs
from audiogs_jax import train
from test_train import _tfrecords


def tb_scalars(workdir: pathlib.Path) -> dict:
  """``{tag: [(step, value), ...]}`` of the workdir's only event file."""
  from tensorboardX.proto import event_pb2
  files = sorted((workdir / "tb").glob("events.out.tfevents.*"))
  assert len(files) == 1, files
  tags = {}
  for rec in _tfrecords(files[0]):
    ev = event_pb2.Event.FromString(rec)
    for v in ev.summary.value:
      tags.setdefault(v.tag, []).append((ev.step, v.simple_value))
  return tags


def rows(workdir: pathlib.Path, split: str = "train") -> list:
  return [r for r in map(json.loads, (workdir / "metrics.jsonl").read_text().splitlines())
          if r["split"] == split]


def test_logger_keeps_rows_up_to_the_resumed_step(tmp_path, monkeypatch):
  """Rows 1-6 logged by a run whose last checkpoint is step 4 (and a line torn
  by the kill); the resumed logger logs 5-8: each step once, the new values,
  one event file holding the same."""
  monkeypatch.setattr(logs.parallel, "is_main", lambda: True)
  first = logs.Logger(tmp_path)
  for s in range(1, 7):
    first.write(s, {"loss": 100.0 + s})
    if s % 2 == 0:
      first.write(s, {"mag_avnerf": 1.0 / s}, prefix="val")
  first.close()
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 7, "spl')
  second = logs.Logger(tmp_path, resume_step=4)
  for s in range(5, 9):
    second.write(s, {"loss": float(s)})
  second.close()
  train_rows = rows(tmp_path)
  assert [r["step"] for r in train_rows] == list(range(1, 9))
  assert [r["loss"] for r in train_rows] == [101, 102, 103, 104, 5, 6, 7, 8]
  assert [r["step"] for r in rows(tmp_path, "val")] == [2, 4]
  tags = tb_scalars(tmp_path)
  assert [s for s, _ in tags["train/loss"]] == list(range(1, 9))
  assert [v for _, v in tags["train/loss"]] == [101, 102, 103, 104, 5, 6, 7, 8]
  assert [s for s, _ in tags["val/mag_avnerf"]] == [2, 4]


def test_resumed_logger_counts_training_seconds_on(tmp_path, monkeypatch):
  """A resumed log's ``last_train_s`` is the kept rows' last ``train_s`` (rows
  after the checkpoint dropped), from which the resumed run's clock counts on;
  a new log's is 0."""
  monkeypatch.setattr(logs.parallel, "is_main", lambda: True)
  first = logs.Logger(tmp_path)
  assert first.last_train_s == 0.0
  for s in range(1, 7):
    first.write(s, {"loss": 1.0, "train_s": 10.0 * s})
  first.close()
  second = logs.Logger(tmp_path, resume_step=4)
  second.close()
  assert second.last_train_s == 40.0


def _copy(tiny: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
  return shutil.copytree(tiny, dst)


def test_resumed_run_logs_each_step_once(tiny_workdir, tmp_path, capsys):
  """A workdir checkpointed at step 2 whose log goes on to step 4 (rows a killed
  run wrote after its last checkpoint) resumes to step 4 (with
  --change-schedule, said on stderr): steps 1-4 once each, the resumed run's
  values, one TensorBoard curve."""
  wd = _copy(tiny_workdir, tmp_path / "wd")
  with open(wd / "metrics.jsonl", "a") as f:
    for s in (3, 4):
      f.write(json.dumps({"step": s, "split": "train", "loss": -1.0}) + "\n")
  assert train.main(["--workdir", str(wd), "--no-eval", "--no-progress",
                     "--config.train.steps=4", "--change-schedule"]) == 0
  err = capsys.readouterr().err
  assert "changed learning-rate schedule (train.steps=2 -> 4)" in err
  train_rows = rows(wd)
  assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
  assert all(r["loss"] > 0 for r in train_rows)
  tags = tb_scalars(wd)
  assert [s for s, _ in tags["train/loss"]] == [1, 2, 3, 4]
  assert [v for _, v in tags["train/loss"]] == pytest.approx([r["loss"] for r in train_rows])


def test_resume_with_other_steps_is_refused_without_the_flag(tiny_workdir, tmp_path,
                                                            capsys):
  wd = _copy(tiny_workdir, tmp_path / "wd")
  with pytest.raises(SystemExit) as e:
    train.main(["--workdir", str(wd), "--no-eval", "--no-progress",
                "--config.train.steps=8"])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip()
  assert "train.steps=2 -> 8" in err and "--change-schedule" in err
  assert json.loads((wd / "config.json").read_text())["train"]["steps"] == 2


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c"])
def test_interruption_says_the_step_and_the_resume_command(tiny_workdir, tmp_path, capsys,
                                                           monkeypatch, how):
  """Stopped right after the step-3 checkpoint: exit 130, one line naming the
  saved step and the command; that command finishes the run."""
  wd = _copy(tiny_workdir, tmp_path / "wd")
  orig_save = ckpt_lib.Checkpointer.save

  def save_then_stop(self, step, state, meta, **kw):
    orig_save(self, step, state, meta, **kw)
    if step == 3:
      if how == "sigterm":
        signal.raise_signal(signal.SIGTERM)
      else:
        raise KeyboardInterrupt

  monkeypatch.setattr(ckpt_lib.Checkpointer, "save", save_then_stop)
  with pytest.raises(SystemExit) as e:
    train.main(["--workdir", str(wd), "--no-eval", "--no-progress", "--change-schedule",
                "--config.train.steps=5", "--config.train.checkpoint_every=1"])
  assert e.value.code == 130
  err = capsys.readouterr().err
  line = [l for l in err.splitlines() if l.startswith("interrupted")]
  assert line == [f"interrupted at step 3 of 5: saved step 3 in {wd}/checkpoints/3; "
                  f"resume with: python -m audiogs_jax.train --workdir {wd}"]
  monkeypatch.setattr(ckpt_lib.Checkpointer, "save", orig_save)
  command = shlex.split(line[0].split("resume with: ")[1])
  assert command[:3] == ["python", "-m", "audiogs_jax.train"]
  assert train.main(command[3:] + ["--no-eval", "--no-progress"]) == 0
  assert [r["step"] for r in rows(wd)] == [1, 2, 3, 4, 5]


def test_validation_is_on_the_recording_scale(trained_workdir, smoke):
  """The last validation row is the evaluation table's number (same checkpoint)."""
  val = [r for r in rows(trained_workdir, "val") if r["step"] == smoke.steps]
  assert len(val) == 1
  summary = json.loads((trained_workdir / "eval" / "val" / "summary.json").read_text())
  assert summary["protocol"]["checkpoint_step"] == smoke.steps
  for k in ("mag_avnerf", "mag_avcloud", "env", "lre"):
    assert val[0][k] == pytest.approx(summary["model"][k], rel=1e-3), k


def test_resume_after_a_kill_keeps_orbax_warnings_off_the_console(tiny_workdir, tmp_path,
                                                                  subprocess_env):
  """A kill during the save of step 3 leaves ``3.orbax-checkpoint-tmp``; saving
  step 3 again makes orbax warn (absl) that it removes it. The CLI's stderr
  holds only its own lines."""
  import subprocess
  import sys
  wd = _copy(tiny_workdir, tmp_path / "wd")
  partial = shutil.copytree(wd / "checkpoints" / "2",
                            wd / "checkpoints" / "3.orbax-checkpoint-tmp")
  (partial / "commit_success.txt").unlink()
  r = subprocess.run([sys.executable, "-m", "audiogs_jax.train", "--workdir", str(wd),
                      "--no-eval", "--no-progress", "--config.train.steps=3",
                      "--config.train.checkpoint_every=1", "--change-schedule"],
                     cwd=str(pathlib.Path(__file__).resolve().parent.parent),
                     env=subprocess_env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 2, r.stderr
  assert lines[0].startswith("note: resuming at step 2 with a changed learning-rate")
  assert lines[1] == f"resuming from {wd}/checkpoints/2"
  assert "absl" not in r.stderr and "WARNING" not in r.stderr.upper()
  assert (wd / "checkpoints" / "3" / "commit_success.txt").is_file()
  assert not (wd / "checkpoints" / "3.orbax-checkpoint-tmp").exists()
