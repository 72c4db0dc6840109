"""TEMPORARY shim (replaced by the platform branch's backend.py at merge)."""
import jax
import jax.numpy as jnp

from audiogs_jax import fastmath
from audiogs_jax import runtime


def tune_host_allocator():
  return runtime.tune_host_allocator()


def restore_host_allocator():
  return runtime.restore_host_allocator()


def transcendentals(fast: bool, backend=None):
  if fast and (backend or jax.default_backend()) == "cpu":
    return fastmath.exp, fastmath.log, fastmath.sincos
  return jnp.exp, jnp.log, (lambda x: (jnp.sin(x), jnp.cos(x)))


def compiler_options(convolutional: bool, backend=None):
  return (runtime.conv_compiler_options() or None) if convolutional else None
