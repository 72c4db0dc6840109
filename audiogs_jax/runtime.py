"""Process-level settings for the command-line tools and benchmarks.

``tune_host_allocator()``: XLA:CPU runs each compiled program with one
contiguous block for all its temporaries, allocated with ``malloc`` on every
call: a render of 32 one-second clips needs 49 MB of temporaries, the Audio
3DGS U-Net forward at its published width 47 MB (XLA's memory analysis). glibc serves blocks above its mmap threshold
(at most 32 MB, adapted at run time) with a fresh ``mmap``, so every call
page-faults and zeroes that memory again. Raising the threshold keeps such
blocks in the heap, where the next call reuses them. The cost is that freed
memory stays in the process (its peak resident size does not shrink), which is
what a training or rendering process wants anyway.

It is a no-op on other C libraries and platforms, and when the environment
variable ``AUDIOGS_JAX_NO_MALLOC_TUNING`` is set. The library never calls it
on import: only the entry points (``train``, ``evaluate``, ``render``) and
``scripts/bench.py`` do. ``scripts/bench.py`` measures its effect.

``conv_compiler_options()``: the XLA compiler options under which the
Audio 3DGS U-Net is compiled (``RenderModel.compiler_options``; ``train``,
``evaluate`` and ``render`` pass them to ``jax.jit``). XLA:CPU (jaxlib 0.10.2,
where this was measured) hands individual convolutions, dots and reductions to
its YNNPACK library by default. For the U-Net's 3x3 convolutions from 136 x 88
down to 34 x 22 (128-1024 channels), XLA's own (Eigen) convolution took 6-37 %
less time in 8 of 9 layers on a 2-core AVX-512 machine, so these options keep
YNNPACK for dots and reductions only. The width-64 forward then took
0.87-1.01x PyTorch's time (median 0.94, eight quiet runs of
``scripts/bench_audio3dgs.py``), and 9-16 % longer with XLA's defaults.
They are returned only on the CPU backend and only when this jaxlib accepts
them (one tiny probe compilation, cached); otherwise, or when
``AUDIOGS_JAX_NO_XLA_OPTIONS`` is set, the result is ``{}`` and XLA's
defaults apply. The options change which library computes each convolution,
not what is computed (results agree to float rounding).
"""

from __future__ import annotations

import functools

import ctypes
import ctypes.util
import os
import sys

__all__ = ["tune_host_allocator", "restore_host_allocator", "conv_compiler_options"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_BIG_MMAP = 1 << 30           # blocks below 1 GiB come from the heap
_BIG_TRIM = (1 << 31) - 1     # keep up to 2 GiB of freed heap in the process
_DEFAULT_MMAP = 32 << 20      # glibc's largest dynamic threshold (64-bit)
_DEFAULT_TRIM = 64 << 20

_state = {"tuned": False}


def _libc():
  if not sys.platform.startswith("linux"):
    return None
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallopt  # glibc (and compatible) only
    libc.gnu_get_libc_version
  except (OSError, AttributeError):
    return None
  return libc


def tune_host_allocator() -> bool:
  """Keep large host allocations in the heap (see module docstring).

  Returns True when the setting was applied.
  """
  if os.environ.get("AUDIOGS_JAX_NO_MALLOC_TUNING"):
    return False
  libc = _libc()
  if libc is None:
    return False
  ok = (libc.mallopt(_M_MMAP_THRESHOLD, _BIG_MMAP) == 1
        and libc.mallopt(_M_TRIM_THRESHOLD, _BIG_TRIM) == 1)
  _state["tuned"] = ok
  return ok


def restore_host_allocator() -> bool:
  """Back to glibc-like defaults (32 MB mmap threshold), e.g. for an A/B benchmark."""
  libc = _libc()
  if libc is None:
    return False
  ok = (libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_MMAP) == 1
        and libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM) == 1)
  libc.malloc_trim(0)
  _state["tuned"] = False
  return ok


#: XLA:CPU library fusions kept (YNNPACK dots and reductions); individual
#: convolutions, left out, go to XLA's own convolution.
_CPU_CONV_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type":
        "LIBRARY_FUSION_TYPE_REDUCE,LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
}


@functools.lru_cache(maxsize=None)
def _cpu_accepts(items: tuple) -> bool:
  import jax
  import jax.numpy as jnp
  try:
    jax.jit(lambda x: x + 1).lower(jnp.zeros(2)).compile(compiler_options=dict(items))
  except Exception:  # an unknown option or value on this jaxlib
    return False
  return True


def conv_compiler_options() -> dict:
  """XLA compiler options for convolution-heavy programs (see module docstring).

  ``{}`` off the CPU backend, on a jaxlib without these options, or with
  ``AUDIOGS_JAX_NO_XLA_OPTIONS`` set.
  """
  if os.environ.get("AUDIOGS_JAX_NO_XLA_OPTIONS"):
    return {}
  import jax
  if jax.default_backend() != "cpu":
    return {}
  items = tuple(sorted(_CPU_CONV_OPTIONS.items()))
  return dict(items) if _cpu_accepts(items) else {}
