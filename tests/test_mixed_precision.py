"""Mixed precision for the Audio 3DGS U-Net (``config.model.audio3dgs_unet.compute_dtype``):
bfloat16 convolutions and matrix products, float32 parameters, gradients and loss.

Read from the traced program of the training loss and its gradient (nothing is
compiled), and checked numerically on a tiny grid.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiogs_jax import config as config_lib
from audiogs_jax import geometry
from audiogs_jax.models import SceneInfo, get_model

from _jitutil import fast_jit

F_BINS, FRAMES = 17, 11          # n_fft = 32


def _config(dtype: str):
  c = config_lib.load_config_file("configs/audio3dgs_smoke.py")
  c.model.n_fft, c.model.hop_length = 32, 8
  c.model.audio3dgs_unet.unet_width, c.model.audio3dgs_unet.unet_levels = 4, 2
  c.model.audio3dgs_unet.compute_dtype = dtype
  return c


def _problem(dtype: str):
  config = _config(dtype)
  model = get_model("audio3dgs_unet")
  info = SceneInfo(F_BINS, FRAMES, 22050, (0.0, 0.0, 0.0), 1.0)
  params = model.init(jax.random.PRNGKey(0), info, config)
  rng = np.random.default_rng(0)
  poses = jnp.asarray(np.stack([geometry.yaw_pose(rng.uniform(-1, 1, 3), rng.uniform(0, 6))
                                for _ in range(2)]), jnp.float32)
  cplx = lambda *s: jnp.asarray(rng.standard_normal(s) + 1j * rng.standard_normal(s),
                                jnp.complex64)
  src, tgt = cplx(2, FRAMES, F_BINS), cplx(2, 2, FRAMES, F_BINS)

  def loss(p):
    pred = model.render(p, poses, src, config)
    return model.loss(p, pred, tgt, src, config)[0]

  return params, jax.value_and_grad(loss), loss


def _equations(jaxpr):
  """Every equation of a jaxpr, nested ones (pjit, custom_vjp, ...) included."""
  for eqn in jaxpr.eqns:
    yield eqn
    for v in eqn.params.values():
      for sub in (v if isinstance(v, (tuple, list)) else (v,)):
        inner = getattr(sub, "jaxpr", sub)
        if isinstance(inner, jax.extend.core.Jaxpr):
          yield from _equations(inner)


def _matmul_dtypes(fn, params) -> dict:
  """Operand dtypes of the convolutions and matrix products in ``fn``'s program:
  ``{"unet": ..., "other": ...}``; the U-Net's work on ``[B, H, W, C]`` images
  (rank-4 operands), the points' geometry on rank <= 3 arrays."""
  jaxpr = jax.make_jaxpr(fn)(params).jaxpr
  out = {"unet": set(), "other": set()}
  for e in _equations(jaxpr):
    if e.primitive.name in ("conv_general_dilated", "dot_general"):
      kind = "unet" if max(v.aval.ndim for v in e.invars) == 4 else "other"
      out[kind].update(str(v.aval.dtype) for v in e.invars)
  return out


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_unet_computes_in_the_compute_dtype(dtype):
  """Every convolution and matrix product of the U-Net in the training loss and
  its gradient (forward and backward) runs in ``compute_dtype``; the points'
  geometry stays float32."""
  params, value_and_grad, _ = _problem(dtype)
  ops = _matmul_dtypes(value_and_grad, params)
  assert ops == {"unet": {dtype}, "other": {"float32"}}


def test_bfloat16_keeps_float32_parameters_gradients_and_loss():
  params, value_and_grad, _ = _problem("bfloat16")
  assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
  loss, grads = jax.eval_shape(value_and_grad, params)
  assert loss.dtype == jnp.float32
  assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
  # The same function at bfloat16 rounding: close to, but not, the float32 loss.
  loss_fn = lambda dtype: fast_jit(_problem(dtype)[2])
  loss16, loss32 = float(loss_fn("bfloat16")(params)), float(loss_fn("float32")(params))
  assert np.isfinite(loss16) and loss16 != loss32
  assert loss16 == pytest.approx(loss32, rel=2e-2)
