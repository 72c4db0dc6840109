"""models.audio3dgs: maps against a numpy reference, mask bounds, phase, batching,
gradients and a short training run, on a tiny grid (n_fft = 32: F = 17, T = 11)."""

import functools
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from audiogs_jax import backend
from audiogs_jax import geometry
from audiogs_jax import losses
from audiogs_jax import sh as sh_lib
from audiogs_jax.config import load_config_file
from audiogs_jax.models import audio3dgs as a3
from audiogs_jax.models import audio3dgs_model as a3m
from audiogs_jax.models import get_model

CFG = a3.Audio3DGSConfig(n_fft=32, hop_length=8, unet_width=4, unet_levels=2, max_norm=25.0)
F, T = CFG.num_freqs, 11
N = F * T
# Forward-only tests compile without XLA's backend optimisations (half the
# compile time). Not for gradients: at level 0, XLA:CPU (jaxlib 0.10.2) returns
# NaN gradients through the U-Net's GroupNorm where the default level does not.
_FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _jit(fn):
  """jit with ``config`` bound; forward only, compiled with ``_FAST_COMPILE``."""
  jitted = jax.jit(functools.partial(fn, config=CFG))
  cache = {}

  def call(*args):
    key = tuple((a.shape, a.dtype) for a in jax.tree_util.tree_leaves(args))
    if key not in cache:
      cache[key] = jitted.lower(*args).compile(_FAST_COMPILE)
    return cache[key](*args)
  return call


def _rng(seed):
  return np.random.default_rng(seed)


def _source(seed=0, shape=(F, T)):
  r = _rng(seed)
  return jnp.asarray((r.standard_normal(shape) + 1j * r.standard_normal(shape)) * 0.7,
                     jnp.complex64)


def _poses(b, seed=0):
  r = _rng(seed)
  return jnp.asarray(np.stack([geometry.yaw_pose(r.uniform(-1.0, 1.0, 3), r.uniform(-np.pi, np.pi))
                               for _ in range(b)]), jnp.float32)


def _random_quats(n, seed):
  q = _rng(seed).standard_normal((n, 4))
  return q / np.linalg.norm(q, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def source_mag():
  return np.abs(np.asarray(_source(10))) + 0.1


@pytest.fixture(scope="module")
def params(source_mag):
  return a3.init_params(jax.random.PRNGKey(0), F, T, config=CFG, source_mag=source_mag,
                        center=(0.2, -0.1, 0.3), spread=0.5)


@pytest.fixture(scope="module")
def rich_params(params):
  """Random SH of all degrees and random rotations, so that every input
  matters and the masks spread over their ranges (including |d| > m)."""
  r = _rng(1)
  points = params.points.replace(
      sh=jnp.asarray(r.standard_normal((1, N, 9)), jnp.float32),
      rotation=jnp.asarray(_random_quats(N, 2), jnp.float32))
  return a3.Audio3DGSParams(points=points, unet=params.unet)


def _maps_reference(points, pose):
  """float64 numpy: per-point head-frame position, rotated direction, SH value."""
  xyz = np.asarray(points.xyz, np.float64)
  pose = np.asarray(pose, np.float64)
  p = (xyz - pose[:3, 3]) @ pose[:3, :3]                          # R^T (x - c)
  r = np.linalg.norm(p, axis=1)
  u = p / r[:, None]
  out = np.zeros((N, 2))
  for i in range(N):  # slow and literal
    rot = np.asarray(geometry.quat_to_rotmat(points.rotation[i]), np.float64)
    ui = rot.T @ u[i]
    basis = np.asarray(sh_lib.sh_basis(jnp.asarray(ui, jnp.float32), 2), np.float64)
    out[i] = [np.dot(np.asarray(points.sh[0, i], np.float64), basis), r[i] / CFG.max_norm]
  return out.reshape(F, T, 2)


def test_init(params, source_mag):
  pts = params.points
  assert pts.xyz.shape == (N, 3) and pts.sh.shape == (1, N, 9)
  assert pts.rotation.shape == (N, 4) and pts.phase is None
  np.testing.assert_allclose(pts.rotation, np.tile([1.0, 0, 0, 0], (N, 1)))
  assert np.all(np.asarray(pts.sh[0, :, 1:]) == 0.0)
  assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(params))
  # The SH value map is the source magnitude at every pose; the distance map is |p| / 25.
  pose = _poses(1, 3)[0]
  maps = np.asarray(_jit(a3.feature_maps)(pts, pose))
  np.testing.assert_allclose(maps[..., 0], source_mag, rtol=1e-5)
  dist = np.linalg.norm(np.asarray(pts.xyz) - np.asarray(pose[:3, 3]), axis=1) / 25.0
  np.testing.assert_allclose(maps[..., 1], dist.reshape(F, T), rtol=1e-5)
  with pytest.raises(ValueError):
    a3.init_params(jax.random.PRNGKey(0), F, T, config=CFG, unet_width=8)


