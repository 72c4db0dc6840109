"""renderer: physics acceptance checks, the float64 reference, batching, compilation, ablations.

Two grids:
- the *physics* grid: 1 s of white noise at 22050 Hz, n_fft 512 / hop 128
  (F = 257, T = 173, N = 44461 Gaussians), one render config, one Gaussians
  structure, so a handful of compilations serve every physics test;
- a *tiny* grid (n_fft 32, F = 17, T = 5) for the float64 reference, gradients and
  batching, where each config is a cheap compile.

Listener convention (geometry.yaw_pose): yaw 0 faces world +x with z up, so the
listener's left is world +y.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from audiogs_jax import dsp
from audiogs_jax import geometry
from audiogs_jax import predict
from audiogs_jax import renderer
from audiogs_jax import sh as sh_lib
from audiogs_jax.gaussians import (GaussianGrid, Gaussians, init_gaussians, inverse_softplus,
                                   to_grid)

SR = 22050
A = 0.0875


from _jitutil import fast_jit as _jit
C = 343.0

# ---------------------------------------------------------------------------------
# Physics grid
# ---------------------------------------------------------------------------------

# r_min small so that the 1/r^p law holds down to the close-range cluster below.
PHYS = renderer.RenderConfig(sample_rate=SR, n_fft=512, hop_length=128, r_min=0.01)
NUM_SAMPLES = SR
F_P = PHYS.num_freqs
T_P = dsp.num_frames(NUM_SAMPLES, 512, 128)



def _waveform(grid, pose, src_tf, config, length):
  """One pose's binaural waveform ``[2, length]``: ``renderer.render`` then ISTFT."""
  spec = renderer.render(grid, pose[None], src_tf, config)[0]
  return dsp.istft_frames(spec, length=length, **config.stft_kwargs())


def _spectrum(grid, pose, src_tf, config):
  """One pose's binaural STFT ``[2, T, F]``."""
  return renderer.render(grid, pose[None], src_tf, config)[0]


_render_wave = _jit(_waveform, static_argnames=("config", "length"))
_render_spec_grid = _jit(_spectrum, static_argnames=("config",))
_stft_p = _jit(functools.partial(dsp.stft_frames, **PHYS.stft_kwargs()))


def _render_spec(g, pose, src_tf, config):
  return _render_spec_grid(to_grid(g, F_P), pose, src_tf, config=config)


@pytest.fixture(scope="module")
def noise_stft():
  x = np.random.default_rng(0).standard_normal(NUM_SAMPLES).astype(np.float32)
  return _stft_p(jnp.asarray(x))


def _cluster(center, *, spread=0.01, p=float(np.log(2.0)), seed=0):
  """Isotropic cluster of N = F * T Gaussians: degree-2 SH with zero higher
  coefficients (gain 1 in every direction), attenuation exponent p, phase 0."""
  return init_gaussians(jax.random.PRNGKey(seed), F_P, T_P, sh_degree=2, center=center,
                        spread=spread, dual=True, learn_phase=True,
                        init_decay=inverse_softplus(p))


def _facing_x(position=(0.0, 0.0, 0.0)):
  return jnp.asarray(geometry.yaw_pose(position, 0.0), jnp.float32)


def _wave(g, pose, src, config=PHYS):
  return np.asarray(_render_wave(to_grid(g, F_P), pose, src, config=config, length=NUM_SAMPLES),
                    np.float64)


def _lag(left, right):
  """Lag (samples, parabolic sub-sample peak) by which ``right`` trails ``left``."""
  xc = scipy.signal.correlate(right, left, mode="full", method="fft")
  lags = scipy.signal.correlation_lags(right.size, left.size, mode="full")
  i = int(np.argmax(xc))
  y0, y1, y2 = xc[i - 1], xc[i], xc[i + 1]
  return lags[i], lags[i] + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)


def _lre_db(wave):
  return 10.0 * np.log10(np.sum(wave[0] ** 2) / np.sum(wave[1] ** 2))


# (1) a cluster on the left: ITD and level difference --------------------------------

