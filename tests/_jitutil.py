"""Shared by the core test modules: a jit that compiles small programs fast."""

import functools

import jax
import numpy as np


def _fast_compile_options():
  """XLA options that compile the tests' many small programs several times faster
  on CPU (no LLVM optimisation passes, the older loop emitters); the programs compute
  the same float32 arithmetic. Falls back on XLA versions without these options."""
  for opts in ({"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False},
               {"xla_backend_optimization_level": 0}):
    try:
      jax.jit(lambda x: x + 1.0, compiler_options=opts)(np.float32(1.0))
      return opts
    except Exception:  # pylint: disable=broad-except
      continue
  return {}


fast_jit = functools.partial(jax.jit, compiler_options=_fast_compile_options())
