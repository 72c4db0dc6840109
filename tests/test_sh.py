"""sh: real spherical harmonics (3DGS convention) against quadrature, closed forms, scipy."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from audiogs_jax import sh


from _jitutil import fast_jit as _jit


def _sphere_quadrature(n_theta=8, n_phi=16):
  """Nodes [M, 3] and weights [M] integrating polynomials of degree <= 7 exactly.

  Gauss-Legendre in cos(theta) (exact to degree 2 n_theta - 1 = 15) times the
  uniform rule in phi (exact for trigonometric degree < n_phi = 16). Products of
  two degree-3 harmonics are degree-6 polynomials, well inside both.
  """
  z, wz = np.polynomial.legendre.leggauss(n_theta)
  phi = 2.0 * np.pi * np.arange(n_phi) / n_phi
  zz, pp = np.meshgrid(z, phi, indexing="ij")
  s = np.sqrt(1.0 - zz ** 2)
  dirs = np.stack([s * np.cos(pp), s * np.sin(pp), zz], -1).reshape(-1, 3)
  w = (wz[:, None] * np.full(n_phi, 2.0 * np.pi / n_phi)[None]).reshape(-1)
  return dirs, w


def _unit(v):
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


# Every direction the tests use, evaluated in one compiled call per module.
_RANDOM_DIRS = _unit(np.random.default_rng(0).standard_normal((200, 3)))


@_jit
def _all_bases(dirs):
  """sh_basis for degrees 0..3 and the degree-3 basis_terms, at dirs [M, 3]."""
  out = {f"basis{d}": sh.sh_basis(dirs, d) for d in range(4)}
  out["terms3"] = jnp.stack(sh.basis_terms(dirs[:, 0], dirs[:, 1], dirs[:, 2], 3), -1)
  return out


@functools.lru_cache(maxsize=None)
def _bases():
  quad, _ = _sphere_quadrature()
  axes = np.array(sorted(AXIS_VALUES), np.float64)
  dirs = np.concatenate([quad, _RANDOM_DIRS, axes])
  out = jax.tree.map(lambda a: np.asarray(a, np.float64), _all_bases(jnp.asarray(dirs, jnp.float32)))
  nq, nr = quad.shape[0], _RANDOM_DIRS.shape[0]
  split = lambda a: {"quad": a[:nq], "random": a[nq:nq + nr], "axes": a[nq + nr:]}
  return {k: split(v) for k, v in out.items()}


def _basis_np(which, degree=3):
  return _bases()[f"basis{degree}"][which]


def test_quadrature_is_exact_on_a_known_integral():
  dirs, w = _sphere_quadrature()
  assert w.sum() == pytest.approx(4.0 * np.pi)
  # int z^6 dOmega = 4 pi / 7, int x^2 y^2 z^2 dOmega = 4 pi / 105.
  assert np.sum(w * dirs[:, 2] ** 6) == pytest.approx(4.0 * np.pi / 7.0, rel=1e-12)
  assert np.sum(w * np.prod(dirs ** 2, axis=1)) == pytest.approx(4.0 * np.pi / 105.0, rel=1e-12)


def test_orthonormality_all_16():
  dirs, w = _sphere_quadrature()
  y = _basis_np("quad", 3)                                # [M, 16]
  assert y.shape == (dirs.shape[0], 16)
  gram = np.einsum("m,mi,mj->ij", w, y, y)
  np.testing.assert_allclose(gram, np.eye(16), atol=1e-5)


def _real_sh_scipy(dirs, degree=3):
  """3DGS real SH from scipy's complex Y_l^m (which include the Condon-Shortley phase).

  3DGS = sqrt(2) Im Y_l^|m| for m < 0, Y_l^0, sqrt(2) Re Y_l^m for m > 0.
  """
  theta = np.arccos(np.clip(dirs[:, 2], -1.0, 1.0))
  phi = np.arctan2(dirs[:, 1], dirs[:, 0])
  out = []
  for l in range(degree + 1):
    for m in range(-l, l + 1):
      y = scipy.special.sph_harm_y(l, abs(m), theta, phi)
      if m < 0:
        out.append(np.sqrt(2.0) * y.imag)
      elif m == 0:
        out.append(y.real)
      else:
        out.append(np.sqrt(2.0) * y.real)
  return np.stack(out, -1)


def test_matches_scipy_real_sh_with_3dgs_signs():
  np.testing.assert_allclose(_basis_np("random", 3), _real_sh_scipy(_RANDOM_DIRS, 3), atol=2e-6)


C0, C1, C2, C3 = sh.C0, sh.C1, sh.C2, sh.C3

# Expected nonzero values on the axes (all other entries 0), from the closed forms.
AXIS_VALUES = {
    (0, 0, 1): {0: C0, 2: C1, 6: 2.0 * C2[2], 12: 2.0 * C3[3]},
    (0, 0, -1): {0: C0, 2: -C1, 6: 2.0 * C2[2], 12: -2.0 * C3[3]},
    (1, 0, 0): {0: C0, 3: -C1, 6: -C2[2], 8: C2[4], 13: -C3[4], 15: C3[6]},
    (-1, 0, 0): {0: C0, 3: C1, 6: -C2[2], 8: C2[4], 13: C3[4], 15: -C3[6]},
    (0, 1, 0): {0: C0, 1: -C1, 6: -C2[2], 8: -C2[4], 9: -C3[0], 11: -C3[2]},
}


def test_known_values_on_axes():
  axes = sorted(AXIS_VALUES)
  y = _basis_np("axes", 3)
  for axis, row in zip(axes, y):
    expected = np.zeros(16)
    for k, v in AXIS_VALUES[axis].items():
      expected[k] = v
    np.testing.assert_allclose(row, expected, atol=1e-6, err_msg=str(axis))


def test_constants():
  assert C0 == pytest.approx(0.5 / np.sqrt(np.pi))
  assert C1 == pytest.approx(np.sqrt(3.0 / (4.0 * np.pi)))
  assert C2[4] == pytest.approx(0.25 * np.sqrt(15.0 / np.pi))
  assert C3[3] == pytest.approx(0.25 * np.sqrt(7.0 / np.pi))


def test_degree_zero_is_constant_and_lower_degrees_are_prefixes():
  full = _basis_np("random", 3)
  np.testing.assert_allclose(full[:, 0], C0, rtol=1e-7)
  for degree in range(4):
    b = _basis_np("random", degree)
    assert b.shape == (200, (degree + 1) ** 2)
    np.testing.assert_array_equal(b, full[:, :b.shape[1]])


def test_basis_terms_match_sh_basis():
  np.testing.assert_array_equal(_bases()["terms3"]["random"], _basis_np("random", 3))
  terms = jax.eval_shape(lambda d: sh.basis_terms(d[..., 0], d[..., 1], d[..., 2], 2),
                         jax.ShapeDtypeStruct((4, 5, 3), jnp.float32))
  assert len(terms) == 9 and all(t.shape == (4, 5) for t in terms)


@_jit
def _eval_all(coeffs, dirs):
  """``expand`` per degree: full ``[E=1, K, 6, 7]`` coefficients, one broadcast
  ``[1, K]`` vector, two fields ``[E=2, K]`` against directions ``[6, E=2]`` (as the
  renderer passes ``[B, 2, T, F]`` against ``[E, K, T, F]``), and d expand / d coeffs
  for degree 3."""
  x, y, z = dirs[..., 0], dirs[..., 1], dirs[..., 2]
  full_c = jnp.moveaxis(coeffs, -1, 0)[None]                     # [1, 16, 6, 7]
  pair = coeffs[:2, 0]                                           # [2, 16]
  d2 = dirs[:, :2]                                               # [6, 2, 3]
  out = {}
  for d in range(4):
    k = (d + 1) ** 2
    out[f"degree{d}"] = (sh.expand(full_c[:, :k], x, y, z),
                         sh.expand(coeffs[0, 0, None, :k], x, y, z),
                         sh.expand(pair[:, :k], d2[..., 0], d2[..., 1], d2[..., 2]))
  out["grad"] = jax.grad(lambda c: jnp.sum(sh.expand(c[None], x[0, 0], y[0, 0], z[0, 0])))(
      coeffs[0, 0])
  return out


def test_expand_is_weighted_sum():
  rng = np.random.default_rng(3)
  coeffs = rng.standard_normal((6, 7, 16)).astype(np.float32)
  dirs = _unit(rng.standard_normal((6, 7, 3))).astype(np.float32)
  out = jax.tree.map(np.asarray, _eval_all(jnp.asarray(coeffs), jnp.asarray(dirs)))
  ref_basis = _real_sh_scipy(dirs.reshape(-1, 3).astype(np.float64), 3).reshape(6, 7, 16)
  for d in range(4):
    k = (d + 1) ** 2
    full, broadcast, pair = out[f"degree{d}"]
    assert full.shape == (1, 6, 7) and broadcast.shape == (6, 7) and pair.shape == (6, 2)
    np.testing.assert_allclose(full[0], np.sum(coeffs[..., :k] * ref_basis[..., :k], -1),
                               atol=2e-5)
    np.testing.assert_allclose(broadcast, np.sum(coeffs[0, 0, :k] * ref_basis[..., :k], -1),
                               atol=2e-5)
    np.testing.assert_allclose(pair, np.sum(coeffs[None, :2, 0, :k] * ref_basis[:, :2, :k], -1),
                               atol=2e-5)
  # d/dcoeffs of the expansion is the basis itself.
  np.testing.assert_allclose(out["grad"], ref_basis[0, 0], atol=1e-6)


def test_num_coeffs_and_degree_of():
  for degree, k in enumerate((1, 4, 9, 16)):
    assert sh.num_coeffs(degree) == k
    assert sh.degree_of(k) == degree
  for bad in (-1, 4, 7):
    with pytest.raises(ValueError):
      sh.num_coeffs(bad)
  for bad in (0, 2, 3, 8, 10, 25):
    with pytest.raises(ValueError):
      sh.degree_of(bad)
  with pytest.raises(ValueError):
    sh.sh_basis(np.zeros((2, 3)), 4)
  with pytest.raises(ValueError):
    sh.expand(np.zeros((2, 5)), *np.zeros((3, 2)))
