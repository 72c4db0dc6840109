"""Vectorisable float32 sin/cos, exp and log for the renderer's hot loop.

The AudioGS renderer evaluates one sine, one cosine, one exp and one log per
Gaussian, ear and pose. XLA:CPU lowers ``jnp.sin``/``jnp.cos`` to code that does
not vectorise with the rest of the render; these replacements are plain
polynomial evaluations after a range reduction, so XLA fuses and vectorises
them with the surrounding elementwise pass. ``backend.transcendentals`` picks
them (CPU only); ``docs/performance.md`` has the measurements.

- ``sincos``: reduction to [-pi, pi] then degree-15/16 Taylor polynomials;
  absolute error < 2e-6 for |x| <= 10, < 5e-6 for |x| <= 100 and < 5e-5 for
  |x| <= 1e3 (beyond |x| ~ 30 the float32 range reduction dominates, ~3e-8 |x|).
- ``exp``: 2^n * 2^f with n = round(x log2 e) assembled in the exponent bits and
  a degree-7 polynomial for 2^f; relative error < 1e-6 for |x| <= 10 and < 5e-6
  on [-80, 80] (the float32 rounding of x log2 e dominates, ~5e-8 |x|).
- ``log``: exponent bits plus an atanh series of the mantissa; absolute error
  < 2e-7 max(1, |log x|) for normal positive float32 (< 1e-6 for |log x| < 5).
- ``asin``: odd polynomial in x on |x| <= 1/2; above, asin x = pi/2 - 2 asin
  sqrt((1 - x) / 2) with the same polynomial (the classic float32 reduction, as in
  Cephes' ``asinf``); absolute error < 1e-6 on [-1, 1].

Each has a ``custom_jvp`` whose tangent reuses the fast primal (d sin = cos,
d exp = exp, d log = 1/x, d asin = 1 / sqrt(1 - x^2)), so gradients cost about the
same. Tests compare all four
against ``jnp`` on wide grids. Use them on float32 only.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["sincos", "exp", "log", "asin"]

_TWO_PI = np.float32(2.0 * np.pi)
_INV_TWO_PI = np.float32(1.0 / (2.0 * np.pi))
_SIN = [np.float32((-1) ** k / math.factorial(2 * k + 1)) for k in range(8)]
_COS = [np.float32((-1) ** k / math.factorial(2 * k)) for k in range(9)]
_LOG2E = np.float32(1.0 / np.log(2.0))
_LN2 = np.float32(np.log(2.0))
_EXP2 = [np.float32(np.log(2.0) ** k / math.factorial(k)) for k in range(8)]
_SQRT2 = np.float32(np.sqrt(2.0))
_HALF_PI = np.float32(np.pi / 2.0)
#: asin(t) ~ t + t z P(z), z = t^2, t in [0, 1/2]: the float32 minimax coefficients
#: of Cephes' asinf, lowest order first.
_ASIN = [np.float32(c) for c in (1.6666752422e-1, 7.4953002686e-2, 4.5470025998e-2,
                                 2.4181311049e-2, 4.2163199048e-2)]


def _horner(x, coeffs):
  out = coeffs[-1] + jnp.zeros_like(x)
  for c in coeffs[-2::-1]:
    out = out * x + c
  return out


def _sincos_raw(x):
  r = x - jnp.round(x * _INV_TWO_PI) * _TWO_PI
  r2 = r * r
  return r * _horner(r2, _SIN), _horner(r2, _COS)


def _exp_raw(x):
  y = jnp.clip(x * _LOG2E, -126.0, 127.0)
  n = jnp.round(y)
  f = y - n                                             # [-0.5, 0.5]
  p = _horner(f, _EXP2)                                 # 2^f
  scale = jax.lax.bitcast_convert_type(
      (n.astype(jnp.int32) + 127) << 23, jnp.float32)   # 2^n
  return p * scale


def _log_raw(x):
  bits = jax.lax.bitcast_convert_type(x, jnp.int32)
  e = ((bits >> 23) & 0xFF) - 127
  m = jax.lax.bitcast_convert_type((bits & 0x7FFFFF) | 0x3F800000, jnp.float32)
  big = m > _SQRT2
  m = jnp.where(big, m * 0.5, m)                        # [sqrt(1/2), sqrt(2)]
  e = e + big.astype(jnp.int32)
  t = (m - 1.0) / (m + 1.0)                             # |t| < 0.172
  t2 = t * t
  series = 2.0 * t * (1.0 + t2 * (1.0 / 3.0 + t2 * (0.2 + t2 * (1.0 / 7.0 + t2 / 9.0))))
  return e.astype(jnp.float32) * _LN2 + series


def _asin_raw(x):
  a = jnp.abs(x)
  big = a > 0.5
  z = jnp.where(big, 0.5 * (1.0 - a), a * a)
  t = jnp.where(big, jnp.sqrt(z), a)
  p = t + t * z * _horner(z, _ASIN)
  r = jnp.where(big, _HALF_PI - 2.0 * p, p)
  return jnp.where(x < 0, -r, r)


def _with_jvp(raw, tangent, name: str, doc: str):
  """``raw`` as a ``jax.custom_jvp`` function whose tangent
  ``tangent(x, raw(x), dx)`` reuses the fast primal."""

  @jax.custom_jvp
  def fn(x):
    return raw(x)

  @fn.defjvp
  def _jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    y = raw(x)
    return y, tangent(x, y, dx)

  fn.__name__ = fn.__qualname__ = name
  fn.__doc__ = doc
  return fn


sincos = _with_jvp(_sincos_raw, lambda x, sc, dx: (sc[1] * dx, -sc[0] * dx), "sincos",
                   """(sin x, cos x) for float32 x, any shape.""")
exp = _with_jvp(_exp_raw, lambda x, y, dx: y * dx, "exp",
                """e^x for float32 x (flushes to ~1e-38 below x = -87, saturates above 88).""")
log = _with_jvp(_log_raw, lambda x, y, dx: dx / x, "log",
                """Natural log of positive normal float32 x.""")
asin = _with_jvp(_asin_raw, lambda x, y, dx: dx / jnp.sqrt(1.0 - x * x), "asin",
                 """Arcsine of float32 x in [-1, 1].""")
