"""Evaluation metrics for binaural synthesis: MAG (two protocols), ENV, LRE, RTE, DPAM.

Definitions follow ``docs/metrics.md``. Every metric is computed per clip on
waveforms: ``pred`` and ``target`` are ``[B, 2, L]`` numpy arrays (ear 0 =
left, ear 1 = right); ``pred`` is first trimmed or zero-padded to the target's
length; each function returns a float64 ``[B]`` array (one value per clip).
Inputs ``[2, L]`` are treated as a batch of one.

- ``mag_avnerf``  RWAVS / AV-NeRF protocol: STFT n_fft 512, hop 128, window
  512 Hann (periodic), centred with zero padding;
  ``2 * mean_{ear, frame, bin} (|P| - |G|)^2``.
- ``mag_avcloud`` Replay-NVAS / AV-Cloud / Audio 3DGS / AudioGS protocol: STFT
  n_fft 512, hop 160, window 400 Hamming (periodic, centre-padded to 512),
  centred with zero padding; per ear ``mean_{bin, frame} ||P| - |G||``, summed
  over the two ears.
- ``env``  per ear ``sqrt(mean_t (|hilbert(p)| - |hilbert(g)|)^2)``, summed
  over ears (``scipy.signal.hilbert`` on the full clip).
- ``lre``  ``|ratio(p) - ratio(g)|`` with
  ``ratio(x) = 10 log10((sum x_L^2 + 1e-5) / (sum x_R^2 + 1e-5))`` (dB).
- ``rte``  ``|RT60(p) - RT60(g)|`` with the blind estimator
  :func:`rt60_blind` (named by :data:`ESTIMATOR_NAME`; always report it), on the
  mono mix of the two ears. ``rt60_true_error`` compares to a simulator's RT60.
- ``itd`` / ``ipd`` / ``ild`` (and ``ild_<Hz>`` per octave band): interaural time,
  phase and level errors, :mod:`audiogs_jax.interaural`.
- ``dpam`` CDPAM (optional ``cdpam`` + ``torch``); ``None`` when not installed,
  never a made-up number.

The STFT metrics run as one jit-compiled JAX computation over fixed-size
chunks of clips (:func:`audiogs_jax.dsp.stft`, float32); ENV and LRE are
vectorised numpy/scipy in float64; the RT60 estimator loops over clips only.
"""

from __future__ import annotations

import functools
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from audiogs_jax import dsp
from audiogs_jax import interaural

__all__ = [
    "ESTIMATOR_NAME", "ESTIMATOR_DESCRIPTION", "RT60_MIN", "RT60_MAX",
    "RWAVS_ENVIRONMENTS", "METRIC_KEYS",
    "match_length", "mag_avnerf", "mag_avcloud", "env", "lre",
    "rt60_blind", "rt60_blind_batch", "rt60_schroeder", "rte", "rt60_true_error",
    "dpam_available", "dpam", "compute_metrics", "summarize", "aggregate_rwavs",
]

# Protocol constants (docs/metrics.md).
AVNERF_STFT = dict(n_fft=512, hop_length=128, win_length=512, window="hann",
                   center=True, pad_mode="constant")
AVCLOUD_STFT = dict(n_fft=512, hop_length=160, win_length=400, window="hamming",
                    center=True, pad_mode="constant")
LRE_EPS = 1e-5
DPAM_SAMPLE_RATE = 22050

METRIC_KEYS = ("mag_avnerf", "mag_avcloud", "env", "lre", "rte", "itd", "ipd", "ild")

# Clips per jit call of the STFT metrics; the last chunk is zero-padded to this
# size so that one compiled program serves a whole evaluation.
_CHUNK = 32


# --------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------

