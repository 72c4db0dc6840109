"""Side-by-side tables of several evaluated workdirs.

``python -m audiogs_jax.evaluate --workdir A --workdir B ...`` (or
``python -m audiogs_jax.compare A B ...``) puts the models of several training
workdirs (for example AudioGS and Audio 3DGS trained on the same scene) in
one table with the four baselines. Each workdir's
``eval/<split>/summary.json`` is read; the workdirs must have been evaluated on
the same data (same dataset, scene, split and clips), which is checked by
comparing their protocol and their baseline scores: the baselines do not
depend on the model, so equal data gives equal baseline rows.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
from typing import Optional, Sequence

from audiogs_jax import config
from audiogs_jax import tables

__all__ = ["CompareError", "load_summary", "combine", "format_comparison", "compare_workdirs",
           "main"]


class CompareError(ValueError):
  """Workdirs that cannot be put in one table (missing or mismatched summaries)."""


def load_summary(workdir, split: str = "val") -> dict:
  """The ``summary.json`` of ``workdir`` on ``split``."""
  path = pathlib.Path(workdir) / "eval" / split / "summary.json"
  if not path.is_file():
    raise CompareError(f"{path}: no evaluation summary; run "
                       f"`python -m audiogs_jax.evaluate --workdir {workdir} --split {split}`")
  try:
    return json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise CompareError(f"{path}: malformed JSON ({e})") from None


def _overall(summary: dict) -> dict:
  """A multi-scene summary (``"scenes"`` key; metrics under ``per_scene`` /
  ``per_environment`` / ``overall``) as a single-scene one: its overall rows."""
  if "scenes" not in summary:
    return summary
  return {"model": summary["model"]["overall"],
          "baselines": {b: v["overall"] for b, v in summary["baselines"].items()},
          "protocol": summary["protocol"]}


def _same(a: Optional[float], b: Optional[float], rtol: float) -> bool:
  if a is None or b is None:
    return a is None and b is None
  return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=1e-9)


def combine(summaries: Sequence[dict], names: Sequence[str], *, rtol: float = 1e-4) -> dict:
  """One table's rows from several summaries of the same data.

  Args:
    summaries: ``summary.json`` dicts (``evaluate.evaluate_workdir`` output);
      for multi-scene workdirs, their overall (mean over scenes) rows are used.
    names: a name per summary (the workdir), used in errors and to tell apart
      two runs of the same model.
    rtol: relative tolerance when checking that the baselines agree.

  Returns:
    ``{"rows": [(label, {metric: value}), ...], "protocol": {...}}``: the
    models in the given order, then the baselines of the first summary.

  Raises:
    CompareError: when the summaries are not of the same data.
  """
  if not summaries:
    raise CompareError("no workdirs to compare")
  summaries = [_overall(s) for s in summaries]
  first = summaries[0]
  keys = ("split", "num_clips", "sample_rate", "data")
  for s, n in zip(summaries[1:], names[1:]):
    for k in keys:
      if s["protocol"].get(k) != first["protocol"].get(k):
        raise CompareError(f"{n}: evaluated on other data than {names[0]} "
                           f"({k}: {s['protocol'].get(k)!r} vs {first['protocol'].get(k)!r})")
    for b, row in first["baselines"].items():
      other = s["baselines"].get(b, {})
      for m, v in row.items():
        if m != "dpam" and not _same(v, other.get(m), rtol):
          raise CompareError(f"{n}: baseline {b} has {m} = {other.get(m)} but {names[0]} has "
                             f"{v}: not the same clips")
  labels = [s["protocol"].get("model_label", s["protocol"].get("model", "model"))
            for s in summaries]
  rows = []
  for label, s, n in zip(labels, summaries, names):
    if labels.count(label) > 1:
      label = f"{label} ({n})"
    rows.append((label, s["model"]))
  rows += tables.baseline_rows(first["baselines"])
  return {"rows": rows, "protocol": first["protocol"]}


def format_comparison(combined: dict) -> str:
  """Markdown table of ``combine``'s rows (as ``tables.format_table``), over the
  columns of ``tables.COLUMNS`` that some row has a value for."""
  rows = combined["rows"]
  cols = [c for c in tables.COLUMNS if any(r.get(c) is not None for _, r in rows)]
  return tables.format_rows(rows, cols)


def compare_workdirs(workdirs: Sequence, split: str = "val",
                     out: Optional[pathlib.Path] = None) -> str:
  """Read, check and format; writes ``out`` (markdown) when given. Returns the text."""
  summaries = [load_summary(w, split) for w in workdirs]
  combined = combine(summaries, [str(w) for w in workdirs])
  p = combined["protocol"]
  text = (f"Split `{split}` ({p.get('num_clips')} clips, {p.get('sample_rate')} Hz); "
          f"metrics on the recordings' scale; RTE estimator `{p.get('rte_estimator')}`; "
          f"workdirs: {', '.join(f'`{w}`' for w in workdirs)}.\n\n"
          f"{format_comparison(combined)}\n")
  if out is not None:
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
  return text


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(
      prog="python -m audiogs_jax.compare",
      description="One table of several evaluated workdirs (same scene and split) beside the "
                  "four baselines.")
  ap.add_argument("workdirs", nargs="+", help="evaluated training workdirs")
  ap.add_argument("--split", default="val")
  ap.add_argument("--out", default=None, help="also write the markdown table here")
  a = ap.parse_args(argv)
  try:
    print(compare_workdirs(a.workdirs, a.split, a.out))
  except CompareError as e:
    config.error_exit(str(e))
  return 0


if __name__ == "__main__":
  sys.exit(main())
