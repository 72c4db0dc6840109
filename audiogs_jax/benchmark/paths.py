"""Path display and the JSON files of the benchmark (results, ``bench_run.json``)."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Optional

__all__ = ["rel", "read_json", "write_json"]


def rel(path: pathlib.Path) -> str:
  """``path`` relative to the current directory when it is below it, else as given.

  Used for every path the benchmark shows or records (commands, logs, the report), so
  that a benchmark run from a checkout's root names ``configs/...`` and ``runs/...``.
  """
  try:
    return str(pathlib.Path(path).resolve().relative_to(pathlib.Path.cwd().resolve()))
  except ValueError:
    return str(path)


def read_json(path: pathlib.Path) -> Optional[dict]:
  """The JSON object in ``path``, or None when it is missing or unreadable."""
  try:
    return json.loads(pathlib.Path(path).read_text())
  except (OSError, json.JSONDecodeError):
    return None


def write_json(path: pathlib.Path, obj: Any) -> None:
  """Write ``obj`` to ``path`` atomically (a temporary file, then a rename), so a
  killed benchmark never leaves a truncated results file behind."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(obj, indent=1, sort_keys=False))
  tmp.replace(path)
