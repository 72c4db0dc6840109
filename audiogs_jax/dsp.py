"""Short-time Fourier transforms in jax.numpy, numerically matching librosa.

``stft`` and ``istft`` follow ``librosa.stft`` / ``librosa.istft`` argument for
argument (centred frames, periodic windows zero-padded to ``n_fft`` when
``win_length < n_fft``, window-sum-square normalised overlap-add), but are pure
JAX: differentiable, ``jit``- and ``vmap``-safe, and free of Python loops over
frames. Framing and overlap-add use reshapes and ``n_fft / hop`` shifted adds
(4 for the default 512/128), not gathers or scatters, so both are cheap on CPU,
GPU and TPU.

Shapes: a signal is ``[..., samples]``; a spectrogram is complex
``[..., n_fft // 2 + 1, frames]`` (frequency before time, as librosa).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np

__all__ = ["StftSettings", "get_window", "stft", "istft", "stft_frames", "istft_frames", "num_frames",
           "window_sumsquare", "frequencies"]

_WINDOWS = ("hann", "hamming")


@functools.lru_cache(maxsize=64)
def _window_np(window: str, win_length: int, n_fft: int) -> np.ndarray:
  if window not in _WINDOWS:
    raise ValueError(f"window must be one of {_WINDOWS}, got {window!r}")
  if not 0 < win_length <= n_fft:
    raise ValueError(f"win_length must be in (0, n_fft={n_fft}], got {win_length}")
  n = np.arange(win_length, dtype=np.float64)
  # Periodic ("fftbins=True") windows, as scipy.signal.get_window and librosa.
  a0 = 0.5 if window == "hann" else 0.54
  w = a0 - (1.0 - a0) * np.cos(2.0 * np.pi * n / win_length)
  # Centre-pad to n_fft (librosa.util.pad_center).
  lpad = (n_fft - win_length) // 2
  out = np.zeros(n_fft, dtype=np.float64)
  out[lpad:lpad + win_length] = w
  return out


def get_window(window: str = "hann", win_length: int | None = None,
               n_fft: int = 512) -> np.ndarray:
  """Periodic analysis window of ``win_length`` centre-padded to ``n_fft``.

  Returns:
    float64 numpy array ``[n_fft]``.
  """
  return _window_np(window, n_fft if win_length is None else int(win_length),
                    int(n_fft)).copy()


def num_frames(num_samples: int, n_fft: int = 512, hop_length: int = 128,
               center: bool = True) -> int:
  """Number of STFT frames librosa produces for a signal of this length."""
  if center:
    num_samples = num_samples + 2 * (n_fft // 2)
  if num_samples < n_fft:
    raise ValueError(f"signal of {num_samples} samples is shorter than n_fft={n_fft}")
  return 1 + (num_samples - n_fft) // hop_length


def _frame(x: jnp.ndarray, n_fft: int, hop: int, frames: int) -> jnp.ndarray:
  """[..., S] -> [..., frames, n_fft] using reshapes and shifted slices."""
  r = -(-n_fft // hop)  # chunks per frame, ceil
  need = (frames + r - 1) * hop
  pad = need - x.shape[-1]
  if pad > 0:
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
  chunks = x[..., :need].reshape(x.shape[:-1] + (frames + r - 1, hop))
  # Frame t = chunks t, t+1, ..., t+r-1 concatenated, cut to n_fft.
  parts = [chunks[..., m:m + frames, :] for m in range(r)]
  return jnp.concatenate(parts, axis=-1)[..., :n_fft]


def stft_frames(x, *, n_fft: int = 512, hop_length: int = 128,
                win_length: int | None = None, window: str = "hann",
                center: bool = True, pad_mode: str = "constant") -> jnp.ndarray:
  """``stft`` in frames-major layout: complex ``[..., frames, n_fft // 2 + 1]``."""
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.float32)
  win = jnp.asarray(get_window(window, win_length, n_fft), dtype=x.dtype)
  if center:
    p = n_fft // 2
    widths = [(0, 0)] * (x.ndim - 1) + [(p, p)]
    if pad_mode == "constant":
      x = jnp.pad(x, widths)
    elif pad_mode == "reflect":
      x = jnp.pad(x, widths, mode="reflect")
    else:
      raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
  frames = num_frames(x.shape[-1], n_fft, hop_length, center=False)
  fr = _frame(x, n_fft, hop_length, frames) * win           # [..., T, n_fft]
  return jnp.fft.rfft(fr, n=n_fft, axis=-1)                 # [..., T, F]


def stft(x, **kwargs) -> jnp.ndarray:
  """Complex STFT, as ``librosa.stft`` with the same arguments.

  Args:
    x: real signal ``[..., samples]``.
    n_fft: FFT size (512).
    hop_length: frame step in samples (128).
    win_length: window length (<= n_fft, default n_fft); the window is
      zero-padded to n_fft.
    window: ``"hann"`` or ``"hamming"`` (periodic).
    center: pad ``n_fft // 2`` on both sides so that frame t is centred on
      sample ``t * hop_length`` (True).
    pad_mode: ``"constant"`` (zeros, librosa >= 0.10's default) or
      ``"reflect"``.

  Returns:
    complex ``[..., n_fft // 2 + 1, frames]``.
  """
  return jnp.swapaxes(stft_frames(x, **kwargs), -1, -2)


