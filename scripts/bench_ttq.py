"""Time to quality (``scripts/bench.py --time-to-quality``): validation metrics
against training time, as JSON rows and a plot.

One training run (``training.train_and_evaluate``, in-process, into a fresh
workdir) validates every ``eval_every`` steps; its ``metrics.jsonl``
validation rows give MAG (both protocols: ``mag_avnerf``, ``mag_avcloud``),
ENV and LRE on the eval split, on the recordings' scale, against ``step`` and
``train_s`` (training wall-clock seconds since the loop started, compilation
included, validation excluded). The baselines do not train: their metrics
come from the run's final evaluation (``eval/<split>/summary.json``), the same
numbers as the evaluation table. Every metric is an error (lower is better).

The result (``time_to_quality``):

- ``curve``: one row per validation, ``{"step", "train_s", metric: value}``;
- ``best_baseline``: ``{metric: {"name", "value"}}``, the lowest baseline value;
- ``beats_all``: ``{"step", "train_s"}`` of the first validation at which every
  metric is below its best baseline's, or None;
- ``mag99``: ``{"step", "train_s", "threshold"}`` of the first validation with
  ``mag_avnerf <= final / 0.99`` (within 1 % of the final value);
- ``final``: the last validation's metrics, ``final_step``, ``final_train_s``;
  ``final_eval``: the final evaluation's model metrics (``summary.json``);
``loadavg_after``: the host's load average after the run (another job on the
machine slows the clock).

``--ttq-compare`` also trains each scene with the previous recipe
(``PREVIOUS_RECIPE``: the constant start of the published method,
``model.audiogs.init_fit = 0``, and its SH learning rate; the rest unchanged)
until it first beats every baseline (``stop_when``: its learning-rate schedule
stays the full run's), right after the run with the configured start, each run
in a fresh process (``isolated``), and reports both times and their ratio
(``comparison``); ``--ttq-rooms`` adds the three benchmark rooms
(``configs/bench_room_*.py``).

``--start-cost`` times only the start (``start_cost``): the seconds from a loaded
training split to the fitted initial parameters, with the closed-form start
compiled in the background as the training does, against one step after another,
each in a fresh process, alternated.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import multiprocessing
import json
import os
import pathlib
import sys
import tempfile
import time

import jax
import numpy as np

from audiogs_jax import backend, dataset, training, trainstate
from audiogs_jax import checkpoint as ckpt_lib
from audiogs_jax import config as config_lib
from audiogs_jax import workdir as workdir_lib
from audiogs_jax.models import audiogs, get_model
from audiogs_jax.renderer import fit as fit_lib

METRICS = ("mag_avnerf", "mag_avcloud", "env", "lre")
#: The recipe before the closed-form start (``--ttq-compare``'s "constant" run):
#: ``{config field: value}`` on top of the configured recipe.
PREVIOUS_RECIPE = {"model.audiogs.init_fit": 0, "train.lr.sh": 5e-3}
#: The benchmark rooms of ``--ttq-rooms`` (``configs/bench_room_<room>.py``).
ROOMS = ("dry", "living", "hall")


def _overall(block: dict) -> dict:
  """A summary block's metrics (the ``overall`` of a multi-scene summary)."""
  return block.get("overall", block)


def _rows(workdir: pathlib.Path) -> list:
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _val_rows(workdir: pathlib.Path, split: str) -> list:
  """``{"step", "train_s", metric: value}`` of the validation rows of ``metrics.jsonl``."""
  return [{"step": r["step"], "train_s": r["train_s"], **{k: r[k] for k in METRICS}}
          for r in _rows(workdir) if r.get("split") == split]


def summarize_curve(curve: list, baselines: dict) -> dict:
  """The time-to-quality fields of validation rows ``curve`` (by step) against
  ``baselines`` (``{name: {metric: value}}``)."""
  best = {}
  for k in METRICS:
    name = min(baselines, key=lambda b: baselines[b][k])
    best[k] = {"name": name, "value": float(baselines[name][k])}
  first = next((r for r in curve if all(r[k] < best[k]["value"] for k in METRICS)), None)
  final = curve[-1]
  threshold = final["mag_avnerf"] / 0.99
  mag99 = next(r for r in curve if r["mag_avnerf"] <= threshold)
  return {
      "best_baseline": best,
      "beats_all": None if first is None else {"step": first["step"],
                                               "train_s": first["train_s"]},
      "mag99": {"step": mag99["step"], "train_s": mag99["train_s"],
                "threshold": threshold},
      "final": {k: final[k] for k in METRICS},
      "final_step": final["step"], "final_train_s": final["train_s"],
  }


