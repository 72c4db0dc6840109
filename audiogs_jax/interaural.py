"""Interaural metrics: what a listener's two ears compare (docs/metrics.md, "Interaural").

Binaural hearing rests on the interaural time difference (ITD, up to about 0.7 ms for
an adult head, carried by the phase below about 1.5 kHz) and the interaural level
difference (ILD, head shadow, growing with frequency). MAG, ENV and LRE compare
magnitudes, envelopes and broadband levels, so none of them sees the ITD, and LRE
mixes head shadow with overall level. These metrics do. All take waveforms
``[B, 2, L]`` (ear 0 = left; ``[2, L]`` is a batch of one) and return float64 ``[B]``.

- ``itd(x)``: ITD of each clip in seconds, positive when the left ear leads (source on
  the left): the lag of the GCC-PHAT cross-correlation ``irfft(conj(X_L) X_R / |.|)``
  over the bins up to ``ITD_MAX_HZ`` (3 kHz), within +-1 ms, computed on a 4x finer lag
  grid (spectrum zero-padded to 2 x 4 the clip length) and refined by a parabola through
  the peak and its neighbours. Identical channels give 0, a k-sample delay of the right
  channel gives ``k / sr``. The band limit: above a few kHz a head's interaural phase is
  dominated by the pinnae and, in a room, by the reverberant field, and whitening gives
  those bins as much weight as the ones that carry the ITD, so broadband GCC-PHAT picks
  a reflection's lag on a fraction of reverberant clips (README, "Interaural metrics").
- ``itd_error``: ``|ITD(pred) - ITD(target)|`` in microseconds.
- ``ipd_error``: ``sum w (1 - cos(IPD_pred - IPD_target)) / sum w`` over the STFT bins
  up to 1.5 kHz (the AV-NeRF STFT: n_fft 512, hop 128, Hann, centred), with
  ``w = (|T_L| + |T_R|) / 2`` the recording's magnitude, so silent bins do not count;
  0 for equal phase differences, 2 for opposite ones.
- ``ild_error_bands``: per octave band (centres 125 Hz ... 8 kHz, edges at
  ``centre / sqrt 2`` and ``centre * sqrt 2``, clipped to Nyquist),
  ``|ILD_b(pred) - ILD_b(target)|`` in dB with ``ILD_b = 10 log10((E_L + eps) /
  (E_R + eps))`` the band energies of the whole clip; the ``ild`` metric is their mean.

Mono baselines (identical channels up to a gain) have an ITD of exactly 0 and an IPD of
0 by construction; their ITD error is the recordings' mean |ITD|.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["ITD_MAX_S", "ITD_MAX_HZ", "IPD_MAX_HZ", "ILD_BANDS_HZ", "itd", "itd_error", "ipd_error",
           "ild_error_bands", "interaural_metrics"]

ITD_MAX_S = 1e-3
ITD_MAX_HZ = 3000.0
IPD_MAX_HZ = 1500.0
ILD_BANDS_HZ = (125, 250, 500, 1000, 2000, 4000, 8000)
_UPSAMPLE = 4
_ENERGY_EPS = 1e-10
_IPD_STFT = dict(n_fft=512, hop=128)


def _batch(x) -> np.ndarray:
  """``x`` as float64 ``[B, 2, L]`` (a ``[2, L]`` clip is a batch of one)."""
  x = np.asarray(x, dtype=np.float64)
  if x.ndim == 2:
    x = x[None]
  if x.ndim != 3 or x.shape[1] != 2:
    raise ValueError(f"expected binaural waveforms [B, 2, L], got {x.shape}")
  return x


def _pair(pred, target):
  """Float64 ``[B, 2, L]`` batches, ``pred`` trimmed or zero-padded to the target's length."""
  pred, target = _batch(pred), _batch(target)
  n = target.shape[-1]
  if pred.shape[-1] >= n:
    pred = pred[..., :n]
  else:
    pred = np.pad(pred, ((0, 0), (0, 0), (0, n - pred.shape[-1])))
  return pred, target


def itd(x, sample_rate: float, max_hz: float | None = None) -> np.ndarray:
  """GCC-PHAT interaural time difference [B] in seconds (left leading: positive),
  from the bins up to ``max_hz`` (default ``ITD_MAX_HZ``; ``inf``: every bin)."""
  x = _batch(x)
  nfft = 2 * x.shape[-1]                         # linear, not circular, correlation
  spec = np.fft.rfft(x, nfft, axis=-1)           # [B, 2, nfft/2+1]
  cross = np.conj(spec[:, 0]) * spec[:, 1]
  mag = np.abs(cross)
  cross = cross / np.maximum(mag, 1e-12 * np.max(mag, axis=-1, keepdims=True) + 1e-300)
  kernel, max_lag = _lag_kernel(nfft, float(sample_rate),
                                 float(ITD_MAX_HZ if max_hz is None else max_hz))
  c = cross[:, :kernel.shape[0]]
  # lags 0..M, then -M..-1 by the conjugate kernel in a product of the same shape (the
  # same summation order: a symmetric correlation stays exactly symmetric)
  win = np.concatenate([(c @ np.conj(kernel)).real[:, :0:-1], (c @ kernel).real], axis=1)
  i = np.argmax(win, axis=-1)
  ii = np.clip(i, 1, win.shape[-1] - 2)
  rows = np.arange(win.shape[0])
  y0, y1, y2 = win[rows, ii - 1], win[rows, ii], win[rows, ii + 1]
  den = y0 - 2 * y1 + y2
  delta = np.where((i == ii) & (den < 0), 0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), 0.0)
  lag = (i - max_lag) + delta
  return np.clip(lag / (_UPSAMPLE * sample_rate), -ITD_MAX_S, ITD_MAX_S)