def test_itd_of_a_cluster_at_90_degrees(noise_stft):
  """Cluster 2 m to the left (azimuth 90 deg): the right ear lags by 2a/c*sr ~ 11.25
  samples, from the geometry-guided phase correction alone (isotropic SH)."""
  g = _cluster((0.0, 2.0, 0.0))
  wave = _wave(g, _facing_x(), noise_stft)
  assert wave.shape == (2, NUM_SAMPLES)
  r_left, r_right = 2.0 - A, 2.0 + A
  expected = (r_right - r_left) / C * SR
  assert expected == pytest.approx(11.25, abs=0.01)
  lag, lag_frac = _lag(wave[0], wave[1])
  assert abs(lag - expected) <= 1.0, (lag, expected)
  assert abs(lag_frac - expected) < 0.5, (lag_frac, expected)
  # Mirror image: a cluster on the right makes the left ear lag.
  lag_r, _ = _lag(*_wave(_cluster((0.0, -2.0, 0.0)), _facing_x(), noise_stft))
  assert abs(lag_r + expected) <= 1.0, lag_r


def test_left_cluster_is_louder_left_close_range(noise_stft):
  """Isotropic SH: the level difference comes only from the 1/r^p law. At 2 m that is
  20 p log10(2.0875 / 1.9125) = 0.76 p dB, under 3 dB for any sensible p, so the
  cluster sits 0.25 m to the left, with p = 2:
  LRE = 20 p log10(r_R / r_L) = 40 log10(0.3375 / 0.1625) = 12.7 dB."""
  p = 2.0
  g = _cluster((0.0, 0.25, 0.0), spread=0.003, p=p)
  wave = _wave(g, _facing_x(), noise_stft)
  lre = _lre_db(wave)
  expected = 20.0 * p * np.log10((0.25 + A) / (0.25 - A))
  assert lre > 3.0
  assert lre == pytest.approx(expected, abs=0.3)


def test_left_cluster_is_louder_left_dual_sh_lobe(noise_stft):
  """At 2 m, a directional lobe in the dual SH fields gives the level difference:
  the left field points its Y_3 (= -C1 x) lobe at head -x (the left side), the right
  field away from it. Both ears see the source near u = -x, so
  A_L = 1 + b C1, A_R = 1 - b C1, and LRE = 20 log10(A_L D_L / (A_R D_R))."""
  b_c1 = 0.5
  g = _cluster((0.0, 2.0, 0.0))
  sh = np.array(g.sh)
  sh[0, :, 3], sh[1, :, 3] = b_c1 / sh_lib.C1, -b_c1 / sh_lib.C1
  g = g.replace(sh=jnp.asarray(sh))
  wave = _wave(g, _facing_x(), noise_stft)
  p = float(np.log(2.0))
  expected = 20.0 * np.log10((1 + b_c1) / (1 - b_c1) * ((2.0 + A) / (2.0 - A)) ** p)
  lre = _lre_db(wave)
  assert lre > 3.0
  assert lre == pytest.approx(expected, abs=0.2)


# (2) distance law -----------------------------------------------------------------

@pytest.mark.parametrize("p", [float(np.log(2.0)), 1.0, 2.0])
def test_twice_as_far_follows_attenuation_law(noise_stft, p):
  """All Gaussians at one point 0.5 m then 1 m in front: each ear is at
  r = sqrt(d^2 + a^2), and the energy ratio is (r1 / r2)^(2p)."""
  g = _cluster((1.0, 0.0, 0.0), spread=0.0, p=p)
  near, far = _facing_x((0.5, 0.0, 0.0)), _facing_x((0.0, 0.0, 0.0))
  r1, r2 = np.hypot(0.5, A), np.hypot(1.0, A)
  expected = (r1 / r2) ** (2 * p)
  spec_near = np.asarray(_render_spec(g, near, noise_stft, config=PHYS))
  spec_far = np.asarray(_render_spec(g, far, noise_stft, config=PHYS))
  e_near = np.sum(np.abs(spec_near) ** 2, axis=(1, 2))
  e_far = np.sum(np.abs(spec_far) ** 2, axis=(1, 2))
  np.testing.assert_allclose(e_far / e_near, expected, rtol=1e-4)
  # Waveform energies agree to within the small effect of the (distance-dependent,
  # sub-sample) ITD phase on the overlap-add.
  w_near, w_far = _wave(g, near, noise_stft), _wave(g, far, noise_stft)
  np.testing.assert_allclose(np.sum(w_far ** 2, 1) / np.sum(w_near ** 2, 1), expected, rtol=5e-3)
  # Far from the head the law is the plain (d1 / d2)^(2p) = 2^(-2p).
  assert e_far[0] / e_near[0] == pytest.approx(0.5 ** (2 * p), rel=0.05)


