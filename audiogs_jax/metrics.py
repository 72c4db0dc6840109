"""Evaluation metrics for binaural synthesis: MAG (two protocols), ENV, LRE, RTE, DPAM.

Definitions follow ``docs/metrics.md``. Every metric is computed per clip on
waveforms: ``pred`` and ``target`` are ``[B, 2, L]`` numpy arrays (ear 0 =
left), ``pred`` first trimmed or zero-padded to the target's length
(:mod:`audiogs_jax.waveforms`); each function returns a float64 ``[B]``
array (one value per clip). Inputs ``[2, L]`` are treated as a batch of one.

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
- ``rte``  ``|RT60(p) - RT60(g)|`` with the blind estimator of
  :mod:`audiogs_jax.reverb` (named by :data:`ESTIMATOR_NAME`; always report
  it), on the mono mix of the two ears; ``rte_true`` compares to a
  simulator's RT60.
- ``itd`` / ``ipd`` / ``ild`` (and ``ild_<Hz>`` per octave band): interaural time,
  phase and level errors, :mod:`audiogs_jax.interaural`.
- ``dpam`` CDPAM (:mod:`audiogs_jax.dpam`, optional ``cdpam`` + ``torch``);
  absent when not installed, never a made-up number.

:func:`compute_metrics` computes them all, :func:`summarize` averages over
clips and :func:`aggregate_rwavs` over RWAVS's scenes and environments. The
STFT metrics run as one jit-compiled JAX computation over fixed-size chunks
of clips (:func:`audiogs_jax.dsp.stft`, float32); ENV and LRE are vectorised
numpy/scipy in float64.
"""

from __future__ import annotations

import functools
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from audiogs_jax import dpam as dpam_lib
from audiogs_jax import dsp
from audiogs_jax import interaural
from audiogs_jax import reverb
from audiogs_jax import waveforms

__all__ = [
    "RWAVS_ENVIRONMENTS", "METRIC_KEYS", "ESTIMATOR_NAME", "dpam_available",
    "mag_avnerf", "mag_avcloud", "env", "lre",
    "compute_metrics", "summarize", "aggregate_rwavs",
]

# Also metrics.<name>: an evaluation report names the RTE estimator and says
# whether DPAM could run, beside the metrics.
ESTIMATOR_NAME = reverb.ESTIMATOR_NAME
dpam_available = dpam_lib.dpam_available

# Protocol constants (docs/metrics.md).
AVNERF_STFT = dict(n_fft=512, hop_length=128, win_length=512, window="hann",
                   center=True, pad_mode="constant")
AVCLOUD_STFT = dict(n_fft=512, hop_length=160, win_length=400, window="hamming",
                    center=True, pad_mode="constant")
LRE_EPS = 1e-5

#: The keys of ``compute_metrics`` always present (besides the per-band ``ild_<Hz>``).
METRIC_KEYS = ("mag_avnerf", "mag_avcloud", "env", "lre", "rte", "itd", "ipd", "ild")

# Clips per jit call of the STFT metrics; the last chunk is zero-padded to this
# size so that one compiled program serves a whole evaluation.
_CHUNK = 32


# --------------------------------------------------------------------------
# MAG (JAX, chunked)
# --------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnames=("protocol",))
def _mag_chunk(pred, target, protocol: str):
  """MAG of each clip of one float32 chunk ``[chunk, 2, L]`` -> ``[chunk]``."""
  if protocol == "avnerf":
    p = jnp.abs(dsp.stft(pred, **AVNERF_STFT))
    g = jnp.abs(dsp.stft(target, **AVNERF_STFT))
    return 2.0 * jnp.mean((p - g) ** 2, axis=(1, 2, 3))
  p = jnp.abs(dsp.stft(pred, **AVCLOUD_STFT))
  g = jnp.abs(dsp.stft(target, **AVCLOUD_STFT))
  return jnp.sum(jnp.mean(jnp.abs(p - g), axis=(2, 3)), axis=1)


def _mag(pred, target, protocol: str) -> np.ndarray:
  """MAG per clip ``[B]`` of ``protocol`` ("avnerf" | "avcloud"), chunk by chunk."""
  pred, target = waveforms.pair(pred, target)
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
  pred, target = waveforms.pair(pred, target)
  ep = np.abs(scipy.signal.hilbert(pred.astype(np.float64), axis=-1))
  eg = np.abs(scipy.signal.hilbert(target.astype(np.float64), axis=-1))
  return np.sum(np.sqrt(np.mean((ep - eg) ** 2, axis=-1)), axis=-1)


def _lr_ratio_db(x: np.ndarray) -> np.ndarray:
  """Left-to-right energy ratio in dB per clip, ``[B, 2, L] -> [B]``."""
  e = np.sum(x.astype(np.float64) ** 2, axis=-1)  # [B, 2]
  return 10.0 * np.log10((e[:, 0] + LRE_EPS) / (e[:, 1] + LRE_EPS))


def lre(pred, target) -> np.ndarray:
  """Left-right energy ratio error in dB per clip ``[B]``."""
  pred, target = waveforms.pair(pred, target)
  return np.abs(_lr_ratio_db(pred) - _lr_ratio_db(target))


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
  pred, target = waveforms.pair(pred, target)
  rt_p = reverb.rt60_blind_batch(pred, sample_rate)
  rt_g = reverb.rt60_blind_batch(target, sample_rate)
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
    d = dpam_lib.dpam(pred, target, sample_rate)
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
  """Mean of ``values`` as a float; ``None`` when there are none or one is ``None``."""
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
