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
flat gain. The positions, decay and tail rate stay fixed, so the systems' matrices
and the tail's unit power ``Q`` are computed once; each alternation then costs one
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
import jax.scipy.linalg

from audiogs_jax import sh as sh_lib
from audiogs_jax.gaussians import GaussianGrid
from audiogs_jax.renderer import formula
from audiogs_jax.renderer import tail as tail_lib
from audiogs_jax.renderer.config import RenderConfig

__all__ = ["start", "normal_equations", "solve_ridge"]

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


def _design(params: GaussianGrid, poses, source_tf, config: RenderConfig) -> jnp.ndarray:
  """The coefficient fit's design ``x [K, B, 2, T, F]``: ``x_k = a_e Y_k(u_e)``
  (module docstring) for a batch of clips; it depends on the positions, not on
  the coefficients, so it is the same in every alternation."""
  f = formula.fields(params, config).replace(tail=None)
  out = formula.forward(f, poses, config)
  degree = sh_lib.degree_of(f.coeffs.shape[1])
  basis = jnp.stack(jnp.broadcast_arrays(*sh_lib.basis_terms(*out["u"], degree)))
  a = _source_mag(source_tf, config)[:, None]                       # [B, 1, T, F]
  if out["att"] is not None:
    a = a * out["att"]
  return a[None] * basis


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


def _residual_mag(tgt, q, level) -> jnp.ndarray:
  """``sqrt(max(|Y|^2 - L q, 0))`` ``[B, 2, T, F]``: the magnitude the tail (unit
  power ``q [B, T, F]``, level ``[2, F]``) leaves the direct part."""
  y2 = jnp.abs(tgt) ** 2
  if q is not None:
    y2 = y2 - jnp.exp(2.0 * level)[None, :, None, :] * q[:, None]
  return jnp.sqrt(jnp.maximum(y2, 0.0))


def _coeff_system(params: GaussianGrid, data: tuple, config: RenderConfig, level,
                  with_m: bool) -> tuple:
  """``(M [E', T, F, K, K] or None, v [E', T, F, K])`` summed over every chunk of
  ``data`` (``(poses, source, target, q)``; ``q`` None without a tail); ``M`` only
  when ``with_m``. The sums run in the design's layout (``[K, K, E, T, F]``: no
  transpose per chunk) and are moved once at the end."""
  shared = formula.fields(params, config).coeffs.shape[0] == 1
  k = formula.fields(params, config).coeffs.shape[1]
  t, f = params.num_frames, params.num_freqs

  def body(acc, batch):
    poses, src, tgt, q = batch
    x = _design(params, poses, src, config)
    v = acc[1] + jnp.einsum("kbetf,betf->ketf", x, _residual_mag(tgt, q, level))
    m = acc[0] + _gram(x) if with_m else acc[0]
    return (m, v), None

  zero_m = jnp.zeros((k, k, 2, t, f) if with_m else (), jnp.float32)
  (m, v), _ = jax.lax.scan(body, (zero_m, jnp.zeros((k, 2, t, f), jnp.float32)), data)
  v = _ears(jnp.moveaxis(v, 0, -1), shared)
  return (_ears(jnp.moveaxis(m, (0, 1), (-2, -1)), shared) if with_m else None), v


def _gram(x: jnp.ndarray) -> jnp.ndarray:
  """``sum_b x_k x_l`` ``[K, K, E, T, F]`` of ``x [K, B, E, T, F]``, row by row:
  one contraction over clips per row keeps the layout (a single ``K x K``
  contraction transposes, a broadcast product materialises ``K^2 B`` planes, and
  computing the upper triangle only and mirroring it was slower)."""
  return jnp.stack([jnp.einsum("kbetf,betf->ketf", x, x[i]) for i in range(x.shape[0])])


def _solve_coeffs(params: GaussianGrid, m, v, ridge: float) -> GaussianGrid:
  """``params`` with the coefficients ``solve_ridge(m, v)`` toward their start."""
  e, k = m.shape[0], m.shape[-1]
  c0 = jnp.moveaxis(params.sh[:e, :k], 1, -1)                       # [E', T, F, K]
  c = jnp.moveaxis(solve_ridge(m, v, c0, ridge), -1, 1)             # [E', K, T, F]
  return params.replace(sh=params.sh.at[:e, :k].set(c))


def _fit_tail_level(params: GaussianGrid, data: tuple, config: RenderConfig):
  """``params`` with each ear and bin's tail level fitted to the power the direct
  gain leaves: ``L = sum R q / sum q^2`` over frames and clips, ``R = |Y|^2 -
  |G S|^2`` (``MIN_TAIL_POWER`` at least)."""
  fields = formula.fields(params, config).replace(tail=None)

  def body(acc, batch):
    poses, src, tgt, q = batch
    # |G S| = A D |S| (the gain's modulus: its phase is not needed)
    direct = formula.forward(fields, poses, config)["m"] * _source_mag(src, config)[:, None]
    r = jnp.abs(tgt) ** 2 - direct ** 2                            # [B, 2, T, F]
    num = jnp.sum(r * q[:, None], axis=(0, 2))
    return (acc[0] + num, acc[1] + jnp.sum(q * q, axis=(0, 1))[None]), None

  zero = jnp.zeros(params.tail.level.shape, jnp.float32)
  (num, den), _ = jax.lax.scan(body, (zero, zero), data)
  power = jnp.maximum(num / jnp.maximum(den, 1e-30), MIN_TAIL_POWER)
  return params.replace(tail=params.tail.replace(level=0.5 * jnp.log(power)))


@functools.partial(jax.jit, static_argnames=("config", "iterations", "ridge", "shrink",
                                             "chunk", "omega"))
def start(params: GaussianGrid, poses, source_tf, target_tf, config: RenderConfig, *,
          iterations: int = 2, ridge: float = 0.01, shrink: float = 1.0,
          chunk: int = 16, omega: float = 1.2) -> GaussianGrid:
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

  Returns:
    ``params`` with ``sh`` (and ``tail.level``) fitted.
  """
  if config.activation != "relu":
    raise ValueError("the closed-form start needs activation='relu' (the SH sum is then "
                     f"the magnitude); got {config.activation!r}")
  k = formula.fields(params, config).coeffs.shape[1]
  ridge = float(ridge) + float(shrink) * k / poses.shape[0]
  tail = params.tail is not None and bool(config.tail_frames)
  q = None
  if tail:   # the tail's power at unit level [N, T, F]: its rate is kept, so fixed
    unit = params.tail.replace(level=jnp.zeros_like(params.tail.level))
    q = tail_lib.power(unit, source_tf, config.tail_frames)[0][:, 0]
  data = tuple(None if x is None else _chunks(x, chunk)
               for x in (poses, source_tf, target_tf, q))
  level = params.tail.level if tail else None
  m, v = _coeff_system(params, data, config, level, with_m=True)
  params = _solve_coeffs(params, m, v, ridge)
  if not tail:
    return params

  def relaxed(p):   # the level fit, over-relaxed (module docstring)
    level = _fit_tail_level(p, data, config).tail.level
    return p.replace(tail=p.tail.replace(level=p.tail.level + omega * (level - p.tail.level)))

  def again(_, p):    # the tail level for these coefficients, then the coefficients
    p = relaxed(p)
    return _solve_coeffs(p, m, _coeff_system(p, data, config, p.tail.level, False)[1], ridge)

  params = jax.lax.fori_loop(0, max(int(iterations), 1) - 1, again, params)
  return relaxed(params)
