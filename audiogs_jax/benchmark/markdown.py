"""The benchmark report as markdown, one function per section, every number read from
the results JSON (``analysis.collect``)."""

from __future__ import annotations

import shlex
from typing import Optional, Sequence

from audiogs_jax.benchmark.analysis import BASELINE_LABELS, BASELINES, METRICS, \
    TABLE_METRICS, WIN_METRICS
from audiogs_jax.benchmark.plans import KEY_ABLATIONS, VARIANTS

__all__ = ["render_markdown", "hms"]


def _f(v: Optional[float]) -> str:
  """A metric value as written in the tables."""
  return "n/a" if v is None else f"{v:.4f}"


def _pct(v: float) -> str:
  """A relative change in per cent, signed."""
  return f"{v:+.1f}%"


def hms(s: Optional[float]) -> str:
  """A wall time in seconds as ``H:MM:SS``."""
  if s is None:
    return "n/a"
  s = int(round(s))
  return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _jobs(b: dict) -> int:
  """The most runs trained at once by any invocation (1 for older JSON)."""
  return max([int(i.get("jobs", 1)) for i in b.get("invocations", []) if i["runs_trained"]]
             or [1])


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  """A markdown table: a header row, then one line per row of cells."""
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  return "\n".join(lines)


def _without_notes(command: str) -> str:
  """``command`` with each ``--note TEXT`` shortened to ``--note ...``."""
  try:
    argv = shlex.split(command)
  except ValueError:
    return command
  out, skip = [], False
  for a in argv:
    if skip:
      skip = False
      continue
    if a == "--note":
      out.append("--note ...")
      skip = True
    else:
      out.append(a if a == "--note ..." else shlex.quote(a))
  return " ".join(out)


def _first_estimator(res: dict) -> str:
  """The blind RT60 estimator named by the first run that names one."""
  for rr in res["runs"].values():
    for r in rr.values():
      if r.get("rte_estimator"):
        return r["rte_estimator"]
  return "n/a"


def _header(res: dict, docs_rel: str, report_command: Optional[str],
            rebuild_command: Optional[str]) -> list[str]:
  """Title, how and where the numbers were made, where the raw numbers are, the
  metrics."""
  b = res["benchmark"]
  mach = b["machine"]
  runs_wall = sum((r.get("wall_s") or 0.0) for rr in res["runs"].values() for r in rr.values())
  out = ["# Benchmark: ablations and baselines on three synthetic rooms\n"]
  out.append(f"Produced by `{b['command']}` (mode `{b['mode']}`: {b['mode_description']}) "
             f"on {b['date'][:10]}, on a {mach['cpu_count']}-core {mach['processor']} machine "
             f"(JAX {mach['jax']}, backend `{mach['backend']}`, device {mach['device']}); "
             f"wall time {hms(b['wall_s'])} for the benchmark command (scene generation, "
             "training, evaluation, report; a resumed benchmark adds up its invocations), "
             f"{hms(runs_wall)}"
             " summed over the training + evaluation runs (a resumed benchmark counts each run "
             "once" + (f"; with {_jobs(b)} runs at a time each run's own time includes "
                       "sharing the machine with the others" if _jobs(b) > 1 else "")
             + ").")
  if report_command and report_command != b["command"]:
    out.append(f"\nThis page was regenerated from the JSON by "
               f"`{_without_notes(report_command)}`.")
  out.append(f"\nRaw numbers: [`{docs_rel}/results.json`]({docs_rel}/results.json) (every "
             "run's summary, the per-clip model metrics, the analysis below, the commands). "
             "Every number on this page is read from that file"
             + (f"; rebuild the page from it with `{rebuild_command}`" if rebuild_command
                else "") + ". The scenes and the training runs are seeded, so the command "
             "above reproduces them.\n")
  out.append("Metrics (docs/metrics.md; lower is better) on each room's validation clips (1 s, "
             "every fifth second of the scene, positions not seen in training), at the "
             "recordings' scale. MAG in both protocols (`mag_avnerf`: RWAVS/AV-NeRF, "
             "`mag_avcloud`: Replay-NVAS/AV-Cloud), ENV, LRE (dB), RTE (s) with the blind "
             f"estimator `{_first_estimator(res)}` and `rte_true`, the error to the simulated "
             "room's measured RT60, and the interaural errors: ITD (us), IPD (below 1.5 kHz) "
             "and ILD (dB, mean over octave bands 125 Hz-8 kHz). DPAM is not computed here.\n")
  return out


