"""DPAM: the CDPAM perceptual distance, when the optional ``cdpam`` package is installed.

CDPAM (Manocha et al., 2021) is a learned, PyTorch-based audio similarity; it
is reported beside the signal metrics when the ``dpam`` extra is installed
(``pip install -e ".[dpam]"``) and is ``None`` otherwise, never a made-up
number. ``torch`` and ``cdpam`` are imported only when DPAM is asked for, so
the rest of the package never loads them.
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from audiogs_jax import waveforms

__all__ = ["DPAM_SAMPLE_RATE", "dpam_available", "dpam"]

DPAM_SAMPLE_RATE = 22050

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
  """The CDPAM model on the CPU, loaded once per process."""
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
  pred, target = waveforms.pair(pred, target)
  model = _dpam_model()
  out = np.empty(pred.shape[0], dtype=np.float64)
  with torch.no_grad():
    for i in range(pred.shape[0]):
      g = torch.from_numpy(_to_dpam_input(target[i], sample_rate)[None])
      p = torch.from_numpy(_to_dpam_input(pred[i], sample_rate)[None])
      d = model.forward(g, p)
      out[i] = float(np.asarray(d.detach().cpu().numpy()).reshape(-1)[0])
  return out
