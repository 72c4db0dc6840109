"""The benchmark scripts run end to end (tiny sizes, no timing claims):
scripts/bench_audio3dgs.py, the time to quality of scripts/bench_ttq.py, the tail's cost
of scripts/bench_tail.py."""

import importlib
import json
import pathlib
import sys

import numpy as np
import pytest

from audiogs_jax import backend

SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / "scripts"


def _script(name: str):
  """Yields the module ``scripts/<name>.py``; then the default allocator again
  (the scripts leave the tuned one on, as the entry points run)."""
  sys.path.insert(0, str(SCRIPTS))
  try:
    yield importlib.import_module(name)
  finally:
    sys.path.remove(str(SCRIPTS))
    backend.restore_host_allocator()


@pytest.fixture(scope="module")
def bench_audio3dgs():
  yield from _script("bench_audio3dgs")


def test_bench_audio3dgs_record(bench_audio3dgs):
  r = bench_audio3dgs.bench(width=2, batch=1, repeats=1, train_step=False, with_torch=False)
  assert r["model"] == "audio3dgs_unet" and r["grid"] == [257, 173]
  for key in ("ms_per_clip", "min_ms_per_clip", "unet_ms_per_clip",
              "unet_xla_defaults_ms_per_clip", "compile_s"):
    assert r[key] > 0, key
  assert r["torch_ms_per_clip"] is None and r["unet_vs_torch"] is None
  assert r["xla_compiler_options"] == backend.conv_compiler_options()
  steal = r["host_steal_fraction"]
  assert steal is None or 0.0 <= steal <= 1.0


@pytest.fixture(scope="module")
def bench_ttq():
  yield from _script("bench_ttq")


def test_time_to_quality_record(bench_ttq, smoke, jax_compile_cache, tmp_path):
  """A 4-step smoke run validated at the start and every 2 steps: the curve, the
  best baselines and the times derived from them are consistent; the plot is
  written."""
  r = bench_ttq.time_to_quality(smoke.config(), tmp_path / "wd", steps=4, eval_every=2)
  curve = r["curve"]
  assert [c["step"] for c in curve] == [0, 2, 4]
  times = [c["train_s"] for c in curve]
  assert all(t > 0 for t in times) and times == sorted(times)
  # The step-0 row is the fitted start: its clock holds the initialisation and the
  # loop's setup.
  assert r["init_fit"] == smoke.config().model.audiogs.init_fit > 0
  assert 0 < r["init_s"] <= times[0]
  for k in bench_ttq.METRICS:
    assert r["best_baseline"][k]["value"] == min(b[k] for b in r["baselines"].values())
    assert r["final"][k] == curve[-1][k]
    assert r["final_eval"][k] == pytest.approx(r["final"][k], rel=1e-4)
  assert set(r["baselines"]) == {"mono_mono", "mono_energy", "stereo_energy", "nearest_pose"}
  beats = r["beats_all"]
  assert beats is None or (beats["step"], beats["train_s"]) in {
      (c["step"], c["train_s"]) for c in curve}
  assert r["mag99"]["train_s"] in times and r["mag99"]["train_s"] <= r["final_train_s"]
  assert r["final_train_s"] == times[-1] and r["final_step"] == 4
  bench_ttq.plot(r, tmp_path / "ttq.png")
  assert (tmp_path / "ttq.png").stat().st_size > 0


def test_compare_stops_the_constant_start_once_it_beats_every_baseline(bench_ttq, smoke,
                                                                       jax_compile_cache):
  """``compare``: the configured (fitted) start, then the constant start against the
  first run's baselines, stopped at its first validation below all of them (or run
  to the end); the speed-up is the ratio of the two times."""
  out = bench_ttq.compare(smoke.config(), steps=6, eval_every=2)
  fast, slow = out["fast"], out["constant"]
  assert fast["init_fit"] == smoke.config().model.audiogs.init_fit > 0
  assert slow["init_fit"] == 0
  assert slow["baselines"] == fast["baselines"] and slow["final_eval"] is None
  steps = [c["step"] for c in slow["curve"]]
  if slow["beats_all"] is None:
    assert steps == [0, 2, 4, 6] and out["speedup"] is None
  else:
    assert steps[-1] == slow["beats_all"]["step"]     # stopped there
    if fast["beats_all"] is not None:
      assert out["speedup"] == pytest.approx(
          slow["beats_all"]["train_s"] / fast["beats_all"]["train_s"])
  assert fast["curve"][0]["mag_avnerf"] < slow["curve"][0]["mag_avnerf"]