@functools.lru_cache(maxsize=64)
def _wss_np(window: str, win_length: int, n_fft: int, hop: int,
            frames: int) -> np.ndarray:
  w2 = _window_np(window, win_length, n_fft) ** 2
  n = n_fft + hop * (frames - 1)
  out = np.zeros(n, dtype=np.float64)
  for t in range(frames):  # trace-time constant, computed once per shape
    out[t * hop:t * hop + n_fft] += w2
  return out


def window_sumsquare(window: str = "hann", n_frames: int = 1,
                     hop_length: int = 128, win_length: int | None = None,
                     n_fft: int = 512) -> np.ndarray:
  """Sum of squared shifted windows (librosa.filters.window_sumsquare)."""
  return _wss_np(window, n_fft if win_length is None else int(win_length),
                 n_fft, hop_length, n_frames).copy()


def _overlap_add(frames: jnp.ndarray, hop: int) -> jnp.ndarray:
  """[..., T, n_fft] -> [..., n_fft + hop * (T - 1)] by r shifted adds."""
  t, n_fft = frames.shape[-2:]
  r = -(-n_fft // hop)
  if r * hop != n_fft:
    frames = jnp.pad(frames, [(0, 0)] * (frames.ndim - 1) + [(0, r * hop - n_fft)])
  chunks = frames.reshape(frames.shape[:-1] + (r, hop))     # [..., T, r, hop]
  lead = [(0, 0)] * (frames.ndim - 2)
  out = None
  for m in range(r):  # r = n_fft / hop shifted adds (4 by default), not frames
    part = jnp.pad(chunks[..., m, :], lead + [(m, r - 1 - m), (0, 0)])
    out = part if out is None else out + part
  out = out.reshape(out.shape[:-2] + ((t + r - 1) * hop,))
  return out[..., :n_fft + hop * (t - 1)]


def istft(X, **kwargs) -> jnp.ndarray:
  """Inverse STFT, as ``librosa.istft`` with the same arguments.

  Args:
    X: complex ``[..., n_fft // 2 + 1, frames]``.
    n_fft, hop_length, win_length, window, center: as ``stft``.
    length: if given, the output is trimmed or zero-padded to exactly this
      many samples (as librosa does).

  Returns:
    real ``[..., samples]``; ``hop_length * (frames - 1)`` samples when
    ``center`` and no ``length`` is given.
  """
  return istft_frames(jnp.swapaxes(jnp.asarray(X), -1, -2), **kwargs)


def istft_frames(X, *, n_fft: int = 512, hop_length: int = 128,
                 win_length: int | None = None, window: str = "hann",
                 center: bool = True, length: int | None = None) -> jnp.ndarray:
  """``istft`` of a frames-major spectrogram ``[..., frames, n_fft // 2 + 1]``."""
  X = jnp.asarray(X)
  t, f = X.shape[-2:]
  if f != n_fft // 2 + 1:
    raise ValueError(f"expected {n_fft // 2 + 1} frequency bins for n_fft={n_fft}, got {f}")
  wl = n_fft if win_length is None else int(win_length)
  real_dtype = jnp.finfo(X.dtype).dtype if jnp.iscomplexobj(X) else X.dtype
  win = jnp.asarray(get_window(window, wl, n_fft), dtype=real_dtype)
  fr = jnp.fft.irfft(X, n=n_fft, axis=-1) * win            # [..., T, n_fft]
  y = _overlap_add(fr, hop_length)
  wss = _wss_np(window, wl, n_fft, hop_length, t)
  tiny = np.finfo(np.float32).tiny
  inv = np.where(wss > tiny, 1.0 / np.maximum(wss, tiny), 1.0)
  y = y * jnp.asarray(inv, dtype=y.dtype)
  start = n_fft // 2 if center else 0
  if length is None:
    end = y.shape[-1] - (n_fft // 2 if center else 0)
    return y[..., start:end]
  y = y[..., start:start + length]
  short = length - y.shape[-1]
  if short > 0:
    y = jnp.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, short)])
  return y


def frequencies(n_fft: int, sample_rate: float) -> np.ndarray:
  """Centre frequency in Hz of each rfft bin, ``[n_fft // 2 + 1]``."""
  return np.arange(n_fft // 2 + 1) * (float(sample_rate) / n_fft)


def db(x, eps: float = 1e-10):
  """10 log10 of a power-like quantity."""
  return 10.0 * jnp.log10(jnp.maximum(x, eps))


class StftSettings:
  """Mixin of the models' frozen config dataclasses: the STFT they render in, from
  their ``n_fft``, ``hop_length``, ``win_length`` and ``window`` fields."""

  @property
  def num_freqs(self) -> int:
    return self.n_fft // 2 + 1

  def stft_kwargs(self) -> dict:
    return dict(n_fft=self.n_fft, hop_length=self.hop_length,
                win_length=self.win_length, window=self.window)
