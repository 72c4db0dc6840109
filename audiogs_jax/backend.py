"""Backend-specific choices, in one place; the model modules state the maths.

Every choice here changes how a result is computed, never what is computed
(up to float rounding, and bit for bit where the alternatives are exact). Each
is made by the backend name, ``jax.default_backend()`` unless a ``backend``
argument says otherwise (``"cpu"``, ``"gpu"``, ``"tpu"``), so that a GPU or TPU
run does not inherit a workaround tuned for XLA:CPU. Measurements behind the
CPU choices: ``docs/performance.md``.

Process settings (the entry points call them, the library never does on import):

- ``tune_host_allocator()`` / ``restore_host_allocator()``: glibc's mmap and
  trim thresholds. XLA:CPU allocates one contiguous block for all of a
  compiled program's temporaries on every call; glibc serves blocks above its
  mmap threshold (at most 32 MB, adapted at run time) with a fresh ``mmap``, so
  every call page-faults and zeroes that memory again. A 1 GiB threshold keeps
  such blocks in the heap for the next call; freed memory then stays in the
  process. A no-op off Linux/glibc and with ``AUDIOGS_JAX_NO_MALLOC_TUNING`` set.

Compilation (``jax.jit(..., compiler_options=...)``):

- ``conv_compiler_options()``: on CPU, XLA's own (Eigen) convolution for
  individual convolutions instead of the YNNPACK library (kept for dots and
  reductions); ``{}`` on other backends, on a jaxlib that rejects the option
  (one cached probe compilation) and with ``AUDIOGS_JAX_NO_XLA_OPTIONS`` set.
- ``compiler_options(convolutional)``: the options for a model's programs,
  from a fact about its maths (whether it has convolutions); None for XLA's
  defaults.

Algorithms (asked for while tracing, by ``models.unet`` and the renderer):

- ``conv3x3_impl(shape)``: the U-Net's 3x3 convolution algorithm for an input
  ``[B, H, W, C]``: on CPU ``"im2col"`` at or below ``CPU_IM2COL_MAX_PIXELS``
  pixels (H * W), else ``"xla"``; ``"xla"`` on GPU/TPU.
- ``split_concat(skip_shape)``: whether a decoder conv on ``concat[skip, up]``
  is computed as two summed convs: on CPU where ``H * W >
  CPU_SPLIT_CONCAT_PIXELS_PER_CHANNEL * C`` (the concatenated copy outweighs
  the kernel slices); never on GPU/TPU.
- ``maxpool_impl()``: ``"views"`` (elementwise maximum of four strided views,
  which XLA:CPU keeps out of its YNNPACK reduction fusion) on CPU,
  ``"reduce"`` (a max over a ``[.., 2, .., 2, ..]`` reshape) on GPU/TPU.
- ``transcendentals(fast)``: ``(exp, log, sincos)``: the polynomial
  ``fastmath`` functions on CPU when ``fast``, else ``jnp``'s.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from typing import Callable, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from audiogs_jax import fastmath

__all__ = ["arcsin", "platform", "tune_host_allocator", "restore_host_allocator",
           "conv_compiler_options", "compiler_options", "conv3x3_impl", "split_concat",
           "maxpool_impl", "transcendentals", "CPU_IM2COL_MAX_PIXELS",
           "CPU_SPLIT_CONCAT_PIXELS_PER_CHANNEL"]


def platform(backend: Optional[str] = None) -> str:
  """``backend``, or ``jax.default_backend()`` when None (``"cpu"``, ``"gpu"``, ``"tpu"``)."""
  return backend or jax.default_backend()


def _is_cpu(backend: Optional[str]) -> bool:
  return platform(backend) == "cpu"


# --- host allocator (glibc) -------------------------------------------------

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_BIG_MMAP = 1 << 30           # blocks below 1 GiB come from the heap
_BIG_TRIM = (1 << 31) - 1     # keep up to 2 GiB of freed heap in the process
_DEFAULT_MMAP = 32 << 20      # glibc's largest dynamic threshold (64-bit)
_DEFAULT_TRIM = 64 << 20


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


def _set_thresholds(mmap: int, trim: int, release: bool = False) -> bool:
  """glibc's mmap and trim thresholds; ``release``: return free heap to the system."""
  libc = _libc()
  if libc is None:
    return False
  ok = (libc.mallopt(_M_MMAP_THRESHOLD, mmap) == 1
        and libc.mallopt(_M_TRIM_THRESHOLD, trim) == 1)
  if release:
    libc.malloc_trim(0)
  return ok


def tune_host_allocator() -> bool:
  """Keep large host allocations in the heap (see the module docstring).

  Returns True when the setting was applied.
  """
  if os.environ.get("AUDIOGS_JAX_NO_MALLOC_TUNING"):
    return False
  return _set_thresholds(_BIG_MMAP, _BIG_TRIM)


def restore_host_allocator() -> bool:
  """Back to glibc-like defaults (32 MB mmap threshold), e.g. for an A/B benchmark."""
  return _set_thresholds(_DEFAULT_MMAP, _DEFAULT_TRIM, release=True)


# --- XLA compiler options -----------------------------------------------------

#: XLA:CPU library fusions kept (YNNPACK dots and reductions); individual
#: convolutions, left out, go to XLA's own convolution.
CPU_CONV_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type":
        "LIBRARY_FUSION_TYPE_REDUCE,LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
}