def _rooms_section(res: dict, room_names: Sequence[str]) -> list[str]:
  """The rooms' table, the per-room settings and the invocations that trained."""
  b = res["benchmark"]
  out = ["## Rooms\n"]
  rows = []
  for room in room_names:
    r = res["rooms"][room]
    rows.append([room, r["description"], " x ".join(f"{v:g}" for v in r["size_m"]),
                 f"{r['rt60_requested']:g}", f"{r['rt60_measured']:.3f}", r["signal"],
                 r["trajectory"], str(r["seed"]), str(r["seconds"]), str(r["num_val_clips"])])
  out.append(_table(["room", "description", "size (m)", "RT60 asked (s)", "RT60 measured (s)",
                     "source signal", "listener trajectory", "seed", "scene (s)",
                     "val clips"], rows))
  out.append("\nGenerated by `audiogs_jax.data.synth` (image-source method, every image "
             "source heard through the MIT KEMAR HRIRs of its direction; "
             "`configs/bench_rooms.py`). Training clips are the other 80 % of the "
             "seconds.")
  if b.get("room_overrides"):
    reasons = b.get("room_reasons", {})
    out.append("\nPer-room settings, applied to every AudioGS variant of the room: " + "; ".join(
        f"{room}: " + ", ".join(f"`{k}={v}`" for k, v in ov.items())
        + (f" ({reasons[room]})" if room in reasons else "")
        for room, ov in b["room_overrides"].items()) + ".")
  inv = [i for i in b.get("invocations", []) if i["runs_trained"]]
  if len(inv) > 1:
    out.append("\nThe runs were made by " + str(len(inv)) + " invocations: " + "; ".join(
        f"`{_without_notes(i['command'])}` (finished {i['date'][:16].replace('T', ' ')}) "
        f"trained {i['runs_trained']} run(s) in {hms(i['wall_s'])}" for i in inv)
        + " (notes below).")
  return out


def _ablation_sentence(comp: str, room: str, eff: dict) -> str:
  """One bullet: what removing ``comp`` does to each metric in ``room``."""
  parts = []
  for m in METRICS:
    e = eff[m]
    if e["verdict"] == "hurts":
      parts.append(f"hurts {m} ({_pct(e['rel_pct'])})")
    elif e["verdict"] == "improves":
      parts.append(f"*improves* {m} ({_pct(e['rel_pct'])}), i.e. the component does "
                   "not help here")
    else:
      parts.append(f"does not clearly change {m} ({_pct(e['rel_pct'])})")
  return f"- **{comp}, {room}**: removing it " + "; ".join(parts) + "."


def _ablation_row(comp: str, room: str, m: str, e: dict) -> list[str]:
  """A row of the ablations' table: removing ``comp`` in ``room``, metric ``m``."""
  return [comp, room, m, _f(e["full"]), _f(e["variant"]), f"{e['delta']:+.4f}",
          _pct(e["rel_pct"]), f"[{e['ci95_delta'][0]:+.4f}, {e['ci95_delta'][1]:+.4f}]",
          e["verdict"]]