# (3) turning the head by 180 degrees swaps the ears ---------------------------------

# Rotating the head by pi about its up axis maps head-frame (x, y, z) to (-x, y, -z).
# Y_k(-x, y, -z) = s_k Y_k(x, y, z): s_k = -1 for the terms odd in (x, z).
_MIRROR = np.array([1, 1, -1, -1, -1, -1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1], np.float32)


def test_head_turn_180_swaps_ears(noise_stft):
  """A mirror-consistent dual field (right = left composed with the mirror) with
  non-trivial directivity and a shared learned phase: turning the head swaps L/R."""
  rng = np.random.default_rng(4)
  g = _cluster((1.2, 0.7, 0.3), spread=0.2)
  n = g.num
  left = np.zeros((n, 9), np.float32)
  left[:, 0] = 1.0 / sh_lib.C0
  left[:, 1:] = rng.normal(0.0, 0.6, (n, 8))
  sh = np.stack([left, left * _MIRROR[:9]])
  phase = np.tile(rng.uniform(-np.pi, np.pi, n).astype(np.float32), (2, 1))
  g = g.replace(sh=jnp.asarray(sh), phase=jnp.asarray(phase),
                decay=jnp.asarray(rng.normal(0.0, 1.0, n), jnp.float32))
  pose = geometry.yaw_pose([0.1, -0.2, 0.0], 0.3)
  turned = geometry.rotate_pose_yaw(pose, np.pi)
  w = _wave(g, jnp.asarray(pose, jnp.float32), noise_stft)
  w_turned = _wave(g, jnp.asarray(turned, jnp.float32), noise_stft)
  peak = np.abs(w).max()
  # The two ears really differ, so the swap is not trivially satisfied.
  assert np.abs(w[0] - w[1]).max() > 0.1 * peak
  np.testing.assert_allclose(w_turned, w[::-1], atol=2e-5 * peak)


# (4) gradients w.r.t. every field -------------------------------------------------

TINY = renderer.RenderConfig(sample_rate=SR, n_fft=32, hop_length=8)
F_T, T_T = TINY.num_freqs, 5
N_T = F_T * T_T


def _tiny_flat(seed=0, degree=2, dual=True, log_scale=False, phase=True):
  """Random Gaussians 0.5-2 m from the origin (the listeners stand within ~0.3 m of
  it, so no ear distance reaches r_min), with random positive-leaning SH fields,
  decays and phases, in the flat ``Gaussians`` layout (index f * T + t)."""
  rng = np.random.default_rng(seed)
  k = (degree + 1) ** 2
  e = 2 if dual else 1
  dirs = rng.normal(size=(N_T, 3))
  dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
  xyz = dirs * rng.uniform(0.5, 2.0, (N_T, 1))
  sh = rng.normal(0.0, 0.5, (e, N_T, k))
  sh[..., 0] = rng.uniform(1.0, 4.0, (e, N_T))
  kw = {}
  if phase:
    kw["phase"] = jnp.asarray(rng.uniform(-np.pi, np.pi, (2, N_T)), jnp.float32)
  if log_scale:
    kw["log_scale"] = jnp.asarray(np.log(0.8), jnp.float32)
    xyz = xyz / 0.8
  return Gaussians(xyz=jnp.asarray(xyz, jnp.float32), sh=jnp.asarray(sh, jnp.float32),
                   decay=jnp.asarray(rng.normal(0.0, 1.0, N_T), jnp.float32), **kw)


def _tiny_gaussians(seed=0, **kw):
  """``_tiny_flat`` on the renderer's ``[..., T, F]`` grid."""
  return to_grid(_tiny_flat(seed, **kw), F_T)


def _tiny_source(seed=1, batch=()):
  """Complex source STFTs, frames-major ``batch + [T, F]``."""
  rng = np.random.default_rng(seed)
  shape = batch + (T_T, F_T)
  return jnp.asarray(rng.normal(size=shape) + 1j * rng.normal(size=shape), jnp.complex64)


def _tiny_poses(b=3, seed=2):
  rng = np.random.default_rng(seed)
  return jnp.asarray(np.stack([geometry.yaw_pose(rng.normal(0.0, 0.1, 3), y)
                               for y in rng.uniform(-np.pi, np.pi, b)]), jnp.float32)