def time_to_quality(config, workdir=None, *, steps=None, eval_every: int = 50,
                    progress: bool = False, baselines=None) -> dict:
  """Train ``config`` (an ml_collections config; ``steps`` overrides
  ``train.steps``) into ``workdir`` (a new temporary directory when None),
  validating at the start and every ``eval_every`` steps, as ``python -m
  audiogs_jax.train`` runs (tuned host allocator); returns the JSON section. The
  training's own output goes to stderr (stdout is the benchmark's JSON).

  ``baselines`` (``{name: {metric: value}}``, from an earlier run on the same
  scene): stop at the first validation that beats all of them and skip the final
  evaluation (``mag99`` and ``final_eval`` are then None)."""
  config = config.copy_and_resolve_references()
  config.train.eval_every = int(eval_every)
  config.train.eval_at_start = True
  config.eval.dpam = False
  if steps is not None:
    config.train.steps = int(steps)
  config_lib.check_config(config)
  ckpt_lib.quiet_absl()
  backend.tune_host_allocator()
  stop_when = None
  if baselines is not None:
    best = {k: min(float(b[k]) for b in baselines.values()) for k in METRICS}
    stop_when = lambda step, val: all(val[k] < best[k] for k in METRICS)
  with tempfile.TemporaryDirectory(prefix="ttq_") as tmp:
    wd = pathlib.Path(workdir) if workdir else pathlib.Path(tmp) / "workdir"
    if (wd / "metrics.jsonl").exists():
      raise ValueError(f"{wd}: holds a training run; time to quality needs a new workdir")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
      training.train_and_evaluate(config, wd, progress=progress, stop_when=stop_when,
                                  evaluate_at_end=baselines is None)
    wall = time.perf_counter() - t0
    split = config.data.eval_split
    curve = _val_rows(wd, split)
    init_s = next((r["init_s"] for r in _rows(wd) if r.get("split") == "init"), None)
    summary = (json.loads((wd / "eval" / split / "summary.json").read_text())
               if baselines is None else None)
  if summary is not None:
    baselines = {b: {k: float(_overall(v)[k]) for k in METRICS}
                 for b, v in summary["baselines"].items()}
  d = jax.devices()[0]
  out = {
      "mode": "time_to_quality", "device": f"{d.platform}:{d.device_kind}",
      "jax": jax.__version__, "config": str(config.name), "steps": int(config.train.steps),
      "batch_size": int(config.train.batch_size), "eval_every": int(eval_every),
      "init_fit": int(config.model.audiogs.get("init_fit", 0) or 0), "init_s": init_s,
      "eval_split": split, "metrics": list(METRICS), "lower_is_better": True,
      "wall_s_total": wall, "loadavg_after": list(os.getloadavg()),
      "curve": curve, "baselines": baselines,
      **summarize_curve(curve, baselines),
      "final_eval": (None if summary is None else
                     {k: float(_overall(summary["model"])[k]) for k in METRICS}),
  }
  if stop_when is not None:
    out["mag99"] = None
  return out


def isolated(fn, *args, **kwargs):
  """``fn(*args, **kwargs)`` in a fresh Python process (spawned): each recipe pays
  its own JAX start-up and compilations, as a user's run does, instead of the
  second one reusing what the first compiled."""
  ctx = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
    return pool.submit(fn, *args, **kwargs).result()


def compare(config, *, steps=None, eval_every: int = 50, progress: bool = False,
            workdir=None) -> dict:
  """The configured recipe, then the previous one (``PREVIOUS_RECIPE``: the
  constant start) until it beats every baseline: ``{"config", "fast", "constant",
  "speedup"}`` (``speedup``: the ratio of their times to beat every baseline; None
  if the previous recipe never did within the run). ``workdir``: keep the two runs' workdirs under it
  (``<config>_fit``, ``<config>_constant``; temporary otherwise)."""
  wd = lambda tag: None if workdir is None else pathlib.Path(workdir) / f"{config.name}_{tag}"
  fast = isolated(time_to_quality, config, wd("fit"), steps=steps, eval_every=eval_every,
                  progress=progress)
  slow_config = config_lib.apply_overrides(config.copy_and_resolve_references(),
                                          {k: str(v) for k, v in PREVIOUS_RECIPE.items()})
  slow = isolated(time_to_quality, slow_config, wd("constant"), steps=steps,
                  eval_every=eval_every, progress=progress, baselines=fast["baselines"])
  a, b = fast["beats_all"], slow["beats_all"]
  return {"config": fast["config"], "fast": fast, "constant": slow,
          "speedup": (b["train_s"] / a["train_s"]) if a and b else None}


