"""sh: real spherical harmonics (3DGS convention) against quadrature, closed forms, scipy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from audiogs_jax import sh


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


_sh_basis = jax.jit(sh.sh_basis, static_argnums=1)
_eval_sh = jax.jit(sh.eval_sh)


def _basis_np(dirs, degree=3):
  return np.asarray(_sh_basis(jnp.asarray(dirs, jnp.float32), degree), np.float64)


def test_quadrature_is_exact_on_a_known_integral():
  dirs, w = _sphere_quadrature()
  assert w.sum() == pytest.approx(4.0 * np.pi)
  # int z^6 dOmega = 4 pi / 7, int x^2 y^2 z^2 dOmega = 4 pi / 105.
  assert np.sum(w * dirs[:, 2] ** 6) == pytest.approx(4.0 * np.pi / 7.0, rel=1e-12)
  assert np.sum(w * np.prod(dirs ** 2, axis=1)) == pytest.approx(4.0 * np.pi / 105.0, rel=1e-12)


def test_orthonormality_all_16():
  dirs, w = _sphere_quadrature()
  y = _basis_np(dirs, 3)                                  # [M, 16]
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
  rng = np.random.default_rng(0)
  dirs = rng.standard_normal((200, 3))
  dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
  np.testing.assert_allclose(_basis_np(dirs, 3), _real_sh_scipy(dirs, 3), atol=2e-6)


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
  y = _basis_np(np.array(axes, np.float64), 3)
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
  rng = np.random.default_rng(1)
  dirs = rng.standard_normal((200, 3))
  dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
  full = _basis_np(dirs, 3)
  np.testing.assert_allclose(full[:, 0], C0, rtol=1e-7)
  for degree in range(4):
    b = _basis_np(dirs, degree)
    assert b.shape == (200, (degree + 1) ** 2)
    np.testing.assert_array_equal(b, full[:, :b.shape[1]])


def test_basis_terms_match_sh_basis():
  rng = np.random.default_rng(2)
  d = rng.standard_normal((4, 5, 3)).astype(np.float32)
  d /= np.linalg.norm(d, axis=-1, keepdims=True)
  terms = jax.jit(lambda d: sh.basis_terms(d[..., 0], d[..., 1], d[..., 2], 3))(d)
  assert len(terms) == 16 and all(t.shape == (4, 5) for t in terms)
  np.testing.assert_allclose(np.stack([np.asarray(t) for t in terms], -1),
                             np.asarray(_sh_basis(jnp.asarray(d), 3)), atol=1e-7)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_eval_sh_is_weighted_sum(degree):
  k = (degree + 1) ** 2
  rng = np.random.default_rng(3 + degree)
  coeffs = rng.standard_normal((6, 7, k)).astype(np.float32)
  dirs = rng.standard_normal((6, 7, 3)).astype(np.float32)
  dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
  got = np.asarray(_eval_sh(jnp.asarray(coeffs), jnp.asarray(dirs)))
  expected = np.sum(coeffs.astype(np.float64) * _real_sh_scipy(dirs.reshape(-1, 3).astype(np.float64),
                                                              degree).reshape(6, 7, k), -1)
  assert got.shape == (6, 7)
  np.testing.assert_allclose(got, expected, atol=2e-5)
  # Broadcasting: one coefficient vector for many directions.
  got_b = np.asarray(_eval_sh(jnp.asarray(coeffs[0, 0]), jnp.asarray(dirs)))
  np.testing.assert_allclose(got_b, np.sum(coeffs[0, 0] * np.asarray(_sh_basis(jnp.asarray(dirs), degree)), -1),
                             atol=1e-5)


def test_eval_sh_grad_is_basis():
  coeffs = jnp.asarray(np.random.default_rng(9).standard_normal(16), jnp.float32)
  d = jnp.asarray([0.6, 0.0, 0.8], jnp.float32)
  basis = np.asarray(_sh_basis(d, 3))
  np.testing.assert_allclose(float(_eval_sh(coeffs, d)), float(np.dot(np.asarray(coeffs), basis)), rtol=1e-6)
  g = jax.jit(jax.grad(sh.eval_sh))(coeffs, d)   # d/dcoeffs = the basis itself
  np.testing.assert_allclose(np.asarray(g), basis, atol=1e-7)


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
    sh.sh_basis(jnp.zeros((2, 3)), 4)
  with pytest.raises(ValueError):
    sh.eval_sh(jnp.zeros((2, 5)), jnp.zeros((2, 3)))
