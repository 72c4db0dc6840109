"""backend: the CPU choices (the tuned ones) and, with the backend forced to
GPU/TPU, the plain ones: XLA convolution, no split concatenation, the reduction
max-pool, jnp's transcendental functions, no compiler options."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiogs_jax import backend
from audiogs_jax import fastmath
from audiogs_jax.models.unet import UNet, init_unet

ACCELERATORS = ("gpu", "tpu")
WIDTH = 4
# The published U-Net's input maps per level: 272 x 176 padded, width 64.
PUBLISHED = [(1, 272 >> i, 176 >> i, 64 << i) for i in range(5)]


def test_platform_defaults_to_jax_default_backend(monkeypatch):
  assert backend.platform() == jax.default_backend()
  assert backend.platform("tpu") == "tpu"
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert backend.platform() == "gpu"
  assert backend.conv3x3_impl((1, 17, 11, 1024)) == "xla"
  assert backend.maxpool_impl() == "reduce"


def test_cpu_conv3x3_choice():
  """im2col at or below 256 pixels (the 17 x 11 bottleneck), XLA's conv above."""
  assert [backend.conv3x3_impl(s, "cpu") for s in PUBLISHED] == ["xla"] * 4 + ["im2col"]
  assert backend.CPU_IM2COL_MAX_PIXELS == 256
  assert backend.conv3x3_impl((2, 16, 16, 3), "cpu") == "im2col"
  assert backend.conv3x3_impl((2, 1, 257, 3), "cpu") == "xla"
  assert backend.conv3x3_impl((16, 16, 3), "cpu") == "im2col"   # no batch axis


def test_cpu_split_concat_choice():
  """Split where H * W > 18 C: levels 0 and 1 of the published U-Net."""
  assert backend.CPU_SPLIT_CONCAT_PIXELS_PER_CHANNEL == 18
  assert [backend.split_concat(s, "cpu") for s in PUBLISHED[:4]] == [True, True, False, False]
  assert backend.split_concat((1, 18, 2, 2), "cpu") is False      # 36 == 18 * 2
  assert backend.split_concat((1, 37, 1, 2), "cpu") is True


def test_cpu_pool_transcendentals_and_options():
  assert backend.maxpool_impl("cpu") == "views"
  assert backend.transcendentals(True, "cpu") == (fastmath.exp, fastmath.log, fastmath.sincos)
  exp, log, sincos = backend.transcendentals(False, "cpu")
  assert exp is jnp.exp and log is jnp.log
  opts = backend.conv_compiler_options("cpu")
  accepted = backend._cpu_accepts(tuple(sorted(backend.CPU_CONV_OPTIONS.items())))
  assert opts == (backend.CPU_CONV_OPTIONS if accepted else {})
  assert backend.CPU_CONV_OPTIONS == {"xla_cpu_experimental_ynn_fusion_type":
                                      "LIBRARY_FUSION_TYPE_REDUCE,"
                                      "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
  assert backend.compiler_options(True, "cpu") == (opts or None)
  assert backend.compiler_options(False, "cpu") is None


@pytest.mark.parametrize("name", ACCELERATORS)
def test_accelerators_get_the_plain_choices(name):
  assert all(backend.conv3x3_impl(s, name) == "xla" for s in PUBLISHED)
  assert backend.conv3x3_impl((1, 1, 1, 8), name) == "xla"
  assert not any(backend.split_concat(s, name) for s in PUBLISHED[:4] + [(1, 4096, 4096, 1)])
  assert backend.maxpool_impl(name) == "reduce"
  assert backend.conv_compiler_options(name) == {}
  assert backend.compiler_options(True, name) is None
  assert backend.compiler_options(False, name) is None
  for fast in (True, False):
    exp, log, sincos = backend.transcendentals(fast, name)
    assert exp is jnp.exp and log is jnp.log
    x = jnp.linspace(-7.0, 7.0, 11)
    s, c = sincos(x)
    np.testing.assert_array_equal(s, jnp.sin(x))
    np.testing.assert_array_equal(c, jnp.cos(x))


def _primitives(fn, *args):
  """Primitive names of a jaxpr, recursing into sub-jaxprs."""
  out = []

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      out.append(eqn.primitive.name)
      for v in eqn.params.values():
        for sub in (v if isinstance(v, (tuple, list)) else (v,)):
          inner = getattr(sub, "jaxpr", sub)
          if hasattr(inner, "eqns"):
            walk(inner)
  walk(jax.make_jaxpr(fn)(*args).jaxpr)
  return out


@pytest.mark.parametrize("name", ACCELERATORS)
def test_unet_traced_for_an_accelerator_has_no_cpu_workarounds(name, monkeypatch):
  """With the default backend reported as GPU/TPU, ``UNet``'s "auto" choices
  trace to the plain network: every 3x3 conv is one XLA convolution (no
  im2col, no split concat) and the max-pool is a reduction."""
  x = jnp.zeros((1, 33, 19, 2), jnp.float32)   # 48 x 32 padded: a 3 x 2 bottleneck
  params = init_unet(UNet(base_width=WIDTH), jax.random.PRNGKey(0))
  cpu = _primitives(UNet(base_width=WIDTH).apply, params, x)
  monkeypatch.setattr(jax, "default_backend", lambda: name)
  prims = _primitives(UNet(base_width=WIDTH).apply, params, x)
  assert prims.count("conv_general_dilated") == 2 * (2 * 4 + 1) + 1   # 18 3x3 + 1x1 head
  assert prims.count("reduce_max") == 4                                # one per max-pool
  plain = UNet(base_width=WIDTH, conv_impl="xla", split_concat=False, pool_impl="reduce")
  assert prims == _primitives(plain.apply, params, x)
  if jax.default_backend() == "cpu":  # while the CPU trace has its own choices
    assert cpu.count("conv_general_dilated") < prims.count("conv_general_dilated")
    assert cpu.count("reduce_max") == 0


def test_no_xla_options_env(monkeypatch):
  monkeypatch.setenv("AUDIOGS_JAX_NO_XLA_OPTIONS", "1")
  assert backend.conv_compiler_options("cpu") == {}
  assert backend.compiler_options(True, "cpu") is None


def test_cpu_probe_rejects_unknown_option():
  assert not backend._cpu_accepts((("xla_cpu_experimental_ynn_fusion_type", "NO_SUCH_TYPE"),))


def test_host_allocator(monkeypatch):
  """On Linux/glibc the thresholds are set (and restored); the environment
  switch turns the tuning off."""
  libc = backend._libc()
  try:
    assert backend.tune_host_allocator() is (libc is not None)
    monkeypatch.setenv("AUDIOGS_JAX_NO_MALLOC_TUNING", "1")
    assert backend.tune_host_allocator() is False
  finally:
    assert backend.restore_host_allocator() is (libc is not None)


def test_arcsin_choice_by_backend():
  """The polynomial arcsine only on CPU and only when asked; ``jnp.arcsin`` otherwise."""
  assert backend.arcsin(True, "cpu") is fastmath.asin
  assert backend.arcsin(False, "cpu") is jnp.arcsin
  for name in ("gpu", "tpu"):
    assert backend.arcsin(True, name) is jnp.arcsin