def _ablation_section(res: dict, room_names: Sequence[str]) -> list[str]:
  """The verdict rule, one sentence per key ablation and room, and their table."""
  b, an = res["benchmark"], res["analysis"]
  out = ["\n## Does each component earn its place?\n"]
  out.append(f"Removing a component **hurts** a metric when the mean over validation clips "
             f"gets worse by more than {100 * b['rel_threshold']:.0f} % and the paired "
             f"bootstrap 95 % interval ({b['bootstrap_samples']} resamples of the clips) of "
             "the per-clip difference lies above zero; it **improves** the metric in the "
             "mirror case; otherwise the effect is called *no clear effect*. The interval "
             "covers clip-to-clip variation only, not training-seed variation (one seed per "
             "run).\n")
  found = [(name, room, an["ablations"][room][name]) for name in KEY_ABLATIONS
           for room in room_names if name in an["ablations"].get(room, {})]
  sentences = [_ablation_sentence(VARIANTS[name].ablates, room, eff)
               for name, room, eff in found]
  out.append("\n".join(sentences) if sentences else "No ablation was run.")
  rows = [_ablation_row(VARIANTS[name].ablates, room, m, eff[m])
          for name, room, eff in found for m in METRICS]
  if rows:
    out.append("\n" + _table(["removed", "room", "metric", "full", "without", "change",
                              "change %", "95 % interval of change", "removing it"], rows))
  return out


def _baseline_verdict(res: dict, room: str, cmp_: dict) -> str:
  """One bullet: whether AudioGS beats every baseline on ``WIN_METRICS`` in ``room``,
  and what was tried there."""
  b = res["benchmark"]
  losses = [(bl, m, cmp_[bl][m]) for bl in BASELINES for m in WIN_METRICS
            if not cmp_[bl][m]["beats"]]
  ov = b.get("room_overrides", {}).get(room)
  tried = ("" if not ov else " Tried in this room: " + ", ".join(
      f"`{k}={v}`" for k, v in ov.items()) + " for every AudioGS variant"
      + (f" ({b['room_reasons'][room]})" if room in b.get("room_reasons", {}) else "")
      + ".")
  if not losses:
    return (f"- **{room}**: AudioGS beats all four baselines on MAG (both protocols), "
            "ENV and LRE." + tried)
  return (f"- **{room}**: AudioGS does **not** beat every baseline: " + "; ".join(
      f"{BASELINE_LABELS[bl]} is better on {m} by {-c['margin']:.4f} "
      f"({-c['margin_pct']:.1f} % of the baseline's value"
      + (f"; 95 % interval of the margin over clips [{c['ci95_margin'][0]:+.4f}, "
         f"{c['ci95_margin'][1]:+.4f}]" if "ci95_margin" in c else "") + ")"
      for bl, m, c in losses) + "."
      + tried)


def _interaural_summary(res: dict, room_names: Sequence[str]) -> str:
  """Sentences on interaural time: AudioGS's ITD error against a zero-ITD render (the
  mono baselines, whose ITD is 0 by construction) and against every baseline."""
  lines = ["\nInteraural time and phase (`itd`: |ITD error| in microseconds, GCC-PHAT; "
           "`ipd`: weighted 1 - cos of the IPD error below 1.5 kHz). Mono-Mono and "
           "Mono-Energy render no ITD at all, so their ITD error is the recordings' mean "
           "|ITD|: a model that renders interaural time usefully has at most half of it.\n"]
  for room in room_names:
    full = res["runs"][room].get("full")
    if full is None or "itd" not in full["model"]:
      continue
    ours = float(full["model"]["itd"])
    zero = float(full["baselines"]["mono_energy"]["itd"])
    best_bl = min(BASELINES, key=lambda bl: float(full["baselines"][bl]["itd"]))
    best = float(full["baselines"][best_bl]["itd"])
    ratio = ours / zero if zero else float("inf")
    lines.append(
        f"- **{room}**: AudioGS ITD error {ours:.1f} us, {100 * ratio:.0f} % of a zero-ITD "
        f"render's {zero:.1f} us ({'at most' if ratio <= 0.5 else '**more than**'} half); "
        f"best baseline {BASELINE_LABELS[best_bl]} {best:.1f} us "
        f"({'AudioGS better' if ours < best else '**AudioGS not better**'}); IPD error "
        f"{float(full['model']['ipd']):.3f} against "
        f"{min(float(full['baselines'][bl]['ipd']) for bl in BASELINES):.3f} for the best "
        "baseline.")
  return "\n".join(lines)


