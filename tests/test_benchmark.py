"""The benchmark (``python -m audiogs_jax.benchmark``): a micro run (one tiny room, two
variants, a few steps) writes the JSON and the report, every number in the report's
tables is in the JSON, the report can be rebuilt from the JSON alone, without
``--docs`` it is written under ``--out``, a second invocation skips finished runs;
the printed commands are equivalent to the runs; the verdicts follow the numbers."""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil

import numpy as np
import pytest

from audiogs_jax import config as config_lib
from audiogs_jax.benchmark import analysis
from audiogs_jax.benchmark import cli as benchmark_cli
from audiogs_jax.benchmark import paths
from audiogs_jax.benchmark import plans
from audiogs_jax.benchmark import runner

_NUM = re.compile(r"[-+]?\d+(?:\.\d+)?")
_HMS = re.compile(r"^\d+:\d\d:\d\d$")


def _json_numbers(obj) -> list:
  """Every number in a JSON tree."""
  if isinstance(obj, bool):
    return []
  if isinstance(obj, (int, float)):
    return [float(obj)] if math.isfinite(obj) else []
  if isinstance(obj, dict):
    return [v for x in obj.values() for v in _json_numbers(x)]
  if isinstance(obj, (list, tuple)):
    return [v for x in obj for v in _json_numbers(x)]
  return []


def _table_cells(markdown: str) -> list:
  """The body cells of every markdown table (header and separator rows skipped)."""
  cells, lines = [], markdown.splitlines()
  for i, line in enumerate(lines):
    if not line.startswith("|") or line.startswith("|---"):
      continue
    if i + 1 < len(lines) and lines[i + 1].startswith("|---"):
      continue  # header
    cells += [c.strip() for c in line.strip().strip("|").split("|")]
  return cells


def _traceable(token: str, numbers: np.ndarray) -> bool:
  """``token`` (as printed, with d decimals) equals some JSON number rounded to d."""
  x = float(token)
  d = len(token.split(".")[1]) if "." in token else 0
  return bool(np.any(np.abs(numbers - x) <= 0.5 * 10.0 ** -d + 1e-9))


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
  root = tmp_path_factory.mktemp("bench")
  out, docs = root / "out", root / "docs" / "results.md"
  common = ["--micro", "--rooms", "dry", "--out", str(out), "--docs", str(docs),
            "--num-wavs", "1"]
  # First the full model in this process (--jobs 1), then both variants with
  # --jobs 2: the full model is skipped and the ablation is trained as a
  # subprocess running its printed command.
  assert benchmark_cli.main(common + ["--variants", "full", "--jobs", "1"]) == 0
  args = common + ["--variants", "full,no_attenuation", "--jobs", "2"]
  assert benchmark_cli.main(args) == 0
  return {"root": root, "out": out, "docs": docs, "args": args}


def test_micro_writes_json_and_report(micro):
  res = json.loads((micro["out"] / "results.json").read_text())
  assert set(res["runs"]["dry"]) == {"full", "no_attenuation"}
  for r in res["runs"]["dry"].values():
    assert set(analysis.BASELINES) <= set(r["baselines"])
    assert all(math.isfinite(r["model"][m]) for m in analysis.METRICS)
    assert r["command"].startswith("python -m audiogs_jax.train --config ")
    assert len(r["per_clip"]["mag_avnerf"]) == r["num_clips"]
  # The docs copy of the JSON is the same and is what the report was made from.
  docs_json = micro["docs"].parent / "results" / "results.json"
  assert json.loads(docs_json.read_text()) == res
  md = micro["docs"].read_text()
  assert "`python -m audiogs_jax.benchmark --micro" in md
  assert "no_attenuation" in md and "Mono-Energy" in md
  for name in ("ablations.png", "baselines.png", "room_dry.png"):
    assert (micro["docs"].parent / "results" / name).stat().st_size > 1000
  wavs = sorted((micro["docs"].parent / "results").glob("dry_*.wav"))
  assert len(wavs) == 2 and {w.name.rsplit("_", 1)[1] for w in wavs} == {
      "rendered.wav", "recorded.wav"}
  import soundfile as sf
  assert sf.info(str(wavs[0])).subtype == "PCM_16"
  # The verdict of every key ablation and metric is stated.
  eff = res["analysis"]["ablations"]["dry"]["no_attenuation"]
  assert set(eff) == set(analysis.METRICS)
  assert "distance attenuation, dry" in md


