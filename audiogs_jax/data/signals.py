"""Built-in procedural source signals for the synthetic scenes.

Every generator has the signature ``fn(seconds, sr, rng) -> [round(seconds * sr)]``
float32 in [-1, 1] (peak 0.9) and is deterministic for a given
``numpy.random.Generator`` state:

- ``speech_like``: syllables of a glottal pulse train (f0 gliding between
  ~90 and ~250 Hz) through three resonant formant filters (a vowel per
  syllable), short noisy onsets (consonants), syllable envelopes, pauses
  between words and longer pauses between phrases.
- ``music_like``: a melody on a pentatonic scale, harmonic notes (8 partials,
  1/k amplitudes, higher partials decaying faster) with ADSR envelopes, some
  two-note dyads, and rests.
- ``noise_bursts``: band-limited (Butterworth band-pass, random band) noise
  bursts of random length with gaps between them.

``make_signal(name_or_wav_path, seconds, sr, seed)`` picks one of ``SIGNALS`` by
name, or reads a user WAV (mixed to mono, resampled, looped or trimmed).
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
from scipy import signal as sps

from .scene import DataError, read_wav

__all__ = ["speech_like", "music_like", "noise_bursts", "SIGNALS", "make_signal"]

_PEAK = 0.9


def _num_samples(seconds: float, sr: int) -> int:
  n = int(round(float(seconds) * sr))
  if n <= 0:
    raise ValueError(f"seconds * sr must be positive, got {seconds} s at {sr} Hz")
  return n


def _finish(x: np.ndarray) -> np.ndarray:
  peak = float(np.max(np.abs(x))) if x.size else 0.0
  if peak > 0:
    x = x * (_PEAK / peak)
  return x.astype(np.float32)


def _fade(n: int, n_attack: int, n_release: int) -> np.ndarray:
  env = np.ones(n)
  a = min(n_attack, n)
  r = min(n_release, n - a)
  if a:
    env[:a] = 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
  if r:
    env[n - r:] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(1, r + 1) / r)
  return env


def _resonator(f: float, bw: float, sr: int):
  """Second-order all-pole resonator at ``f`` Hz with bandwidth ``bw`` Hz,
  unit gain at its peak (approximately)."""
  r = np.exp(-np.pi * bw / sr)
  theta = 2 * np.pi * f / sr
  a = [1.0, -2 * r * np.cos(theta), r * r]
  b = [(1 - r) * np.sqrt(1 - 2 * r * np.cos(2 * theta) + r * r)]
  return b, a


# (F1, F2, F3) in Hz for a few vowels.
_VOWELS = np.array([
    [730, 1090, 2440],   # a
    [530, 1840, 2480],   # e
    [270, 2290, 3010],   # i
    [570, 840, 2410],    # o
    [300, 870, 2240],    # u
    [660, 1720, 2410],   # ae
    [520, 1190, 2390],   # schwa
], dtype=np.float64)


def speech_like(seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
  """Formant-syllable speech substitute: [round(seconds*sr)] float32, peak 0.9."""
  n = _num_samples(seconds, sr)
  out = np.zeros(n)
  pos = int(rng.uniform(0.02, 0.15) * sr)
  base_f0 = rng.uniform(100.0, 180.0)
  while pos < n:
    # One phrase: 3-9 words of 1-3 syllables.
    for _ in range(int(rng.integers(3, 10))):
      for _ in range(int(rng.integers(1, 4))):
        dur = int(rng.uniform(0.12, 0.30) * sr)
        if pos >= n:
          break
        m = min(dur, n - pos)
        t = np.arange(m) / sr
        # f0 contour: a glide plus a little vibrato-like wobble.
        f0a = base_f0 * rng.uniform(0.8, 1.3)
        f0b = f0a * rng.uniform(0.8, 1.2)
        f0 = np.clip(np.linspace(f0a, f0b, m) *
                     (1 + 0.02 * np.sin(2 * np.pi * 5.0 * t)), 80.0, 260.0)
        phase = np.cumsum(f0) / sr
        pulses = np.diff(np.floor(phase), prepend=np.floor(phase[0]) - 1.0)
        pulses = (pulses > 0).astype(np.float64)
        # Glottal pulse shape: a short decaying pulse (derivative-like).
        glottal = sps.lfilter([1.0, -1.0], [1.0, -0.97], pulses)
        glottal += 0.03 * rng.standard_normal(m)  # breathiness
        vowel = _VOWELS[int(rng.integers(len(_VOWELS)))] * rng.uniform(0.9, 1.1)
        voiced = np.zeros(m)
        for k, (f, bw, g) in enumerate(zip(vowel, (80.0, 100.0, 140.0),
                                           (1.0, 0.6, 0.3))):
          b, a = _resonator(min(f, 0.45 * sr), bw, sr)
          voiced += g * sps.lfilter(b, a, glottal)
        env = _fade(m, int(0.03 * sr), int(0.06 * sr))
        seg = voiced * env
        # Consonant-like noisy onset on some syllables.
        if rng.random() < 0.6:
          nc = min(int(rng.uniform(0.02, 0.06) * sr), m)
          lo = rng.uniform(1500.0, 3000.0)
          hi = min(lo * rng.uniform(1.5, 2.5), 0.45 * sr)
          if hi > lo * 1.05:
            sos = sps.butter(2, [lo, hi], btype="band", fs=sr, output="sos")
            noise = sps.sosfilt(sos, rng.standard_normal(nc))
            seg[:nc] += 0.5 * np.max(np.abs(voiced)) / (np.max(np.abs(noise)) + 1e-12) \
                * noise * _fade(nc, nc // 4, nc // 2)
        out[pos:pos + m] += seg * rng.uniform(0.6, 1.0)
        pos += dur + int(rng.uniform(0.01, 0.05) * sr)
      pos += int(rng.uniform(0.06, 0.20) * sr)   # between words
      if pos >= n:
        break
    pos += int(rng.uniform(0.3, 0.8) * sr)         # between phrases
  return _finish(out)


def music_like(seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
  """Harmonic-note melody with ADSR envelopes: [round(seconds*sr)] float32, peak 0.9."""
  n = _num_samples(seconds, sr)
  out = np.zeros(n)
  scale = np.array([0, 2, 4, 7, 9, 12, 14, 16, 19, 21])  # major pentatonic, 2 octaves
  root = 220.0 * 2 ** (rng.integers(-3, 4) / 12.0)
  beat = 60.0 / rng.uniform(90.0, 140.0)
  degree = int(rng.integers(len(scale)))
  pos = 0
  n_partials = 8
  k = np.arange(1, n_partials + 1)
  while pos < n:
    length = beat * float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
    dur = int(length * sr)
    if rng.random() < 0.12:                      # rest
      pos += dur
      continue
    degree = int(np.clip(degree + rng.integers(-2, 3), 0, len(scale) - 1))
    notes = [degree]
    if rng.random() < 0.25:                      # dyad
      notes.append(min(degree + 2, len(scale) - 1))
    m = min(int(dur * 1.1), n - pos)             # slight legato overlap
    t = np.arange(m) / sr
    # ADSR.
    a, d, s_level = int(0.015 * sr), int(0.08 * sr), 0.6
    r = min(int(0.12 * sr), m)
    env = np.full(m, s_level)
    a_ = min(a, m)
    env[:a_] = np.linspace(0.0, 1.0, a_, endpoint=False)
    d_ = min(d, m - a_)
    env[a_:a_ + d_] = np.linspace(1.0, s_level, d_, endpoint=False)
    env[m - r:] *= np.linspace(1.0, 0.0, r)
    note = np.zeros(m)
    for deg in notes:
      f0 = root * 2 ** (scale[deg] / 12.0)
      ks = k[k * f0 < 0.45 * sr]
      amps = (1.0 / ks)[:, None] * np.exp(-t[None, :] * ks[:, None] * 1.5)
      phases = rng.uniform(0, 2 * np.pi, size=len(ks))[:, None]
      note += np.sum(amps * np.sin(2 * np.pi * f0 * ks[:, None] * t[None, :] + phases),
                     axis=0)
    out[pos:pos + m] += note * env * rng.uniform(0.6, 1.0)
    pos += dur
  return _finish(out)


def noise_bursts(seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
  """Band-limited noise bursts with gaps: [round(seconds*sr)] float32, peak 0.9."""
  n = _num_samples(seconds, sr)
  out = np.zeros(n)
  pos = int(rng.uniform(0.0, 0.1) * sr)
  nyq = 0.5 * sr
  while pos < n:
    m = min(int(rng.uniform(0.05, 0.4) * sr), n - pos)
    lo = float(np.exp(rng.uniform(np.log(100.0), np.log(0.3 * nyq))))
    hi = min(lo * float(np.exp(rng.uniform(np.log(1.5), np.log(8.0)))), 0.95 * nyq)
    burst = rng.standard_normal(m + 256)
    if hi > lo * 1.05:
      sos = sps.butter(4, [lo, hi], btype="band", fs=sr, output="sos")
      burst = sps.sosfilt(sos, burst)
    burst = burst[256:]
    burst /= np.sqrt(np.mean(burst ** 2)) + 1e-12
    out[pos:pos + m] += burst * _fade(m, int(0.005 * sr), int(0.02 * sr)) * \
        rng.uniform(0.3, 1.0)
    pos += m + int(rng.uniform(0.05, 0.5) * sr)
  return _finish(out)


SIGNALS: dict[str, Callable[[float, int, np.random.Generator], np.ndarray]] = {
    "speech": speech_like,
    "music": music_like,
    "noise": noise_bursts,
}


def make_signal(name_or_wav_path: str | os.PathLike, seconds: float, sr: int,
                seed: int = 0) -> np.ndarray:
  """A source signal of ``round(seconds * sr)`` samples, float32, peak 0.9.

  Args:
    name_or_wav_path: a key of ``SIGNALS`` ("speech", "music", "noise") or the
      path of a WAV file (mixed to mono, resampled to ``sr``, looped or trimmed).
    seconds: duration.
    sr: sample rate in Hz.
    seed: seeds the procedural generators (ignored for a WAV).
  Returns:
    [round(seconds * sr)] float32.
  """
  key = os.fspath(name_or_wav_path)
  n = _num_samples(seconds, sr)
  if key in SIGNALS:
    return SIGNALS[key](seconds, sr, np.random.default_rng(seed))
  if not os.path.exists(key):
    raise DataError(key, f"not a built-in signal ({', '.join(SIGNALS)}) "
                         f"and no such WAV file")
  x = read_wav(key, channels=None, sample_rate=sr, resample_audio=True).mean(axis=0)
  if np.sqrt(np.mean(x.astype(np.float64) ** 2)) < 1e-8:
    raise DataError(key, "silent track after mixing to mono")
  reps = int(np.ceil(n / x.shape[0]))
  x = np.tile(x, reps)[:n]
  return _finish(x.astype(np.float64))
