"""Evaluation outputs of the session's smoke run, and the CLI's errors."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest
import soundfile as sf

from audiogs_jax import evaluate

METRICS = ("mag_avnerf", "mag_avcloud", "env", "lre", "rte", "dpam")
BASELINES = ("mono_mono", "mono_energy", "stereo_energy", "nearest_pose")


@pytest.fixture(scope="module")
def eval_dir(trained_workdir):
  return trained_workdir / "eval" / "val"


@pytest.fixture(scope="module")
def summary(eval_dir):
  return json.loads((eval_dir / "summary.json").read_text())


def test_summary_schema(summary, smoke):
  from audiogs_jax import dpam
  assert set(summary) == {"model", "baselines", "protocol"}
  assert set(summary["baselines"]) == set(BASELINES)
  dpam_on = dpam.dpam_available()
  for block in (summary["model"], *summary["baselines"].values()):
    assert set(METRICS) <= set(block)
    for k in ("mag_avnerf", "mag_avcloud", "env", "lre", "rte"):
      assert isinstance(block[k], float) and math.isfinite(block[k]) and block[k] >= 0, k
    if dpam_on:
      assert isinstance(block["dpam"], float)
    else:
      assert block["dpam"] is None
  p = summary["protocol"]
  assert p["split"] == "val" and p["sample_rate"] == 22050 and p["num_clips"] >= 1
  assert p["checkpoint_step"] == smoke.steps
  assert p["model_label"] == "AudioGS"
  assert p["rte_estimator"]
  assert p["dpam"] == ("CDPAM (cdpam package)" if dpam_on else "DPAM: not installed")
  # Synthetic scene: the simulator's RT60 is known, so its error is reported too.
  assert math.isfinite(summary["model"]["rte_true"])


def test_per_clip_csv_and_table(eval_dir, summary):
  rows = list(csv.DictReader(open(eval_dir / "per_clip.csv")))
  n = summary["protocol"]["num_clips"]
  assert len(rows) == n * (1 + len(BASELINES))
  assert {r["method"] for r in rows} == {"model", *BASELINES}
  for method in ("model", *BASELINES):
    vals = [float(r["mag_avnerf"]) for r in rows if r["method"] == method]
    block = summary["model"] if method == "model" else summary["baselines"][method]
    assert np.mean(vals) == pytest.approx(block["mag_avnerf"], rel=1e-4)
  table = (eval_dir / "table.md").read_text()
  for label in ("AudioGS", "Mono-Mono", "Mono-Energy", "Stereo-Energy",
                "Nearest-pose transfer", "mag_avnerf", "mag_avcloud"):
    assert label in table
  assert "DPAM" in table and summary["protocol"]["rte_estimator"] in table
  assert table.count("\n| ") >= 6  # header + 5 method rows


def test_wavs(eval_dir):
  wavs = sorted((eval_dir / "wav").glob("*.wav"))
  kinds = {w.stem.rsplit("_", 1)[1] for w in wavs}
  assert kinds == {"pred", "rec", "source"}
  for w in wavs:
    x, sr = sf.read(str(w), always_2d=True)
    assert sr == 22050
    assert x.shape[1] == (1 if w.stem.endswith("_source") else 2), w
    assert x.shape[0] == 22050  # one clip of the smoke scene
    assert np.all(np.isfinite(x)) and np.max(np.abs(x)) <= 1.0
    assert np.sqrt(np.mean(x ** 2)) > 1e-4, f"{w} is silent"


def test_output_names_follow_the_clip_ids(eval_dir):
  ids = {r["clip_id"] for r in csv.DictReader(open(eval_dir / "per_clip.csv"))}
  stems = {i.replace("/", "_").rsplit(".png", 1)[0] for i in ids}
  wavs = list((eval_dir / "wav").glob("*.wav"))
  specs = list((eval_dir / "figures").glob("spec_*.png"))
  assert wavs and specs
  for w in wavs:
    assert ".png" not in w.name and w.stem.rsplit("_", 1)[0] in stems, w.name
  for f in specs:
    assert f.stem[len("spec_"):] in stems, f.name  # no "spec_00005.png.png"


def test_figures(eval_dir):
  from PIL import Image
  pngs = sorted((eval_dir / "figures").glob("*.png"))
  names = {p.name for p in pngs}
  assert "gaussians.png" in names
  assert any(n.startswith("spec_") for n in names)
  for p in pngs:
    with Image.open(p) as im:
      im.verify()
    with Image.open(p) as im:
      assert im.format == "PNG" and min(im.size) > 100


def test_evaluate_cli_best_checkpoint(trained_workdir, tmp_path, capsys, smoke):
  """``evaluate.main --checkpoint best`` on a copy of the workdir: written to
  ``eval/val_best``, the latest checkpoint's ``eval/val`` left as it was."""
  wd = tmp_path / "copy"
  shutil.copytree(trained_workdir, wd, ignore=shutil.ignore_patterns("tb"))
  latest = {p: p.read_bytes() for p in (wd / "eval" / "val").rglob("*") if p.is_file()}
  assert evaluate.main(["--workdir", str(wd), "--checkpoint", "best",
                        "--no-progress"]) == 0
  out = capsys.readouterr().out
  assert "Mono-Mono" in out and "AudioGS" in out and str(wd / "eval" / "val_best") in out
  assert ", scene" not in out.splitlines()[1]
  assert {p: p.read_bytes() for p in (wd / "eval" / "val").rglob("*") if p.is_file()} == latest
  s = json.loads((wd / "eval" / "val_best" / "summary.json").read_text())
  assert s["protocol"]["num_clips"] > 0 and f"({s['protocol']['num_clips']} clips;" in out
  assert s["protocol"]["checkpoint"] == "best"
  assert s["protocol"]["checkpoint_step"] in (smoke.ckpt_every, smoke.steps)
  # The baselines do not depend on the checkpoint.
  ref = json.loads((trained_workdir / "eval" / "val" / "summary.json").read_text())
  assert s["baselines"] == ref["baselines"]


