"""Metrics against closed forms and independent slow numpy/scipy references."""

import sys
import types

import numpy as np
import pytest
import scipy.signal

from audiogs_jax import dpam as dpam_lib
from audiogs_jax import interaural, metrics, reverb, waveforms

SR = 22050


# --------------------------------------------------------------------------
# Independent references: per-frame numpy STFT with explicit window/padding
# --------------------------------------------------------------------------

def _periodic_window(kind, win_length, n_fft):
  n = np.arange(win_length)
  a0 = {"hann": 0.5, "hamming": 0.54}[kind]
  w = a0 - (1 - a0) * np.cos(2 * np.pi * n / win_length)
  out = np.zeros(n_fft)
  lpad = (n_fft - win_length) // 2
  out[lpad:lpad + win_length] = w
  return out


def _slow_stft_mag(x, n_fft, hop, win_length, kind):
  """|STFT| [F, T] of a 1-D signal, one frame at a time (centred, zero pad)."""
  w = _periodic_window(kind, win_length, n_fft)
  xp = np.pad(np.asarray(x, np.float64), (n_fft // 2, n_fft // 2))
  frames = 1 + (xp.size - n_fft) // hop
  out = np.empty((n_fft // 2 + 1, frames))
  for t in range(frames):
    out[:, t] = np.abs(np.fft.rfft(xp[t * hop:t * hop + n_fft] * w))
  return out


def _ref_mag_avnerf(pred, target):
  res = []
  for p, g in zip(pred, target):
    d = [(_slow_stft_mag(p[e], 512, 128, 512, "hann")
          - _slow_stft_mag(g[e], 512, 128, 512, "hann")) ** 2 for e in range(2)]
    res.append(2 * np.mean(np.stack(d)))
  return np.array(res)


def _ref_mag_avcloud(pred, target):
  res = []
  for p, g in zip(pred, target):
    res.append(sum(np.mean(np.abs(_slow_stft_mag(p[e], 512, 160, 400, "hamming")
                                  - _slow_stft_mag(g[e], 512, 160, 400, "hamming")))
                   for e in range(2)))
  return np.array(res)


def _rand(shape, seed):
  return np.random.default_rng(seed).standard_normal(shape)


def test_slow_reference_matches_scipy_stft():
  # The test's own reference agrees with scipy's STFT (both window protocols).
  x = _rand(3000, 0)
  for nperseg_hop, (win, kind) in {128: (512, "hann"), 160: (400, "hamming")}.items():
    w = _periodic_window(kind, win, 512)
    _, _, z = scipy.signal.stft(np.pad(x, (256, 256)), window=w, nperseg=512,
                                noverlap=512 - nperseg_hop, boundary=None,
                                padded=False, scaling="spectrum")
    ref = _slow_stft_mag(x, 512, nperseg_hop, win, kind)
    np.testing.assert_allclose(np.abs(z) * w.sum(), ref, rtol=1e-9, atol=1e-9)


def test_mag_matches_slow_reference():
  target = _rand((3, 2, 4000), 1)
  pred = target + 0.5 * _rand((3, 2, 4000), 2)
  np.testing.assert_allclose(metrics.mag_avnerf(pred, target),
                             _ref_mag_avnerf(pred, target), rtol=1e-4)
  np.testing.assert_allclose(metrics.mag_avcloud(pred, target),
                             _ref_mag_avcloud(pred, target), rtol=1e-4)


def test_mag_chunking_matches_per_clip():
  # More clips than one jit chunk: the zero-padded last chunk must not leak.
  b = metrics._CHUNK + 3
  target = _rand((b, 2, 1024), 3)
  pred = 0.7 * target + 0.1 * _rand((b, 2, 1024), 4)
  full = metrics.mag_avcloud(pred, target)
  per = np.concatenate([metrics.mag_avcloud(pred[i:i + 1], target[i:i + 1])
                        for i in (0, b - 2, b - 1)])
  np.testing.assert_allclose(full[[0, b - 2, b - 1]], per, rtol=1e-6)
  assert full.shape == (b,) and np.all(full > 0)


def test_identical_signals_give_zero():
  x = _rand((2, 2, 3000), 5)
  out = metrics.compute_metrics(x, x.copy(), SR, with_dpam=False)
  bands = {f"ild_{c}" for c in interaural.ILD_BANDS_HZ}
  assert set(out) == set(metrics.METRIC_KEYS) | bands
  for k, v in out.items():
    assert v.shape == (2,)
    np.testing.assert_array_equal(v, 0.0, err_msg=k)


def test_zero_prediction_closed_forms():
  g = _rand((2, 2, 3000), 6)
  z = np.zeros_like(g)
  ref_sq = [np.mean([(_slow_stft_mag(c[e], 512, 128, 512, "hann") ** 2) for e in range(2)])
            for c in g]
  np.testing.assert_allclose(metrics.mag_avnerf(z, g), 2 * np.array(ref_sq), rtol=1e-4)
  ref_abs = [sum(np.mean(_slow_stft_mag(c[e], 512, 160, 400, "hamming")) for e in range(2))
             for c in g]
  np.testing.assert_allclose(metrics.mag_avcloud(z, g), ref_abs, rtol=1e-4)
  env_g = np.abs(scipy.signal.hilbert(g, axis=-1))
  np.testing.assert_allclose(metrics.env(z, g),
                             np.sqrt(np.mean(env_g ** 2, axis=-1)).sum(-1), rtol=1e-10)


def test_mag_avcloud_scaled_closed_form():
  g = _rand((1, 2, 3000), 7)
  a = 0.3
  mean_mag = [np.mean(_slow_stft_mag(g[0, e], 512, 160, 400, "hamming")) for e in range(2)]
  np.testing.assert_allclose(metrics.mag_avcloud(a * g, g), [abs(1 - a) * sum(mean_mag)],
                             rtol=1e-4)
  np.testing.assert_allclose(metrics.mag_avcloud(2.5 * g, g), [1.5 * sum(mean_mag)],
                             rtol=1e-4)


def test_env_pure_tone_closed_form():
  n = 4410
  t = np.arange(n) / SR
  f0 = SR * 40 / n  # integer number of periods: the analytic envelope is exact
  amps = (0.8, 0.3)
  g = np.stack([amp * np.sin(2 * np.pi * f0 * t) for amp in amps])[None]
  for a in (0.5, 1.7):
    np.testing.assert_allclose(metrics.env(a * g, g), [abs(1 - a) * sum(amps)], rtol=1e-8)


def test_lre_half_right_channel():
  x = _rand(5000, 8)
  target = np.stack([x, 0.5 * x])[None]
  pred = np.stack([x, x])[None]
  e = np.sum(x ** 2)
  exact = 10 * np.log10((e + 1e-5) / (e / 4 + 1e-5))
  np.testing.assert_allclose(metrics.lre(pred, target), [exact], rtol=1e-12)
  np.testing.assert_allclose(metrics.lre(pred, target), [20 * np.log10(2)], atol=1e-6)
  # Symmetric, and silence in both ears is a ratio of 0 dB.
  np.testing.assert_allclose(metrics.lre(target, pred), metrics.lre(pred, target))
  np.testing.assert_allclose(metrics.lre(np.zeros_like(pred), pred), [0.0], atol=1e-12)


def test_length_matching():
  g = _rand((1, 2, 3000), 9)
  longer = np.concatenate([g, _rand((1, 2, 500), 10)], axis=-1)
  for f in (metrics.mag_avnerf, metrics.mag_avcloud, metrics.env, metrics.lre):
    np.testing.assert_array_equal(f(longer, g), 0.0)
  shorter = g[..., :2000]
  padded = np.concatenate([shorter, np.zeros((1, 2, 1000))], axis=-1)
  np.testing.assert_allclose(metrics.env(shorter, g), metrics.env(padded, g))
  np.testing.assert_allclose(metrics.mag_avnerf(shorter, g), metrics.mag_avnerf(padded, g))
  # A single [2, L] clip is a batch of one.
  assert metrics.lre(g[0], g[0]).shape == (1,)


# --------------------------------------------------------------------------
# RT60
# --------------------------------------------------------------------------

def _exp_ir(rt60, seed, dur=None):
  n = int((dur or 1.5 * rt60) * SR)
  t = np.arange(n) / SR
  return _rand(n, seed) * np.exp(-3 * np.log(10) * t / rt60)  # -60 dB at rt60


def _bursts(seed, total=3.0, starts=(0.1, 1.6), length=0.3):
  x = np.zeros(int(total * SR))
  rng = np.random.default_rng(seed)
  for s in starts:
    i, n = int(s * SR), int(length * SR)
    x[i:i + n] = rng.standard_normal(n)
  return x


@pytest.mark.parametrize("rt60", [0.3, 0.6, 1.0])
def test_rt60_schroeder_on_exponential_ir(rt60):
  assert reverb.rt60_schroeder(_exp_ir(rt60, 11), SR) == pytest.approx(rt60, rel=0.10)


def test_rt60_schroeder_batched_and_degenerate():
  irs = np.stack([_exp_ir(0.5, 12, dur=0.8), _exp_ir(0.5, 13, dur=0.8)])
  out = reverb.rt60_schroeder(irs, SR)
  assert out.shape == (2,)
  np.testing.assert_allclose(out, 0.5, rtol=0.1)
  assert np.isnan(reverb.rt60_schroeder(np.zeros(1000), SR))


def test_rt60_blind_noise_bursts_accuracy_and_monotonic():
  estimates = []
  for i, rt60 in enumerate([0.3, 0.6, 1.0]):
    y = scipy.signal.fftconvolve(_bursts(20 + i), _exp_ir(rt60, 30 + i))[:3 * SR]
    stereo = np.stack([y, 0.8 * y])
    est = reverb.rt60_blind(stereo, SR)
    assert est == pytest.approx(rt60, rel=0.30), (rt60, est)
    estimates.append(est)
  assert estimates[0] < estimates[1] < estimates[2]


def test_rt60_blind_with_noise_floor():
  y = scipy.signal.fftconvolve(_bursts(40), _exp_ir(0.6, 41))[:3 * SR]
  level = np.sqrt(np.mean(y[int(0.2 * SR):int(0.4 * SR)] ** 2))
  y = y + 10 ** (-35 / 20) * level * _rand(y.size, 42)  # floor 35 dB down
  assert reverb.rt60_blind(y, SR) == pytest.approx(0.6, rel=0.30)


def test_rt60_blind_fallbacks_are_finite_and_clipped():
  assert reverb.rt60_blind(np.zeros(SR), SR) == reverb.RT60_MIN
  for x in (_rand(SR, 50), _bursts(51), np.ones(SR), np.zeros(100)):
    v = reverb.rt60_blind(x, SR)
    assert np.isfinite(v) and reverb.RT60_MIN <= v <= reverb.RT60_MAX
  assert isinstance(reverb.ESTIMATOR_NAME, str) and reverb.ESTIMATOR_NAME
  assert reverb.ESTIMATOR_NAME in reverb.ESTIMATOR_DESCRIPTION


def test_rte_and_true_error():
  ys = [scipy.signal.fftconvolve(_bursts(60), _exp_ir(rt, 61))[:2 * SR]
        for rt in (0.3, 0.8)]
  x = np.stack([np.stack([y, y]) for y in ys])  # [2, 2, L]
  est = reverb.rt60_blind_batch(x, SR)
  np.testing.assert_allclose(reverb.rte(x, x[::-1], SR), [abs(est[0] - est[1])] * 2)
  np.testing.assert_allclose(reverb.rt60_true_error(x, [0.3, 0.8], SR),
                             np.abs(est - [0.3, 0.8]))
  out = metrics.compute_metrics(x, x, SR, rt60_true=0.5)
  np.testing.assert_allclose(out["rte_true"], np.abs(est - 0.5))
  np.testing.assert_array_equal(out["rte"], 0.0)


# --------------------------------------------------------------------------
# DPAM
# --------------------------------------------------------------------------

def test_pair_shapes_and_dtypes():
  g = np.zeros((3, 2, 10), np.float32)
  p, t = waveforms.pair(np.ones((3, 2, 12), np.int16), g)
  assert p.shape == (3, 2, 10) and p.dtype == np.float64 and t.dtype == np.float32
  assert waveforms.pair(g[0], g[0])[0].shape == (1, 2, 10)
  with pytest.raises(ValueError, match="pred must be"):
    waveforms.pair(np.zeros((3, 10)), g)
  with pytest.raises(ValueError, match="target must be"):
    waveforms.pair(g, np.zeros((3, 1, 10)))
  with pytest.raises(ValueError, match="batch sizes differ"):
    metrics.env(g[:2], g)


def test_report_names_reachable_from_metrics():
  # Evaluation reports read these through ``metrics``.
  assert metrics.ESTIMATOR_NAME == reverb.ESTIMATOR_NAME
  assert metrics.dpam_available is dpam_lib.dpam_available


def test_dpam_absent_returns_none(monkeypatch):
  monkeypatch.setitem(sys.modules, "cdpam", None)  # import cdpam -> ImportError
  assert dpam_lib.dpam_available() is False
  x = _rand((2, 2, 2000), 70)
  assert dpam_lib.dpam(x, x, SR) is None
  out = metrics.compute_metrics(x, x, SR, with_dpam=True)
  assert "dpam" not in out
  summary = metrics.summarize(out)
  assert summary["dpam"] is None
  assert summary["lre"] == 0.0


def test_dpam_feeds_model_the_published_preprocessing(monkeypatch):
  # A stand-in cdpam/torch pair records what the model receives.
  calls = []

  class _Tensor:
    def __init__(self, a):
      self.a = np.asarray(a)

    def detach(self):
      return self

    def cpu(self):
      return self

    def numpy(self):
      return self.a

  class _NoGrad:
    def __enter__(self):
      return self

    def __exit__(self, *exc):
      return False

  class _Model:
    def forward(self, a, b):
      calls.append((a.a, b.a))
      return _Tensor([np.mean(np.abs(a.a - b.a))])

  fake_torch = types.ModuleType("torch")
  fake_torch.Tensor = _Tensor  # scipy's array-API probe looks it up
  fake_torch.from_numpy = _Tensor
  fake_torch.no_grad = _NoGrad
  fake_cdpam = types.ModuleType("cdpam")
  fake_cdpam.CDPAM = lambda dev="cpu": _Model()
  monkeypatch.setitem(sys.modules, "torch", fake_torch)
  monkeypatch.setitem(sys.modules, "cdpam", fake_cdpam)
  monkeypatch.setattr(dpam_lib, "_DPAM_MODEL", None)
  assert dpam_lib.dpam_available()

  sr = 16000
  target = 0.1 * _rand((2, 2, sr), 71)
  pred = 0.5 * target
  out = dpam_lib.dpam(pred, target, sr)
  assert out.shape == (2,) and len(calls) == 2
  ref, est = calls[0]
  assert ref.shape == (1, 22050) and est.shape == (1, 22050)
  expected = scipy.signal.resample_poly(target[0].mean(0), 441, 320) * 32768.0
  np.testing.assert_allclose(ref[0], expected, rtol=1e-4, atol=1e-2)
  np.testing.assert_allclose(out[0], np.mean(np.abs(ref - est)), rtol=1e-6)
  assert "dpam" in metrics.compute_metrics(pred, target, sr, with_dpam=True)


# --------------------------------------------------------------------------
# Summaries and RWAVS aggregation
# --------------------------------------------------------------------------

def test_summarize_means():
  s = metrics.summarize({"env": np.array([1.0, 2.0, 6.0]), "dpam": np.array([0.5, 1.5])})
  assert s == {"env": 3.0, "dpam": 1.0}


def test_aggregate_rwavs_by_hand():
  per_scene = {
      "1": {"mag": 1.0, "env": 0.1},
      "2": {"mag": 3.0, "env": 0.3},
      "6": {"mag": np.array([2.0, 4.0]), "env": 0.2},  # per-clip values: mean first
      "7": {"mag": 5.0, "env": 0.4},
      "8": {"mag": 6.0, "env": 0.6},
      "12": {"mag": 10.0, "env": 1.0},
  }
  out = metrics.aggregate_rwavs(per_scene)
  assert out["per_scene"]["6"]["mag"] == 3.0
  assert set(out["per_environment"]) == {"office", "house", "outdoor"}
  assert out["per_environment"]["office"]["mag"] == pytest.approx(2.0)
  assert out["per_environment"]["house"]["mag"] == pytest.approx((3 + 5 + 6) / 3)
  assert out["per_environment"]["outdoor"]["env"] == pytest.approx(1.0)
  assert out["overall"]["mag"] == pytest.approx((2.0 + 14 / 3 + 10.0) / 3)
  assert out["overall"]["env"] == pytest.approx((0.2 + 0.4 + 1.0) / 3)
  with_none = metrics.aggregate_rwavs({1: {"dpam": None, "env": 1.0}, 9: {"dpam": None, "env": 3.0}})
  assert with_none["overall"] == {"dpam": None, "env": 2.0}
  with pytest.raises(ValueError):
    metrics.aggregate_rwavs({"14": {"env": 1.0}})