START_MODES = ("serial", "prepared")


def start_cost(config, mode: str) -> dict:
  """Seconds from a loaded training split to the fitted initial parameters (what a
  new run's ``init_s`` counts) in this process (run it in a fresh one: ``isolated``).

  ``mode``: ``"prepared"`` as the training does (``trainstate.prepare_fit`` first, so
  the start compiles in a background thread while the clips' STFTs, the scene
  analysis and ``init`` run, then ``create_train_state``); ``"serial"`` one after
  another (scene analysis, ``init``, STFTs, then the jitted ``renderer.fit.start``,
  compiled when called: the order before the background compilation). ``digest``: a
  hash of the fitted parameters, the same in both modes (the same program)."""
  if mode not in START_MODES:
    raise ValueError(f"mode must be one of {START_MODES}, got {mode!r}")
  config = config.copy_and_resolve_references()
  backend.tune_host_allocator()
  scene = dataset.load_split(config, config.data.train_split, progress=False)
  key = jax.random.PRNGKey(int(config.seed))
  t0 = time.perf_counter()
  if mode == "prepared":
    fit = trainstate.prepare_fit(config, scene)
    info = workdir_lib.scene_info_of(scene, config)
    params = trainstate.create_train_state(config, info, key, fit=fit)[0].params
  else:   # create_train_state's init key, then AudioGS's start as one jitted call
    info = workdir_lib.scene_info_of(scene, config)
    params = get_model(config.model.name).init(jax.random.split(key)[0], info, config)
    data = dataset.to_device(scene, config)
    rc, kw = audiogs.fit_arguments(config)
    params = fit_lib.start(params, data.poses, data.source_tf, data.target_tf, rc, **kw)
  params = jax.device_get(params)
  seconds = time.perf_counter() - t0
  digest = hashlib.sha256(b"".join(np.ascontiguousarray(x).tobytes()
                                   for x in jax.tree.leaves(params))).hexdigest()[:16]
  return {"mode": mode, "seconds": seconds, "digest": digest}


def start_costs(config, repeats: int = 3) -> dict:
  """``start_cost`` in both modes, alternated, ``repeats`` times each, every run in
  a fresh process: ``{"config", "rows", "median_s": {mode: s}, "identical"}``."""
  rows = [isolated(start_cost, config, m) for _ in range(int(repeats)) for m in START_MODES]
  return {"config": str(config.name), "device": jax.devices()[0].device_kind, "rows": rows,
          "median_s": {m: float(np.median([r["seconds"] for r in rows if r["mode"] == m]))
                       for m in START_MODES},
          "identical": len({r["digest"] for r in rows}) == 1}