def test_every_table_number_is_in_the_json(micro):
  res = json.loads((micro["out"] / "results.json").read_text())
  numbers = np.asarray(_json_numbers(res), np.float64)
  md = micro["docs"].read_text()
  cells = _table_cells(md)
  assert len(cells) > 50
  checked = 0
  for cell in cells:
    if _HMS.match(cell):  # a wall time, from wall_s
      h, m, s = (int(v) for v in cell.split(":"))
      assert np.any(np.abs(numbers - (3600 * h + 60 * m + s)) <= 0.5 + 1e-9), cell
      continue
    for token in _NUM.findall(cell):
      assert _traceable(token, numbers), f"{token!r} (cell {cell!r}) is not in the JSON"
      checked += 1
  assert checked > 50


def test_report_only_rebuilds_the_same_tables(micro):
  docs2 = micro["root"] / "docs2" / "results.md"
  assert benchmark_cli.main(["--report-only", "--json", str(micro["out"] / "results.json"),
                         "--docs", str(docs2), "--out", str(micro["out"])]) == 0
  assert _table_cells(docs2.read_text()) == _table_cells(micro["docs"].read_text())
  assert "regenerated from the JSON" in docs2.read_text()


def test_report_goes_under_out_without_docs(micro, tmp_path, monkeypatch):
  """Without --docs the report is OUT/report.md, its media OUT/report/; nothing is
  written in the working directory."""
  out, cwd = tmp_path / "out", tmp_path / "cwd"
  out.mkdir()
  cwd.mkdir()
  shutil.copy(micro["out"] / "results.json", out / "results.json")
  monkeypatch.chdir(cwd)
  assert benchmark_cli.main(["--report-only", "--out", str(out)]) == 0
  report = out / "report.md"
  md = report.read_text()
  assert _table_cells(md) == _table_cells(micro["docs"].read_text())
  assert f"--json {out / 'report' / 'results.json'} --docs {report}`" in md
  assert "](report/results.json)" in md
  for name in ("results.json", "ablations.png", "baselines.png", "room_dry.png"):
    assert (out / "report" / name).stat().st_size > 1000
  assert len(list((out / "report").glob("dry_*.wav"))) == 4  # --num-wavs 2: two pairs
  assert list(cwd.iterdir()) == []


def test_second_invocation_skips_finished_runs(micro, capsys):
  assert benchmark_cli.main(micro["args"]) == 0
  log = capsys.readouterr().out
  assert log.count("skipped:") == 2
  res = json.loads((micro["out"] / "results.json").read_text())
  assert [i["runs_trained"] for i in res["benchmark"]["invocations"]] == [1, 1, 0]
  assert [i["jobs"] for i in res["benchmark"]["invocations"]] == [1, 2, 2]


def test_subprocess_run_logs_and_records(micro):
  workdir = micro["out"] / "dry" / "no_attenuation"
  log = (workdir / "train.log").read_text()
  assert "AudioGS vs baselines" in log  # the subprocess's own output
  info = json.loads((workdir / "bench_run.json").read_text())
  assert info["command"].endswith("--config.model.audiogs.use_attenuation=False")
  assert info["wall_s"] > 0
  assert not (micro["out"] / "dry" / "full" / "train.log").exists()  # trained in-process


def test_failed_subprocess_run_is_named(tmp_path):
  bad = plans.Run("dry", "full", tmp_path / "dry" / "full", "configs/no_such_config.py",
                      {"train.steps": "1"})
  with pytest.raises(SystemExit, match=r"runs failed: dry/full \(.*train\.log\)"):
    runner.run_parallel([bad], 2, log=lambda *_: None)
  assert "no_such_config.py" in (tmp_path / "dry" / "full" / "train.log").read_text()


