"""Interaural metrics (ITD, IPD, per-band ILD) against closed forms, and source localisation."""

import numpy as np
import pytest
from scipy import signal as sps

from audiogs_jax import baselines, interaural, localize, metrics
from audiogs_jax.data import trajectory

SR = 22050


@pytest.fixture(scope="module")
def noise():
    return np.random.default_rng(0).standard_normal(SR)


@pytest.mark.parametrize("k", [0, 1, 3, -5, 10, -15])
def test_k_sample_delay_gives_k_over_sr(noise, k):
    """Right ear delayed by k samples: the left leads, ITD = k / sr."""
    x = np.stack([noise, np.roll(noise, k)])
    assert interaural.itd(x, SR)[0] == pytest.approx(k / SR, abs=1e-7)


def test_identical_channels_and_gain_give_zero(noise):
    for x in (np.stack([noise, noise]), np.stack([noise, 0.2 * noise])):
        assert interaural.itd(x, SR)[0] == 0.0
        assert interaural.ipd_error(x, np.stack([noise, noise]), SR)[0] == pytest.approx(0, abs=1e-12)
    np.testing.assert_allclose(interaural.itd_error(np.stack([noise, noise]),
                                                    np.stack([noise, noise]), SR), 0.0)


def test_fractional_delay_is_interpolated(noise):
    """A 2.5-sample delay (band-limited): sub-sample peak interpolation gets within 0.1 sample."""
    up = sps.resample_poly(noise, 4, 1)
    x = np.stack([up[::4], np.roll(up, 10)[::4]])
    assert interaural.itd(x, SR)[0] * SR == pytest.approx(2.5, abs=0.1)


def test_itd_is_limited_to_one_millisecond(noise):
    x = np.stack([noise, np.roll(noise, 60)])            # 2.7 ms: outside the search range
    assert abs(interaural.itd(x, SR)[0]) <= interaural.ITD_MAX_S


def test_itd_error_in_microseconds(noise):
    pred = np.stack([noise, np.roll(noise, 4)])
    target = np.stack([noise, np.roll(noise, -7)])
    assert interaural.itd_error(pred, target, SR)[0] == pytest.approx(11 / SR * 1e6, abs=0.1)


def test_ipd_error_closed_forms():
    """A pure tone below 1.5 kHz: IPD error 1 - cos(delta phi); opposite phase gives 2."""
    t = np.arange(SR) / SR
    f0 = 430.6640625                                     # a bin centre of the 512-point STFT
    target = np.stack([np.sin(2 * np.pi * f0 * t), np.sin(2 * np.pi * f0 * t)])
    for dphi in (0.5, 1.0, np.pi):
        pred = np.stack([np.sin(2 * np.pi * f0 * t + dphi), np.sin(2 * np.pi * f0 * t)])
        assert interaural.ipd_error(pred, target, SR)[0] == pytest.approx(1 - np.cos(dphi), abs=0.02)
    # Above 1.5 kHz the IPD is not scored: a phase flip of the content above 2.5 kHz
    # (tapered ends, so no edge leakage into the low bins) leaves the error near 0.
    noise = np.random.default_rng(2).standard_normal(SR)
    spec, f = np.fft.rfft(noise), np.fft.rfftfreq(SR, 1 / SR)
    taper = sps.windows.tukey(SR, 0.1)
    low = np.fft.irfft(spec * (f < 1000), SR) * taper
    high = np.fft.irfft(spec * (f > 2500), SR) * taper
    target = np.stack([low + high, low + high])
    pred = np.stack([low - high, low + high])
    assert interaural.ipd_error(pred, target, SR)[0] < 0.02
    pred = np.stack([-low + high, low + high])           # the low band flipped: scored
    assert interaural.ipd_error(pred, target, SR)[0] > 1.9


def test_ild_bands_closed_form(noise):
    """A gain g on the left ear: the ILD error is 20 log10 g in every band."""
    target = np.stack([noise, noise])
    pred = np.stack([2.0 * noise, noise])
    per = interaural.ild_error_bands(pred, target, SR)
    assert sorted(per) == sorted(f"ild_{c}" for c in interaural.ILD_BANDS_HZ)
    for v in per.values():
        assert v[0] == pytest.approx(20 * np.log10(2.0), abs=1e-6)
    # A low-pass on the right ear only: a level difference at high, not low, frequencies.
    sos = sps.butter(6, 1000, fs=SR, output="sos")
    shadow = np.stack([noise, sps.sosfilt(sos, noise)])
    per = interaural.ild_error_bands(shadow, target, SR)
    assert per["ild_250"][0] < 1.0 and per["ild_4000"][0] > 20.0


def test_compute_metrics_and_mono_baselines_have_zero_itd(noise):
    """Mono-Mono and Mono-Energy render identical channels up to a gain: ITD 0 by construction."""
    target = np.stack([noise, np.roll(noise, 6)])[None]
    src = noise[None]
    out = metrics.compute_metrics(np.stack([noise, noise])[None], target, SR)
    for key in ("itd", "ipd", "ild", "ild_250", "ild_8000"):
        assert key in out and out[key].shape == (1,)
    assert out["itd"][0] == pytest.approx(6 / SR * 1e6, abs=0.1)
    for pred in (baselines.mono_mono(src), baselines.mono_energy(src, src, target)):
        assert interaural.itd(np.asarray(pred), SR)[0] == 0.0


