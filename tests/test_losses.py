"""Loss terms of audiogs_jax.losses against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np

from audiogs_jax import losses
from audiogs_jax.config import load_config_file
from audiogs_jax.models import SceneInfo, get_model


def test_frame_tie_closed_form():
  # [T=2, F=3]: frames (a, b) deviate from their mean by +-(a - b) / 2.
  x = jnp.asarray([[1.0, 2.0, 3.0], [3.0, 2.0, -1.0]])
  # deviations: (1, 0, 2) on both rows -> mean of squares = (1 + 0 + 4) / 3
  np.testing.assert_allclose(float(losses.frame_tie([x])), 5.0 / 3.0, rtol=1e-6)
  # Leading axes are averaged over; None fields are skipped; fields add up.
  y = jnp.stack([x, 2 * x])                   # [2, T, F]: mean of 5/3 and 4 * 5/3
  np.testing.assert_allclose(float(losses.frame_tie([y, None])), 2.5 * 5.0 / 3.0, rtol=1e-6)
  np.testing.assert_allclose(float(losses.frame_tie([x, y])), 3.5 * 5.0 / 3.0, rtol=1e-6)
  # Zero for frame-constant parameters, whatever they are across frequencies.
  const = jnp.broadcast_to(jnp.arange(5.0), (7, 5))
  assert float(losses.frame_tie([const])) < 1e-10


def test_frame_tie_gradient_pulls_frames_to_their_mean():
  x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 6)), jnp.float32)
  g = jax.grad(lambda v: losses.frame_tie([v]))(x)
  expected = 2.0 * (x - x.mean(axis=0, keepdims=True)) / x.size
  np.testing.assert_allclose(np.asarray(g), np.asarray(expected), rtol=1e-5, atol=1e-7)


def test_audiogs_loss_adds_the_weighted_term():
  config = load_config_file("configs/smoke.py")
  model = get_model("audiogs")
  info = SceneInfo(num_freqs=257, num_frames=5, sample_rate=22050, center=(0.0, 0.0, 0.0),
                   metres_per_unit=1.0)
  params = model.init(jax.random.PRNGKey(0), info, config)
  rng = np.random.default_rng(1)
  shape = (1, 2, 5, 257)
  pred = jnp.asarray(rng.standard_normal(shape) + 1j * rng.standard_normal(shape), jnp.complex64)
  target = jnp.asarray(rng.standard_normal(shape) + 1j * rng.standard_normal(shape),
                       jnp.complex64)
  base, parts0 = model.loss(params, pred, target, None, config)
  assert "frame_tie" not in parts0
  config.model.audiogs.frame_tie_weight = 3.0
  total, parts = model.loss(params, pred, target, None, config)
  tie = losses.frame_tie((params.xyz, params.sh, params.decay, params.phase))
  assert float(tie) > 0  # random initial positions differ between frames
  np.testing.assert_allclose(float(parts["frame_tie"]), float(tie), rtol=1e-6)
  np.testing.assert_allclose(float(total), float(base) + 3.0 * float(tie), rtol=1e-5)
