"""A closed-form start: the renderer's linear parameters fitted to the training clips.

For fixed positions, decay and tail rate the renderer's magnitude is linear in its
SH coefficients (before the ReLU) and its tail power linear in the tail's level::

    |Y_e(t, f)|  ~  a_e(t, f) sum_k c_ek(t, f) Y_k(u_e)      a_e = |S(t, f)| D_e
    |Y_e(t, f)|^2 ~ |G_e S|^2 + L_e(f) Q(t, f)                Q = sum_k exp(-2 k rate) |S(t - k)|^2

so each Gaussian's coefficients have a least-squares optimum over the training
clips (a ``K x K`` system per ear and bin, ``K = (degree + 1)^2``), and each ear
and bin's tail power level ``L = exp(2 level)`` one over every frame of every clip.
``start`` alternates the two ``iterations`` times (the direct gain fitted to
``sqrt(max(|Y|^2 - L Q, 0))``, the magnitude the tail leaves it; then ``L`` to the
power the direct gain leaves), from the parameters it is given (the constant start
of ``gaussians.init_gaussians``), and returns them with ``sh`` and ``tail.level``
replaced: gradient descent then refines every field from there instead of from a
flat gain. The tail's decay rate, when candidates are given, is chosen first, once
(``fit_tail_decay``: one rate for every bin, the one under which the recordings'
power is best explained by the source's current and past frames). The positions,
decay and tail rate then stay fixed, so the systems' matrices and the tail's unit
power ``Q`` are computed once; each alternation then costs one
pass over the clips for the right-hand sides and one for the tail level. The
alternation converges geometrically (each step leaves a roughly constant
fraction of the error), so each level step is over-relaxed,
``level += omega (fitted - level)``, which reaches the fixed point in fewer
alternations (docs/performance.md, "The closed-form start").

The coefficient fit is ridge-regularised toward the omnidirectional fit,
``(M + lam I) c = v + lam c0`` with ``c0 = (v_0 / M_00, 0, ..., 0)`` (degree 0
alone, one unknown per ear and bin) and ``lam = (ridge + K / N) trace(M) / K`` per
system for ``N`` clips: with few clips (``N`` near ``K``, where the full fit would
interpolate them) the directional terms shrink toward zero, with many they are
fitted almost freely; a bin that no training clip excites (``M = 0``) keeps the
start it was given. The normal equations are accumulated over chunks of
clips with ``lax.scan`` (memory ``O(chunk)``, one compilation).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import jax.scipy.linalg

from audiogs_jax import sh as sh_lib
from audiogs_jax.gaussians import GaussianGrid
from audiogs_jax.renderer import formula
from audiogs_jax.renderer import tail as tail_lib
from audiogs_jax.renderer.config import RenderConfig

__all__ = ["start", "normal_equations", "solve_ridge", "fit_tail_decay"]

#: Clips (evenly spaced over the scene) the tail's decay is chosen on.
RATE_CLIPS = 32

#: Smallest tail power level ``L`` the fit returns (level = log(1e-4) nepers).
MIN_TAIL_POWER = 1e-8


def _chunks(x: jnp.ndarray, chunk: int) -> jnp.ndarray:
  """``[N, ...]`` -> ``[ceil(N / chunk), chunk, ...]``, zero-padded (a zero clip adds
  nothing to any sum below)."""
  n = x.shape[0]
  pad = -n % chunk
  x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
  return x.reshape((-1, chunk) + x.shape[1:])


def _source_mag(source_tf: jnp.ndarray, config: RenderConfig) -> jnp.ndarray:
  """``|S|`` ``[B, T, F]`` of the clip frames, as ``renderer.direct`` multiplies it
  (ones where ``content_mode`` keeps only the source's phase)."""
  s = jnp.abs(source_tf[:, config.tail_frames:])
  return jnp.where(s > 0, 1.0, 0.0) if config.content_mode else s


def _design_inputs(f: formula.Fields, poses, source_tf, config: RenderConfig) -> tuple:
  """``(u [3, B, 2, T, F], w [B, 2, T, F])``: each ear's direction to each Gaussian
  and ``w = |S| D_e``, from which the design is ``x_k = w Y_k(u)`` and the direct
  magnitude ``|G S| = relu(sum_k c_k Y_k(u)) w``. They depend on the positions,
  decay and scale, which the fit keeps, so they are the same in every alternation."""
  out = formula.forward(f.replace(tail=None), poses, config)
  w = _source_mag(source_tf, config)[:, None]
  if out["att"] is not None:
    w = w * out["att"]
  shape = out["r"].shape
  return (jnp.stack([jnp.broadcast_to(c, shape) for c in out["u"]]),
          jnp.broadcast_to(w, shape))


def _basis(u: jnp.ndarray, k: int) -> jnp.ndarray:
  """``Y_k(u)`` ``[K, ...]`` for ``u [3, ...]``."""
  terms = sh_lib.basis_terms(u[0], u[1], u[2], sh_lib.degree_of(k))
  return jnp.stack([jnp.broadcast_to(t, u.shape[1:]) for t in terms])


def _design(params: GaussianGrid, poses, source_tf, config: RenderConfig) -> jnp.ndarray:
  """The coefficient fit's design ``x [K, B, 2, T, F]``: ``x_k = |S| D_e Y_k(u_e)``
  (module docstring) for a batch of clips."""
  f = formula.fields(params, config)
  u, w = _design_inputs(f, poses, source_tf, config)
  return w[None] * _basis(u, f.coeffs.shape[1])


def _ears(x: jnp.ndarray, shared: bool) -> jnp.ndarray:
  """``x [E, ...]`` summed over the ears (``[1, ...]``) for shared coefficients."""
  return x.sum(0, keepdims=True) if shared else x


def normal_equations(params: GaussianGrid, poses, source_tf, target_mag,
                     config: RenderConfig) -> tuple:
  """``(M [E', T, F, K, K], v [E', T, F, K])`` of the coefficient fit over a batch of
  clips: ``M = sum_b x x^T``, ``v = sum_b x m`` with ``x_k = a_e Y_k(u_e)`` (module
  docstring) and ``m = target_mag`` ``[B, 2, T, F]``; ``E' = 1`` for shared
  (non-dual) coefficients, which both ears' rows fit."""
  x = _design(params, poses, source_tf, config)
  shared = formula.fields(params, config).coeffs.shape[0] == 1
  m = _ears(jnp.einsum("kbetf,lbetf->etfkl", x, x), shared)
  v = _ears(jnp.einsum("kbetf,betf->etfk", x, target_mag), shared)
  return m, v


def solve_ridge(m: jnp.ndarray, v: jnp.ndarray, c0: jnp.ndarray, ridge: float):
  """``(M + lam I)^-1 (v + lam p)`` per system, ``lam = ridge trace(M) / K`` (plus a
  floor that keeps an all-zero ``M`` solvable), toward the prior ``p``: the
  degree-0-only least-squares solution ``(v_0 / M_00, 0, ...)`` where ``M_00 > 0``,
  else ``c0`` (which is then the answer). ``m [..., K, K]``, ``v``, ``c0`` ``[..., K]``."""
  k = m.shape[-1]
  m00 = m[..., 0, 0]
  excited = m00 > 1e-6 * jnp.max(m00)
  omni = jnp.where(excited, v[..., 0] / jnp.where(excited, m00, 1.0), c0[..., 0])
  prior = jnp.where(excited[..., None], jnp.zeros_like(c0).at[..., 0].set(omni), c0)
  lam = ridge * jnp.trace(m, axis1=-2, axis2=-1) / k
  lam = jnp.maximum(lam, 1e-6 * jnp.max(lam) + 1e-30)[..., None]
  eye = jnp.eye(k, dtype=m.dtype)
  # M + lam I is symmetric positive definite (lam > 0): Cholesky, not LU, which
  # is also several times quicker to compile.
  factor = jax.scipy.linalg.cho_factor(m + lam[..., None] * eye, lower=True)
  return jax.scipy.linalg.cho_solve(factor, (v + lam * prior)[..., None])[..., 0]


def _residual_mag(mag, q, level) -> jnp.ndarray:
  """``sqrt(max(|Y|^2 - L q, 0))`` ``[B, 2, T, F]`` of the recordings' magnitude
  ``mag``: what the tail (unit power ``q [B, T, F]``, level ``[2, F]``) leaves the
  direct part."""
  if q is None:
    return mag
  y2 = mag * mag - jnp.exp(2.0 * level)[None, :, None, :] * q[:, None]
  return jnp.sqrt(jnp.maximum(y2, 0.0))


class _Clips:
  """The training clips in chunks (``[C, chunk, ...]``, zero-padded) with what every
  pass over them reads: the recordings' magnitude, the tail's unit power ``q``
  (None without a tail) and the design inputs ``(u, w)`` (``_design_inputs``),
  computed once and kept when they take at most ``cache_bytes``, else recomputed
  in each pass from the poses and source frames (memory ``O(chunk)``)."""

  def __init__(self, f: formula.Fields, poses, source_tf, target_tf, q,
               config: RenderConfig, chunk: int, cache_bytes: float):
    self.f, self.config = f, config
    n = poses.shape[0]
    self.mag = _chunks(jnp.abs(target_tf), chunk)
    self.q = None if q is None else _chunks(q, chunk)
    self.k = f.coeffs.shape[1]
    cached = 16 * n * 2 * target_tf.shape[-2] * target_tf.shape[-1] <= cache_bytes
    inputs = (_chunks(poses, chunk), _chunks(source_tf, chunk))
    self.cached = cached
    self.inputs = (jax.lax.map(lambda c: _design_inputs(f, *c, config), inputs)
                   if cached else inputs)

  def scan(self, body, init):
    """``lax.scan`` of ``body(acc, (u, w, mag, q))`` over the chunks; its carry."""
    def step(acc, batch):
      inputs, mag, q = batch
      u, w = inputs if self.cached else _design_inputs(self.f, *inputs, self.config)
      return body(acc, (u, w, mag, q)), None
    return jax.lax.scan(step, init, (self.inputs, self.mag, self.q))[0]


def _coeff_system(clips: _Clips, shared: bool, level, with_m: bool) -> tuple:
  """``(M [E', T, F, K, K] or None, v [E', T, F, K])`` summed over every chunk of
  ``clips``; ``M`` only when ``with_m``. The sums run in the design's layout
  (``[K, K, E, T, F]``: no transpose per chunk) and are moved once at the end."""
  k = clips.k
  t, f = clips.mag.shape[-2:]

  def body(acc, batch):
    u, w, mag, q = batch
    x = w[None] * _basis(u, k)                                     # [K, B, 2, T, F]
    r = _residual_mag(mag, q, level)
    v = acc[1] + _clip_sum(lambda b: x[:, b] * r[b], x.shape[1])
    m = acc[0] + _clip_sum(lambda b: x[:, None, b] * x[None, :, b], x.shape[1]) if with_m else acc[0]
    return m, v

  zero_m = jnp.zeros((k, k, 2, t, f) if with_m else (), jnp.float32)
  m, v = clips.scan(body, (zero_m, jnp.zeros((k, 2, t, f), jnp.float32)))
  v = _ears(jnp.moveaxis(v, 0, -1), shared)
  return (_ears(jnp.moveaxis(m, (0, 1), (-2, -1)), shared) if with_m else None), v


def _clip_sum(term, n: int) -> jnp.ndarray:
  """``sum_b term(b)`` over the ``n`` clips of a chunk, written as one sum of ``n``
  planes: XLA fuses it into a single elementwise pass, where a reduction (or an
  ``einsum``) over the clip axis, a major axis of ``[K, B, E, T, F]``, compiles to a
  strided loop several times slower (docs/performance.md). The Gram term
  ``term(b) = x[:, None, b] x[None, :, b]`` ``[K, K, E, T, F]`` is never
  materialised per clip. ``n`` is the chunk size: a trace-time constant."""
  total = term(0)
  for b in range(1, n):
    total = total + term(b)
  return total


def _solve_coeffs(params: GaussianGrid, m, v, ridge: float) -> GaussianGrid:
  """``params`` with the coefficients ``solve_ridge(m, v)`` toward their start."""
  e, k = m.shape[0], m.shape[-1]
  c0 = jnp.moveaxis(params.sh[:e, :k], 1, -1)                       # [E', T, F, K]
  c = jnp.moveaxis(solve_ridge(m, v, c0, ridge), -1, 1)             # [E', K, T, F]
  return params.replace(sh=params.sh.at[:e, :k].set(c))


def _fit_tail_level(params: GaussianGrid, clips: _Clips, config: RenderConfig):
  """The tail level ``[2, F]`` fitted to the power the direct gain of ``params``
  leaves: ``L = sum R q / sum q^2`` over frames and clips, ``R = |Y|^2 - |G S|^2``
  (``MIN_TAIL_POWER`` at least), ``|G S| = relu(sum_k c_k Y_k(u)) w``."""
  coeffs = formula.fields(params, config).coeffs

  def body(acc, batch):
    u, w, mag, q = batch
    direct = jax.nn.relu(sh_lib.expand(coeffs, u[0], u[1], u[2])) * w   # [B, 2, T, F]
    r = mag * mag - direct * direct
    num = jnp.sum(r * q[:, None], axis=(0, 2))
    return acc[0] + num, acc[1] + jnp.sum(q * q, axis=(0, 1))[None]

  zero = jnp.zeros(params.tail.level.shape, jnp.float32)
  num, den = clips.scan(body, (zero, zero))
  power = jnp.maximum(num / jnp.maximum(den, 1e-30), MIN_TAIL_POWER)
  return 0.5 * jnp.log(power)


def _explained(a11, a12, a22, b1, b2) -> jnp.ndarray:
  """The power ``sum y^2 - min sum (y - a x - L q)^2`` that the best ``a, L >= 0``
  explain, from the sums ``a11 = x.x, a12 = x.q, a22 = q.q, b1 = x.y, b2 = q.y``
  (broadcast together): the two-term fit where both are positive, else the better
  one-term fit. Written with normalised sums (``rho`` the cosine of ``x`` and ``q``),
  which float32 keeps accurate where the raw 2 x 2 determinant would cancel."""
  tiny = 1e-30
  s1, s2 = jnp.sqrt(jnp.maximum(a11, tiny)), jnp.sqrt(jnp.maximum(a22, tiny))
  rho = jnp.clip(a12 / (s1 * s2), -1.0 + 1e-6, 1.0 - 1e-6)
  c1, c2 = b1 / s1, b2 / s2                         # fits in the normalised basis
  det = 1.0 - rho * rho
  a, level = (c1 - rho * c2) / det, (c2 - rho * c1) / det
  both = (c1 * c1 - 2.0 * rho * c1 * c2 + c2 * c2) / det
  one = jnp.maximum(jnp.square(jnp.maximum(c1, 0.0)), jnp.square(jnp.maximum(c2, 0.0)))
  return jnp.where((a >= 0) & (level >= 0), both, one)


def fit_tail_decay(source_tf, target_tf, rates: tuple, skip: int,
                   max_clips: int = RATE_CLIPS) -> jnp.ndarray:
  """The tail's decay ``[F]`` (softplus-inverse of its rate) read from the recordings:
  the candidate of ``rates`` (nepers per frame) under which the recorded power
  ``y = |Y_e|^2`` is best explained, summed over every frame of up to ``max_clips``
  clips (evenly spaced), both ears and every bin, by ``a |S|^2 + L q``: ``|S|^2`` the
  frame's own source power (the direct sound, a free gain ``a`` per ear and bin for every pose),
  ``q = sum_{k >= 1} exp(-2 k rate) |S(t - k)|^2`` the tail's unit power at that rate,
  and ``a, L >= 0`` fitted in closed form for each candidate (``_explained``). The
  decay is read from how the recordings follow the source's past frames, where a
  blind estimate from the recordings alone mistakes sustained music for a long decay.
  One rate for all bins: chosen per bin, the rates scatter widely around the room's
  (and come out shorter than its RT60), chosen once they land near it.

  Args:
    source_tf: ``[N, skip + T, F]`` complex source frames (``skip`` context frames).
    target_tf: ``[N, 2, T, F]`` complex recordings.
    rates: candidate rates, a tuple (static).
    skip: context frames before each clip.
    max_clips: clips used (one rate for the scene: a few thousand frames fix it).
  """
  n = source_tf.shape[0]
  idx = np.unique(np.linspace(0, n - 1, min(int(max_clips), n)).round().astype(int))
  src, y = source_tf[idx], jnp.abs(target_tf[idx]) ** 2                 # [B, 2, T, F]
  x = (jnp.abs(src[:, skip:]) ** 2)[:, None]                            # [B, 1, T, F]
  cand = jnp.broadcast_to(jnp.asarray(rates, jnp.float32)[:, None],
                          (len(rates), src.shape[-1]))                   # [C, F]
  q = tail_lib.unit_power(cand, src, skip)[0]                            # [B, C, T, F]
  dot = lambda u, v: jnp.sum(u * v, axis=(0, -2))
  a11, b1 = dot(x, x), dot(x, y)                                         # [1 | 2, F]
  a12, a22 = dot(x[:, None], q[:, :, None]), dot(q, q)[:, None]          # [C, 1, F]
  b2 = dot(y[:, None], q[:, :, None])                                    # [C, 2, F]
  best = jnp.argmax(_explained(a11, a12, a22, b1, b2).sum((1, 2)))      # one for all bins
  rate = jnp.full((src.shape[-1],), jnp.asarray(rates, jnp.float32)[best])
  return jnp.log(jnp.expm1(rate))


@functools.partial(jax.jit, static_argnames=("config", "iterations", "ridge", "shrink",
                                             "chunk", "omega", "cache_bytes", "tail_rates"))
def start(params: GaussianGrid, poses, source_tf, target_tf, config: RenderConfig, *,
          iterations: int = 2, ridge: float = 0.01, shrink: float = 1.0,
          chunk: int = 16, omega: float = 1.2, cache_bytes: float = 2 ** 31,
          tail_rates: tuple | None = None) -> GaussianGrid:
  """The closed-form start (module docstring) from ``params`` and the training clips.

  Args:
    params: the start to refine (``GaussianGrid``; its positions, decay and tail rate
      are kept).
    poses: ``[N, 4, 4]``; source_tf: ``[N, K + T, F]`` complex (as ``render`` reads
      it); target_tf: ``[N, 2, T, F]`` complex, the recordings' STFTs.
    config: the ``RenderConfig`` (its ablation switches apply: without directivity
      only degree 0 is fitted, without attenuation no distance factor, etc.).
    iterations: alternations of the coefficient and tail-level fits (one coefficient
      fit without a tail).
    ridge, shrink: the coefficient fit's ridge is ``ridge + shrink K / N``
      (``solve_ridge``; module docstring).
    chunk: clips per step of the accumulation.
    omega: over-relaxation of the tail-level steps (1: plain alternation).
    cache_bytes: keep the design's inputs (16 bytes per clip, ear and bin) when they
      take at most this, instead of recomputing them in every pass.
    tail_rates: candidate decay rates of the tail (nepers per frame): first the one
      that best explains the recordings becomes every bin's rate (``fit_tail_decay``);
      None keeps the rate of ``params``.

  Returns:
    ``params`` with ``sh`` (and ``tail.level``, and with ``tail_rates`` ``tail.decay``)
    fitted.
  """
  if config.activation != "relu":
    raise ValueError("the closed-form start needs activation='relu' (the SH sum is then "
                     f"the magnitude); got {config.activation!r}")
  f = formula.fields(params, config)
  k = f.coeffs.shape[1]
  ridge = float(ridge) + float(shrink) * k / poses.shape[0]
  tail = params.tail is not None and bool(config.tail_frames)
  q = None
  if tail and tail_rates:
    params = params.replace(tail=params.tail.replace(decay=fit_tail_decay(
        source_tf, target_tf, tuple(tail_rates), config.tail_frames)))
  if tail:   # the tail's power at unit level [N, T, F]: its rate is kept, so fixed
    q = tail_lib.unit_power(jax.nn.softplus(params.tail.decay), source_tf,
                            config.tail_frames)[0]
  clips = _Clips(f, poses, source_tf, target_tf, q, config, chunk, cache_bytes)
  shared = f.coeffs.shape[0] == 1
  level = params.tail.level if tail else None
  m, v = _coeff_system(clips, shared, level, with_m=True)
  params = _solve_coeffs(params, m, v, ridge)
  if not tail:
    return params

  def relaxed(p):   # the level fit, over-relaxed (module docstring)
    level = _fit_tail_level(p, clips, config)
    return p.replace(tail=p.tail.replace(level=p.tail.level + omega * (level - p.tail.level)))

  def again(_, p):    # the tail level for these coefficients, then the coefficients
    p = relaxed(p)
    return _solve_coeffs(p, m, _coeff_system(clips, shared, p.tail.level, False)[1], ridge)

  params = jax.lax.fori_loop(0, max(int(iterations), 1) - 1, again, params)
  return relaxed(params)