@functools.lru_cache(maxsize=None)
def _cpu_accepts(items: tuple) -> bool:
  """Whether this jaxlib's XLA:CPU compiles a tiny program under these options."""
  x = jax.device_put(np.zeros(2, np.float32), jax.devices("cpu")[0])
  try:
    jax.jit(lambda v: v + 1).lower(x).compile(compiler_options=dict(items))
  except Exception:  # an unknown option or value on this jaxlib
    return False
  return True


def conv_compiler_options(backend: Optional[str] = None) -> dict:
  """XLA compiler options for convolution-heavy programs (module docstring).

  ``CPU_CONV_OPTIONS`` on CPU; ``{}`` on GPU/TPU, on a jaxlib without these
  options, or with ``AUDIOGS_JAX_NO_XLA_OPTIONS`` set.
  """
  if os.environ.get("AUDIOGS_JAX_NO_XLA_OPTIONS") or not _is_cpu(backend):
    return {}
  items = tuple(sorted(CPU_CONV_OPTIONS.items()))
  return dict(items) if _cpu_accepts(items) else {}


def compiler_options(convolutional: bool, backend: Optional[str] = None) -> Optional[dict]:
  """Options for ``jax.jit(..., compiler_options=...)`` of a model's programs.

  Args:
    convolutional: whether the model's maths has convolutions (the Audio 3DGS
      U-Net does; the AudioGS renderer does not).
    backend: the backend compiled for (default ``jax.default_backend()``).

  Returns:
    ``conv_compiler_options(backend)`` for a convolutional model when not
    empty, else None (XLA's defaults).
  """
  return (conv_compiler_options(backend) or None) if convolutional else None


# --- U-Net algorithms -----------------------------------------------------------

#: CPU: 3x3 convolutions on at most this many pixels (the published U-Net's
#: 17 x 11 bottleneck) run as one im2col matrix product.
CPU_IM2COL_MAX_PIXELS = 256

#: CPU: a decoder level's first conv is split in two when its input has more
#: than this many pixels per skip channel, i.e. when the concatenated
#: ``[H, W, 2C]`` copy is larger than twice the ``[3, 3, 2C, C]`` kernel that
#: splitting slices (levels 0-1 of the published U-Net, not 2-3).
CPU_SPLIT_CONCAT_PIXELS_PER_CHANNEL = 18


def conv3x3_impl(shape: Sequence[int], backend: Optional[str] = None) -> str:
  """The ``models.unet.conv3x3`` algorithm for an input of ``shape [..., H, W, C]``.

  CPU: ``"im2col"`` when ``H * W <= CPU_IM2COL_MAX_PIXELS``, else ``"xla"``.
  GPU/TPU: ``"xla"`` (the backend's own convolution).
  """
  if _is_cpu(backend) and shape[-3] * shape[-2] <= CPU_IM2COL_MAX_PIXELS:
    return "im2col"
  return "xla"


def split_concat(skip_shape: Sequence[int], backend: Optional[str] = None) -> bool:
  """Whether a decoder conv on ``concat[skip, up]`` (``skip_shape [B, H, W, C]``)
  is computed as two summed convs: on CPU when ``H * W >
  CPU_SPLIT_CONCAT_PIXELS_PER_CHANNEL * C``; never on GPU/TPU."""
  _, h, w, c = skip_shape
  return _is_cpu(backend) and h * w > CPU_SPLIT_CONCAT_PIXELS_PER_CHANNEL * c


def maxpool_impl(backend: Optional[str] = None) -> str:
  """The ``models.unet.maxpool2x2`` form: ``"views"`` on CPU, ``"reduce"`` elsewhere
  (the same values: a maximum is exact)."""
  return "views" if _is_cpu(backend) else "reduce"


# --- transcendental functions ---------------------------------------------------

Transcendentals = Tuple[Callable, Callable, Callable]


def _jnp_sincos(x):
  return jnp.sin(x), jnp.cos(x)


def transcendentals(fast: bool, backend: Optional[str] = None) -> Transcendentals:
  """``(exp, log, sincos)`` for the AudioGS renderer's elementwise pass.

  Args:
    fast: the config's request for the polynomial versions
      (``RenderConfig.fast_math``).
    backend: the backend compiled for (default ``jax.default_backend()``).

  Returns:
    ``(fastmath.exp, fastmath.log, fastmath.sincos)`` on CPU when ``fast``;
    otherwise, and always on GPU/TPU, ``(jnp.exp, jnp.log, x -> (jnp.sin(x),
    jnp.cos(x)))``. ``sincos(x)`` returns the pair ``(sin x, cos x)``.
  """
  if fast and _is_cpu(backend):
    return fastmath.exp, fastmath.log, fastmath.sincos
  return jnp.exp, jnp.log, _jnp_sincos


def arcsin(fast: bool, backend: Optional[str] = None):
  """``asin`` for the Woodworth interaural path: ``fastmath.asin`` (a polynomial,
  absolute error < 1e-6) on CPU when ``fast``, whose ``jnp.arcsin`` does not
  vectorise with the surrounding elementwise pass; ``jnp.arcsin`` otherwise and
  always on GPU/TPU."""
  return fastmath.asin if fast and _is_cpu(backend) else jnp.arcsin
