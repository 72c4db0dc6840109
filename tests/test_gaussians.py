"""gaussians: the parameter pytree, its initialisation and its shape checks."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiogs_jax import geometry
from audiogs_jax import renderer
from audiogs_jax import sh as sh_lib
from audiogs_jax.gaussians import Gaussians, check_gaussians, init_gaussians, inverse_softplus


from _jitutil import fast_jit as _jit

F, T = 17, 4            # n_fft = 32 -> 17 bins; N = 68
N = F * T
KEY = jax.random.PRNGKey(0)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("dual", [True, False])
def test_init_shapes(degree, dual):
  g = init_gaussians(KEY, F, T, sh_degree=degree, dual=dual, center=(1.0, 2.0, 3.0), spread=0.1)
  k = (degree + 1) ** 2
  assert g.num == N and g.sh_degree == degree and g.num_ears == (2 if dual else 1)
  assert g.xyz.shape == (N, 3) and g.xyz.dtype == jnp.float32
  assert g.sh.shape == (2 if dual else 1, N, k)
  assert g.decay.shape == (N,)
  assert g.phase.shape == (2, N)
  assert g.rotation is None and g.log_scale is None
  shc = np.asarray(g.sh)
  np.testing.assert_allclose(shc[..., 0], 1.0 / sh_lib.C0, rtol=1e-6)
  assert np.all(shc[..., 1:] == 0.0)
  assert np.all(np.asarray(g.decay) == 0.0) and np.all(np.asarray(g.phase) == 0.0)
  xyz = np.asarray(g.xyz)
  assert np.abs(xyz.mean(0) - [1.0, 2.0, 3.0]).max() < 0.05
  assert np.all((0.05 < xyz.std(axis=0)) & (xyz.std(axis=0) < 0.15))
  check_gaussians(g, N)


def test_optional_fields_present():
  g = init_gaussians(KEY, F, T, with_rotation=True, log_scale=0.5, learn_phase=False,
                     init_decay=0.3)
  assert g.phase is None
  assert g.rotation.shape == (N, 4)
  np.testing.assert_array_equal(np.asarray(g.rotation), np.tile([1.0, 0, 0, 0], (N, 1)))
  assert g.log_scale.shape == () and float(g.log_scale) == pytest.approx(0.5)
  np.testing.assert_allclose(np.asarray(g.decay), 0.3)
  check_gaussians(g)


def test_init_errors():
  with pytest.raises(ValueError):
    init_gaussians(KEY, F, T, sh_degree=4)
  with pytest.raises(ValueError):
    init_gaussians(KEY, F, T, activation="tanh")


def test_inverse_softplus():
  for y in (0.01, 1.0, 3.0):
    assert float(jax.nn.softplus(inverse_softplus(y))) == pytest.approx(y, rel=1e-6)


# The initial directional gain, through the renderer with everything but SH off.

_CFG = dict(n_fft=32, hop_length=8, use_attenuation=False, use_phase_correction=False)
_gains_batch = _jit(renderer.gains, static_argnums=2)


def _gains(g, pose, cfg):
  """One pose's gains ``[2, T, F]`` of the Gaussians ``g`` (on the renderer's grid)."""
  from audiogs_jax.gaussians import to_grid
  return _gains_batch(to_grid(g, F), pose[None], cfg)[0]


@pytest.mark.parametrize("activation", ["relu", "softplus"])
@pytest.mark.parametrize("degree", [0, 2])
def test_initial_gain_equals_init_gain(activation, degree):
  cfg = renderer.RenderConfig(activation=activation, **_CFG)
  g = init_gaussians(KEY, F, T, sh_degree=degree, init_gain=0.7, activation=activation,
                     center=(0.0, 0.0, 0.0), spread=1.0)
  # Random poses: with zero higher-order coefficients the gain is direction-free.
  for yaw in (0.0, 2.0):
    pose = jnp.asarray(geometry.yaw_pose([0.3, -0.2, 0.1], yaw), jnp.float32)
    gain = np.asarray(_gains(g, pose, cfg))
    assert gain.shape == (2, T, F)
    np.testing.assert_allclose(np.abs(gain), 0.7, rtol=1e-5)
    np.testing.assert_allclose(np.angle(gain), 0.0, atol=1e-6)


def test_softplus_init_differs_from_relu_init():
  """The activation argument matters: a relu init under softplus is not init_gain."""
  g = init_gaussians(KEY, F, T, sh_degree=0, init_gain=0.7, activation="relu")
  cfg = renderer.RenderConfig(activation="softplus", **_CFG)
  gain = np.abs(np.asarray(_gains(g, jnp.eye(4), cfg)))
  np.testing.assert_allclose(gain, np.log1p(np.exp(0.7)), rtol=1e-5)


# pytree -------------------------------------------------------------------------

def test_is_a_pytree():
  g = init_gaussians(KEY, F, T)
  assert len(jax.tree.leaves(g)) == 4            # xyz, sh, decay, phase (None = empty)
  full = init_gaussians(KEY, F, T, with_rotation=True, log_scale=0.0)
  assert len(jax.tree.leaves(full)) == 6
  bare = init_gaussians(KEY, F, T, learn_phase=False)
  assert len(jax.tree.leaves(bare)) == 3
  assert jax.tree.structure(g) != jax.tree.structure(full)

  @jax.jit
  def step(g):
    return jax.tree.map(lambda a: 2.0 * a, g)

  out = step(full)
  assert isinstance(out, Gaussians)
  for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(full)):
    np.testing.assert_array_equal(np.asarray(a), 2.0 * np.asarray(b))
  # Identity round trip keeps structure, shapes, dtypes and None fields.
  same = jax.jit(lambda g: g)(g)
  assert jax.tree.structure(same) == jax.tree.structure(g)
  assert same.rotation is None and same.log_scale is None
  for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(g)):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # replace() works like a frozen dataclass.
  moved = g.replace(decay=g.decay + 1.0)
  np.testing.assert_array_equal(np.asarray(moved.decay), 1.0)
  with pytest.raises(dataclasses.FrozenInstanceError):
    g.decay = g.decay


def test_grad_is_a_gaussians():
  g = init_gaussians(KEY, F, T, with_rotation=True, log_scale=0.0)
  grads = jax.jit(jax.grad(lambda g: sum(jnp.sum(a ** 2) for a in jax.tree.leaves(g))))(g)
  assert isinstance(grads, Gaussians)
  np.testing.assert_allclose(np.asarray(grads.sh), 2.0 * np.asarray(g.sh))


# check_gaussians ----------------------------------------------------------------

def _bad_variants(g):
  z = np.zeros
  yield "xyz", g.replace(xyz=z((N, 2)))
  yield "sh rank", g.replace(sh=z((N, 9)))
  yield "sh N", g.replace(sh=z((2, N + 1, 9)))
  yield "sh ears", g.replace(sh=z((3, N, 9)))
  yield "sh K", g.replace(sh=z((2, N, 5)))
  yield "decay", g.replace(decay=z((N, 1)))
  yield "phase", g.replace(phase=z((1, N)))
  yield "rotation", g.replace(rotation=z((N, 3)))
  yield "log_scale", g.replace(log_scale=z((1,)))


def test_check_gaussians_raises_on_bad_shapes():
  g = init_gaussians(KEY, F, T)
  check_gaussians(g)
  check_gaussians(g, N)
  with pytest.raises(AssertionError):
    check_gaussians(g, N + 1)
  for name, bad in _bad_variants(g):
    with pytest.raises((AssertionError, ValueError)):
      check_gaussians(bad)
      pytest.fail(f"check_gaussians accepted bad {name}")


# grid layout --------------------------------------------------------------------

def test_grid_round_trip_and_index_convention():
  from audiogs_jax.gaussians import from_grid, to_grid
  g = init_gaussians(KEY, F, T, sh_degree=3, log_scale=0.3)
  keys = jax.random.split(jax.random.PRNGKey(7), 5)
  g = g.replace(xyz=jax.random.normal(keys[0], g.xyz.shape),
                sh=jax.random.normal(keys[1], g.sh.shape),
                decay=jax.random.normal(keys[2], g.decay.shape),
                phase=jax.random.normal(keys[3], g.phase.shape))
  grid = to_grid(g, F)
  assert grid.xyz.shape == (3, T, F) and grid.sh.shape == (2, 16, T, F)
  assert grid.decay.shape == (T, F) and grid.phase.shape == (2, T, F)
  assert grid.log_scale.shape == ()
  # AudioGS grids hold no rotation: to_grid refuses Gaussians that carry one.
  assert getattr(grid, "rotation", None) is None
  with pytest.raises(ValueError, match="rotation"):
    to_grid(g.replace(rotation=jax.random.normal(keys[4], (N, 4))), F)
  # Bin (f, t) is Gaussian index f * T + t.
  f, t = 5, 2
  np.testing.assert_array_equal(grid.xyz[:, t, f], g.xyz[f * T + t])
  np.testing.assert_array_equal(grid.sh[1, :, t, f], g.sh[1, f * T + t])
  np.testing.assert_array_equal(grid.decay[t, f], g.decay[f * T + t])
  np.testing.assert_array_equal(grid.phase[:, t, f], g.phase[:, f * T + t])
  back = from_grid(grid)
  assert jax.tree.structure(back) == jax.tree.structure(g)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(back)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_grid_renders_like_gaussians():
  """The renderer reads ``to_grid``'s layout as the flat index f * T + t: the render
  of ``to_grid(g)`` equals the render of a grid laid out independently here (numpy
  reshapes of the flat fields, bin (t, f) = Gaussian f * T + t)."""
  from audiogs_jax.gaussians import GaussianGrid, to_grid
  g = init_gaussians(KEY, F, T, spread=1.0, log_scale=0.1)
  g = g.replace(sh=g.sh + 0.2 * jax.random.normal(jax.random.PRNGKey(3), g.sh.shape))
  tf = lambda a: jnp.asarray(np.swapaxes(np.asarray(a).reshape(a.shape[:-1] + (F, T)), -1, -2))
  by_hand = GaussianGrid(xyz=tf(np.asarray(g.xyz).T), sh=tf(np.moveaxis(np.asarray(g.sh), -1, 1)),
                         decay=tf(g.decay), phase=tf(g.phase), log_scale=g.log_scale)
  pose = jnp.asarray(geometry.yaw_pose([0.3, -0.2, 0.1], 0.7), jnp.float32)[None]
  src = jnp.ones((T, F), jnp.complex64)
  base = dict(n_fft=2 * (F - 1), hop_length=8)
  for cfg in (renderer.RenderConfig(**base), renderer.RenderConfig(dual_sh=False, **base),
              renderer.RenderConfig(use_sh_directionality=False, use_attenuation=False,
                                    **base)):
    np.testing.assert_allclose(np.asarray(renderer.render(to_grid(g, F), pose, src, cfg)),
                               np.asarray(renderer.render(by_hand, pose, src, cfg)), rtol=1e-6,
                               atol=1e-6)
