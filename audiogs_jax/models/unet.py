"""The U-Net of Audio 3DGS (Yoshida et al., IEEE VRW 2025), in flax.linen.

Architecture (``levels`` = 4, ``base_width`` = 64 is the published size, about
31 M parameters; widths ``base_width * 2**i`` for i = 0..levels, i.e.
64, 128, 256, 512, 1024)::

    pad  [B, F, T, C_in] -> [B, F', T', C_in]      F', T' = next multiples of 2**levels
    enc0 = Block(w0)(x)                            Block = 2 x (conv3x3 -> GroupNorm -> ReLU)
    enc_i = Block(w_i)(maxpool2x2(enc_{i-1}))      i = 1..levels (enc_levels is the bottleneck)
    dec  = Block(w_i)(concat[enc_i, Up(w_i)(dec)])  i = levels-1..0, Up = 2x2 stride-2 transposed conv
    out  = conv1x1(out_channels)(dec)[:, :F, :T]   raw logits (the caller applies its heads)

Choices the papers leave open, fixed here:

- **Odd sizes.** The input is padded once, at the bottom/right, to the next
  multiple of ``2**levels`` (``pad_mode``: ``"reflect"`` by default, or
  ``"constant"`` (zeros) / ``"edge"``), and the output is cropped back to F x T.
  Every max-pool then halves an even size and every skip connection matches
  exactly: there is no resize, interpolation or per-level padding anywhere.
  (F = 257, T = 173 pads to 272 x 176.)
- **Normalisation.** ``norm="group"`` (default): GroupNorm with
  ``gcd(32, channels)`` groups after every 3x3 conv. GroupNorm normalises each
  example on its own, so there is no batch statistic and no mutable state: the
  parameters are a plain pytree and train and eval behave the same.
  ``norm="none"`` drops it. (BatchNorm, which the usual PyTorch U-Net uses, is
  left out on purpose: its running averages would make the state non-functional.)
- **Transposed conv.** The 2x2 stride-2 transposed convolution touches every
  output pixel exactly once, so it is computed as what it is: one matrix
  product per input pixel, ``[.., C] @ [C, 4 * C']``, followed by a
  depth-to-space reshape (``_UpConv2x2``). This is the same function as
  ``nn.ConvTranspose(C', (2, 2), strides=(2, 2))`` (and PyTorch's
  ``ConvTranspose2d(C, C', 2, stride=2)``), but it avoids the zero-dilated
  convolution XLA would otherwise emit, which is slow on CPU.
- **Max pool** over 2 x 2 windows (``maxpool2x2``), in the form
  ``backend.maxpool_impl()`` names.
- **Conv bias into GroupNorm.** Each 3x3 conv's bias is not added to its
  output: ``GroupNorm(y, bias)`` adds its effect to the statistics and to its
  own per-channel shift, the same function with one pass less over the map.
- **3x3 convolutions** (``Conv3x3``, the same parameters as ``nn.Conv``) have
  four algorithms (``conv3x3``: XLA's convolution, im2col, row products,
  shifted products); ``conv_impl="auto"`` asks ``backend.conv3x3_impl`` per
  layer. ``split_concat`` computes a decoder block's first conv on
  ``concat[skip, up]`` as the sum of two convs (the kernel split on its input
  channels), which saves writing and reading the concatenated copy; ``"auto"``
  asks ``backend.split_concat``. All of these are the same function as the
  plain layers (tests); which is fastest depends on the backend
  (``audiogs_jax.backend``, ``docs/performance.md``).

``dtype`` is the compute dtype (``jnp.bfloat16`` for mixed precision);
parameters are always stored in ``param_dtype`` (float32) and GroupNorm
statistics are computed in float32. The output logits are returned in
float32.

Initialise with ``init_unet(module, key)`` rather than ``module.init``: the
parameters are the same distributions as flax's initialisers (truncated-normal
LeCun kernels, zero biases, unit GroupNorm scales), drawn with numpy from the
key's bits. ``module.init`` works too, but compiling its ~40 threefry programs
takes minutes on a small CPU.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from audiogs_jax import backend

__all__ = ["UNet", "ConvBlock", "GroupNorm", "Conv3x3", "conv3x3", "maxpool2x2",
           "padded_size", "num_groups", "init_unet"]

_PAD_MODES = ("reflect", "constant", "edge")


def padded_size(n: int, levels: int) -> int:
  """The smallest multiple of ``2**levels`` that is >= n."""
  m = 2 ** levels
  return -(-int(n) // m) * m


def num_groups(channels: int, max_groups: int = 32) -> int:
  """GroupNorm groups for a layer: ``gcd(max_groups, channels)``."""
  return math.gcd(int(max_groups), int(channels))


_POOL_IMPLS = ("views", "reduce")


def maxpool2x2(x: jnp.ndarray, impl: str = "views") -> jnp.ndarray:
  """``[B, H, W, C]`` (H, W even) -> ``[B, H/2, W/2, C]``, max over 2 x 2 windows.

  Two forms of the same values: ``"views"``, the elementwise maximum of the
  four strided views; ``"reduce"``, a max over a ``[B, H/2, 2, W/2, 2, C]``
  reshape (``backend.maxpool_impl`` picks one)."""
  if impl == "views":
    a = jnp.maximum(x[:, 0::2, 0::2], x[:, 0::2, 1::2])
    return jnp.maximum(a, jnp.maximum(x[:, 1::2, 0::2], x[:, 1::2, 1::2]))
  if impl == "reduce":
    b, h, w, c = x.shape
    return jnp.max(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))
  raise ValueError(f"pool impl must be one of {_POOL_IMPLS}, got {impl!r}")


class _UpConv2x2(nn.Module):
  """2x2 stride-2 transposed convolution, ``[B, H, W, C] -> [B, 2H, 2W, features]``.

  Kernel ``[C, 2, 2, features]``: output pixel (2h + a, 2w + b) is
  ``x[h, w] @ kernel[:, a, b, :] + bias``.
  """
  features: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    kernel = self.param("kernel", nn.initializers.lecun_normal(in_axis=0, out_axis=(1, 2, 3)),
                        (c, 2, 2, self.features), self.param_dtype)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
    y = jnp.dot(x.astype(self.dtype), kernel.reshape(c, 4 * self.features).astype(self.dtype))
    y = y.reshape(b, h, w, 2, 2, self.features)
    y = jnp.transpose(y, (0, 1, 3, 2, 4, 5)).reshape(b, 2 * h, 2 * w, self.features)
    return y + bias.astype(self.dtype)


_CONV_IMPLS = ("xla", "im2col", "rows", "shift")


def conv3x3(x: jnp.ndarray, kernel: jnp.ndarray, impl: str = "xla") -> jnp.ndarray:
  """3x3 'SAME' (zero-padded) convolution ``[B, H, W, C] * [3, 3, C, C'] -> [B, H, W, C']``.

  Four algorithms for the same function (the choice is a speed matter only,
  ``backend.conv3x3_impl``):
  ``"xla"``: ``lax.conv_general_dilated``; ``"im2col"``: the 9 shifted copies
  concatenated on channels, one ``[BHW, 9C] @ [9C, C']`` product; ``"rows"``: the
  3 horizontal shifts concatenated (``[B, H+2, W, 3C]``), then 3 products, one per
  kernel row, on row-shifted views summed; ``"shift"``: 9 products on shifted
  views summed.
  """
  b, h, w, c = x.shape
  co = kernel.shape[-1]
  if impl == "xla":
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  if impl == "im2col":
    cols = jnp.concatenate([xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], -1)
    return jnp.dot(cols, kernel.reshape(9 * c, co))
  if impl == "rows":
    x3 = jnp.concatenate([xp[:, :, j:j + w] for j in range(3)], -1)   # [B, H+2, W, 3C]
    k3 = kernel.reshape(3, 3 * c, co)
    return sum(jnp.dot(x3[:, i:i + h], k3[i]) for i in range(3))
  if impl == "shift":
    return sum(jnp.dot(xp[:, i:i + h, j:j + w], kernel[i, j])
               for i in range(3) for j in range(3))
  raise ValueError(f"conv impl must be one of {_CONV_IMPLS}, got {impl!r}")


class Conv3x3(nn.Module):
  """``nn.Conv(features, (3, 3), padding="SAME")`` with the same parameters
  (``kernel [3, 3, C, features]``, ``bias``), computed by ``conv3x3(impl)``."""
  features: int
  impl: str = "auto"
  add_bias: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    """``x``: ``[B, H, W, C]``, or a tuple of such maps standing for their
    concatenation on channels. Returns ``conv + bias``, or with
    ``add_bias=False`` the pair ``(conv, bias)`` for a consumer that adds the
    bias itself (``GroupNorm(x, bias)`` folds it into its affine map)."""
    parts = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    c = sum(p.shape[-1] for p in parts)
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, c, self.features),
                        self.param_dtype)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
    kernel = kernel.astype(self.dtype)
    y, off = None, 0
    for p in parts:  # conv(concat(parts)) as a sum of convs: no concatenated copy
      ci = p.shape[-1]
      yi = conv3x3(p.astype(self.dtype), kernel[:, :, off:off + ci],
                   backend.conv3x3_impl(p.shape) if self.impl == "auto" else self.impl)
      y, off = (yi if y is None else y + yi), off + ci
    if not self.add_bias:
      return y, bias
    return y + bias.astype(self.dtype)


class GroupNorm(nn.Module):
  """GroupNorm over ``[B, H, W, C]`` with per-channel ``scale`` and ``bias``.

  The same function as ``flax.linen.GroupNorm`` (biased variance
  ``E[x^2] - E[x]^2`` over H, W and the channels of a group, float32
  statistics), written as per-channel means over the pixels followed by a
  tiny per-group average rather than a reduction over a ``[B, H, W, G, C/G]``
  view (the faster form on XLA:CPU; ``docs/performance.md``).
  """
  num_groups: int
  epsilon: float = 1e-5
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, offset=None):
    """GroupNorm of ``x``, or of ``x + offset`` (``offset``: ``[C]``, e.g. the
    bias of the conv before it) without materialising the sum: the offset's
    effect on the statistics is added to ``x``'s per-channel moments
    (``E[(x+o)^2] = E[x^2] + 2 o E[x] + o^2``) and it enters the output's
    per-channel shift."""
    b, h, w, c = x.shape
    g = self.num_groups
    if c % g:
      raise ValueError(f"{c} channels are not divisible into {g} groups")
    scale = self.param("scale", nn.initializers.ones, (c,), self.param_dtype)
    bias = self.param("bias", nn.initializers.zeros, (c,), self.param_dtype)
    xf = x.reshape(b, h * w, c).astype(jnp.float32)
    m1 = jnp.mean(xf, axis=1)                                   # [B, C]
    m2 = jnp.mean(xf * xf, axis=1)
    if offset is not None:
      o = offset.astype(jnp.float32)
      m1, m2 = m1 + o, m2 + (2.0 * m1 + o) * o
    group = lambda m: jnp.repeat(m.reshape(b, g, c // g).mean(-1), c // g, axis=-1)
    m1, m2 = group(m1), group(m2)
    inv = jax.lax.rsqrt(jnp.maximum(m2 - m1 * m1, 0.0) + self.epsilon) * scale
    shift = bias - m1 * inv
    if offset is not None:
      shift = shift + o * inv
    return (x * inv[:, None, None, :].astype(self.dtype)
            + shift[:, None, None, :].astype(self.dtype))


class ConvBlock(nn.Module):
  """Two (3x3 conv, 'SAME' zero padding -> norm -> ReLU) layers.

  Submodules ``conv_0``, ``norm_0``, ``conv_1``, ``norm_1``.
  """
  features: int
  norm: str = "group"
  conv_impl: str = "auto"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    if self.norm not in ("group", "none"):
      raise ValueError(f"norm must be 'group' or 'none', got {self.norm!r}")
    group = self.norm == "group"
    for j in range(2):
      x = Conv3x3(self.features, impl=self.conv_impl, add_bias=not group, dtype=self.dtype,
                  param_dtype=self.param_dtype, name=f"conv_{j}")(x)
      if group:  # the conv bias is folded into GroupNorm: one pass less over x
        x = GroupNorm(num_groups(self.features), epsilon=1e-5, dtype=self.dtype,
                      param_dtype=self.param_dtype, name=f"norm_{j}")(*x)
      x = nn.relu(x)
    return x


class UNet(nn.Module):
  """U-Net on ``[B, F, T, C_in]`` (NHWC) images -> ``[B, F, T, out_channels]`` logits.

  Attributes:
    base_width: channels of the first level (64 published).
    levels: number of down/up levels (4 published).
    out_channels: output channels (2: mono and difference mask logits).
    norm: ``"group"`` or ``"none"``.
    pad_mode: how the input is padded to a multiple of ``2**levels``:
      ``"reflect"``, ``"constant"`` (zeros) or ``"edge"``.
    conv_impl: 3x3 convolution algorithm (``conv3x3``): ``"auto"``, ``"xla"``,
      ``"im2col"``, ``"rows"``, ``"shift"``, or a tuple of one per level.
    split_concat: decoder convs on ``(skip, up)`` as two summed convs:
      ``"auto"`` (``backend.split_concat``), True, False, or one bool per level.
    pool_impl: 2x2 max-pool form (``maxpool2x2``): ``"auto"``
      (``backend.maxpool_impl``), ``"views"`` or ``"reduce"``.
    dtype: compute dtype (float32 or bfloat16).
    param_dtype: parameter dtype (float32).
  """
  base_width: int = 64
  levels: int = 4
  out_channels: int = 2
  norm: str = "group"
  pad_mode: str = "reflect"
  conv_impl: Any = "auto"
  split_concat: Any = "auto"
  pool_impl: str = "auto"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def _impl(self, level: int) -> str:
    ci = self.conv_impl
    return ci if isinstance(ci, str) else ci[level]

  def _split(self, level: int, skip_shape) -> bool:
    sc = self.split_concat
    if sc == "auto":
      return backend.split_concat(skip_shape)
    return bool(sc) if isinstance(sc, (bool, int)) else bool(sc[level])

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    if x.ndim != 4:
      raise ValueError(f"UNet expects [B, H, W, C], got shape {x.shape}")
    if self.pad_mode not in _PAD_MODES:
      raise ValueError(f"pad_mode must be one of {_PAD_MODES}, got {self.pad_mode!r}")
    _, h, w, _ = x.shape
    ph, pw = padded_size(h, self.levels) - h, padded_size(w, self.levels) - w
    x = x.astype(self.dtype)
    if ph or pw:
      x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode=self.pad_mode)

    kw = dict(norm=self.norm, dtype=self.dtype, param_dtype=self.param_dtype)
    widths = [self.base_width * 2 ** i for i in range(self.levels + 1)]
    pool = backend.maxpool_impl() if self.pool_impl == "auto" else self.pool_impl
    skips = []
    x = ConvBlock(widths[0], **kw, conv_impl=self._impl(0), name="enc_0")(x)
    for i in range(1, self.levels + 1):
      skips.append(x)
      x = ConvBlock(widths[i], **kw, conv_impl=self._impl(i),
                    name=f"enc_{i}")(maxpool2x2(x, pool))
    for i in reversed(range(self.levels)):
      up = _UpConv2x2(widths[i], dtype=self.dtype, param_dtype=self.param_dtype,
                      name=f"up_{i}")(x)
      x = ConvBlock(widths[i], **kw, conv_impl=self._impl(i), name=f"dec_{i}")(
          (skips[i], up) if self._split(i, skips[i].shape)
          else jnp.concatenate([skips[i], up], axis=-1))
    x = nn.Conv(self.out_channels, (1, 1), dtype=self.dtype,
                param_dtype=self.param_dtype, name="head")(x)
    return x[:, :h, :w, :].astype(jnp.float32)


# Standard deviation of a unit normal truncated to [-2, 2] (as flax's
# variance_scaling "truncated_normal").
_TRUNC_STD = 0.87962566103423978


def _truncated_normal(rng: np.random.Generator, shape, std: float) -> np.ndarray:
  x = rng.standard_normal(shape)
  bad = np.abs(x) > 2.0
  while np.any(bad):  # resample the ~5 % outside [-2, 2]; not per step
    x[bad] = rng.standard_normal(int(bad.sum()))
    bad = np.abs(x) > 2.0
  return x * (std / _TRUNC_STD)


def init_unet(module: UNet, key: jax.Array, in_channels: int = 2) -> dict:
  """Variables ``{"params": ...}`` of ``module`` for ``in_channels`` input maps.

  The tree is ``jax.eval_shape(module.init, ...)`` (traced, not compiled);
  the values follow flax's default initialisers: kernels truncated-normal with
  variance ``1 / fan_in`` (fan_in = 3 * 3 * C_in for convs, C_in for the
  transposed convs), biases 0, GroupNorm scales 1. Deterministic in ``key``
  (its raw bits seed a numpy generator). Parameters do not depend on the image
  size. Under ``jit`` (a traced key) it falls back to ``module.init``: the same
  distributions, other values.
  """
  side = 2 ** module.levels
  dummy = jnp.zeros((1, side, side, in_channels), jnp.float32)
  if isinstance(key, jax.core.Tracer):  # under jit: flax's own (jittable) init
    return module.init(key, dummy)
  shapes = jax.eval_shape(module.init, key, dummy)
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  rng = np.random.default_rng([int(v) for v in np.asarray(key).ravel()])

  def init(path, leaf):
    name = path[-1].key
    owner = path[-2].key if len(path) > 1 else ""
    shape, dtype = leaf.shape, leaf.dtype
    if name == "kernel":
      fan_in = shape[0] if owner.startswith("up_") else int(np.prod(shape[:-1]))
      value = _truncated_normal(rng, shape, 1.0 / np.sqrt(fan_in))
    elif name == "scale":
      value = np.ones(shape)
    elif name == "bias":
      value = np.zeros(shape)
    else:
      raise ValueError(f"unknown parameter {jax.tree_util.keystr(path)}")
    return jnp.asarray(value, dtype)

  return jax.tree_util.tree_map_with_path(init, shapes)