def _margin_row(room: str, bl: str, m: str, c: dict) -> list[str]:
  """A row of the baseline-margin table."""
  ci = c.get("ci95_margin")
  return [room, BASELINE_LABELS[bl], m, _f(c["audiogs"]), _f(c["baseline"]),
          f"{c['margin']:+.4f}", _pct(c["margin_pct"]),
          f"[{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "n/a",
          "yes" if c["beats"] else "**no**"]


def _baselines_section(res: dict, room_names: Sequence[str], media: dict,
                       docs_rel: str) -> list[str]:
  """AudioGS against the four baselines: a verdict per room, interaural time, the
  margins' table, the notes of the run and the figure."""
  b, an = res["benchmark"], res["analysis"]
  out = ["\n## AudioGS against the four baselines\n"]
  out.append("\n".join(_baseline_verdict(res, room, an["baselines"][room])
                       for room in room_names if an["baselines"].get(room)))
  out.append(_interaural_summary(res, room_names))
  rows = [_margin_row(room, bl, m, an["baselines"][room][bl][m]) for room in room_names
          for bl in BASELINES if bl in an["baselines"].get(room, {}) for m in METRICS]
  if rows:
    out.append("\nMargins are baseline minus AudioGS (> 0: AudioGS better); the interval is "
               "the paired bootstrap 95 % interval of the per-clip margin.\n")
    out.append(_table(["room", "baseline", "metric", "AudioGS", "baseline",
                       "margin", "margin %", "95 % interval of margin",
                       "AudioGS better"], rows))
  if b.get("notes"):
    out.append("\nNotes on this run (what was tried):\n")
    out.append("\n".join(f"- {n}" for n in b["notes"]))
  if media.get("baselines_png"):
    out.append(f"\n![AudioGS, U-Net and baselines per room]({docs_rel}/{media['baselines_png']})")
  return out


def _room_tables(res: dict, room: str) -> list[str]:
  """One room's numbers: every method beside the baselines, then each variant's
  change against the full model."""
  runs = res["runs"][room]
  out = [f"### {room}\n"]
  rows = []
  for r in runs.values():
    label = r["label"] + (f", width {r['unet_width']}" if r.get("unet_width") else "")
    rows.append([label, *[_f(r["model"].get(m)) for m in TABLE_METRICS],
                 f"{r['steps']} x {r['batch_size']}", hms(r.get("wall_s"))])
  base = runs.get("full") or next(iter(runs.values()), None)
  if base is not None:
    for bl in BASELINES:
      rows.append([BASELINE_LABELS[bl], *[_f(base["baselines"][bl].get(m))
                                          for m in TABLE_METRICS], "", ""])
  out.append(_table(["method", *TABLE_METRICS, "steps x batch", "train + eval wall"], rows))
  out.append("\nThe full model has SH degree 2, dual SH fields, attenuation, phase "
             "correction, the phase loss and the 128-frame reverberant tail "
             "(`configs/default.py`); \"AudioGS (paper)\" is the published renderer, "
             "without the tail.\n")
  var = res["analysis"]["variants"].get(room, {})
  if var:
    rows = [[runs[n]["label"], *[_pct(var[n][m]["rel_pct"]) for m in METRICS],
             ", ".join(f"{m}: {var[n][m]['verdict']}" for m in METRICS)]
            for n in var]
    out.append("Change of each variant against the full model (> 0: worse):\n")
    out.append(_table(["variant", *METRICS, "verdict"], rows) + "\n")
  return out


def _per_room_section(res: dict, room_names: Sequence[str], media: dict,
                      docs_rel: str) -> list[str]:
  """All numbers, room by room, and the ablations' figure."""
  out = ["\n## All numbers, per room\n"]
  for room in room_names:
    out += _room_tables(res, room)
  if media.get("ablations_png"):
    out.append(f"![change of each variant against the full model]({docs_rel}/"
               f"{media['ablations_png']})\n")
  return out