def plot(result: dict, path, constant=None) -> None:
  """Four panels (one per metric): AudioGS against ``train_s`` (steps on the top
  axis), the best baseline as a horizontal line, the first time it beats every
  baseline as a vertical line; ``constant`` (a run of the previous recipe,
  ``compare``) as a second curve."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.ticker import ScalarFormatter
  curve = result["curve"]
  # Step 0 at 0 s, and the last rate beyond the last validation: the top axis.
  t = np.asarray([0.0] + [r["train_s"] for r in curve] + [2 * curve[-1]["train_s"]])
  steps = np.asarray([0] + [r["step"] for r in curve] + [2 * curve[-1]["step"]], np.float64)
  steps[-1] = steps[-2] + (steps[-2] - steps[-3]) / max(t[-2] - t[-3], 1e-9) * t[-2]
  fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
  for ax, k in zip(axes.ravel(), METRICS):
    ax.plot(t[1:-1], [r[k] for r in curve], "o-", ms=3, label="AudioGS")
    if constant is not None:
      ax.plot([r["train_s"] for r in constant["curve"]], [r[k] for r in constant["curve"]],
              "s-", ms=3, color="tab:gray", label="AudioGS, previous recipe")
      if constant["beats_all"] is not None:
        ax.axvline(constant["beats_all"]["train_s"], color="tab:gray", ls=":",
                   label=f"previous recipe beats all at "
                         f"{constant['beats_all']['train_s']:.0f} s")
    best = result["best_baseline"][k]
    ax.axhline(best["value"], color="tab:red", ls="--", label=f"best baseline ({best['name']})")
    if result["beats_all"] is not None:
      ax.axvline(result["beats_all"]["train_s"], color="tab:green", ls=":",
                 label=f"beats all at {result['beats_all']['train_s']:.0f} s")
    ax.set_title(k, fontsize=10)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.tick_params(axis="y", which="both", labelsize=7)
    right = max([t[-2]] + ([constant["curve"][-1]["train_s"]] if constant else []))
    ax.set_xlim(0, 1.02 * right)
    if np.all(np.diff(t) > 0):
      top = ax.secondary_xaxis("top", functions=(lambda x: np.interp(x, t, steps),
                                                 lambda s: np.interp(s, steps, t)))
      top.set_xlabel("step", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  for ax in axes[-1]:
    ax.set_xlabel("training wall-clock s (validation excluded)")
  fig.suptitle(f"time to quality: {result['config']}, {result['device']}, "
               f"batch {result['batch_size']}, {result['steps']} steps")
  fig.tight_layout()
  pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=120)
  plt.close(fig)


def add_arguments(p) -> None:
  """``--time-to-quality`` and its options on ``scripts/bench.py``'s parser."""
  p.add_argument("--time-to-quality", action="store_true",
                 help="only: validation metrics against training time (one training run)")
  p.add_argument("--ttq-config", default=None, help="config file (default configs/default.py)")
  p.add_argument("--ttq-steps", type=int, default=None, help="default: the config's")
  p.add_argument("--ttq-eval-every", type=int, default=50, help="validate every N steps")
  p.add_argument("--ttq-workdir", default=None,
                 help="a new workdir (default: a temp dir); with --ttq-compare, a folder "
                      "for every run's workdir")
  p.add_argument("--ttq-compare", action="store_true",
                 help="also train with the previous recipe (constant start) until it "
                      "beats every baseline")
  p.add_argument("--ttq-rooms", action="store_true",
                 help="with --ttq-compare: also the three benchmark rooms")
  p.add_argument("--plot", default=None, help="--time-to-quality: write the plot here (PNG)")
  p.add_argument("--start-cost", action="store_true",
                 help="only: seconds from the loaded training split to the fitted start, "
                      "compiled in the background (as training does) against serially "
                      "(--ttq-config's scene; --ttq-rooms: and the benchmark rooms)")
  p.add_argument("--start-repeats", type=int, default=3,
                 help="--start-cost: runs of each mode, alternated")


def start_section(args, root: pathlib.Path) -> dict:
  """``{"start_cost": [start_costs(...) per scene]}`` of the parsed ``args``."""
  path = args.ttq_config or root / "configs" / "default.py"
  paths = [path] + ([root / "configs" / f"bench_room_{r}.py" for r in ROOMS]
                    if args.ttq_rooms else [])
  return {"start_cost": [start_costs(config_lib.load_config_file(p), args.start_repeats)
                         for p in paths]}


def section(args, root: pathlib.Path) -> dict:
  """``{"time_to_quality": ...}`` of the parsed ``args``; the plot if asked."""
  path = args.ttq_config or root / "configs" / "default.py"
  if not args.ttq_compare:
    result = time_to_quality(config_lib.load_config_file(path), args.ttq_workdir,
                             steps=args.ttq_steps, eval_every=args.ttq_eval_every,
                             progress=True)
    if args.plot:
      plot(result, args.plot)
    return {"time_to_quality": result}
  paths = [path] + ([root / "configs" / f"bench_room_{r}.py" for r in ROOMS]
                    if args.ttq_rooms else [])
  rows = [compare(config_lib.load_config_file(p), steps=args.ttq_steps,
                  eval_every=args.ttq_eval_every, progress=True, workdir=args.ttq_workdir)
          for p in paths]
  if args.plot:
    plot(rows[0]["fast"], args.plot, constant=rows[0]["constant"])
  summary = [{"config": r["config"], "speedup": r["speedup"],
              **{f"{k}_beats_all_s": (r[k]["beats_all"] or {}).get("train_s")
                 for k in ("fast", "constant")},
              **{f"{k}_beats_all_step": (r[k]["beats_all"] or {}).get("step")
                 for k in ("fast", "constant")},
              "fast_final": r["fast"]["final"], "fast_mag99_s": r["fast"]["mag99"]["train_s"]}
             for r in rows]
  return {"time_to_quality": rows[0]["fast"], "comparison": summary, "runs": rows}
