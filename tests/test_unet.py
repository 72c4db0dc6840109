"""models.unet: shapes on odd grids, no resizing, layers against flax / PyTorch references."""

import importlib.util
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiogs_jax.models import unet as unet_lib
from audiogs_jax.models.unet import UNet

WIDTH = 4


def _x(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


@pytest.fixture(scope="module")
def params():
  # Parameters do not depend on the image size.
  return UNet(base_width=WIDTH).init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 2)))


def _equations(jaxpr, out=None):
  """All equations of a jaxpr, recursing into sub-jaxprs (pjit, custom_jvp, ...)."""
  out = [] if out is None else out
  for eqn in jaxpr.eqns:
    out.append(eqn)
    for v in eqn.params.values():
      for sub in (v if isinstance(v, (tuple, list)) else (v,)):
        if hasattr(sub, "eqns"):
          _equations(sub, out)
        elif hasattr(getattr(sub, "jaxpr", None), "eqns"):
          _equations(sub.jaxpr, out)
  return out


@pytest.mark.parametrize("hw", [(257, 173), (129, 87), (16, 16), (5, 3)])
def test_output_shape_equals_input_shape(params, hw):
  x = _x((2,) + hw + (2,))
  y = jax.jit(UNet(base_width=WIDTH).apply)(params, x)
  assert y.shape == (2,) + hw + (2,)
  assert y.dtype == jnp.float32
  assert np.all(np.isfinite(np.asarray(y)))


def test_padded_size():
  assert unet_lib.padded_size(257, 4) == 272
  assert unet_lib.padded_size(173, 4) == 176
  assert unet_lib.padded_size(16, 4) == 16
  assert unet_lib.padded_size(1, 2) == 4


def test_no_resize_gather_or_dilated_conv(params):
  """The only resampling is max-pool (reshape + max) and the 2x2 transposed conv
  (dot + reshape): no resize/interpolation, gathers, scatters or lhs-dilated convs."""
  x = _x((1, 129, 87, 2))
  jaxpr = jax.make_jaxpr(UNet(base_width=WIDTH).apply)(params, x).jaxpr
  eqns = _equations(jaxpr)
  names = {e.primitive.name for e in eqns}
  for bad in ("gather", "scatter", "resize", "scale_and_translate", "dynamic_slice"):
    assert not any(bad in n for n in names), names
  convs = [e for e in eqns if e.primitive.name == "conv_general_dilated"]
  assert len(convs) == 2 * (2 * 4 + 1) + 1        # 18 3x3 convs + 1x1 head
  for e in convs:
    assert tuple(e.params["lhs_dilation"]) == (1, 1)
    assert tuple(e.params["window_strides"]) == (1, 1)


def test_skip_shapes_match_exactly(params):
  """Intermediate activations: every level halves the padded grid exactly."""
  x = _x((1, 257, 173, 2))
  _, state = UNet(base_width=WIDTH).apply(params, x, capture_intermediates=True)
  inter = state["intermediates"]
  for i in range(5):
    shape = inter[f"enc_{i}"]["__call__"][0].shape
    assert shape == (1, 272 // 2 ** i, 176 // 2 ** i, WIDTH * 2 ** i), (i, shape)
  for i in range(4):
    assert inter[f"up_{i}"]["__call__"][0].shape == inter[f"enc_{i}"]["__call__"][0].shape


def test_group_norm_matches_flax():
  x = _x((2, 6, 5, 8)) * 3.0 + 1.0
  ours = unet_lib.GroupNorm(num_groups=4)
  p = ours.init(jax.random.PRNGKey(0), x)
  p = jax.tree_util.tree_map(lambda a: a + _x(a.shape, 1), p)
  ref = nn.GroupNorm(num_groups=4, epsilon=1e-5).apply(p, x)
  np.testing.assert_allclose(ours.apply(p, x), ref, atol=2e-5)


def test_upconv_is_transposed_conv():
  x = _x((2, 3, 5, 4))
  up = unet_lib._UpConv2x2(6)
  p = up.init(jax.random.PRNGKey(0), x)
  k = jnp.transpose(p["params"]["kernel"], (1, 2, 0, 3))[::-1, ::-1]   # flax flips
  ref = nn.ConvTranspose(6, (2, 2), strides=(2, 2), padding="VALID").apply(
      {"params": {"kernel": k, "bias": p["params"]["bias"] + 0.5}}, x)
  p = {"params": {"kernel": p["params"]["kernel"], "bias": p["params"]["bias"] + 0.5}}
  np.testing.assert_allclose(up.apply(p, x), ref, atol=1e-5)


def test_bfloat16_compute_keeps_float32_params_and_output(params):
  x = _x((1, 33, 19, 2))
  m16 = UNet(base_width=WIDTH, dtype=jnp.bfloat16)
  p16 = m16.init(jax.random.PRNGKey(0), x)
  assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(p16))
  y16 = m16.apply(params, x)
  y32 = UNet(base_width=WIDTH).apply(params, x)
  assert y16.dtype == jnp.float32
  np.testing.assert_allclose(y16, y32, atol=0.1 * float(jnp.max(jnp.abs(y32))) + 0.05)


def test_pad_modes_and_norm_none(params):
  x = _x((1, 21, 13, 2))
  outs = {mode: UNet(base_width=WIDTH, pad_mode=mode).apply(params, x)
          for mode in ("reflect", "constant", "edge")}
  assert all(o.shape == (1, 21, 13, 2) for o in outs.values())
  assert not np.allclose(outs["reflect"], outs["constant"])
  bare = UNet(base_width=WIDTH, norm="none")
  pb = bare.init(jax.random.PRNGKey(0), x)
  assert bare.apply(pb, x).shape == (1, 21, 13, 2)
  with pytest.raises(ValueError):
    UNet(base_width=WIDTH, pad_mode="wrap").apply(params, x)


def test_matches_pytorch_reference():
  pytest.importorskip("torch")
  path = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "torch_unet_reference.py"
  spec = importlib.util.spec_from_file_location("torch_unet_reference", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  assert mod.check_against_flax(width=WIDTH, freqs=37, frames=23) < 1e-3
