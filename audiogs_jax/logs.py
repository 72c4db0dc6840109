"""The training logs: ``metrics.jsonl`` and TensorBoard event files."""

from __future__ import annotations

import json
import pathlib

from tensorboardX import SummaryWriter

from audiogs_jax import parallel

__all__ = ["Logger"]


class Logger:
  """metrics.jsonl + TensorBoard event files (process 0 only).

  A resumed run (``resume_step``) continues both logs from its checkpoint:
  rows logged after that step by the interrupted run (which the resumed run
  computes again) are dropped from ``metrics.jsonl``, and the TensorBoard
  event file is rewritten from the kept rows, so that every step appears
  once and TensorBoard shows one curve per scalar (one event file).
  ``last_train_s``: the last kept row's ``train_s`` (training seconds), from
  which a resumed run counts on; 0 for a new log.
  """

  def __init__(self, workdir: pathlib.Path, resume_step: int = 0):
    self.enabled = parallel.is_main()
    self.jsonl = None
    self.tb = None
    self.last_train_s = 0.0
    if not self.enabled:
      return
    path = workdir / "metrics.jsonl"
    kept = _kept_rows(path, resume_step)
    self.last_train_s = max([float(r["train_s"]) for r in kept
                             if isinstance(r.get("train_s"), (int, float))], default=0.0)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    tmp.replace(path)
    self.jsonl = open(path, "a", buffering=1)
    tb_dir = workdir / "tb"
    for old in tb_dir.glob("events.out.tfevents.*") if tb_dir.is_dir() else []:
      old.unlink()
    self.tb = SummaryWriter(str(tb_dir))
    for r in kept:
      self._tb_write(r["step"], {k: v for k, v in r.items() if k not in ("step", "split")},
                     r.get("split", "train"))

  def _tb_write(self, step: int, scalars: dict, prefix: str) -> None:
    for k, v in scalars.items():
      if v is not None:
        self.tb.add_scalar(f"{prefix}/{k}", float(v), int(step))

  def write(self, step: int, scalars: dict, prefix: str = "train") -> None:
    if not self.enabled:
      return
    rec = {"step": int(step), "split": prefix,
           **{k: (None if v is None else float(v)) for k, v in scalars.items()}}
    self.jsonl.write(json.dumps(rec) + "\n")
    if self.tb is not None:
      self._tb_write(step, scalars, prefix)

  def close(self):
    if self.jsonl:
      self.jsonl.close()
    if self.tb is not None:
      self.tb.close()


def _kept_rows(path: pathlib.Path, upto: int) -> list:
  """The rows of a ``metrics.jsonl`` up to step ``upto`` (a torn last line,
  from a kill in the middle of a write, is dropped)."""
  rows = []
  if not path.is_file():
    return rows
  for line in path.read_text().splitlines():
    try:
      r = json.loads(line)
    except json.JSONDecodeError:
      continue
    if isinstance(r, dict) and isinstance(r.get("step"), int) and r["step"] <= upto:
      rows.append(r)
  return rows
