"""The closed-form start (``renderer.fit``): the least-squares coefficients and tail
levels against the parameters that generated the data, the normal equations against
a loop over clips, the ridge, and the model's start on a scene."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiogs_jax import renderer, sh as sh_lib
from audiogs_jax.gaussians import init_gaussians, to_grid
from audiogs_jax.renderer import fit as fit_lib
from audiogs_jax.renderer import formula
from audiogs_jax.renderer import tail as tail_lib

NFFT, HOP, SR = 8, 4, 8000          # F = 5 bins
F, T = NFFT // 2 + 1, 6


def _config(**kw):
  return renderer.RenderConfig(sample_rate=SR, n_fft=NFFT, hop_length=HOP,
                               metres_per_unit=1.0, itd_model="woodworth", **kw)


def _start(seed=0, dual=True):
  g = init_gaussians(jax.random.PRNGKey(seed), F, T, sh_degree=2, center=(1.5, 0.5, 0.2),
                     spread=0.3, dual=dual)
  return to_grid(g, F)


def _truth(start, seed=1):
  """``start`` with random coefficients whose SH sum stays positive (the ReLU is
  then the identity, and the fit is exact) and random decay and phase."""
  rng = np.random.default_rng(seed)
  e, k = start.sh.shape[:2]
  sh = rng.uniform(-0.15, 0.15, (e, k, T, F)).astype(np.float32)
  sh[:, 0] = rng.uniform(2.0, 4.0, (e, T, F))
  return start.replace(sh=jnp.asarray(sh),
                       decay=jnp.asarray(rng.uniform(-1, 1, (T, F)), jnp.float32))


def _poses(n, seed=2):
  rng = np.random.default_rng(seed)
  poses = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
  yaw = rng.uniform(-np.pi, np.pi, n)
  poses[:, 0, 0], poses[:, 0, 1] = np.cos(yaw), -np.sin(yaw)
  poses[:, 1, 0], poses[:, 1, 1] = np.sin(yaw), np.cos(yaw)
  poses[:, :3, 3] = rng.uniform(-2, 2, (n, 3)) * [1, 1, 0.2]
  return jnp.asarray(poses)


def _source(n, frames, seed=3):
  rng = np.random.default_rng(seed)
  s = rng.standard_normal((n, frames, F)) + 1j * rng.standard_normal((n, frames, F))
  return jnp.asarray(s.astype(np.complex64))


@pytest.mark.parametrize("dual", [True, False])
def test_fit_recovers_the_coefficients_that_made_the_data(dual):
  """Targets rendered by known coefficients (no tail): the fit from the constant
  start returns them (ridge 1e-7), for dual and shared coefficients."""
  cfg = _config(dual_sh=dual)
  start = _start(dual=dual)
  truth = _truth(start)
  poses, src = _poses(40), _source(40, T)
  target = renderer.render(truth, poses, src, cfg)
  got = fit_lib.start(start.replace(decay=truth.decay), poses, src, target, cfg,
                      ridge=1e-7, shrink=0.0, chunk=16)
  np.testing.assert_allclose(np.asarray(got.sh), np.asarray(truth.sh), rtol=2e-3, atol=2e-3)
  assert not np.allclose(np.asarray(start.sh), np.asarray(truth.sh), atol=0.1)


def test_normal_equations_equal_a_loop_over_clips():
  """``M`` and ``v`` against the design rows built clip by clip in numpy."""
  cfg = _config()
  p = _truth(_start())
  poses, src = _poses(5), _source(5, T)
  m_tgt = jnp.abs(renderer.render(p, poses, src, cfg)) * 1.3
  m, v = fit_lib.normal_equations(p, poses, src, m_tgt, cfg)
  f = formula.fields(p, cfg)
  m_ref = np.zeros(m.shape, np.float64)
  v_ref = np.zeros(v.shape, np.float64)
  for b in range(5):
    out = formula.forward(f, poses[b:b + 1], cfg)
    basis = np.stack([np.broadcast_to(np.asarray(x), out["r"].shape)
                      for x in sh_lib.basis_terms(*out["u"], 2)])[:, 0]  # [K, 2, T, F]
    a = np.abs(np.asarray(src[b]))[None] * np.asarray(out["att"][0])     # [2, T, F]
    x = np.moveaxis(a[None] * basis, 0, -1).astype(np.float64)           # [2, T, F, K]
    m_ref += x[..., :, None] * x[..., None, :]
    v_ref += x * np.asarray(m_tgt[b])[..., None]
  np.testing.assert_allclose(np.asarray(m), m_ref, rtol=1e-4, atol=1e-4 * np.abs(m_ref).max())
  np.testing.assert_allclose(np.asarray(v), v_ref, rtol=1e-4, atol=1e-4 * np.abs(v_ref).max())


def test_ridge_keeps_the_start_where_no_clip_excites_a_bin():
  """A frame of silence in every clip: its coefficients stay at the start. A large
  ridge gives the omnidirectional fit (degree 0 alone, by least squares; the
  directional terms 0); no ridge the full fit, which differs from it."""
  cfg = _config()
  start = _start()
  truth = _truth(start)
  poses, src = _poses(30), _source(30, T)
  src = src.at[:, 2].set(0)
  target = renderer.render(truth, poses, src, cfg)
  free = fit_lib.start(start, poses, src, target, cfg, ridge=0.0, shrink=0.0)
  large = fit_lib.start(start, poses, src, target, cfg, ridge=1e5)
  for got in (free, large):
    np.testing.assert_allclose(np.asarray(got.sh[:, :, 2]), np.asarray(start.sh[:, :, 2]),
                               rtol=1e-5)
  # The omnidirectional least squares, clip by clip: a = |S| D, x_0 = a C0.
  out = formula.forward(formula.fields(start, cfg), poses, cfg)
  x0 = np.abs(np.asarray(src))[:, None] * np.asarray(out["att"]) * sh_lib.C0
  y = np.abs(np.asarray(target))
  omni = (x0 * y).sum(0) / np.maximum((x0 * x0).sum(0), 1e-30)          # [2, T, F]
  excited = np.arange(T) != 2
  np.testing.assert_allclose(np.asarray(large.sh[:, 0])[:, excited], omni[:, excited],
                             rtol=1e-3)
  assert np.abs(np.asarray(large.sh[:, 1:])).max() < 1e-3
  assert np.abs(np.asarray(free.sh[:, 1:])[:, :, excited]).max() > 0.05


def test_fit_recovers_the_tail_level():
  """Targets with a tail of known level per ear and bin (power mode): the
  alternation recovers the level (within 2 %) and the coefficients."""
  k = 5
  cfg = _config(tail_frames=k)
  start = _start()
  unit = tail_lib.init(jax.random.PRNGKey(4), F, hop_length=HOP, sample_rate=SR, rt60=0.01,
                       level=0.02, learn_phase=False)
  level = jnp.log(jnp.asarray(np.random.default_rng(5).uniform(0.5, 1.5, (2, F)),
                              jnp.float32))
  truth = _truth(start).replace(tail=unit.replace(level=level))
  poses, src = _poses(60), _source(60, k + T)
  target = renderer.render(truth, poses, src, cfg)
  got = fit_lib.start(start.replace(decay=truth.decay, tail=unit), poses, src, target, cfg,
                      iterations=40, ridge=1e-7, shrink=0.0)
  np.testing.assert_allclose(np.exp(np.asarray(got.tail.level)), np.exp(np.asarray(level)),
                             rtol=0.02)
  np.testing.assert_allclose(np.asarray(got.sh), np.asarray(truth.sh), rtol=0.02, atol=0.02)
  assert np.allclose(got.tail.decay, unit.decay)            # the rate is kept


def test_fit_lowers_the_magnitude_loss_of_the_start():
  """On data the renderer cannot reproduce (noisy targets), the fitted start's
  magnitude error is at most that of the coefficients that made the data (a
  least-squares optimum; the ridge allows 1 %) and far below the constant start's."""
  cfg = _config()
  truth = _truth(_start())
  start = _start().replace(decay=truth.decay)
  poses, src = _poses(30), _source(30, T)
  rng = np.random.default_rng(6)
  target = renderer.render(truth, poses, src, cfg) * (
      1 + 0.3 * rng.standard_normal((30, 2, T, F))).astype(np.float32)
  err = lambda p: float(jnp.mean((jnp.abs(renderer.render(p, poses, src, cfg))
                                  - jnp.abs(target)) ** 2))
  got = fit_lib.start(start, poses, src, target, cfg)
  assert err(got) <= 1.01 * err(truth)
  assert err(got) < 0.5 * err(start)


