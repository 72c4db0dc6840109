"""fastmath: the accuracy claims of the module docstring, on wide grids, and the custom JVPs.

Errors are measured against float64 numpy evaluated at the (exact) float32 inputs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiogs_jax import fastmath

_sincos = jax.jit(fastmath.sincos)
_exp = jax.jit(fastmath.exp)
_log = jax.jit(fastmath.log)


def _grid(lo, hi, n, seed):
  rng = np.random.default_rng(seed)
  return np.concatenate([np.linspace(lo, hi, n), rng.uniform(lo, hi, n // 2)]).astype(np.float32)


# sincos -------------------------------------------------------------------------

def _sincos_err(x):
  s, c = map(np.asarray, _sincos(jnp.asarray(x)))
  x64 = x.astype(np.float64)
  return np.maximum(np.abs(s - np.sin(x64)), np.abs(c - np.cos(x64)))


@pytest.mark.parametrize("limit, bound", [(10.0, 2e-6), (100.0, 5e-6), (1e3, 5e-5)])
def test_sincos_accuracy_claims(limit, bound):
  x = _grid(-limit, limit, 400_001, seed=int(limit))
  # Include the range-reduction boundaries (odd multiples of pi) and exact zeros.
  k = np.arange(-int(limit / np.pi), int(limit / np.pi) + 1)
  x = np.concatenate([x, (k * np.pi).astype(np.float32), ((k + 0.5) * np.pi).astype(np.float32)])
  x = x[np.abs(x) <= limit]
  err = _sincos_err(x)
  assert err.max() < bound, err.max()


def test_sincos_exact_points_and_shape():
  x = jnp.asarray([[0.0, np.pi / 2], [-np.pi, 1e-3]], jnp.float32)
  s, c = map(np.asarray, _sincos(x))
  assert s.shape == c.shape == (2, 2) and s.dtype == np.float32
  assert s[0, 0] == 0.0 and c[0, 0] == 1.0
  np.testing.assert_allclose(s, np.sin(np.asarray(x, np.float64)), atol=2e-6)
  np.testing.assert_allclose(c, np.cos(np.asarray(x, np.float64)), atol=2e-6)
  np.testing.assert_allclose(s ** 2 + c ** 2, 1.0, atol=5e-6)


# exp ----------------------------------------------------------------------------

@pytest.mark.parametrize("limit, bound", [(10.0, 1e-6), (80.0, 5e-6)])
def test_exp_accuracy_claims(limit, bound):
  x = _grid(-limit, limit, 400_001, seed=3 + int(limit))
  got = np.asarray(_exp(jnp.asarray(x)), np.float64)
  ref = np.exp(x.astype(np.float64))
  rel = np.abs(got - ref) / ref
  assert rel.max() < bound, rel.max()


def test_exp_special_values():
  got = np.asarray(_exp(jnp.asarray([0.0, 1.0, -100.0, 100.0, -87.0, 88.0], jnp.float32)))
  assert got[0] == 1.0
  assert got[1] == pytest.approx(np.e, rel=1e-6)
  assert 0.0 <= got[2] < 2e-38                      # flushes towards 0, never negative
  assert np.isfinite(got[3]) and got[3] == pytest.approx(2.0 ** 127, rel=1e-6)  # saturates
  assert got[4] == pytest.approx(np.exp(-87.0), rel=1e-5)
  assert got[5] == pytest.approx(np.exp(88.0), rel=1e-5)


# log ----------------------------------------------------------------------------

def _normal_floats(n, seed):
  """Uniform over the bit patterns of positive normal float32 (all exponents)."""
  bits = np.random.default_rng(seed).integers(0x00800000, 0x7F800000, n, dtype=np.int64)
  edges = np.array([np.finfo(np.float32).tiny, np.finfo(np.float32).max, 1.0,
                    np.nextafter(np.float32(1.0), np.float32(2.0)),
                    np.nextafter(np.float32(1.0), np.float32(0.0)),
                    np.sqrt(2.0), 2.0, 0.5], np.float32)
  return np.concatenate([bits.astype(np.uint32).view(np.float32), edges,
                         np.linspace(0.01, 100.0, n // 2, dtype=np.float32)])


def test_log_accuracy_claims():
  x = _normal_floats(400_000, seed=5)
  got = np.asarray(_log(jnp.asarray(x)), np.float64)
  ref = np.log(x.astype(np.float64))
  err = np.abs(got - ref)
  assert np.all(err < 2e-7 * np.maximum(1.0, np.abs(ref))), (err / np.maximum(1.0, np.abs(ref))).max()
  small = np.abs(ref) < 5.0
  assert small.sum() > 100_000
  assert err[small].max() < 1e-6


def test_log_special_values():
  got = np.asarray(_log(jnp.asarray([1.0, 2.0, np.e, 1e-30], jnp.float32)))
  assert got[0] == 0.0
  np.testing.assert_allclose(got[1:], np.log([2.0, np.float32(np.e), np.float32(1e-30)]), rtol=2e-7)


# custom JVPs --------------------------------------------------------------------

@jax.jit
def _derivatives(x, xp):
  d_sin = jax.vmap(jax.grad(lambda t: fastmath.sincos(t)[0]))(x)
  d_cos = jax.vmap(jax.grad(lambda t: fastmath.sincos(t)[1]))(x)
  d2_sin = jax.vmap(jax.grad(jax.grad(lambda t: fastmath.sincos(t)[0])))(x)
  d_exp = jax.vmap(jax.grad(fastmath.exp))(x)
  d_log = jax.vmap(jax.grad(fastmath.log))(xp)
  # Forward mode on whole arrays, with a non-unit tangent.
  (s, c), (ts, tc) = jax.jvp(fastmath.sincos, (x,), (2.0 * jnp.ones_like(x),))
  _, te = jax.jvp(fastmath.exp, (x,), (jnp.full_like(x, 3.0),))
  return d_sin, d_cos, d2_sin, d_exp, d_log, s, c, ts, tc, te


def test_gradients_equal_analytic_derivatives():
  rng = np.random.default_rng(6)
  x = rng.uniform(-20.0, 20.0, 4096).astype(np.float32)
  xp = np.exp(rng.uniform(-30.0, 30.0, 4096)).astype(np.float32)
  d_sin, d_cos, d2_sin, d_exp, d_log, s, c, ts, tc, te = map(
      lambda a: np.asarray(a, np.float64), _derivatives(jnp.asarray(x), jnp.asarray(xp)))
  x64, xp64 = x.astype(np.float64), xp.astype(np.float64)
  np.testing.assert_allclose(d_sin, np.cos(x64), atol=3e-6)
  np.testing.assert_allclose(d_cos, -np.sin(x64), atol=3e-6)
  np.testing.assert_allclose(d2_sin, -np.sin(x64), atol=1e-5)
  np.testing.assert_allclose(d_exp, np.exp(x64), rtol=2e-6)
  np.testing.assert_allclose(d_log, 1.0 / xp64, rtol=1e-6)
  # Tangents reuse the fast primal exactly: d sin = cos * dx, d cos = -sin * dx.
  np.testing.assert_allclose(ts, 2.0 * c, rtol=1e-7, atol=1e-12)
  np.testing.assert_allclose(tc, -2.0 * s, rtol=1e-7, atol=1e-12)
  np.testing.assert_allclose(te, 3.0 * np.asarray(_exp(jnp.asarray(x)), np.float64), rtol=1e-6)


def test_matches_jnp_on_render_range():
  """The renderer's arguments: phases within +-50 rad, log-ratios times exponents."""
  rng = np.random.default_rng(7)
  phi = rng.uniform(-50.0, 50.0, 100_000).astype(np.float32)
  s, c = map(np.asarray, _sincos(jnp.asarray(phi)))
  np.testing.assert_allclose(s, np.asarray(jnp.sin(phi)), atol=5e-6)
  np.testing.assert_allclose(c, np.asarray(jnp.cos(phi)), atol=5e-6)
  r = rng.uniform(0.05, 50.0, 100_000).astype(np.float32)
  np.testing.assert_allclose(np.asarray(_log(jnp.asarray(r))), np.asarray(jnp.log(r)), atol=1e-6)
  y = rng.uniform(-15.0, 10.0, 100_000).astype(np.float32)
  np.testing.assert_allclose(np.asarray(_exp(jnp.asarray(y))), np.asarray(jnp.exp(y)), rtol=2e-6)