def _loss_single(g, pose, src, target, config):
  return jnp.sum(jnp.abs(renderer.render(g, pose[None], src, config)[0] - target) ** 2)


def _loss_batch(g, poses, src, target, config):
  return jnp.sum(jnp.abs(renderer.render(g, poses, src, config) - target) ** 2)


_grad_single = _jit(jax.grad(_loss_single), static_argnums=4)
_grad_batch = _jit(jax.grad(_loss_batch), static_argnums=4)

FIELDS = ("xyz", "sh", "decay", "phase", "log_scale")


def _reference_loss(g, poses, src, target, config):
  """The same loss through the slow numpy reference, summed over poses."""
  return sum(np.sum(np.abs(renderer.render_reference(g, poses[i], src, config) - target[i]) ** 2)
             for i in range(poses.shape[0]))


def _check_gradients(grads, g, poses, src, target, config, fields, seed=0):
  """Every field's gradient is finite and nonzero, and its directional derivative
  along a random direction matches a central difference of the reference loss."""
  rng = np.random.default_rng(seed)
  poses, src, target = np.asarray(poses, np.float64), np.asarray(src), np.asarray(target)
  g64 = jax.tree.map(lambda a: np.asarray(a, np.float64), g)
  for name in fields:
    grad = np.asarray(getattr(grads, name), np.float64)
    assert np.all(np.isfinite(grad)), name
    assert np.any(grad != 0.0), name
    v = rng.standard_normal(grad.shape)
    eps = 1e-4
    plus = g64.replace(**{name: getattr(g64, name) + eps * v})
    minus = g64.replace(**{name: getattr(g64, name) - eps * v})
    fd = (_reference_loss(plus, poses, src, target, config)
          - _reference_loss(minus, poses, src, target, config)) / (2 * eps)
    an = float(np.sum(grad * v))
    assert abs(an - fd) < 2e-3 * max(abs(fd), 1e-3 * np.abs(grad).sum()), (name, an, fd)


def test_gradients_every_field_single_render():
  """Autodiff of ``formula.gains`` (``custom_backward=False``) through ``render`` of one
  pose (degree-2 dual SH, log scale, learned phase): every field gets a finite,
  nonzero, correct gradient."""
  cfg = dataclasses.replace(TINY, custom_backward=False)
  g = _tiny_gaussians(degree=2, log_scale=True)
  pose = _tiny_poses(1)[0]
  src, target = _tiny_source(), _tiny_source(seed=5, batch=(1, 2))
  grads = _grad_single(g, pose, src, target[0], cfg)
  assert isinstance(grads, GaussianGrid)
  # Higher-order SH coefficients receive gradient (directionality is learnable).
  assert np.any(np.asarray(grads.sh)[:, 4:] != 0.0)
  _check_gradients(grads, g, pose[None], src, target, cfg, FIELDS)


def test_gradients_every_field_render_batch():
  """The training path: ``render`` over several poses with the default (hand-derived,
  ``renderer.backward``) backward pass, softplus activation."""
  cfg = dataclasses.replace(TINY, activation="softplus")
  assert cfg.custom_backward
  g = _tiny_gaussians(seed=1, degree=2, log_scale=True)
  poses = _tiny_poses(3)
  src, target = _tiny_source(), _tiny_source(seed=6, batch=(3, 2))
  grads = _grad_batch(g, poses, src, target, cfg)
  _check_gradients(grads, g, poses, src, target, cfg,
                   ("xyz", "sh", "decay", "phase", "log_scale"), seed=1)


# (5) reference, jit, batching, layouts ----------------------------------------------

_render_tiny_batch = _jit(renderer.render, static_argnums=3)


def _render_tiny(g, pose, src, config):
  """One pose ``[4, 4]`` -> ``[2, T, F]`` (a batch of one through ``renderer.render``)."""
  return _render_tiny_batch(g, pose[None], src, config)[0]


