"""The reverberant tail: a transfer across frames (method.md; README, "Reverberation").

A frame-by-frame gain ``G(t, f) S(t, f)`` cannot carry more reverberation than the
source frame it multiplies (a 512-sample frame is 23 ms; rooms ring for 0.3-1.5 s).
The convolutive transfer function (Talmon, Cohen & Gannot 2009) adds a filter across
frames in every frequency bin; here its taps are those of a diffuse tail::

    H_e(k, f) = exp(level_e(f) - k rate(f)) exp(j (phase_e(f) + k omega_e(f))),  k >= 1
    rate = softplus(decay)

The late tail of a room is diffuse: its level is about the same everywhere in the
room (Sabine; the direct and early sound, which depend on the pose, stay in ``G``),
it decays exponentially at a rate per frequency band (RT60(f) = 3 ln(10) hop /
(sample_rate rate(f)) seconds), and its phase is unrelated to the direct sound's: a
phase per ear and bin, and a phase that advances from tap to tap as a steady
sinusoid's at the bin's frequency does from frame to frame (``natural_advance``: so
the tail's frames add up in the inverse STFT's overlap-add instead of cancelling).
``H`` does not depend on the pose. The ears' taps are made as coherent as a diffuse field's (``coherence``,
``diffuse_coherence``): the right ear's phasor is ``gamma u_L + sqrt(1 - gamma^2) u_R``.

Because ``|H(k)|`` decays geometrically and the phase advances linearly, every sum
over taps is a first-order recursion along frames, ``z(t) = beta z(t - 1) + x(t)``
with ``beta = exp(-rate + j omega)``, computed by ``lax.scan``: ``O(N)`` work over
``N`` frames, the same result on every run (an FFT convolution along frames was not:
XLA's multi-threaded CPU FFT rounds the last bits differently from run to run under
load, which broke bit-for-bit resume).

The output (``combine``) is, with ``mode="power"`` (the default), the magnitude
``sqrt(|G S|^2 + sum_k |H(k)|^2 |S(t - k)|^2)`` -- the expected magnitude of the
direct sound plus a random-phase tail, the late reverberant spectral variance of
Lebart et al. (2001) and Habets (2009) -- with the phase of ``G S`` (of the coherent
tail ``sum_k H(k) S(t - k)`` where ``G S`` is silent: see ``combine``); with
``mode="complex"``, ``G S`` plus that coherent tail. In the power mode the tail's
phases only matter in silence, so they are fixed random values (``fixed_phases``),
not parameters.

``S(t - k)`` for ``t < k`` are the source frames before the clip: the renderer
reads ``K = tail_frames`` of them from the front of its ``source_tf`` (``[B, K + T,
F]``, ``dataset.source_frames``), so the tail reaches across clip boundaries; the
streaming renderer carries the recursions' state from block to block instead.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from audiogs_jax.gaussians import Tail

__all__ = ["Tail", "init", "fixed_phases", "natural_advance", "taps", "coherent", "power", "combine", "diffuse_coherence",
           "rate_of_rt60", "rt60_of", "unit_power", "MODES"]

#: Amplitude decay of 60 dB, in nepers: ln(1000).
NEPERS_60DB = 3.0 * np.log(10.0)
MODES = ("power", "complex")
#: Weight of the coherent tail in the power mode's phase (``combine``): 60 dB down.
PHASE_FALLBACK = 1e-3


def rate_of_rt60(rt60: float, hop_length: int, sample_rate: int) -> float:
  """Amplitude decay per frame (nepers) of a room with this RT60 (seconds)."""
  return float(NEPERS_60DB * hop_length / (sample_rate * rt60))


def rt60_of(tail: Tail, hop_length: int, sample_rate: int) -> jnp.ndarray:
  """The tail's RT60 per frequency bin ``[F]``, seconds."""
  return NEPERS_60DB * hop_length / (sample_rate * jax.nn.softplus(tail.decay))


def init(key, num_freqs: int, *, hop_length: int, sample_rate: int, rt60: float = 0.5,
         level: float = 0.02, learn_phase: bool = True, advance=None) -> Tail:
  """A tail with RT60 ``rt60`` s in every bin, first-tap amplitude ``level`` and
  uniform random phases (a diffuse field's), phase advances ``advance`` ``[F]``
  (``natural_advance``; uniform random if None); without ``learn_phase`` (the power
  mode, where nothing would train them) phases and advances are not parameters
  (``fixed_phases``, and the advance the renderer passes)."""
  rate = rate_of_rt60(rt60, hop_length, sample_rate)
  k1, k2 = jax.random.split(key)
  uniform = lambda k: jax.random.uniform(k, (2, num_freqs), jnp.float32, -np.pi, np.pi)
  return Tail(level=jnp.full((2, num_freqs), np.log(level), jnp.float32),
              decay=jnp.full((num_freqs,), float(np.log(np.expm1(rate))), jnp.float32),
              phase=uniform(k1) if learn_phase else None,
              omega=(uniform(k2) if advance is None else jnp.broadcast_to(
                  jnp.asarray(advance, jnp.float32), (2, num_freqs)))
              if learn_phase else None)