@functools.lru_cache(maxsize=8)
def _lag_kernel(nfft: int, sample_rate: float, max_hz: float) -> tuple:
  """``(W [K, M + 1], M)``: ``(cross[:, :K] @ W).real`` is ``irfft(cross', U nfft)``
  at the lags ``0 .. M`` of the ``U``-times finer grid (``conj(W)``: ``0 .. -M``;
  ``U = _UPSAMPLE``, ``M`` the lags within ``ITD_MAX_S``), where ``cross'`` is ``cross`` with the bins above
  ``max_hz`` zeroed and ``K`` the bins up to it: the inverse transform evaluated
  only where the peak is searched (bins weighted 1 at DC and 2 above, the real
  inverse's Hermitian pairs; the bins used lie below Nyquist)."""
  up = _UPSAMPLE * nfft
  k = np.arange(int(np.sum(np.fft.rfftfreq(nfft, 1.0 / sample_rate) <= max_hz)))
  max_lag = int(np.ceil(ITD_MAX_S * sample_rate * _UPSAMPLE))
  turns = np.mod(np.outer(k, np.arange(max_lag + 1)), up) / up   # exact integer reduction
  return np.where(k == 0, 1.0, 2.0)[:, None] / up * np.exp(2j * np.pi * turns), max_lag


def itd_error(pred, target, sample_rate: float) -> np.ndarray:
  """``|ITD(pred) - ITD(target)|`` per clip [B], in microseconds."""
  pred, target = _pair(pred, target)
  return 1e6 * np.abs(itd(pred, sample_rate) - itd(target, sample_rate))


def _stft(x: np.ndarray) -> np.ndarray:
  """[..., L] -> complex [..., frames, n_fft/2+1]: Hann (periodic), centred, zero-padded."""
  n, hop = _IPD_STFT["n_fft"], _IPD_STFT["hop"]
  x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(n // 2, n // 2)])
  frames = 1 + (x.shape[-1] - n) // hop
  idx = np.arange(n)[None, :] + hop * np.arange(frames)[:, None]
  win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
  return np.fft.rfft(x[..., idx] * win, axis=-1)


def ipd_error(pred, target, sample_rate: float) -> np.ndarray:
  """Magnitude-weighted mean ``1 - cos(IPD_pred - IPD_target)`` below 1.5 kHz, [B]."""
  pred, target = _pair(pred, target)
  freqs = np.fft.rfftfreq(_IPD_STFT["n_fft"], 1.0 / sample_rate)
  keep = freqs <= IPD_MAX_HZ
  p = _stft(pred)[..., keep]                     # [B, 2, T, F']
  t = _stft(target)[..., keep]
  zp = p[:, 0] * np.conj(p[:, 1])
  zt = t[:, 0] * np.conj(t[:, 1])
  # 1 - cos(a - b) = |u - v|^2 / 2 for the unit phasors u, v: exact 0 for equal phases.
  u = zp / np.maximum(np.abs(zp), 1e-300)
  v = zt / np.maximum(np.abs(zt), 1e-300)
  one_minus_cos = np.where((zp != 0) & (zt != 0), 0.5 * np.abs(u - v) ** 2, 0.0)
  w = 0.5 * (np.abs(t[:, 0]) + np.abs(t[:, 1]))
  total = np.sum(w, axis=(-2, -1))
  return np.sum(w * one_minus_cos, axis=(-2, -1)) / np.maximum(total, 1e-300)


def _band_ild(x: np.ndarray, sample_rate: float, bands) -> np.ndarray:
  """ILD per clip and band [B, nb] in dB."""
  spec = np.abs(np.fft.rfft(x, axis=-1)) ** 2 / x.shape[-1]   # [B, 2, F]
  freqs = np.fft.rfftfreq(x.shape[-1], 1.0 / sample_rate)
  out = []
  for c in bands:
    m = (freqs >= c / np.sqrt(2.0)) & (freqs < min(c * np.sqrt(2.0), sample_rate / 2 + 1))
    e = np.sum(spec[..., m], axis=-1)                          # [B, 2]
    out.append(10.0 * np.log10((e[:, 0] + _ENERGY_EPS) / (e[:, 1] + _ENERGY_EPS)))
  return np.stack(out, axis=-1)


def _bands(sample_rate: float):
  """The octave-band centres of ``ILD_BANDS_HZ`` whose lower edge is below Nyquist."""
  return tuple(c for c in ILD_BANDS_HZ if c / np.sqrt(2.0) < sample_rate / 2)


def ild_error_bands(pred, target, sample_rate: float) -> dict[str, np.ndarray]:
  """``{"ild_125": [B], "ild_250": [B], ...}``: per octave band ILD error in dB."""
  pred, target = _pair(pred, target)
  bands = _bands(sample_rate)
  d = np.abs(_band_ild(pred, sample_rate, bands) - _band_ild(target, sample_rate, bands))
  return {f"ild_{c}": d[:, i] for i, c in enumerate(bands)}


def interaural_metrics(pred, target, sample_rate: float) -> dict[str, np.ndarray]:
  """All interaural errors per clip: ``{"itd": us [B], "ipd": [B], "ild": dB [B],
  "ild_125": dB [B], ...}``, ``"ild"`` the mean of the per-band ``"ild_<Hz>"``."""
  per = ild_error_bands(pred, target, sample_rate)
  out = {"itd": itd_error(pred, target, sample_rate),
         "ipd": ipd_error(pred, target, sample_rate),
         "ild": np.mean(np.stack(list(per.values()), axis=-1), axis=-1)}
  out.update(per)
  return out
