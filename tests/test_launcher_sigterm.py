"""``scripts/launch_local_multihost.sh``: a SIGTERM to the launcher stops the
whole 2-process job (TERM, then KILL for a process still alive 10 s later):
no training process is left 15 s after the signal."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time

REPO = pathlib.Path(__file__).resolve().parent.parent


def _job_pids(marker: str) -> list:
  """Processes whose command line contains ``marker`` (the job's workdir)."""
  pids = []
  for d in pathlib.Path("/proc").iterdir():
    if not d.name.isdigit():
      continue
    try:
      cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
      continue
    if marker in cmd and "audiogs_jax.train" in cmd:
      pids.append(int(d.name))
  return pids


def test_sigterm_to_the_launcher_leaves_no_process(tmp_path, smoke, tiny_workdir,
                                                   subprocess_env):
  # tiny_workdir: the smoke scene is cached already, the job starts training quickly.
  wd = tmp_path / "job"
  env = dict(subprocess_env, AUDIOGS_LOG_DIR=str(tmp_path / "logs"))
  cmd = ["bash", "scripts/launch_local_multihost.sh", "2", "--config", smoke.config_path,
         "--workdir", str(wd), "--no-progress", "--no-eval",
         *smoke.overrides(train__steps=100000, train__eval_every=0,
                          train__checkpoint_every=100000, train__log_every=2)]
  log = open(tmp_path / "launcher.log", "w")
  proc = subprocess.Popen(cmd, cwd=str(REPO), env=env, stdout=log,
                          stderr=subprocess.STDOUT, start_new_session=True)
  try:
    deadline = time.monotonic() + 240
    # Both processes up and process 0 in its training loop (it logs a training row
    # every 2 steps; the step-0 ``init`` row comes before the loop).
    while not ((wd / "metrics.jsonl").is_file()
               and '"split": "train"' in (wd / "metrics.jsonl").read_text()):
      assert proc.poll() is None, (tmp_path / "launcher.log").read_text()[-3000:]
      assert time.monotonic() < deadline, "the job did not start training"
      time.sleep(0.2)
    assert len(_job_pids(str(wd))) == 2
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=15)
    while _job_pids(str(wd)) and time.monotonic() - t0 < 15:
      time.sleep(0.1)
    assert _job_pids(str(wd)) == [], "a training process outlived the launcher"
    assert rc == 130
    # The processes agreed on a step, saved it and said how to resume.
    text = (tmp_path / "launcher.log").read_text()
    assert f"resume with: python -m audiogs_jax.train --workdir {wd}" in text, text[-2000:]
  finally:
    for pid in _job_pids(str(wd)):
      os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
    log.close()