def test_fit_needs_the_relu_activation():
  cfg = _config(activation="softplus")
  with pytest.raises(ValueError, match="relu"):
    fit_lib.start(_start(), _poses(4), _source(4, T),
                  jnp.zeros((4, 2, T, F), jnp.complex64), cfg)


def test_design_kept_or_recomputed_gives_the_same_start():
  """The design's inputs kept for every pass (the default) or recomputed in each
  one (``cache_bytes=0``, the path for scenes too large to keep them): the same
  start, with a tail and a chunk size that does not divide the clips."""
  k = 3
  cfg = _config(tail_frames=k)
  unit = tail_lib.init(jax.random.PRNGKey(4), F, hop_length=HOP, sample_rate=SR, rt60=0.02,
                       level=0.05, learn_phase=False)
  start = _start().replace(tail=unit)
  truth = _truth(start)
  poses, src = _poses(21), _source(21, k + T)
  target = renderer.render(truth, poses, src, cfg)
  kept = fit_lib.start(start, poses, src, target, cfg, iterations=3, chunk=8)
  again = fit_lib.start(start, poses, src, target, cfg, iterations=3, chunk=8, cache_bytes=0)
  assert not np.allclose(np.asarray(kept.sh), np.asarray(start.sh), atol=0.1)
  for a, b in zip(jax.tree.leaves(kept), jax.tree.leaves(again)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_explained_power_equals_a_nonnegative_least_squares_fit():
  """``_explained`` (the power the best ``a, L >= 0`` explain, from five sums) against
  scipy's NNLS on the vectors themselves, for fits where both, one or neither
  coefficient is positive."""
  from scipy.optimize import nnls
  rng = np.random.default_rng(0)
  for trial in range(40):
    x, q = rng.uniform(0, 1, 50), rng.uniform(0, 1, 50)
    y = rng.normal(0, 1, 2).dot([x, q]) + 0.1 * rng.standard_normal(50) + (trial % 3 - 1)
    coef, _ = nnls(np.stack([x, q], 1), y)
    want = y.dot(y) - np.sum((y - coef[0] * x - coef[1] * q) ** 2)
    got = fit_lib._explained(*(jnp.float32(v) for v in (x @ x, x @ q, q @ q, x @ y, q @ y)))
    np.testing.assert_allclose(float(got), want, rtol=2e-3, atol=2e-3 * y.dot(y))


@pytest.mark.parametrize("true_index", [1, 4])
def test_tail_decay_is_read_from_the_recordings(true_index):
  """Recordings whose power is ``a_e |S(t)|^2 + L_e sum_k exp(-2 k rate) |S(t - k)|^2``
  at a known rate (random phases): ``fit_tail_decay`` picks that rate among the
  candidates, in every bin."""
  k, n = 12, 40
  rates = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
  src = _source(n, k + T, seed=7)
  rng = np.random.default_rng(8)
  unit = np.asarray(tail_lib.unit_power(jnp.full((F,), rates[true_index]), src, k)[0])
  direct = np.abs(np.asarray(src[:, k:])) ** 2                          # [N, T, F]
  a, level = rng.uniform(0.5, 2.0, (2, F)), rng.uniform(0.5, 2.0, (2, F))
  power = a[None, :, None] * direct[:, None] + level[None, :, None] * unit[:, None]
  target = np.sqrt(power) * np.exp(2j * np.pi * rng.uniform(size=power.shape))
  decay = fit_lib.fit_tail_decay(src, jnp.asarray(target.astype(np.complex64)), rates, k)
  np.testing.assert_allclose(np.asarray(jax.nn.softplus(decay)), rates[true_index], rtol=1e-5)