def test_summarize_curve_picks_first_time_below_every_baseline(bench_ttq):
  base = {"a": {"mag_avnerf": 2.0, "mag_avcloud": 1.0, "env": 0.5, "lre": 3.0},
          "b": {"mag_avnerf": 3.0, "mag_avcloud": 0.8, "env": 0.6, "lre": 2.0}}
  row = lambda s, t, m, lre: {"step": s, "train_s": t, "mag_avnerf": m,
                              "mag_avcloud": 0.5, "env": 0.1, "lre": lre}
  curve = [row(10, 5.0, 2.5, 1.0), row(20, 9.0, 1.9, 2.5), row(30, 12.0, 1.5, 1.9),
           row(40, 15.0, 1.49, 1.0)]
  out = bench_ttq.summarize_curve(curve, base)
  assert out["best_baseline"]["mag_avnerf"] == {"name": "a", "value": 2.0}
  assert out["best_baseline"]["lre"] == {"name": "b", "value": 2.0}
  assert out["beats_all"] == {"step": 30, "train_s": 12.0}
  assert out["mag99"]["step"] == 30  # 1.5 <= 1.49 / 0.99
  assert out["final_step"] == 40 and out["final_train_s"] == 15.0
  assert bench_ttq.summarize_curve(curve[:2], base)["beats_all"] is None


@pytest.fixture(scope="module")
def bench_tail():
  yield from _script("bench_tail")


def test_bench_tail_rows(bench_tail):
  """Train step and render with and without the tail: one row each, the K = 0 row
  the reference of the ratios."""
  rows = bench_tail.bench_tail(frames=(8,), repeats=1)
  assert [(r["what"], r["tail_frames"], r.get("programs")) for r in rows] == [
      ("train_step", 0, None), ("train_step", 8, None), ("render_batch32", 0, 1),
      ("render_batch32", 8, 2), ("render_batch32", 8, 1)]
  for r in rows:
    assert r["compile_s"] > 0 and r["ratio"] > 0
    assert r.get("ms_per_step", r.get("ms_per_clip")) > 0
    if r["tail_frames"] == 0:
      assert r["ratio"] == 1.0


def test_start_cost_modes_give_the_same_start(bench_ttq, smoke):
  """``--start-cost``: the start compiled in the background (as training does) and
  the one after another give the same parameters bit for bit; both are timed."""
  config = smoke.config()
  rows = [bench_ttq.start_cost(config, m) for m in bench_ttq.START_MODES]
  assert [r["mode"] for r in rows] == ["serial", "prepared"]
  assert all(r["seconds"] > 0 for r in rows)
  assert rows[0]["digest"] == rows[1]["digest"]
  with pytest.raises(ValueError, match="mode"):
    bench_ttq.start_cost(config, "later")


@pytest.fixture(scope="module")
def itd_check():
  yield from _script("itd_estimator_check")


def test_itd_check_splits_a_runs_errors_by_the_recordings_itd(itd_check, tmp_path):
  """``run_errors`` averages each run's and baseline's per-clip ITD error over the clips whose
  recording's ITD is within the limit of the direct path's and over the rest,
  matching clips by id (the results' clip order need not be the split's)."""
  results = {"runs": {"hall": {"full": {
      "per_clip": {"clip_ids": ["b", "a", "c"], "itd": [10.0, 30.0, 500.0]},
      "per_clip_baselines": {"mono_mono": {"itd": [100.0, 200.0, 400.0]}}}}}}
  path = tmp_path / "results.json"
  path.write_text(json.dumps(results))
  # split order a, b, c: a and b within 200 us of the direct path, c not
  out = itd_check.run_errors(str(path), "hall", ["a", "b", "c"],
                             np.array([50.0, 199.0, 700.0]), 200.0)
  assert (out["clips_direct"], out["clips_reverberant"]) == (2, 1)
  assert out["mean_itd_error_us"]["full"] == {"all": 180.0, "direct": 20.0,
                                              "reverberant": 500.0}
  assert out["mean_itd_error_us"]["mono_mono"]["direct"] == 150.0
  with pytest.raises(SystemExit, match="not the split's"):
    itd_check.run_errors(str(path), "hall", ["a", "b", "d"], np.zeros(3), 200.0)


@pytest.fixture(scope="module")
def rt60_check():
  yield from _script("rt60_estimator_check")


def test_rt60_check_scores_the_recordings_against_the_simulated_rt60(rt60_check):
  """``check`` applies the blind estimator to the recordings themselves: on clips of
  noise bursts that stop and decay exponentially with RT60 0.4 s, it reads about
  0.4 s, and ``rte_true_of_recordings`` is the mean |estimate - true|; a scene without
  a simulated RT60 is refused."""
  import types
  from audiogs_jax import reverb
  sr, rt60 = 16000, 0.4
  rng = np.random.default_rng(0)
  t = np.arange(sr) / sr
  env = np.where(t < 0.3, 1.0, 10 ** (-3.0 * (t - 0.3) / rt60))   # -60 dB per rt60
  clips = rng.standard_normal((3, 2, sr)) * env
  scene = types.SimpleNamespace(binaural=clips, sample_rate=sr,
                                meta={"rt60_true": rt60, "signal": "noise"})
  out = rt60_check.check(scene)
  est = reverb.rt60_blind_batch(clips, sr)
  assert out["clips"] == 3 and out["rt60_true"] == rt60
  assert out["rte_true_of_recordings"] == pytest.approx(np.mean(np.abs(est - rt60)))
  assert out["blind_median"] == pytest.approx(rt60, rel=0.25)
  scene.meta = {}
  with pytest.raises(SystemExit, match="no simulated RT60"):
    rt60_check.check(scene)
