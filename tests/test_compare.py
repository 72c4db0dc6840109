"""Side-by-side tables of several evaluated workdirs (audiogs_jax.compare), and the
markdown tables they share with evaluate (audiogs_jax.tables)."""

import json

import pytest

from audiogs_jax import compare, tables


def _summary(model_label, model_mag, base_mag=1.0, scene="1"):
  row = lambda v: {"mag_avnerf": v, "mag_avcloud": v / 2, "env": 0.1, "lre": 1.5, "rte": 0.02,
                   "rte_true": 0.03, "dpam": None}
  return {
      "model": row(model_mag),
      "baselines": {k: row(base_mag + i) for i, k in enumerate(
          ("mono_mono", "mono_energy", "stereo_energy", "nearest_pose"))},
      "protocol": {"split": "val", "num_clips": 48, "sample_rate": 22050,
                   "model_label": model_label, "rte_estimator": "est",
                   "data": {"kind": "synthetic", "scene": scene, "clip": "centered"}},
  }


def _write(tmp_path, name, summary):
  d = tmp_path / name / "eval" / "val"
  d.mkdir(parents=True)
  (d / "summary.json").write_text(json.dumps(summary))
  return tmp_path / name


def test_table_lists_models_then_baselines(tmp_path):
  a = _write(tmp_path, "a", _summary("AudioGS", 0.5))
  b = _write(tmp_path, "b", _summary("Audio 3DGS (U-Net)", 0.75))
  out = tmp_path / "cmp.md"
  text = compare.compare_workdirs([a, b], "val", out)
  assert out.read_text() == text
  rows = [l for l in text.splitlines() if l.startswith("| ") and not l.startswith("| method")]
  names = [r.split("|")[1].strip() for r in rows]
  assert names == ["AudioGS", "Audio 3DGS (U-Net)", "Mono-Mono", "Mono-Energy",
                   "Stereo-Energy", "Nearest-pose transfer"]
  cells = {r.split("|")[1].strip(): r.split("|")[2].strip() for r in rows}
  assert cells["AudioGS"] == "0.5000" and cells["Audio 3DGS (U-Net)"] == "0.7500"
  assert cells["Stereo-Energy"] == "3.0000"
  assert "dpam" not in text.splitlines()[2]  # all-None columns are dropped


def test_same_model_twice_is_told_apart(tmp_path):
  a = _write(tmp_path, "run1", _summary("AudioGS", 0.5))
  b = _write(tmp_path, "run2", _summary("AudioGS", 0.6))
  text = compare.compare_workdirs([a, b])
  assert f"AudioGS ({a})" in text and f"AudioGS ({b})" in text


def test_other_data_is_refused(tmp_path):
  a = _write(tmp_path, "a", _summary("AudioGS", 0.5))
  b = _write(tmp_path, "b", _summary("AudioGS", 0.5, scene="2"))
  with pytest.raises(compare.CompareError, match="other data"):
    compare.compare_workdirs([a, b])
  c = _write(tmp_path, "c", _summary("AudioGS", 0.5, base_mag=1.3))
  with pytest.raises(compare.CompareError, match="not the same clips"):
    compare.compare_workdirs([a, c])


def test_missing_and_malformed_summary(tmp_path, capsys):
  with pytest.raises(compare.CompareError, match="no evaluation summary"):
    compare.load_summary(tmp_path / "nothing")
  d = tmp_path / "bad" / "eval" / "val"
  d.mkdir(parents=True)
  (d / "summary.json").write_text("{not json")
  with pytest.raises(compare.CompareError, match="malformed JSON"):
    compare.load_summary(tmp_path / "bad")
  with pytest.raises(SystemExit) as e:
    compare.main([str(tmp_path / "bad")])
  assert e.value.code == 2
  assert "malformed JSON" in capsys.readouterr().err


def test_evaluate_cli_with_several_workdirs_reuses_summaries(tmp_path, capsys):
  from audiogs_jax import evaluate
  a = _write(tmp_path, "a", _summary("AudioGS", 0.5))
  b = _write(tmp_path, "b", _summary("Audio 3DGS (U-Net)", 0.75))
  out = tmp_path / "table.md"
  assert evaluate.main(["--workdir", str(a), "--workdir", str(b), "--split", "val",
                        "--out", str(out), "--no-progress"]) == 0
  printed = capsys.readouterr().out
  assert "using its existing eval/val/summary.json" in printed
  assert "| Audio 3DGS (U-Net) | 0.7500 |" in out.read_text()
  assert out.read_text().strip() in printed


def test_multi_scene_summaries_use_their_overall_rows(tmp_path):
  def multi(label, mag):
    one = _summary(label, mag)
    wrap = lambda row: {"per_scene": {"1": row, "2": row}, "per_environment": {},
                        "overall": row}
    return {"scenes": ["1", "2"], "model": wrap(one["model"]),
            "baselines": {b: wrap(v) for b, v in one["baselines"].items()},
            "protocol": one["protocol"]}
  a = _write(tmp_path, "a", multi("AudioGS", 0.5))
  b = _write(tmp_path, "b", multi("Audio 3DGS (U-Net)", 0.25))
  text = compare.compare_workdirs([a, b])
  assert "| AudioGS | 0.5000 |" in text and "| Audio 3DGS (U-Net) | 0.2500 |" in text


def test_format_table_model_beside_baselines_with_na_cells():
  summary = _summary("AudioGS", 0.5)
  summary["model"]["itd"] = 12.5            # a column only the model has: n/a elsewhere
  text = tables.format_table(summary)
  lines = text.splitlines()
  assert lines[0] == ("| method | mag_avnerf | mag_avcloud | env | lre | rte | rte_true | itd "
                      "| dpam |")
  assert lines[1] == "|---|" + "---|" * 8
  assert lines[2] == ("| AudioGS | 0.5000 | 0.2500 | 0.1000 | 1.5000 | 0.0200 | 0.0300 "
                      "| 12.5000 | n/a |")
  assert lines[3].startswith("| Mono-Mono | 1.0000 | 0.5000 |") and lines[3].endswith("| n/a | n/a |")
  assert [l.split("|")[1].strip() for l in lines[2:]] == [
      "AudioGS", "Mono-Mono", "Mono-Energy", "Stereo-Energy", "Nearest-pose transfer"]


def test_baseline_rows_keep_order_and_unknown_names():
  rows = tables.baseline_rows({"stereo_energy": {"env": 1.0}, "custom": {"env": 2.0}})
  assert rows == [("Stereo-Energy", {"env": 1.0}), ("custom", {"env": 2.0})]
  assert tables.format_rows(rows, ["env", "lre"]).splitlines()[2:] == [
      "| Stereo-Energy | 1.0000 | n/a |", "| custom | 2.0000 | n/a |"]
