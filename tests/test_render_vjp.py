"""The hand-derived backward pass (``renderer.backward``) against JAX autodiff of
``renderer.formula.gains`` (``RenderConfig.custom_backward=False``), for every field
and the main config switches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiogs_jax import geometry, losses
from audiogs_jax import renderer as R
from audiogs_jax.gaussians import init_gaussians, to_grid

F, T, B = 17, 5, 3
BASE = dict(n_fft=32, hop_length=8)
CASES = [  # each case switches several things, to keep compilations few
    ({"log_scale": 0.5}, {}),
    ({"log_scale": 0.5}, {"activation": "softplus", "fast_math": False, "r_min": 2.0}),
    ({"sh_degree": 3, "dual": False}, {"dual_sh": False, "use_attenuation": False}),
    ({}, {"use_phase_correction": False, "use_sh_directionality": False}),
    ({"log_scale": 0.5}, {"itd_model": "woodworth"}),
]


def _setup(gkw):
  key = jax.random.PRNGKey(1)
  g = init_gaussians(key, F, T, center=(1.0, 2.0, 1.5), spread=1.0, **gkw)
  k = jax.random.split(key, 3)
  g = g.replace(sh=g.sh + 0.3 * jax.random.normal(k[0], g.sh.shape),
                decay=0.5 * jax.random.normal(k[1], g.decay.shape),
                phase=0.3 * jax.random.normal(k[2], g.phase.shape))
  poses = jnp.asarray(np.stack([geometry.yaw_pose([0.5 + 0.3 * i, 0.3, 1.5], 0.7 * i)
                                for i in range(B)]), jnp.float32)
  rng = np.random.default_rng(0)
  src = jnp.asarray((rng.standard_normal((B, T, F)) + 1j * rng.standard_normal((B, T, F)))
                    .astype(np.complex64))
  tgt = jnp.asarray((rng.standard_normal((B, 2, T, F))
                     + 1j * rng.standard_normal((B, 2, T, F))).astype(np.complex64))
  return g, poses, src, tgt


@pytest.mark.parametrize("gkw,ckw", CASES)
def test_custom_backward_matches_autodiff(gkw, ckw):
  g, poses, src, tgt = _setup(gkw)
  grads = []
  for custom in (True, False):
    cfg = R.RenderConfig(custom_backward=custom, **BASE, **ckw)

    def loss(params):
      pred = R.render(params, poses, src, cfg)
      return losses.magnitude_l2(pred, tgt) + losses.ipd_loss(pred, tgt)

    grads.append(jax.jit(jax.value_and_grad(loss))(to_grid(g, F)))
  (l1, g1), (l2, g2) = grads
  np.testing.assert_allclose(float(l1), float(l2), rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
    a, b = np.asarray(a), np.asarray(b)
    assert np.all(np.isfinite(a))
    scale = np.max(np.abs(b)) + 1e-30
    assert np.max(np.abs(a - b)) / scale < 2e-4, (np.max(np.abs(a - b)), scale)