def test_longest_runs_start_first(tmp_path):
  m = plans.MODES["quick"]
  runs = plans.plan(m, list(plans.rooms()), list(m.variants), tmp_path / "b")
  order = sorted(runs, key=plans.expected_cost, reverse=True)
  costs = [plans.expected_cost(r) for r in order]
  assert costs == sorted(costs, reverse=True)
  # The living room's 600-step runs (600 x 8 clip-steps), then the 400-step
  # rooms (400 x 8), then the U-Nets (100 x 4 x 6).
  assert {r.room for r in order[:4]} == {"living"}
  assert {r.variant for r in order[-3:]} == {"audio3dgs_unet"}


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_commands_are_equivalent_to_the_runs(mode, tmp_path):
  m = plans.MODES[mode]
  runs = plans.plan(m, list(plans.rooms()), list(m.variants), tmp_path / "b")
  assert len(runs) == 3 * len(m.variants)
  for run in runs:
    argv = shlex.split(plans.command_line(run))
    assert argv[:3] == ["python", "-m", "audiogs_jax.train"]
    overrides, rest = config_lib.parse_config_args(argv[3:])
    cfg = config_lib.apply_overrides(config_lib.load_config_file(rest[1]), overrides)
    assert cfg.to_dict() == plans.run_config(run).to_dict()
    assert rest[3] == paths.rel(run.workdir)
  assert {"full", *plans.KEY_ABLATIONS} <= set(m.variants)


def test_room_configs_differ():
  cfgs = {r: config_lib.load_config_file(f"configs/bench_room_{r}.py").data.synth
          for r in plans.rooms()}
  assert [round(c.rt60, 2) for c in cfgs.values()] == [0.25, 0.5, 1.2]
  assert len({c.signal for c in cfgs.values()}) == 3
  assert len({c.trajectory for c in cfgs.values()}) == 3


def _fake_results(full_vals, ablated_vals, base_val):
  clips = [f"c{i}" for i in range(len(full_vals))]

  def run(vals):
    per = {"clip_ids": clips, **{m: list(vals) for m in analysis.METRICS}}
    mean = {m: float(np.mean(vals)) for m in analysis.METRICS}
    return {"model": mean, "per_clip": per,
            "baselines": {b: {m: base_val for m in analysis.METRICS}
                          for b in analysis.BASELINES}}

  return {"runs": {"r": {"full": run(full_vals), "no_attenuation": run(ablated_vals)}}}


def test_verdicts_follow_the_numbers():
  rng = np.random.default_rng(0)
  full = 1.0 + 0.1 * rng.random(40)
  worse = analysis.analyse(_fake_results(full, full * 1.1, 0.5))
  e = worse["ablations"]["r"]["no_attenuation"]["lre"]
  assert e["verdict"] == "hurts" and e["rel_pct"] == pytest.approx(10.0)
  assert e["ci95_delta"][0] > 0
  same = analysis.analyse(_fake_results(full, full + 1e-4 * rng.standard_normal(40), 0.5))
  assert same["ablations"]["r"]["no_attenuation"]["mag_avnerf"]["verdict"] == "no clear effect"
  better = analysis.analyse(_fake_results(full, full * 0.8, 2.0))
  assert better["ablations"]["r"]["no_attenuation"]["env"]["verdict"] == "improves"
  # Baselines: 0.5 beats the model (about 1.05), 2.0 does not.
  assert not worse["baselines"]["r"]["mono_energy"]["mag_avnerf"]["beats"]
  assert better["baselines"]["r"]["nearest_pose"]["lre"]["beats"]
  c = worse["baselines"]["r"]["stereo_energy"]["lre"]
  assert c["margin"] == pytest.approx(0.5 - float(np.mean(full)))


def test_help():
  with pytest.raises(SystemExit) as e:
    benchmark_cli.main(["--help"])
  assert e.value.code == 0