REF_CASES = {
    "default": (dict(), dict()),
    "no_attenuation": (dict(use_attenuation=False), dict()),
    "no_sh_directionality": (dict(use_sh_directionality=False), dict()),
    "no_phase_correction": (dict(use_phase_correction=False), dict()),
    "no_learned_phase": (dict(use_learned_phase=False), dict()),
    "content_mode": (dict(content_mode=True), dict()),
    "softplus": (dict(activation="softplus"), dict()),
    "dual_sh_off": (dict(dual_sh=False), dict()),
    "exact_math": (dict(fast_math=False), dict()),
    "log_scale": (dict(), dict(log_scale=True)),
    "single_field": (dict(), dict(dual=False)),
    "degree0": (dict(), dict(degree=0)),
    "degree3_no_phase": (dict(metres_per_unit=1.3), dict(degree=3, phase=False)),
    "woodworth": (dict(itd_model="woodworth"), dict()),
}


@pytest.mark.parametrize("case", sorted(REF_CASES))
def test_render_matches_float64_reference(case):
  cfg_kw, g_kw = REF_CASES[case]
  cfg = dataclasses.replace(TINY, **cfg_kw)
  g = _tiny_gaussians(seed=sorted(REF_CASES).index(case), **g_kw)
  src = _tiny_source()
  pose = _tiny_poses(1, seed=3)[0]
  got = np.asarray(_render_tiny(g, pose, src, cfg))
  ref = renderer.render_reference(g, np.asarray(pose), np.asarray(src), cfg)
  assert got.shape == ref.shape == (2, T_T, F_T)
  assert ref.dtype == np.complex128
  scale = np.abs(ref).max()
  assert scale > 0
  err = np.abs(got - ref).max() / scale
  assert err < 2e-5, err


def test_reference_cases_are_distinct():
  """Each ablation switch changes the output (so the reference comparison covers it)."""
  src, pose = _tiny_source(), _tiny_poses(1, seed=3)[0]
  g = _tiny_gaussians(seed=9)
  base = renderer.render_reference(g, np.asarray(pose), np.asarray(src), TINY)
  for kw in (dict(use_attenuation=False), dict(use_sh_directionality=False),
             dict(use_phase_correction=False), dict(use_learned_phase=False),
             dict(itd_model="woodworth"),
             dict(content_mode=True), dict(activation="softplus"), dict(dual_sh=False)):
    other = renderer.render_reference(g, np.asarray(pose), np.asarray(src),
                                      dataclasses.replace(TINY, **kw))
    assert np.abs(other - base).max() > 1e-2 * np.abs(base).max(), kw


def test_jit_equals_eager():
  # Degree 0, exact (jnp) sin/cos/exp/log: the fewest distinct primitives to
  # compile one by one in eager mode.
  cfg = dataclasses.replace(TINY, fast_math=False)
  g = _tiny_gaussians(seed=11, degree=0, phase=False)
  src, pose = _tiny_source(), _tiny_poses(1, seed=4)[0]
  eager = np.asarray(renderer.render(g, pose[None], src, cfg)[0])
  jitted = np.asarray(_render_tiny(g, pose, src, cfg))
  # Equal up to float32 rounding (XLA fuses and may contract to FMAs under jit; the
  # ITD phase, up to ~20 rad, amplifies that to ~1e-5).
  np.testing.assert_allclose(jitted, eager, atol=1e-4 * np.abs(eager).max())


_fields = _jit(renderer.fields, static_argnums=1)
TINY_LEN = 8 * (T_T - 1)