def _limits_section(res: dict) -> list[str]:
  """What this evidence does not show, with the steps and widths of this run."""
  steps = sorted({r["steps"] for rr in res["runs"].values() for n, r in rr.items()
                  if not VARIANTS.get(n, VARIANTS["full"]).unet})
  unet = [r for rr in res["runs"].values() for n, r in rr.items()
          if VARIANTS.get(n, VARIANTS["full"]).unet]
  lim = [f"- One training run (seed 0) per room and variant, "
         f"{'/'.join(str(v) for v in steps)} AudioGS steps; the intervals above cover the "
         "variation over validation clips, not over training seeds, so effects of a few "
         "per cent are within what a different seed could change."]
  if unet:
    u = unet[0]
    lim.append(f"- The Audio 3DGS U-Net ran at width {u['unet_width']} (published: 64) for "
               f"{u['steps']} steps at batch {u['batch_size']}, the size that fits this "
               "time budget; its numbers say how that small network does, not how the "
               "published one would.")
  lim.append("- Rooms are simulated (image-source method through the KEMAR dummy head's "
             "measured HRIRs), not recorded; each has one static source.")
  return ["## Limits of this evidence\n", "\n".join(lim) + "\n"]


def _commands_section(res: dict) -> list[str]:
  """Every run's equivalent shell command."""
  return ["## Commands\n",
          "Every run, as the shell command it is equivalent to (the benchmark calls the "
          "library in-process with the same config and overrides):\n",
          "```bash\n" + "\n".join(r["command"] for rr in res["runs"].values()
                                  for r in rr.values()) + "\n```\n"]


def _listening_section(room_names: Sequence[str], media: dict, docs_rel: str) -> list[str]:
  """Links to each room's top view and WAV pairs under ``docs_rel``."""
  out = ["## Listening\n"]
  out.append("Rendered (AudioGS full) and recorded 1-s validation clips, 16-bit WAV, and a "
             "top view of each room: the learned Gaussians (a random 6000 of them, coloured "
             "by gain), the source (star), the listener path and the walls.\n")
  for room in room_names:
    m = media.get("rooms", {}).get(room, {})
    out.append(f"### {room}\n")
    if m.get("figure"):
      out.append(f"![{room}: top view]({docs_rel}/{m['figure']})\n")
    for clip, rendered, recorded in m.get("wavs", []):
      out.append(f"- clip {clip}: [rendered]({docs_rel}/{rendered}) / "
                 f"[recorded]({docs_rel}/{recorded})")
    out.append("")
  return out


def render_markdown(res: dict, *, media: Optional[dict] = None,
                    docs_rel: str = "results", report_command: Optional[str] = None,
                    rebuild_command: Optional[str] = None) -> str:
  """The report as markdown, every number taken from ``res`` (the JSON).

  Args:
    res: the results (``analysis.collect``), with their ``analysis``.
    media: figure and WAV file names under ``docs_rel`` (``report.write_report``):
      ``{"ablations_png", "baselines_png", "rooms": {room: {"figure", "wavs":
      [(clip, rendered, recorded)]}}}``, each optional.
    docs_rel: the media folder relative to the report.
    report_command: the command that wrote this page, when not the benchmark's.
    rebuild_command: how to rebuild the page from the JSON.
  """
  media = media or {}
  room_names = list(res["runs"])
  out = _header(res, docs_rel, report_command, rebuild_command)
  out += _rooms_section(res, room_names)
  out += _ablation_section(res, room_names)
  out += _baselines_section(res, room_names, media, docs_rel)
  out += _per_room_section(res, room_names, media, docs_rel)
  out += _limits_section(res)
  out += _commands_section(res)
  out += _listening_section(room_names, media, docs_rel)
  return "\n".join(out).rstrip() + "\n"