def natural_advance(n_fft: int, hop_length: int) -> np.ndarray:
  """``2 pi b hop / n_fft`` ``[F]``: how far the phase of a steady sinusoid at bin ``b``
  advances from one STFT frame to the next. A tail whose taps advance so rings as
  decaying sinusoids at the bins' frequencies: its frames add up in the inverse
  STFT's overlap-add instead of cancelling."""
  b = np.arange(n_fft // 2 + 1)
  return (2.0 * np.pi * b * hop_length / n_fft).astype(np.float32)


def fixed_phases(num_freqs: int) -> np.ndarray:
  """The phase ``[2, F]`` of the power mode's taps: uniform random, the same on every
  call (seed 0)."""
  return np.random.default_rng(0).uniform(-np.pi, np.pi, (2, num_freqs)).astype(np.float32)


def _phases(tail: Tail, advance) -> tuple:
  """``(phase [2, F], omega [2, F])``: the tail's learned ones, else the fixed phase
  and the natural advance ``advance`` ``[F]`` (0 if None)."""
  if tail.phase is not None:
    return tail.phase, tail.omega
  f = tail.level.shape[-1]
  omega = jnp.zeros((2, f), jnp.float32) if advance is None else jnp.broadcast_to(
      jnp.asarray(advance, jnp.float32), (2, f))
  return jnp.asarray(fixed_phases(f)), omega


def diffuse_coherence(freqs, ear_distance: float, speed_of_sound: float) -> np.ndarray:
  """Coherence of two points ``ear_distance`` metres apart in a diffuse field,
  ``sin(k d) / (k d)`` with ``k = 2 pi f / c`` (Cook et al. 1955), per frequency ``[F]``:
  near 1 below ``c / (4 d)`` (about 500 Hz for a head), near 0 far above it."""
  return np.sinc(2.0 * np.asarray(freqs, np.float64) * ear_distance / speed_of_sound)


def _mixing(coherence, dtype):
  """``(gamma, sqrt(1 - gamma^2))`` ``[F]``; ``(0, 1)`` (independent ears) for None."""
  if coherence is None:
    return jnp.zeros((), dtype), jnp.ones((), dtype)
  g = jnp.asarray(coherence, dtype)
  return g, jnp.sqrt(jnp.maximum(1.0 - g * g, 0.0))


def taps(tail: Tail, frames: int, coherence=None, advance=None) -> jnp.ndarray:
  """The taps ``H[e, k, f]`` for k = 0..frames, ``[2, frames + 1, F]`` complex, ``H[:,
  0] = 0`` (the direct frame is the gain's): the module's formula written out, for
  references and plots (the renderer never builds them)."""
  k = jnp.arange(1, frames + 1, dtype=tail.level.dtype)[None, :, None]
  mag = jnp.exp(tail.level[:, None, :] - k * jax.nn.softplus(tail.decay)[None, None, :])
  phase, omega = _phases(tail, advance)
  u = jnp.exp(1j * (phase[:, None, :] + k * omega[:, None, :]))           # [2, K, F]
  g, s = _mixing(coherence, tail.level.dtype)
  h = mag * jnp.stack([u[0], g * u[0] + s * u[1]])
  return jnp.concatenate([jnp.zeros_like(h[:, :1]), h], axis=1)


def _sums(x: jnp.ndarray, beta: jnp.ndarray, skip: int = 0, z0=None):
  """``y(t) = sum_{k >= 1} beta^k x(t - k)`` for the frames of ``x`` after the first
  ``skip``, and the inclusive sum ``z(t) = beta z(t - 1) + x(t)`` of the last frame
  (the state a stream carries).

  Args:
    x: ``[B, N, F]`` real or complex.
    beta: ``[..., F]`` (leading axes L: the ears), real or complex.
    skip: frames read but not returned (the context before a clip).
    z0: ``[B, *L, F]`` inclusive sum before the first frame (None: 0).

  Returns:
    ``(y [B, *L, N - skip, F], z [B, *L, F])``.

  A ``lax.scan`` along the frames (``O(N)`` work in ``N`` small steps), complex
  numbers as (real, imaginary) pairs of float arrays, which XLA's CPU loops
  vectorise (complex carries ran ten times slower).
  """
  lead = beta.shape[:-1]
  xs = jnp.moveaxis(x, -2, 0)                                           # [N, B, F]
  xs = xs.reshape(xs.shape[:2] + (1,) * len(lead) + xs.shape[2:])     # [N, B, 1.., F]
  shape = (x.shape[0],) + lead + (x.shape[-1],)
  cplx = jnp.iscomplexobj(x) or jnp.iscomplexobj(beta)
  f32 = jnp.float32
  br = jnp.real(beta).astype(f32)
  bi = jnp.imag(beta).astype(f32) if cplx else None
  zr = jnp.zeros(shape, f32) if z0 is None else jnp.broadcast_to(jnp.real(z0), shape)
  zi = (jnp.zeros(shape, f32) if z0 is None else jnp.broadcast_to(jnp.imag(z0), shape)
        ) if cplx else None
  parts = (jnp.real(xs).astype(f32), jnp.imag(xs).astype(f32)) if cplx else (
      xs.astype(f32),)

  def step(c, xt):
    if cplx:
      yr, yi = br * c[0] - bi * c[1], br * c[1] + bi * c[0]
      return (yr + xt[0], yi + xt[1]), (yr, yi)
    y = br * c[0]
    return (y + xt[0],), (y,)

  carry = (zr, zi) if cplx else (zr,)
  if skip:
    carry, _ = jax.lax.scan(lambda c, xt: (step(c, xt)[0], None), carry,
                            tuple(p[:skip] for p in parts))
  carry, ys = jax.lax.scan(step, carry, tuple(p[skip:] for p in parts))
  to_out = lambda a: jnp.moveaxis(a, 0, -2)                            # [B, *L, T, F]
  if cplx:
    return (to_out(jax.lax.complex(*ys)), jax.lax.complex(*carry))
  return to_out(ys[0]), carry[0]


def _betas(tail: Tail, advance) -> jnp.ndarray:
  rate = jax.nn.softplus(tail.decay)
  return jnp.exp(-rate[None] + 1j * _phases(tail, advance)[1])         # [2, F]


def coherent(tail: Tail, source_tf: jnp.ndarray, skip: int, coherence=None, z0=None,
             advance=None):
  """``sum_k H_e(k) S(t - k)`` for the frames of ``source_tf`` ``[B, N, F]`` after the
  first ``skip``: ``([B, 2, N - skip, F], state [B, 2, F])``. ``z0``: the state
  carried from earlier frames (a stream), else silence before ``source_tf``."""
  q, z = _sums(source_tf, _betas(tail, advance), skip, z0)                    # [B, 2, T, F]
  g, s = _mixing(coherence, tail.level.dtype)
  phase = _phases(tail, advance)[0]
  rot = jnp.exp(tail.level + 1j * phase).astype(source_tf.dtype)             # [2, F]
  right = jnp.exp(tail.level[1]) * (g * jnp.exp(1j * phase[0]) * q[:, 0] +
                                    s * jnp.exp(1j * phase[1]) * q[:, 1])
  return jnp.stack([rot[0] * q[:, 0], right.astype(q.dtype)], axis=1), z


def unit_power(rate: jnp.ndarray, source_tf: jnp.ndarray, skip: int, p0=None):
  """``sum_{k >= 1} exp(-2 k rate) |S(t - k)|^2``, the taps' power at level 0, for the
  frames of ``source_tf`` ``[B, N, F]`` after the first ``skip``; ``rate`` ``[..., F]``
  (leading axes L, e.g. candidate rates): ``([B, *L, N - skip, F], state [B, *L, F])``."""
  return _sums(jnp.abs(source_tf) ** 2, jnp.exp(-2.0 * rate), skip, p0)


def power(tail: Tail, source_tf: jnp.ndarray, skip: int, p0=None):
  """``sum_k exp(2 level_e - 2 k rate) |S(t - k)|^2`` (the taps' expected power) for
  the frames after the first ``skip``: ``([B, 2, N - skip, F], state [B, F])``."""
  p, z = unit_power(jax.nn.softplus(tail.decay), source_tf, skip, p0)    # [B, T, F]
  return jnp.exp(2.0 * tail.level)[None, :, None, :] * p[:, None], z


def combine(direct: jnp.ndarray, tail: Tail, source_tf: jnp.ndarray, skip: int, mode: str,
            coherence=None, state: Optional[tuple] = None, advance=None):
  """The output ``([B, 2, T, F], state)`` from the direct part ``direct = G S``
  ``[B, 2, T, F]`` and the tail (module docstring), ``T = N - skip`` for
  ``source_tf [B, N, F]``. ``state``: ``(z [B, 2, F], p [B, F])`` carried from the
  frames before ``source_tf`` (a stream), else silence. ``advance``: the phase
  advance per frame of taps without learned ones (``natural_advance``)."""
  if mode not in MODES:
    raise ValueError(f"tail mode must be one of {MODES}, got {mode!r}")
  z0, p0 = state if state is not None else (None, None)
  coh, z = coherent(tail, source_tf, skip, coherence, z0, advance)
  total = direct + coh
  if mode == "complex":
    return total, (z, jnp.zeros(z.shape[:1] + z.shape[2:], jnp.float32) if p0 is None
                   else p0)
  pw, p = power(tail, source_tf, skip, p0)
  mag = jnp.sqrt(jnp.abs(direct) ** 2 + pw + 1e-20)
  # The direct sound's phase; the coherent tail's where the direct sound is more
  # than 60 dB below it (digital silence: no phase of its own). The phase of the
  # full sum G S + tail, tried first, has an ill-conditioned gradient where the two
  # nearly cancel (a 4-device step then no longer matched a 1-device step), and its
  # straight-through use (that phase forward, the direct sound's backward) made the
  # interaural loss pull the geometry the wrong way (LRE 1.62 against 1.07 at step
  # 500 of the default scene).
  u = direct + PHASE_FALLBACK * coh
  return mag * u / jnp.sqrt(jnp.abs(u) ** 2 + 1e-30), (z, p)