def test_render_batch_equals_stack_of_single_renders():
  g = _tiny_gaussians(seed=12)
  poses = _tiny_poses(4, seed=5)
  src1, srcb = _tiny_source(seed=7), _tiny_source(seed=8, batch=(4,))
  batch1 = np.asarray(_render_tiny_batch(g, poses, src1, TINY))
  batchb = np.asarray(_render_tiny_batch(g, poses, srcb, TINY))
  assert batch1.shape == batchb.shape == (4, 2, T_T, F_T)
  for i in range(4):
    np.testing.assert_allclose(batch1[i], np.asarray(_render_tiny(g, poses[i], src1, TINY)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batchb[i], np.asarray(_render_tiny(g, poses[i], srcb[i], TINY)),
                               rtol=1e-5, atol=1e-6)


def _waves(params, poses, src_tf):
  """Batch waveforms ``[B, 2, TINY_LEN]``: ``renderer.render`` then ``dsp.istft_frames``."""
  return dsp.istft_frames(renderer.render(params, poses, src_tf, TINY), length=TINY_LEN,
                          **TINY.stft_kwargs())


@_jit
def _waveform_paths(g, poses, x):
  """The same batch of waveforms several ways, in one compiled program."""
  src_tf = dsp.stft_frames(x, **TINY.stft_kwargs())
  default = _waves(g, poses, src_tf)
  # One shared source [T, F] for every pose == that source broadcast to [B, T, F].
  shared = _waves(g, poses, src_tf[0])
  shared_b = _waves(g, poses, jnp.broadcast_to(src_tf[0], src_tf.shape))
  singles = jnp.stack([_waves(g, poses[i:i + 1], src_tf[i])[0]
                       for i in range(poses.shape[0])])
  return src_tf, default, shared, shared_b, singles


def test_waveform_paths_agree():
  """Waveforms of ``renderer.render`` + ``dsp.istft_frames``: the batch == the
  float64 reference's waveforms == single-pose renders == padded batches of 2
  (``predict.predict_waveforms``); a shared [T, F] source == it broadcast per pose;
  rendering from ``fields`` computed once (outside the render's jit) == from the grid."""
  g = _tiny_gaussians(seed=13)
  poses = _tiny_poses(3, seed=6)
  x = jnp.asarray(np.random.default_rng(9).standard_normal((3, TINY_LEN)), jnp.float32)
  src_tf, default, shared, shared_b, singles = map(np.asarray, _waveform_paths(g, poses, x))
  assert src_tf.shape == (3, T_T, F_T)
  assert default.shape == shared.shape == singles.shape == (3, 2, TINY_LEN)
  peak = np.abs(default).max()
  assert peak > 0
  # Against the float64 reference's STFTs (inverted by the same dsp.istft_frames).
  ref = np.stack([renderer.render_reference(g, np.asarray(poses[i]), src_tf[i], TINY)
                  for i in range(3)])
  ref_wave = np.asarray(dsp.istft_frames(jnp.asarray(ref, jnp.complex64), length=TINY_LEN,
                                         **TINY.stft_kwargs()))
  np.testing.assert_allclose(default, ref_wave, atol=2e-5 * peak)
  np.testing.assert_allclose(shared, shared_b, atol=1e-6 * peak)
  np.testing.assert_allclose(singles, default, atol=1e-5 * peak)
  # 3 poses in batches of 2: one padded batch, outputs trimmed.
  wave_fn = _jit(_waves)
  chunked = predict.predict_waveforms(None, g, poses, jnp.asarray(src_tf), TINY_LEN, None,
                                      batch_size=2,
                                      predict=lambda p, ps, s, ref: wave_fn(p, ps, s))
  assert chunked.shape == (3, 2, TINY_LEN)
  np.testing.assert_allclose(chunked, default, atol=1e-6 * peak)
  # Fields prepared once (outside the render's jit), then rendered from.
  f = _fields(g, TINY)
  assert isinstance(f, renderer.Fields)
  from_fields = np.asarray(wave_fn(f, poses, jnp.asarray(src_tf)))
  np.testing.assert_allclose(from_fields, default, atol=1e-5 * peak)


_gains_tiny = _jit(renderer.gains, static_argnums=2)


def test_gains_layouts():
  """``gains``: complex64 ``[B, 2, T, F]``, the float64 reference's gains (its render of
  a source of ones) and bin (t, f) <-> Gaussian f * T + t of the flat layout."""
  flat = _tiny_flat(seed=14)
  g = to_grid(flat, F_T)
  pose = _tiny_poses(1, seed=7)[0]
  gains = np.asarray(_gains_tiny(g, pose[None], TINY))
  assert gains.shape == (1, 2, T_T, F_T) and gains.dtype == np.complex64
  gains = gains[0]
  ref = renderer.render_reference(g, np.asarray(pose), np.ones((T_T, F_T), np.complex64), TINY)
  assert np.abs(gains - ref).max() < 2e-5 * np.abs(ref).max()
  # Bin (t, f) <-> Gaussian f * T + t: moving Gaussian f*T+t changes only that bin.
  f, t = 6, 3
  g2 = to_grid(flat.replace(xyz=flat.xyz.at[f * T_T + t].add(0.3)), F_T)
  gains2 = np.asarray(_gains_tiny(g2, pose[None], TINY))[0]
  changed = np.abs(gains2 - gains).max(axis=0) > 0
  assert changed[t, f] and changed.sum() == 1


def test_fields_rejects_wrong_gaussian_count():
  """A Gaussian count that is not a multiple of F: ``to_grid`` refuses it; a grid of
  another F than the config's: ``renderer.fields`` refuses it."""
  flat = _tiny_flat()
  bad = flat.replace(xyz=flat.xyz[:-1], sh=flat.sh[:, :-1], decay=flat.decay[:-1],
                     phase=flat.phase[:, :-1])
  with pytest.raises(ValueError):
    to_grid(bad, F_T)
  g = _tiny_gaussians()
  narrow = g.replace(xyz=g.xyz[..., :-1], sh=g.sh[..., :-1], decay=g.decay[..., :-1],
                     phase=g.phase[..., :-1])
  with pytest.raises(ValueError):
    renderer.fields(narrow, TINY)
  with pytest.raises(ValueError):
    renderer.render(narrow, _tiny_poses(1), _tiny_source()[:, :-1], TINY)


# (6) one compilation for a fixed batch shape ----------------------------------------

_TRACES = []


def _counted_wave_batch(g, poses, src, config, length):
  _TRACES.append(1)            # Python side effect: runs once per trace
  return dsp.istft_frames(renderer.render(g, poses, src, config), length=length,
                          **config.stft_kwargs())


_counted = _jit(_counted_wave_batch, static_argnames=("config", "length"))


def test_one_compilation_for_a_fixed_batch_shape():
  poses_a, poses_b = _tiny_poses(4, seed=20), _tiny_poses(4, seed=21)
  g_a, g_b = _tiny_gaussians(seed=20), _tiny_gaussians(seed=21)
  src_a, src_b = _tiny_source(seed=20, batch=(4,)), _tiny_source(seed=21, batch=(4,))
  out_a = _counted(g_a, poses_a, src_a, config=TINY, length=TINY_LEN)
  size_a = _counted._cache_size()
  assert len(_TRACES) == 1 and size_a == 1
  out_b = _counted(g_b, poses_b, src_b, config=TINY, length=TINY_LEN)
  assert _counted._cache_size() == size_a
  assert len(_TRACES) == 1
  assert np.abs(np.asarray(out_a) - np.asarray(out_b)).max() > 0   # new values went in
  # A new batch shape does compile again (the counter can tell).
  _counted(g_b, poses_b[:2], src_b[:2], config=TINY, length=TINY_LEN)
  assert len(_TRACES) == 2 and _counted._cache_size() == size_a + 1


# (7) ablation switches ------------------------------------------------------------

def test_no_attenuation_level_independent_of_distance(noise_stft):
  cfg = dataclasses.replace(PHYS, use_attenuation=False)
  g = _cluster((1.0, 0.0, 0.0), spread=0.0, p=2.0)
  near, far = _facing_x((0.5, 0.0, 0.0)), _facing_x((-3.0, 0.0, 0.0))
  e_near = np.sum(np.abs(np.asarray(_render_spec(g, near, noise_stft, config=cfg))) ** 2)
  e_far = np.sum(np.abs(np.asarray(_render_spec(g, far, noise_stft, config=cfg))) ** 2)
  assert e_far == pytest.approx(e_near, rel=1e-5)
  # With attenuation on, the same move loses (r1 / r2)^4 of the energy.
  e_near_on = np.sum(np.abs(np.asarray(_render_spec(g, near, noise_stft, config=PHYS))) ** 2)
  e_far_on = np.sum(np.abs(np.asarray(_render_spec(g, far, noise_stft, config=PHYS))) ** 2)
  assert e_far_on / e_near_on < 0.01


def test_no_sh_directionality_ignores_higher_coefficients():
  rng = np.random.default_rng(30)
  g = _tiny_gaussians(seed=30)
  g_iso = g.replace(sh=g.sh.at[:, 1:].set(0.0))
  g_other = g.replace(sh=g.sh.at[:, 1:].set(jnp.asarray(rng.normal(0, 1, g.sh[:, 1:].shape),
                                                        jnp.float32)))
  src, pose = _tiny_source(), _tiny_poses(1, seed=8)[0]
  off = dataclasses.replace(TINY, use_sh_directionality=False)
  base = np.asarray(_render_tiny(g_iso, pose, src, off))
  for h in (g, g_other):
    np.testing.assert_array_equal(np.asarray(_render_tiny(h, pose, src, off)), base)
  # Switched on, the higher coefficients do change the output.
  on = np.asarray(_render_tiny(g, pose, src, TINY))
  assert np.abs(on - np.asarray(_render_tiny(g_iso, pose, src, TINY))).max() > 1e-2 * np.abs(on).max()


def test_no_phase_correction_removes_itd(noise_stft):
  cfg = dataclasses.replace(PHYS, use_phase_correction=False)
  g = _cluster((0.0, 2.0, 0.0), spread=0.0)
  wave = _wave(g, _facing_x(), noise_stft, config=cfg)
  lag, lag_frac = _lag(wave[0], wave[1])
  assert lag == 0 and abs(lag_frac) < 0.05
  # Isotropic field, no ITD: the ears differ only by the distance gain.
  ratio = ((2.0 - A) / (2.0 + A)) ** np.log(2.0)
  np.testing.assert_allclose(wave[1], wave[0] * ratio, atol=1e-4 * np.abs(wave).max())


def test_woodworth_itd_of_a_lateral_gaussian():
  """One Gaussian 3 m to the listener's left: the interaural phase slope is the
  spherical-head ITD (a / c)(pi / 2 + 1), larger than the straight line's 2 a / c."""
  cfg = dataclasses.replace(TINY, itd_model="woodworth", use_learned_phase=False,
                            sample_rate=SR)
  g = _tiny_gaussians(seed=2, degree=0, phase=False)
  pose = np.asarray(geometry.yaw_pose([0.0, 0.0, 0.0], 0.0))
  xyz = np.zeros_like(np.asarray(g.xyz))
  xyz[1] = 3.0                                      # world +y: the listener's left
  g = g.replace(xyz=jnp.asarray(xyz, jnp.float32))
  src = np.ones((T_T, F_T), np.complex64)
  for model, itd in (("woodworth", A / C * (np.pi / 2 + 1)), ("straight", 2 * A / C)):
    c = dataclasses.replace(cfg, itd_model=model)
    out = np.asarray(renderer.render_reference(g, pose, src, c))
    ipd = np.angle(out[0] * np.conj(out[1]))[0]     # [F]: left leads -> positive phase
    freqs = dsp.frequencies(c.n_fft, c.sample_rate)
    slope = np.polyfit(2 * np.pi * freqs[1:4], np.unwrap(ipd[1:4]), 1)[0]
    assert slope == pytest.approx(itd, rel=0.02), model


def test_predict_in_two_programs_equals_one():
  """With a tail, ``predict.make_predict`` renders in two compiled programs
  (``RenderModel.render_parts``): the same waveforms as ``render`` + ISTFT in one."""
  from audiogs_jax import config as config_lib, dataset, dsp, predict
  from audiogs_jax.models import get_model
  from audiogs_jax.models import audiogs as audiogs_model
  from audiogs_jax.renderer import tail as tail_lib
  cfg = config_lib.load_config_file(config_lib.default_config_path())
  cfg.model.audiogs.tail_frames = 8
  cfg.model.n_fft, cfg.model.hop_length = 256, 64
  rc = audiogs_model.render_config(cfg)
  length = 2048
  t = dsp.num_frames(length, 256, 64)
  key = jax.random.PRNGKey(4)
  g = to_grid(init_gaussians(key, rc.num_freqs, t, sh_degree=2, center=(0.0, 0.0, 0.0),
                             spread=0.5, log_scale=0.0), rc.num_freqs)
  g = g.replace(tail=tail_lib.init(key, rc.num_freqs, hop_length=64, sample_rate=22050,
                                   learn_phase=False, level=0.3))
  rng = np.random.default_rng(0)
  src = jnp.asarray(rng.standard_normal((3, length)).astype(np.float32))
  src_tf = dataset.source_frames(src, src, cfg)
  poses = jnp.asarray(np.tile(np.eye(4, dtype=np.float32), (3, 1, 1)))
  poses = poses.at[:, :3, 3].set(jnp.asarray(rng.uniform(-1, 1, (3, 3)), jnp.float32))
  model = get_model("audiogs")
  assert model.render_parts(cfg) is not None
  two = predict.make_predict(model, cfg)(g, poses, src_tf, jnp.zeros((length,)))
  one = dsp.istft_frames(renderer.render(g, poses, src_tf, rc), length=length,
                         n_fft=256, hop_length=64)
  np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-6 * float(jnp.max(jnp.abs(one))))
  cfg.model.audiogs.tail_frames = 0
  assert model.render_parts(cfg) is None
