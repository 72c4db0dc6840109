"""Result tables: the metric columns and method names of every evaluation report.

``evaluate`` prints one model beside the four baselines; ``compare`` puts
several models (workdirs) beside them. Both write the same markdown table,
columns in :data:`COLUMNS` order, values to four decimals and ``n/a`` where a
metric was not computed (DPAM without the ``cdpam`` package).
"""

from __future__ import annotations

from typing import Mapping, Sequence

__all__ = ["COLUMNS", "METHOD_LABELS", "baseline_rows", "format_rows", "format_table"]

#: Display names of the baselines (``baselines.BASELINE_NAMES``); a model's
#: name comes from its summary (``protocol["model_label"]``).
METHOD_LABELS = {"mono_mono": "Mono-Mono", "mono_energy": "Mono-Energy",
                 "stereo_energy": "Stereo-Energy", "nearest_pose": "Nearest-pose transfer"}
#: The metrics a table may show, in order (``metrics.compute_metrics``'s keys).
COLUMNS = ("mag_avnerf", "mag_avcloud", "env", "lre", "rte", "rte_true", "itd", "ipd", "ild",
           "dpam")


def baseline_rows(baselines: Mapping[str, Mapping]) -> list[tuple[str, Mapping]]:
  """``[(label, {metric: value}), ...]`` of a summary's ``"baselines"``, in its order."""
  return [(METHOD_LABELS.get(k, k), v) for k, v in baselines.items()]


def format_rows(rows: Sequence[tuple[str, Mapping]], cols: Sequence[str]) -> str:
  """Markdown table of ``rows`` ``[(method, {metric: value})]`` over the columns
  ``cols``: ``"n/a"`` for a missing or ``None`` value, else four decimals."""
  lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
  for name, r in rows:
    cells = ["n/a" if r.get(c) is None else f"{r[c]:.4f}" for c in cols]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def format_table(summary: Mapping) -> str:
  """Markdown table of an evaluation summary: the model beside the baselines.

  ``summary``: ``{"model": {metric: value}, "baselines": {name: {metric:
  value}}, "protocol": {"model_label": ...}}`` (``evaluate``'s
  ``summary.json``); the columns are those of :data:`COLUMNS` that some row
  has.
  """
  model_label = summary.get("protocol", {}).get("model_label", "model")
  rows = [(model_label, summary["model"])] + baseline_rows(summary["baselines"])
  cols = [c for c in COLUMNS if any(c in r for _, r in rows)]
  return format_rows(rows, cols)