def _as_batch(x, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim == 2:
    x = x[None]
  if x.ndim != 3 or x.shape[1] != 2:
    raise ValueError(f"{name} must be [B, 2, L] (or [2, L]), got shape {x.shape}")
  if not np.issubdtype(x.dtype, np.floating):
    x = x.astype(np.float64)
  return x


def match_length(pred, length: int) -> np.ndarray:
  """Trims or zero-pads the last axis of ``pred`` to ``length`` samples."""
  pred = np.asarray(pred)
  n = pred.shape[-1]
  if n >= length:
    return pred[..., :length]
  pad = [(0, 0)] * (pred.ndim - 1) + [(0, length - n)]
  return np.pad(pred, pad)


def _pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
  target = _as_batch(target, "target")
  pred = _as_batch(pred, "pred")
  if pred.shape[0] != target.shape[0]:
    raise ValueError(f"batch sizes differ: pred {pred.shape}, target {target.shape}")
  return match_length(pred, target.shape[-1]), target


# --------------------------------------------------------------------------
# MAG (JAX, chunked)
# --------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("protocol",))
def _mag_chunk(pred, target, protocol: str):
  if protocol == "avnerf":
    p = jnp.abs(dsp.stft(pred, **AVNERF_STFT))
    g = jnp.abs(dsp.stft(target, **AVNERF_STFT))
    return 2.0 * jnp.mean((p - g) ** 2, axis=(1, 2, 3))
  p = jnp.abs(dsp.stft(pred, **AVCLOUD_STFT))
  g = jnp.abs(dsp.stft(target, **AVCLOUD_STFT))
  return jnp.sum(jnp.mean(jnp.abs(p - g), axis=(2, 3)), axis=1)


def _mag(pred, target, protocol: str) -> np.ndarray:
  pred, target = _pair(pred, target)
  b = pred.shape[0]
  out = np.empty(b, dtype=np.float64)
  chunk = min(_CHUNK, b)
  for s in range(0, b, chunk):
    p = pred[s:s + chunk].astype(np.float32)
    g = target[s:s + chunk].astype(np.float32)
    n = p.shape[0]
    if n < chunk:  # keep one compiled shape
      z = np.zeros((chunk - n,) + p.shape[1:], np.float32)
      p, g = np.concatenate([p, z]), np.concatenate([g, z])
    out[s:s + n] = np.asarray(_mag_chunk(p, g, protocol), np.float64)[:n]
  return out


def mag_avnerf(pred, target) -> np.ndarray:
  """MAG, RWAVS / AV-NeRF protocol, per clip ``[B]``.

  STFT n_fft 512, hop 128, 512-sample periodic Hann window, centred frames
  (zero padding); ``2 * mean over [ear, frame, bin] of (|P| - |G|)^2``.
  """
  return _mag(pred, target, "avnerf")


def mag_avcloud(pred, target) -> np.ndarray:
  """MAG, Replay-NVAS / AV-Cloud protocol, per clip ``[B]``.

  STFT n_fft 512, hop 160, 400-sample periodic Hamming window centre-padded to
  512, centred frames with zero padding; for each ear the mean over
  (bin, frame) of ``||P| - |G||``, summed over the two ears.
  """
  return _mag(pred, target, "avcloud")


# --------------------------------------------------------------------------
# ENV, LRE
# --------------------------------------------------------------------------

def env(pred, target) -> np.ndarray:
  """Envelope distance per clip ``[B]``: per ear RMS difference of the Hilbert
  envelopes ``|hilbert(x)|`` (full-clip analytic signal), summed over ears."""
  pred, target = _pair(pred, target)
  ep = np.abs(scipy.signal.hilbert(pred.astype(np.float64), axis=-1))
  eg = np.abs(scipy.signal.hilbert(target.astype(np.float64), axis=-1))
  return np.sum(np.sqrt(np.mean((ep - eg) ** 2, axis=-1)), axis=-1)


def _lr_ratio_db(x: np.ndarray) -> np.ndarray:
  e = np.sum(x.astype(np.float64) ** 2, axis=-1)  # [B, 2]
  return 10.0 * np.log10((e[:, 0] + LRE_EPS) / (e[:, 1] + LRE_EPS))


def lre(pred, target) -> np.ndarray:
  """Left-right energy ratio error in dB per clip ``[B]``."""
  pred, target = _pair(pred, target)
  return np.abs(_lr_ratio_db(pred) - _lr_ratio_db(target))


# --------------------------------------------------------------------------
# RT60
# --------------------------------------------------------------------------

ESTIMATOR_NAME = "free-decay-schroeder-v1"
ESTIMATOR_DESCRIPTION = (
    "free-decay-schroeder-v1: blind broadband RT60 of the mono mix (mean of "
    "the ears). Energy envelope in 10 ms frames at a 5 ms hop, in dB, "
    "smoothed over 5 frames. Free decays start at envelope peaks of >= 10 dB "
    "prominence (from the last frame within 3 dB of the peak, so plateaus are "
    "skipped) and run until the envelope rises 3 dB above its running minimum "
    "(the next onset); a decay ends at its first frame within 3 dB of its "
    "lowest level, and when the envelope then stays there >= 100 ms that "
    "level is a noise floor whose mean energy is subtracted. Decays must last "
    ">= 100 ms. Each is Schroeder-integrated (backward cumulative frame "
    "energy) and a least-squares line is fitted to the EDC between -5 and "
    "-25 dB over frames >= 10 dB above the decay's end (limits truncation "
    "bias; >= 10 dB of EDC span required); RT60 = -60 dB / slope. Result: the "
    "median of the sharpest half of the per-decay estimates (slower decays "
    "are usually the source still playing). Fallback when no decay "
    "qualifies: peaks of >= 6 dB prominence, decays >= 50 ms with >= 5 dB "
    "drop, slope of a least-squares line through the smoothed dB envelope "
    "itself, same median; no decay at all (silence, stationary or dry "
    "signals) gives RT60_MIN. Always finite, clipped to [RT60_MIN, RT60_MAX] "
    "= [0.05, 5] s.")

RT60_MIN = 0.05
RT60_MAX = 5.0

_FRAME_S = 0.010
_HOP_S = 0.005
_SMOOTH_FRAMES = 5
_PROMINENCE_DB = 10.0
_ONSET_DB = 3.0
_MIN_DECAY_S = 0.100
_FIT_DB = (-5.0, -25.0)
_END_MARGIN_DB = 10.0
_MIN_SPAN_DB = 10.0
_MIN_FIT_FRAMES = 4
_FLOOR_DB = 3.0
_FLOOR_S = 0.100
_RELAXED = (6.0, 0.050, 5.0)  # prominence dB, min decay s, min EDC span dB


def _frame_energy(x: np.ndarray, sample_rate: float) -> tuple[np.ndarray, float]:
  """Mean-square energy of 10 ms frames at a 5 ms hop (cumsum, no loop)."""
  n = max(1, int(round(_FRAME_S * sample_rate)))
  h = max(1, int(round(_HOP_S * sample_rate)))
  if x.shape[-1] < n:
    return np.zeros(0), h / sample_rate
  c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
  starts = np.arange(0, x.shape[-1] - n + 1, h)
  return (c[starts + n] - c[starts]) / n, h / sample_rate


def _fit_decay(e: np.ndarray, s_db: np.ndarray, p: int, q: int, noise: float,
               dt: float, min_span_db: float) -> float | None:
  """RT60 of the decay e[p..q] (inclusive) from its Schroeder curve, or None."""
  seg = np.maximum(e[p:q + 1] - noise, 0.0)
  if seg.size < 2 or seg[0] <= 0:
    return None
  edc = np.cumsum(seg[::-1])[::-1]
  with np.errstate(divide="ignore"):
    edc_db = 10.0 * np.log10(edc / edc[0])
  keep = (edc_db <= _FIT_DB[0]) & (edc_db >= _FIT_DB[1])
  keep &= s_db[p:q + 1] >= s_db[q] + _END_MARGIN_DB
  idx = np.nonzero(keep)[0]
  if idx.size < _MIN_FIT_FRAMES:
    return None
  span = edc_db[idx].max() - edc_db[idx].min()
  if span < min_span_db:
    return None
  slope = np.polyfit(idx * dt, edc_db[idx], 1)[0]  # dB per second
  if not np.isfinite(slope) or slope >= 0:
    return None
  return -60.0 / slope


def _fit_envelope(s_db: np.ndarray, p: int, q: int, dt: float,
                  min_span_db: float) -> float | None:
  """RT60 from a least-squares line through the smoothed dB envelope s[p..q]."""
  y = s_db[p:q + 1]
  if y.size < _MIN_FIT_FRAMES or y.max() - y.min() < min_span_db:
    return None
  slope = np.polyfit(np.arange(y.size) * dt, y, 1)[0]
  if not np.isfinite(slope) or slope >= 0:
    return None
  return -60.0 / slope


def _decay_estimates(e: np.ndarray, s_db: np.ndarray, dt: float, *,
                     prominence_db: float, min_decay_s: float,
                     min_span_db: float, schroeder: bool = True) -> list[float]:
  """Per-free-decay RT60 estimates of one clip (see ESTIMATOR_DESCRIPTION)."""
  low = s_db.min() - 2.0 * prominence_db  # lets a decay start at frame 0
  peaks, _ = scipy.signal.find_peaks(np.r_[low, s_db, low], prominence=prominence_db)
  peaks = peaks - 1
  min_len = int(np.ceil(min_decay_s / dt))
  plateau_len = int(np.ceil(_FLOOR_S / dt))
  out = []
  for p in peaks:
    tail = s_db[p:]
    runmin = np.minimum.accumulate(tail)
    rise = np.nonzero(tail > runmin + _ONSET_DB)[0]
    stop = int(rise[0]) if rise.size else tail.size  # next onset (exclusive)
    low_db = tail[:stop].min()
    # End of the decay: first frame within 3 dB of the lowest level before the
    # next onset. A long stretch after it at that level is a noise floor.
    q = int(np.nonzero(tail[:stop] <= low_db + _FLOOR_DB)[0][0])
    noise = float(np.mean(e[p + q:p + stop])) if stop - q >= plateau_len else 0.0
    # Start of the decay: last frame within 3 dB of the peak (skips plateaus).
    p0 = int(np.nonzero(tail[:q + 1] >= tail[0] - _FLOOR_DB)[0][-1])
    if q - p0 < min_len:
      continue
    if schroeder:
      rt = _fit_decay(e, s_db, p + p0, p + q, noise, dt, min_span_db)
    else:
      rt = _fit_envelope(s_db, p + p0, p + q, dt, min_span_db)
    if rt is not None:
      out.append(rt)
  return out


def rt60_blind(x, sample_rate: float) -> float:
  """Blind RT60 (seconds) of a signal, ``free-decay-schroeder-v1``.

  Args:
    x: ``[L]`` mono or ``[C, L]`` (e.g. the two ears; averaged to mono).
    sample_rate: Hz.

  Returns:
    RT60 in seconds, finite, clipped to ``[RT60_MIN, RT60_MAX]``. See
    :data:`ESTIMATOR_DESCRIPTION` for the algorithm.
  """
  x = np.asarray(x, dtype=np.float64)
  if x.ndim == 2:
    x = x.mean(axis=0)
  if x.ndim != 1:
    raise ValueError(f"x must be [L] or [C, L], got {x.shape}")
  e, dt = _frame_energy(x, sample_rate)
  if e.size < 3 or not np.any(e > 0):
    return RT60_MIN
  floor = e.max() * 1e-12  # -120 dB: keeps log finite in digital silence
  l_db = 10.0 * np.log10(e + floor)
  k = min(_SMOOTH_FRAMES, e.size)
  padded = np.pad(l_db, (k // 2, k - 1 - k // 2), mode="edge")
  s_db = np.convolve(padded, np.ones(k) / k, mode="valid")
  est = _decay_estimates(e, s_db, dt, prominence_db=_PROMINENCE_DB,
                         min_decay_s=_MIN_DECAY_S, min_span_db=_MIN_SPAN_DB)
  if not est:  # fallback: relaxed thresholds
    est = _decay_estimates(e, s_db, dt, prominence_db=_RELAXED[0],
                           min_decay_s=_RELAXED[1], min_span_db=_RELAXED[2],
                           schroeder=False)
  if not est:
    return RT60_MIN
  est = np.sort(np.asarray(est))
  rt = float(np.median(est[:max(1, (est.size + 1) // 2)]))
  return float(np.clip(rt, RT60_MIN, RT60_MAX))


def rt60_blind_batch(x, sample_rate: float) -> np.ndarray:
  """:func:`rt60_blind` of each clip of ``[B, C, L]`` (or ``[B, L]``) -> ``[B]``."""
  x = np.asarray(x)
  return np.array([rt60_blind(xi, sample_rate) for xi in x], dtype=np.float64)


def rt60_schroeder(ir, sample_rate: float, *, fit_db: tuple[float, float] | None = None):
  """RT60 (seconds) of an impulse response by Schroeder backward integration.

  The energy decay curve ``EDC(t) = sum_{tau >= t} h(tau)^2`` (in dB re its
  start) is fitted by least squares between -5 and -35 dB (T30) when the EDC
  reaches -45 dB (10 dB of margin before the end of the response, where the
  backward integral is truncated), else between -5 and -25 dB (T20) if it
  reaches -35 dB, else between -5 dB and 10 dB above its lowest level; the
  slope is extrapolated to -60 dB. Assumes a noise-free response (simulated);
  no noise-floor compensation. ``fit_db=(hi, lo)`` forces the fit range.

  Args:
    ir: ``[..., L]``; leading axes are separate responses.
    sample_rate: Hz.

  Returns:
    float for a 1-D ``ir``, else an array of the leading shape. NaN when the
    response has no usable decay (e.g. all zeros).
  """
  ir = np.asarray(ir, dtype=np.float64)
  if ir.ndim > 1:
    flat = ir.reshape(-1, ir.shape[-1])
    out = np.array([rt60_schroeder(h, sample_rate, fit_db=fit_db) for h in flat])
    return out.reshape(ir.shape[:-1])
  energy = ir ** 2
  edc = np.cumsum(energy[::-1])[::-1]
  if edc[0] <= 0:
    return float("nan")
  with np.errstate(divide="ignore"):
    edc_db = 10.0 * np.log10(edc / edc[0])
  finite_min = edc_db[np.isfinite(edc_db)].min()
  if fit_db is None:
    if finite_min <= -45.0:
      fit_db = (-5.0, -35.0)
    elif finite_min <= -35.0:
      fit_db = (-5.0, -25.0)
    else:
      fit_db = (-5.0, finite_min + 10.0)
  hi, lo = fit_db
  idx = np.nonzero((edc_db <= hi) & (edc_db >= lo))[0]
  if idx.size < 2:
    return float("nan")
  slope = np.polyfit(idx / float(sample_rate), edc_db[idx], 1)[0]
  if not np.isfinite(slope) or slope >= 0:
    return float("nan")
  return float(-60.0 / slope)


def rte(pred, target, sample_rate: float) -> np.ndarray:
  """``|rt60_blind(p) - rt60_blind(g)|`` per clip ``[B]`` (mono mixes), seconds."""
  pred, target = _pair(pred, target)
  return np.abs(rt60_blind_batch(pred, sample_rate)
                - rt60_blind_batch(target, sample_rate))


def rt60_true_error(pred, rt60_true, sample_rate: float) -> np.ndarray:
  """``|rt60_blind(p) - rt60_true|`` per clip ``[B]``; ``rt60_true`` scalar or ``[B]``."""
  pred = _as_batch(pred, "pred")
  true = np.broadcast_to(np.asarray(rt60_true, dtype=np.float64), (pred.shape[0],))
  return np.abs(rt60_blind_batch(pred, sample_rate) - true)


# --------------------------------------------------------------------------
# DPAM (optional)
# --------------------------------------------------------------------------

_DPAM_MODEL = None


def dpam_available() -> bool:
  """True when ``cdpam`` (and its ``torch``) can be imported."""
  try:
    import cdpam  # noqa: F401
    import torch  # noqa: F401
  except ImportError:
    return False
  return True


def _dpam_model():
  global _DPAM_MODEL
  if _DPAM_MODEL is None:
    import cdpam
    import torch
    # cdpam loads the pickled checkpoint that ships inside its own wheel with a
    # plain torch.load; torch >= 2.6 defaults to weights_only=True, which refuses
    # it. Allow the full load for this trusted, packaged file only.
    orig = getattr(torch, "load", None)
    if orig is None:
      _DPAM_MODEL = cdpam.CDPAM(dev="cpu")
      return _DPAM_MODEL

    def _load(*args, **kwargs):
      kwargs.setdefault("weights_only", False)
      return orig(*args, **kwargs)

    torch.load = _load
    try:
      _DPAM_MODEL = cdpam.CDPAM(dev="cpu")
    finally:
      torch.load = orig
  return _DPAM_MODEL


def _to_dpam_input(x: np.ndarray, sample_rate: float) -> np.ndarray:
  """Mono mixdown -> 22050 Hz (resample_poly) -> int16 range, float32 ``[L']``."""
  mono = np.asarray(x, dtype=np.float64).mean(axis=0)
  sr = int(round(sample_rate))
  if sr != DPAM_SAMPLE_RATE:
    g = np.gcd(sr, DPAM_SAMPLE_RATE)
    mono = scipy.signal.resample_poly(mono, DPAM_SAMPLE_RATE // g, sr // g)
  return (mono * 32768.0).astype(np.float32)


def dpam(pred, target, sample_rate: float) -> np.ndarray | None:
  """CDPAM distance per clip ``[B]``, or ``None`` when ``cdpam`` is not installed.

  As the published evaluation: mono mixdown of each signal, resampled to
  22050 Hz, scaled to the 16-bit integer range (``x * 32768``, kept float),
  then ``cdpam.CDPAM().forward(ref, out)`` on ``[1, L]`` float tensors
  (``cdpam.load_audio`` is avoided: it uses the removed ``np.float``).
  """
  if not dpam_available():
    return None
  import torch
  pred, target = _pair(pred, target)
  model = _dpam_model()
  out = np.empty(pred.shape[0], dtype=np.float64)
  with torch.no_grad():
    for i in range(pred.shape[0]):
      g = torch.from_numpy(_to_dpam_input(target[i], sample_rate)[None])
      p = torch.from_numpy(_to_dpam_input(pred[i], sample_rate)[None])
      d = model.forward(g, p)
      out[i] = float(np.asarray(d.detach().cpu().numpy()).reshape(-1)[0])
  return out


# --------------------------------------------------------------------------
# All metrics, summaries, RWAVS aggregation
# --------------------------------------------------------------------------

def compute_metrics(pred, target, sample_rate: float, *, rt60_true=None,
                    with_dpam: bool = False) -> dict[str, np.ndarray]:
  """All metrics per clip.

  Returns:
    ``{"mag_avnerf", "mag_avcloud", "env", "lre", "rte"}`` and the interaural
    errors of :mod:`audiogs_jax.interaural` (``"itd"`` in microseconds, ``"ipd"``,
    ``"ild"`` and the per-band ``"ild_<Hz>"`` in dB), each ``[B]``, plus
    ``"rte_true"`` (``|RT60(p) - rt60_true|``) when ``rt60_true`` is given and
    ``"dpam"`` when ``with_dpam`` and cdpam is installed (absent otherwise).
    RTE uses :data:`ESTIMATOR_NAME`.
  """
  pred, target = _pair(pred, target)
  rt_p = rt60_blind_batch(pred, sample_rate)
  rt_g = rt60_blind_batch(target, sample_rate)
  out = {
      "mag_avnerf": mag_avnerf(pred, target),
      "mag_avcloud": mag_avcloud(pred, target),
      "env": env(pred, target),
      "lre": lre(pred, target),
      "rte": np.abs(rt_p - rt_g),
  }
  out.update(interaural.interaural_metrics(pred, target, sample_rate))
  if rt60_true is not None:
    true = np.broadcast_to(np.asarray(rt60_true, dtype=np.float64), rt_p.shape)
    out["rte_true"] = np.abs(rt_p - true)
  if with_dpam:
    d = dpam(pred, target, sample_rate)
    if d is not None:
      out["dpam"] = d
  return out


def summarize(per_clip: Mapping[str, np.ndarray]) -> dict[str, float | None]:
  """Mean over clips of each metric; ``"dpam": None`` when it was not computed."""
  out: dict[str, float | None] = {}
  for k, v in per_clip.items():
    out[k] = None if v is None else float(np.mean(np.asarray(v, dtype=np.float64)))
  out.setdefault("dpam", None)
  return out


RWAVS_ENVIRONMENTS = {
    "office": (1, 2, 3, 4, 5),
    "house": (6, 7, 8),
    "apartment": (9, 10, 11),
    "outdoor": (12, 13),
}


def _mean_or_none(values):
  vals = list(values)
  if not vals or any(v is None for v in vals):
    return None
  return float(np.mean(np.asarray(vals, dtype=np.float64)))


def aggregate_rwavs(per_scene: Mapping) -> dict:
  """RWAVS aggregation: mean per scene, per environment, overall.

  Args:
    per_scene: ``{scene_id: {metric: value}}``, scene ids 1..13 (int or str);
      a value may be a float or an array of per-clip values (averaged first);
      ``None`` (e.g. DPAM not installed) propagates as ``None``.

  Returns:
    ``{"per_scene": {"1": {m: float}}, "per_environment": {"office": {m:
    float}, ...}, "overall": {m: float}}``: environment = mean of its scene
    means (office 1-5, house 6-8, apartment 9-11, outdoor 12-13); overall =
    mean of the environment means of the environments present.
  """
  scenes: dict[int, dict[str, float | None]] = {}
  for sid, metrics in per_scene.items():
    i = int(sid)
    if not any(i in ids for ids in RWAVS_ENVIRONMENTS.values()):
      raise ValueError(f"RWAVS scene id must be in 1..13, got {sid!r}")
    scenes[i] = {m: (None if v is None else _mean_or_none([np.mean(v)]))
                 for m, v in metrics.items()}
  keys: list[str] = []
  for m in scenes.values():
    keys += [k for k in m if k not in keys]
  per_env: dict[str, dict[str, float | None]] = {}
  for name, ids in RWAVS_ENVIRONMENTS.items():
    present = [scenes[i] for i in ids if i in scenes]
    if present:
      per_env[name] = {k: _mean_or_none(s.get(k) for s in present) for k in keys}
  overall = {k: _mean_or_none(e[k] for e in per_env.values()) for k in keys}
  return {"per_scene": {str(i): scenes[i] for i in sorted(scenes)},
          "per_environment": per_env, "overall": overall}
