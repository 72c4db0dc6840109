"""TEMPORARY (the metrics branch writes tables.py)."""

METHOD_LABELS = {"model": None, "mono_mono": "Mono-Mono", "mono_energy": "Mono-Energy",
                 "stereo_energy": "Stereo-Energy", "nearest_pose": "Nearest-pose transfer"}

COLUMNS = ("mag_avnerf", "mag_avcloud", "env", "lre", "rte", "rte_true", "itd", "ipd", "ild",
           "dpam")


def format_table(summary: dict) -> str:
  """Markdown table: the model beside the baselines."""
  model_label = summary.get("protocol", {}).get("model_label", "model")
  rows = [(model_label, summary["model"])]
  rows += [(METHOD_LABELS.get(k, k), v) for k, v in summary["baselines"].items()]
  cols = [c for c in COLUMNS if any(c in r for _, r in rows)]
  head = "| method | " + " | ".join(cols) + " |"
  sep = "|---|" + "---|" * len(cols)
  lines = [head, sep]
  for name, r in rows:
    cells = []
    for c in cols:
      v = r.get(c)
      cells.append("n/a" if v is None else f"{v:.4f}")
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)