def test_public_functions_keep_their_names_and_docs():
  for fn, name in [(fastmath.sincos, "sincos"), (fastmath.exp, "exp"), (fastmath.log, "log")]:
    assert fn.__name__ == name and fn.__doc__
  x = jnp.asarray([0.5, 2.0, 40.0], jnp.float32)
  y, t = jax.jvp(fastmath.log, (x,), (jnp.full_like(x, 3.0),))
  np.testing.assert_array_equal(y, _log(x))
  np.testing.assert_allclose(t, 3.0 / np.asarray(x), rtol=1e-7)


def test_asin_matches_jnp_and_its_gradient():
  """``fastmath.asin`` against ``jnp.arcsin`` on [-1, 1] (both reduction branches,
  the join at 1/2 and the ends), and its derivative against 1 / sqrt(1 - x^2)."""
  x = np.concatenate([np.linspace(-1.0, 1.0, 200001), [0.5, -0.5, 0.4999999, 0.5000001,
                                                       1e-8, -1e-8, 0.0]]).astype(np.float32)
  got = np.asarray(jax.jit(fastmath.asin)(jnp.asarray(x)), np.float64)
  want = np.arcsin(x.astype(np.float64))
  assert np.max(np.abs(got - want)) < 1e-6
  assert np.all(np.sign(got) == np.sign(want))
  inner = x[np.abs(x) < 0.999]
  d = np.asarray(jax.jit(jax.vmap(jax.grad(fastmath.asin)))(jnp.asarray(inner)), np.float64)
  np.testing.assert_allclose(d, 1.0 / np.sqrt(1.0 - inner.astype(np.float64) ** 2), rtol=1e-5)