def _expect_error(argv, capsys, *needles):
  with pytest.raises(SystemExit) as e:
    evaluate.main(argv)
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ")
  assert "Traceback" not in err
  for n in needles:
    assert str(n) in err, (n, err)
  return err


def test_error_no_workdir(tmp_path, capsys):
  _expect_error(["--workdir", str(tmp_path / "absent")], capsys, tmp_path / "absent",
                "no such workdir")


def test_error_workdir_without_config(tmp_path, capsys):
  _expect_error(["--workdir", str(tmp_path)], capsys, tmp_path / "config.json")


def test_error_workdir_without_checkpoint(trained_workdir, tmp_path, capsys):
  shutil.copy(trained_workdir / "config.json", tmp_path / "config.json")
  _expect_error(["--workdir", str(tmp_path)], capsys, tmp_path / "checkpoints",
                "no latest checkpoint")


def test_error_checkpoint_of_another_model(trained_workdir, tmp_path, capsys, smoke):
  """A checkpoint that does not fit the saved config (another SH degree): the
  error names the checkpoint instead of a traceback from inside orbax."""
  wd = tmp_path / "other"
  shutil.copytree(trained_workdir, wd, ignore=shutil.ignore_patterns("eval", "tb", "best"))
  cfg = json.loads((wd / "config.json").read_text())
  cfg["model"]["audiogs"]["sh_degree"] = 1
  (wd / "config.json").write_text(json.dumps(cfg))
  _expect_error(["--workdir", str(wd)], capsys, wd / "checkpoints" / str(smoke.steps),
                "does not match")


def test_error_bad_split(trained_workdir, capsys):
  _expect_error(["--workdir", str(trained_workdir), "--split", "nosuchsplit"],
                capsys, "'nosuchsplit'", "splits: train, val")


def test_help(help_outputs):
  r = help_outputs["evaluate"]
  assert r.returncode == 0, r.stderr
  for opt in ("--workdir", "--split", "--checkpoint"):
    assert opt in r.stdout
