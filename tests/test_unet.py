"""models.unet: shapes on odd grids, no resizing, layers against flax / PyTorch references."""

import importlib.util
import re
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiogs_jax import backend
from audiogs_jax.models import unet as unet_lib
from audiogs_jax.models.unet import UNet, init_unet

WIDTH = 4
# Compile the tiny test networks without XLA's backend optimisations: half the
# compile time, and speed does not matter here.
_FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _run(fn, *args):
  """``jax.jit(fn)(*args)``, compiled with ``_FAST_COMPILE``."""
  return jax.jit(fn).lower(*args).compile(_FAST_COMPILE)(*args)


def _x(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


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


@pytest.fixture(scope="module")
def params():
  # Parameters do not depend on the image size.
  return init_unet(UNet(base_width=WIDTH), jax.random.PRNGKey(0))


# (257, 173) is covered by test_skip_shapes_match_exactly.
@pytest.mark.parametrize("hw", [(129, 87), (16, 16)])
def test_output_shape_equals_input_shape(params, hw):
  x = _x((2,) + hw + (2,))
  y = _run(UNet(base_width=WIDTH).apply, params, x)
  assert y.shape == (2,) + hw + (2,)
  assert y.dtype == jnp.float32
  assert np.all(np.isfinite(np.asarray(y)))


def test_skip_shapes_match_exactly(params):
  """Intermediate activations: every level halves the padded grid exactly
  (257 x 173 -> 272 x 176 -> ... -> 17 x 11), and each upsampled map has its
  skip's shape."""
  x = _x((2, 257, 173, 2))
  y, state = _run(lambda p, x: UNet(base_width=WIDTH).apply(p, x, capture_intermediates=True),
                  params, x)
  assert y.shape == x.shape and y.dtype == jnp.float32
  assert np.all(np.isfinite(np.asarray(y)))
  inter = state["intermediates"]
  for i in range(5):
    shape = inter[f"enc_{i}"]["__call__"][0].shape
    assert shape == (2, 272 // 2 ** i, 176 // 2 ** i, WIDTH * 2 ** i), (i, shape)
  for i in range(4):
    assert inter[f"up_{i}"]["__call__"][0].shape == inter[f"enc_{i}"]["__call__"][0].shape


def test_padded_size():
  assert unet_lib.padded_size(257, 4) == 272
  assert unet_lib.padded_size(173, 4) == 176
  assert unet_lib.padded_size(16, 4) == 16
  assert unet_lib.padded_size(1, 2) == 4


def test_no_resize_gather_or_dilated_conv(params):
  """The only resampling is max-pool (strided views or reshape + max) and the
  2x2 transposed conv (dot + reshape): no resize/interpolation, gathers,
  scatters or lhs-dilated convs."""
  x = _x((1, 129, 87, 2))
  plain = UNet(base_width=WIDTH, conv_impl="xla", split_concat=False, pool_impl="reduce")
  jaxpr = jax.make_jaxpr(plain.apply)(params, x).jaxpr
  eqns = _equations(jaxpr)
  names = {e.primitive.name for e in eqns}
  for bad in ("gather", "scatter", "resize", "scale_and_translate", "dynamic_slice"):
    assert not any(bad in n for n in names), names
  convs = [e for e in eqns if e.primitive.name == "conv_general_dilated"]
  assert len(convs) == 2 * (2 * 4 + 1) + 1        # 18 3x3 convs + 1x1 head
  for e in convs:
    assert tuple(e.params["lhs_dilation"]) == (1, 1)
    assert tuple(e.params["window_strides"]) == (1, 1)
  # The CPU choices on the 144 x 96 padded grid: levels 3 (18 x 12) and 4
  # (9 x 6) are at most 256 pixels, so enc_3, enc_4 and dec_3 (6 convs) are
  # im2col products; dec_0..dec_2's first conv is two convs each (+3).
  cpu = UNet(base_width=WIDTH, conv_impl=tuple(
      backend.conv3x3_impl((1, 144 >> i, 96 >> i, 1), "cpu") for i in range(5)),
      split_concat=tuple(backend.split_concat((1, 144 >> i, 96 >> i, WIDTH << i), "cpu")
                         for i in range(4)), pool_impl=backend.maxpool_impl("cpu"))
  jaxpr = jax.make_jaxpr(cpu.apply)(params, x)
  if jax.default_backend() == "cpu":  # what "auto" chooses here
    assert str(jax.make_jaxpr(UNet(base_width=WIDTH).apply)(params, x)) == str(jaxpr)
  eqns = _equations(jaxpr.jaxpr)
  convs = [e for e in eqns if e.primitive.name == "conv_general_dilated"]
  assert len(convs) == 2 * (2 * 4 + 1) + 1 - 6 + 3
  assert all(tuple(e.params["lhs_dilation"]) == (1, 1) for e in convs)
  assert not any(bad in e.primitive.name for e in eqns
                 for bad in ("gather", "scatter", "resize", "dynamic_slice"))


def test_init_unet_distributions():
  p = init_unet(UNet(base_width=8), jax.random.PRNGKey(3))["params"]
  k = np.asarray(p["enc_1"]["conv_0"]["kernel"])              # [3, 3, 8, 16]
  assert k.shape == (3, 3, 8, 16)
  assert abs(k.std() * np.sqrt(3 * 3 * 8) - 1.0) < 0.15
  assert np.abs(k).max() <= 2.0 / np.sqrt(72) / 0.8796 + 1e-6
  up = np.asarray(p["up_0"]["kernel"])                        # [16, 2, 2, 8], fan_in 16
  assert abs(up.std() * 4.0 - 1.0) < 0.2
  assert np.all(np.asarray(p["enc_0"]["norm_0"]["scale"]) == 1.0)
  assert np.all(np.asarray(p["head"]["bias"]) == 0.0)
  again = init_unet(UNet(base_width=8), jax.random.PRNGKey(3))["params"]
  np.testing.assert_array_equal(k, again["enc_1"]["conv_0"]["kernel"])
  other = init_unet(UNet(base_width=8), jax.random.PRNGKey(4))["params"]
  assert not np.allclose(k, other["enc_1"]["conv_0"]["kernel"])


def test_group_norm_matches_flax():
  x = _x((2, 6, 5, 8)) * 3.0 + 1.0
  p = {"params": {"scale": 1.0 + _x((8,), 1), "bias": _x((8,), 2)}}
  ours = _run(unet_lib.GroupNorm(num_groups=4).apply, p, x)
  ref = nn.GroupNorm(num_groups=4, epsilon=1e-5).apply(p, x)
  np.testing.assert_allclose(ours, ref, atol=2e-5)


def test_upconv_is_transposed_conv():
  x = _x((2, 3, 5, 4))
  p = {"params": {"kernel": _x((4, 2, 2, 6), 1), "bias": _x((6,), 2)}}
  k = jnp.transpose(p["params"]["kernel"], (1, 2, 0, 3))[::-1, ::-1]   # flax flips
  ref = nn.ConvTranspose(6, (2, 2), strides=(2, 2), padding="VALID").apply(
      {"params": {"kernel": k, "bias": p["params"]["bias"]}}, x)
  np.testing.assert_allclose(_run(unet_lib._UpConv2x2(6).apply, p, x), ref, atol=1e-5)


def _conv3x3_numpy(x, k):
  """Slow reference: zero-padded 3x3 cross-correlation, explicit sum over taps."""
  x, k = np.asarray(x, np.float64), np.asarray(k, np.float64)
  b, h, w, _ = x.shape
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.zeros((b, h, w, k.shape[-1]))
  for i in range(3):
    for j in range(3):
      out += np.einsum("bhwc,cd->bhwd", xp[:, i:i + h, j:j + w], k[i, j])
  return out


@pytest.mark.parametrize("impl", unet_lib._CONV_IMPLS)
def test_conv3x3_algorithms_match_flax_conv_and_reference(impl):
  x, k, bias = _x((2, 7, 5, 3)), _x((3, 3, 3, 4), 1), _x((4,), 2)
  p = {"params": {"kernel": k, "bias": bias}}
  ours = _run(unet_lib.Conv3x3(4, impl=impl).apply, p, x)
  np.testing.assert_allclose(ours, _conv3x3_numpy(x, k) + np.asarray(bias), atol=1e-5)
  ref = nn.Conv(4, (3, 3), padding="SAME").apply(p, x)
  np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_conv_impl_per_level_is_the_same_function(params):
  """The backend's choices (``"auto"``), the plain layers (GPU/TPU's choices)
  and any mix of algorithms compute the same function."""
  x = _x((1, 33, 19, 2))
  ref = _run(UNet(base_width=WIDTH, conv_impl="xla", split_concat=False,
                  pool_impl="reduce").apply, params, x)
  np.testing.assert_allclose(_run(UNet(base_width=WIDTH).apply, params, x), ref, atol=2e-4)
  mixed = UNet(base_width=WIDTH, conv_impl=("xla", "rows", "im2col", "shift", "rows"))
  np.testing.assert_allclose(_run(mixed.apply, params, x), ref, atol=2e-4)
  with pytest.raises(ValueError, match="conv impl"):
    UNet(base_width=WIDTH, conv_impl="winograd").apply(params, x)
  with pytest.raises(ValueError, match="pool impl"):
    UNet(base_width=WIDTH, pool_impl="average").apply(params, x)


def test_bfloat16_compute_keeps_float32_params_and_output():
  # 2 levels on 32 x 24: an 8 x 6 bottleneck (a 1 x 1 one makes GroupNorm
  # amplify rounding).
  x = _x((1, 32, 24, 2))
  m16 = UNet(base_width=WIDTH, levels=2, dtype=jnp.bfloat16)
  p = init_unet(m16, jax.random.PRNGKey(1))
  assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(p))
  y16 = _run(m16.apply, p, x)
  y32 = _run(UNet(base_width=WIDTH, levels=2).apply, p, x)
  assert y16.dtype == jnp.float32
  err = np.abs(np.asarray(y16) - np.asarray(y32))
  assert err.mean() < 0.1 * np.abs(np.asarray(y32)).mean()
  assert err.max() < 0.1 * np.abs(np.asarray(y32)).max()


def test_pad_modes_and_norm_none():
  """2 levels, 2 x 3 pads to 4 x 4: reflect padding as wide as the image works."""
  x = _x((1, 2, 3, 2))
  p = init_unet(UNet(base_width=WIDTH, levels=2), jax.random.PRNGKey(2))
  outs = {mode: _run(UNet(base_width=WIDTH, levels=2, pad_mode=mode).apply, p, x)
          for mode in ("reflect", "constant")}
  assert all(o.shape == (1, 2, 3, 2) for o in outs.values())
  assert not np.allclose(outs["reflect"], outs["constant"])
  bare = UNet(base_width=WIDTH, levels=2, norm="none")
  assert _run(bare.apply, init_unet(bare, jax.random.PRNGKey(0)), x).shape == (1, 2, 3, 2)
  with pytest.raises(ValueError):
    UNet(base_width=WIDTH, pad_mode="wrap").apply(p, x)


def test_matches_pytorch_reference():
  """The PyTorch network of scripts/torch_unet_reference.py (timed by the
  benchmark) computes the same function on the same weights."""
  pytest.importorskip("torch")
  path = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "torch_unet_reference.py"
  spec = importlib.util.spec_from_file_location("torch_unet_reference", path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  assert mod.check_against_flax(width=WIDTH, freqs=37, frames=23) < 1e-3


def test_group_norm_folds_an_offset_like_adding_it_first():
  """``GroupNorm(y, b)`` == ``GroupNorm(y + b)`` (how each conv's bias enters)."""
  y = _x((2, 6, 5, 8)) * 2.0 - 0.5
  off = _x((8,), 3) * 4.0   # large next to y's spread: the moments must be shifted right
  p = {"params": {"scale": 1.0 + _x((8,), 1), "bias": _x((8,), 2)}}
  folded = _run(lambda p, y, o: unet_lib.GroupNorm(num_groups=4).apply(p, y, o), p, y, off)
  ref = nn.GroupNorm(num_groups=4, epsilon=1e-5).apply(p, y + off)
  np.testing.assert_allclose(folded, ref, atol=5e-5)


def test_conv_block_bias_reaches_the_output():
  """The folded conv bias is not dropped: the block equals an explicit
  conv(+bias) -> GroupNorm -> ReLU chain of flax layers, with non-zero biases."""
  x = _x((1, 6, 4, 3))
  block = unet_lib.ConvBlock(8)
  p = jax.tree.map(lambda a: a + 0.3 * _x(a.shape, 5), block.init(jax.random.PRNGKey(0), x))
  h = x
  for j in range(2):
    h = nn.Conv(8, (3, 3), padding="SAME").apply({"params": p["params"][f"conv_{j}"]}, h)
    h = nn.relu(nn.GroupNorm(num_groups=8, epsilon=1e-5).apply(
        {"params": p["params"][f"norm_{j}"]}, h))
  np.testing.assert_allclose(_run(block.apply, p, x), h, atol=1e-4)


@pytest.mark.parametrize("impl", unet_lib._POOL_IMPLS)
def test_maxpool_matches_a_window_loop(impl):
  x = np.asarray(_x((2, 6, 4, 3)))
  ref = np.empty((2, 3, 2, 3), np.float32)
  for i in range(3):
    for j in range(2):
      ref[:, i, j] = x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(1, 2))
  out = _run(lambda v: unet_lib.maxpool2x2(v, impl), jnp.asarray(x))
  np.testing.assert_array_equal(out, ref)


def test_split_concat_auto_levels():
  """On CPU, at the published size (272 x 176 padded, width 64), "auto" splits
  the decoder concat at levels 0 and 1 (big maps, small kernels) and not at 2
  and 3; it follows ``backend.split_concat``."""
  m = UNet(base_width=64)
  shapes = [(1, 272 >> i, 176 >> i, 64 << i) for i in range(4)]
  assert [backend.split_concat(s, "cpu") for s in shapes] == [True, True, False, False]
  assert [m._split(i, s) for i, s in enumerate(shapes)] == [
      backend.split_concat(s) for s in shapes]
  assert UNet(split_concat=(True, False, True, False))._split(2, shapes[2]) is True
  assert UNet(split_concat=False)._split(0, shapes[0]) is False


def test_conv_compiler_options_same_function(params, monkeypatch):
  """``backend.conv_compiler_options`` (CPU: XLA's convolution instead of
  YNNPACK's) changes the speed, not the function; an option this jaxlib does
  not know, or ``AUDIOGS_JAX_NO_XLA_OPTIONS``, falls back to XLA's defaults."""
  opts = backend.conv_compiler_options()
  if jax.default_backend() == "cpu":
    assert opts == backend.CPU_CONV_OPTIONS or not backend._cpu_accepts(
        tuple(sorted(backend.CPU_CONV_OPTIONS.items())))
  x = _x((1, 33, 19, 2))
  f = jax.jit(UNet(base_width=WIDTH).apply)
  ref = f.lower(params, x).compile()(params, x)
  out = f.lower(params, x).compile(compiler_options=opts)(params, x)
  np.testing.assert_allclose(out, ref, atol=2e-5)
  if opts:
    text = f.lower(params, x).compile(compiler_options=opts).as_text()
    entry = text[text.index("\nENTRY"):]
    assert re.search(r"= f32\[[\d,]+\]\{[\d,]+\} convolution\(", entry), \
        "the 3x3 convolutions should be XLA's own under these options"
  assert not backend._cpu_accepts((("xla_cpu_experimental_ynn_fusion_type", "NO_SUCH_TYPE"),))
  monkeypatch.setenv("AUDIOGS_JAX_NO_XLA_OPTIONS", "1")
  assert backend.conv_compiler_options() == {}