def test_estimate_source_from_itds():
    """ITDs of the Woodworth model from known poses: the fit recovers the source."""
    rng = np.random.default_rng(1)
    src = np.array([0.4, -0.3, 0.0])
    poses = np.stack([trajectory.head_pose([x, y, 0.0], yaw)
                      for x, y, yaw in zip(rng.uniform(-1, 1, 60), rng.uniform(-1, 1, 60),
                                           rng.uniform(-np.pi, np.pi, 60))])
    itds = 0.0875 / 343.0 * localize.itd_model(src[None], poses)[0]
    est = localize.estimate_source(poses, None, SR, itds=itds)
    assert np.linalg.norm(est - src) < 0.1
    # No interaural cue at all: fall back to the listeners' centroid.
    est0 = localize.estimate_source(poses, None, SR, itds=np.zeros(60))
    np.testing.assert_allclose(est0, poses[:, :3, 3].mean(axis=0))


def test_estimate_source_ignores_reflection_peaks():
    """A third of the clips' ITDs replaced by random values within +-1 ms (GCC-PHAT
    peaks of reflections): the truncated fit still finds the source, where a least-
    squares fit to the same ITDs is pulled away from it."""
    rng = np.random.default_rng(2)
    src = np.array([-0.3, 0.5, 0.0])
    poses = np.stack([trajectory.head_pose([x, y, 0.0], yaw)
                      for x, y, yaw in zip(rng.uniform(-1, 1, 90), rng.uniform(-1, 1, 90),
                                           rng.uniform(-np.pi, np.pi, 90))])
    itds = 0.0875 / 343.0 * localize.itd_model(src[None], poses)[0]
    bad = rng.permutation(90)[:30]
    itds[bad] = rng.uniform(-1e-3, 1e-3, 30)
    est = localize.estimate_source(poses, None, SR, itds=itds)
    assert np.linalg.norm(est - src) < 0.1
    # Least squares (the best non-negative scale per point) on the same ITDs.
    pts = np.stack(np.meshgrid(*[np.linspace(-3, 3, 61)] * 2 + [np.zeros(1)],
                               indexing="ij"), -1).reshape(-1, 3)
    w = localize.itd_model(pts, poses)
    k = np.maximum((w @ itds) / np.maximum((w * w).sum(-1), 1e-12), 0.0)
    ls = pts[np.argmin(((itds[None] - k[:, None] * w) ** 2).sum(-1))]
    assert np.linalg.norm(ls - src) > 2 * np.linalg.norm(est - src)


def test_itd_band_limit_is_an_argument():
    """``itd(..., max_hz=)`` reads only the bins up to ``max_hz``, whatever was asked
    before (the lag kernel is cached per limit): a clip whose band below 1 kHz is
    delayed by +3 samples between the ears and whose band above 2 kHz by -5 gives
    +3 samples below 1 kHz and -5 over every bin (most bins lie above 2 kHz)."""
    rng = np.random.default_rng(5)
    n = 4096
    f = np.fft.rfftfreq(n, 1.0 / SR)
    def band(lo, hi):
        spec = np.fft.rfft(rng.standard_normal(n)) * ((f >= lo) & (f < hi))
        return np.fft.irfft(spec, n)
    low, high = band(50, 1000), band(2000, SR / 2)
    left = low + high
    right = np.roll(low, 3) + np.roll(high, -5)
    x = np.stack([left, right])[None]
    for _ in range(2):   # each limit twice, alternated: no cached kernel of another limit
        assert interaural.itd(x, SR, max_hz=1000.0)[0] * SR == pytest.approx(3, abs=0.2)
        assert interaural.itd(x, SR, max_hz=float("inf"))[0] * SR == pytest.approx(-5, abs=0.2)
    assert interaural.itd(x, SR)[0] == interaural.itd(x, SR, max_hz=interaural.ITD_MAX_HZ)[0]


def test_itd_lag_search_equals_the_upsampled_inverse_fft():
    """The correlation evaluated at the searched lags only (``_lag_kernel``) against
    the whole upsampled inverse FFT of the band-limited GCC-PHAT spectrum (the
    slow reference), on clips with random fractional delays and noise."""
    rng = np.random.default_rng(3)
    n = 2048
    up = sps.resample_poly(rng.standard_normal((6, 4 * n)), 1, 1, axis=-1)
    x = np.stack([up[:, ::4], np.roll(up, 3, axis=-1)[:, ::4]], axis=1)
    x = x + 0.3 * rng.standard_normal(x.shape)
    nfft = 2 * n
    spec = np.fft.rfft(x, nfft, axis=-1)
    cross = np.conj(spec[:, 0]) * spec[:, 1]
    cross = cross / np.maximum(np.abs(cross), 1e-300)
    cross = cross * (np.fft.rfftfreq(nfft, 1.0 / SR) <= interaural.ITD_MAX_HZ)
    factor = 4
    cc = np.fft.irfft(cross, factor * nfft, axis=-1)
    kernel, m = interaural._lag_kernel(nfft, float(SR), interaural.ITD_MAX_HZ)
    c = cross[:, :kernel.shape[0]]
    tol = 1e-12 * np.abs(cc).max()
    np.testing.assert_allclose((c @ kernel).real, cc[:, :m + 1], atol=tol)
    np.testing.assert_allclose((c @ np.conj(kernel)).real, cc[:, (-np.arange(m + 1)) % (factor * nfft)],
                               atol=tol)
    assert factor == interaural._UPSAMPLE