def test_feature_maps_match_reference(rich_params):
  pose = _poses(1, 4)[0]
  maps = _jit(a3.feature_maps)(rich_params.points, pose)
  assert maps.shape == (F, T, 2)
  np.testing.assert_allclose(maps, _maps_reference(rich_params.points, pose),
                             rtol=1e-4, atol=1e-4)


def test_render_bounds_and_phase(rich_params):
  poses = _poses(4, 5)
  src = _source(6)
  y = np.asarray(_jit(a3.render_batch)(rich_params, poses, src))
  m, d = (np.asarray(a) for a in _jit(a3.render_masks)(rich_params, poses))
  assert y.shape == (4, 2, F, T) and y.dtype == np.complex64
  assert m.shape == d.shape == (4, F, T)
  # sigmoid / tanh ranges (closed: float32 saturates).
  assert 0.0 <= m.min() and m.max() <= 1.0 and -1.0 <= d.min() and d.max() <= 1.0
  s = np.abs(np.asarray(src))[None]
  yl, yr = np.abs(y[:, 0]), np.abs(y[:, 1])
  tol = 1e-5 * s + 1e-7
  # 0 <= |Y_e| < |S| and |Y_L| + |Y_R| < |S|.
  assert np.all(yl <= s + tol) and np.all(yr <= s + tol)
  assert np.all(yl + yr <= s + tol)
  # Where |d| <= m: mono = m |S| and diff = d |S| exactly (the paper's split).
  inside = np.abs(d) <= m
  outside = ~inside
  assert inside.mean() > 0.2 and outside.any(), (inside.mean(), outside.mean())
  np.testing.assert_allclose((yl + yr)[inside], (m * s)[inside], rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose((yl - yr)[inside], (d * s)[inside], rtol=1e-4, atol=1e-6)
  # Elsewhere the quieter ear is 0 and the louder one is (m + |d|) / 2 |S|.
  np.testing.assert_allclose(np.minimum(yl, yr)[outside], 0.0, atol=1e-7)
  np.testing.assert_allclose(np.maximum(yl, yr)[outside], ((m + np.abs(d)) / 2 * s)[outside],
                             rtol=1e-4, atol=1e-6)
  # The phase is the source's wherever an ear is not silent.
  for e in range(2):
    loud = np.abs(y[:, e]) > 1e-4 * s
    rot = y[:, e] * np.conj(np.asarray(src))[None]
    assert np.all(np.abs(np.angle(rot[loud])) < 1e-4)
  # render_magnitudes: (m |S|, d |S|).
  mono, diff = _jit(a3.render_magnitudes)(rich_params, poses[0], src)
  np.testing.assert_allclose(mono, m[0] * s[0], rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(diff, d[0] * s[0], rtol=1e-4, atol=1e-6)


def test_batch_equals_single_and_compiles_once(rich_params):
  poses = _poses(3, 7)
  srcs = jnp.stack([_source(20 + i) for i in range(3)])
  batch = jax.jit(a3.render_batch, static_argnames="config")
  y_shared = batch(rich_params, poses, srcs[0], config=CFG)
  y_per = batch(rich_params, poses, srcs, config=CFG)
  single = jax.jit(a3.render, static_argnames="config")
  # float32 rounding of the U-Net differs between batch sizes (the CPU's convolution
  # kernels split the work by batch, and by thread under load: CI once saw 8e-5
  # relative, 3e-6 of the peak): compared to 1e-4 relative and 1e-5 of the
  # spectrum's peak (about 1.5 here). A batch item mixed up with another differs
  # by O(1).
  atol = 1e-5 * float(np.max(np.abs(np.asarray(y_per))))
  for i in range(3):
    np.testing.assert_allclose(single(rich_params, poses[i], srcs[0], config=CFG),
                               y_shared[i], rtol=1e-4, atol=atol)
    np.testing.assert_allclose(single(rich_params, poses[i], srcs[i], config=CFG),
                               y_per[i], rtol=1e-4, atol=atol)
  # Same shapes, new values: no recompilation.
  batch(rich_params, _poses(3, 8), srcs, config=CFG)
  assert batch._cache_size() == 2          # [F, T] and [B, F, T] sources
  assert single._cache_size() == 1


def test_one_unet_call_per_batch(rich_params):
  """render_batch runs the U-Net once on [B, F, T, 2], not B times."""
  jaxpr = jax.make_jaxpr(functools.partial(a3.render_batch, config=CFG))(
      rich_params, _poses(5, 9), _source(1))
  text = str(jaxpr)
  batches = re.findall(r"f32\[(\d+),\d+,\d+,\d+\] = conv_general_dilated\[", text)
  # As many convs as one U-Net application on a batch of 5, each on the whole batch.
  unet_text = str(jax.make_jaxpr(a3.unet_module(CFG).apply)(
      rich_params.unet, jnp.zeros((5, F, T, 2), jnp.float32)))
  assert len(batches) == unet_text.count("conv_general_dilated[") > 0
  assert set(batches) == {"5"}
  assert f"f32[5,{F},{T},2]" in text or f"f32[5,{F},{T},1]" in text


def test_loss_definition():
  r = _rng(13)
  pred = jnp.asarray(r.standard_normal((2, 2, 3, 4)) + 1j * r.standard_normal((2, 2, 3, 4)),
                     jnp.complex64)
  tgt = jnp.asarray(r.standard_normal((2, 2, 3, 4)) + 1j * r.standard_normal((2, 2, 3, 4)),
                    jnp.complex64)
  total, aux = a3.loss(pred, tgt)
  p, t = np.abs(np.asarray(pred)), np.abs(np.asarray(tgt))
  mono = np.mean(((p[:, 0] + p[:, 1]) - (t[:, 0] + t[:, 1])) ** 2)
  diff = np.mean(((p[:, 0] - p[:, 1]) - (t[:, 0] - t[:, 1])) ** 2)
  np.testing.assert_allclose(aux["mono_l2"], mono, rtol=1e-5)
  np.testing.assert_allclose(aux["diff_l2"], diff, rtol=1e-5)
  np.testing.assert_allclose(total, mono + diff, rtol=1e-5)
  assert float(a3.loss(tgt, tgt)[0]) < 1e-10


def test_loss_is_losses_mono_diff_l2():
  r = _rng(12)
  z = lambda: jnp.asarray(r.standard_normal((2, 2, 5, 3)) + 1j * r.standard_normal((2, 2, 5, 3)),
                          jnp.complex64)
  pred, tgt = z(), z()
  total, aux = a3.loss(pred, tgt)
  np.testing.assert_array_equal(total, losses.mono_diff_l2(pred, tgt))
  np.testing.assert_array_equal(total, aux["mono_l2"] + aux["diff_l2"])


def test_model_fields_label_and_registration():
  """The model's own config fields are ``config.model.audio3dgs_unet`` with the
  defaults of ``default_config``; it is registered as convolutional, with its label."""
  d = a3m.default_config()
  assert d.to_dict() == {"unet_width": 64, "unet_levels": 4, "max_norm": 25.0,
                         "compute_dtype": "float32", "init_spread": 0.05}
  cfg = load_config_file(pathlib.Path(__file__).resolve().parents[1] / "configs" / "default.py")
  assert cfg.model.audio3dgs_unet.to_dict() == d.to_dict()
  own = cfg.model.audio3dgs_unet
  own.unet_width, own.max_norm, own.compute_dtype = 8, 10.0, "bfloat16"
  c = a3m.model_config(cfg)
  assert (c.unet_width, c.unet_levels, c.max_norm, c.compute_dtype) == (8, 4, 10.0, "bfloat16")
  assert (c.n_fft, c.hop_length) == (cfg.model.n_fft, cfg.model.hop_length)
  model = get_model(a3m.NAME)
  assert model is a3m.MODEL and model.convolutional is True
  assert model.label == "Audio 3DGS (U-Net)"
  assert backend.compiler_options(model.convolutional, "cpu") == (
      backend.conv_compiler_options("cpu") or None)


@pytest.fixture(scope="module")
def training_run(params):
  """150 Adam steps (lr 3e-2) on a synthetic scene: per-pose, per-frequency ear
  gains (a level that depends on which way the head faces) on a fixed source.

  Starts from ``params`` with small random SH of degrees 1-2 and random
  rotations (so that every parameter has a gradient from step 0). Returns the
  losses and the first step's gradients. One compiled value-and-grad serves
  both the gradient test and the training run.
  """
  r = _rng(16)
  p = params.replace(points=params.points.replace(
      sh=params.points.sh.at[0, :, 1:].set(0.1 * r.standard_normal((N, 8))),
      rotation=jnp.asarray(_random_quats(N, 17), jnp.float32)))
  b = 4
  poses = _poses(b, 14)
  src = _source(15)
  freq = np.linspace(0.0, 1.0, F)[:, None]
  yaw = np.arctan2(np.asarray(poses[:, 0, 2]), np.asarray(poses[:, 0, 0]))
  side = 0.35 * np.sin(yaw)[:, None, None] * (1.0 - 0.5 * freq)
  gains = np.stack([0.45 + side, 0.45 - side], 1) * np.ones((1, 1, 1, T))   # [B, 2, F, T]
  target = jnp.asarray(gains, jnp.float32) * src[None, None]

  value_and_grad = jax.jit(jax.value_and_grad(
      lambda q: a3.loss(a3.render_batch(q, poses, src, CFG), target), has_aux=True))
  opt = optax.adam(3e-2)

  @jax.jit
  def update(g, state, q):
    updates, state = opt.update(g, state, q)
    return optax.apply_updates(q, updates), state

  state = opt.init(p)
  losses, first_grads = [], None
  for _ in range(150):
    (val, _), g = value_and_grad(p)
    first_grads = g if first_grads is None else first_grads
    p, state = update(g, state, p)
    losses.append(float(val))
  return np.asarray(losses), first_grads


def test_gradients_reach_every_parameter(training_run):
  _, grads = training_run
  for name, g in [("xyz", grads.points.xyz), ("sh", grads.points.sh),
                  ("rotation", grads.points.rotation)]:
    g = np.asarray(g)
    assert np.all(np.isfinite(g)), name
    assert np.mean(np.any(g != 0, axis=-1)) > 0.5, name   # most points get a gradient
  leaves = jax.tree_util.tree_leaves(grads.unet)
  assert all(np.all(np.isfinite(np.asarray(l))) for l in leaves)
  assert all(np.abs(np.asarray(l)).max() > 0 for l in leaves)


def test_short_training_run_fits_a_synthetic_scene(training_run):
  losses, _ = training_run
  assert np.all(np.isfinite(losses))
  assert losses[-1] < losses[0] / 10.0, (losses[0], losses[-1])
