"""Audio 3DGS (Yoshida, Togo, Ogawa, Haseyama, IEEE VRW 2025): points + SH + U-Net.

method.md, "Audio 3DGS render". One audio point per spectrogram pixel: for an
F x T grid there are N = F * T points, pixel (f, t) <-> point ``f * T + t``.
Each point has a position, a single degree-2 SH field (9 coefficients) and a
rotation of its SH frame. For one listener pose::

    p_i  = R^T (xyz_i - c)                       point in the head frame (geometry.to_head_frame)
    r_i  = |p_i|,  u_i = Rot_i^T p_i / r_i       direction in the point's own (rotated) SH frame
    V    = sum_k sh[0, i, k] Y_k(u_i)            SH value map           [F, T]
    D    = r_i / max_norm                        distance map           [F, T] (max_norm = 25 units)
    z    = UNet([V, D])                          2-channel image -> 2 logit channels
    m    = sigmoid(z_0),  d = tanh(z_1)          mono mask in (0, 1), difference mask in (-1, 1)
    mono = m |S|,  diff = d |S|
    |Y_L| = max((mono + diff) / 2, 0),  |Y_R| = max((mono - diff) / 2, 0)
    Y_e  = |Y_e| exp(j angle(S))                 the source's phase

The head centre (not the ears) is the origin: the published model has a single
SH field and lets the U-Net produce both ears.

Where this differs from the paper's text, on purpose:

- **Non-negative ear magnitudes.** The paper's ``(mono +/- diff) / 2`` is
  negative wherever ``|d| > m``; a magnitude cannot be, so each ear's gain is
  clamped at 0. Written as real gains on the source,
  ``g_L = relu((m + d) / 2)``, ``g_R = relu((m - d) / 2)`` and ``Y_e = g_e S``,
  which keeps the source phase exactly. Bounds, for every bin:
  ``0 <= |Y_e| < |S|``; ``|Y_L| + |Y_R| = m |S|`` and ``|Y_L| - |Y_R| = d |S|``
  whenever ``|d| <= m`` (the only region a target can occupy, since
  ``||T_L| - |T_R|| <= |T_L| + |T_R|``); otherwise one ear is 0 and
  ``|Y_L| + |Y_R| = (m + |d|) / 2 |S|``. Always ``|Y_L| + |Y_R| < |S|``.
- **Padding.** The U-Net pads F x T once to multiples of ``2**levels``
  (reflect) and crops back (``audiogs_jax.models.unet``).

Parameters are one pytree (``Audio3DGSParams``): the points as ``Gaussians``
(``xyz [N, 3]``, ``sh [1, N, 9]``, ``rotation [N, 4]``; ``decay [N]`` is present
and unused, ``phase`` and ``log_scale`` are None) and the U-Net's flax
parameters. All functions are pure and take a hashable ``Audio3DGSConfig``
(a jit static argument). ``render_batch`` builds the per-pose maps with vmap
and runs the U-Net once on the whole batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import chex
from flax import struct
import jax
import jax.numpy as jnp

from audiogs_jax import dsp
from audiogs_jax import geometry
from audiogs_jax import losses
from audiogs_jax import sh as sh_lib
from audiogs_jax.gaussians import Gaussians, init_gaussians
from audiogs_jax.models.unet import UNet, init_unet

__all__ = ["Audio3DGSConfig", "Audio3DGSParams", "unet_module", "init_params",
           "feature_maps", "render_masks", "render_magnitudes", "render", "render_batch",
           "render_batch_tf", "ear_gains", "loss", "SH_DEGREE"]

SH_DEGREE = 2


@dataclasses.dataclass(frozen=True)
class Audio3DGSConfig(dsp.StftSettings):
  """Static settings of the Audio 3DGS model (hashable: a jit static argument).
  Its feature maps are taken at the head centre (no ear offsets)."""
  sample_rate: int = 22050
  n_fft: int = 512
  hop_length: int = 128
  win_length: Optional[int] = None
  window: str = "hann"
  max_norm: float = 25.0               # scene units; distance map = |p| / max_norm
  unet_width: int = 64
  unet_levels: int = 4
  unet_norm: str = "group"             # "group" | "none"
  unet_pad_mode: str = "reflect"       # "reflect" | "constant" | "edge"
  compute_dtype: str = "float32"       # "float32" | "bfloat16" (U-Net compute only)


@struct.dataclass
class Audio3DGSParams:
  """The trainable state: ``points`` (``Gaussians``) and ``unet`` (flax variables)."""
  points: Gaussians
  unet: Any


_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def unet_module(config: Audio3DGSConfig) -> UNet:
  """The flax ``UNet`` of this config (2 input maps -> 2 mask logits)."""
  if config.compute_dtype not in _DTYPES:
    raise ValueError(f"compute_dtype must be one of {tuple(_DTYPES)}, "
                     f"got {config.compute_dtype!r}")
  return UNet(base_width=config.unet_width, levels=config.unet_levels, out_channels=2,
              norm=config.unet_norm, pad_mode=config.unet_pad_mode,
              dtype=_DTYPES[config.compute_dtype])


def init_params(key: jax.Array, num_freqs: int, num_frames: int, *,
                config: Audio3DGSConfig, source_mag=None, center=(0.0, 0.0, 0.0),
                spread: float = 0.3, unet_width: Optional[int] = None) -> Audio3DGSParams:
  """Initial parameters for an F x T grid.

  Points: ``center`` plus isotropic Gaussian noise of std ``spread`` (scene
  units), identity rotations, SH degrees 1-2 zero and degree 0 set so that the
  SH value map equals ``source_mag`` (V = sh_0 * C0), as the paper does; 1 when
  ``source_mag`` is None.

  Args:
    key: PRNG key.
    num_freqs, num_frames: F (must be ``config.num_freqs``) and T.
    config: ``Audio3DGSConfig``.
    source_mag: ``[F, T]`` mean over training clips of the source's |STFT|.
    center: ``[3]`` scene-unit centre of the points (the listener centroid).
    spread: std of the initial positions around ``center``.
    unet_width: must equal ``config.unet_width`` if given (the config decides
      the network that ``render`` builds).

  Returns:
    ``Audio3DGSParams``.
  """
  if num_freqs != config.num_freqs:
    raise ValueError(f"num_freqs={num_freqs} but config.n_fft={config.n_fft} gives "
                     f"{config.num_freqs} bins")
  if unet_width is not None and unet_width != config.unet_width:
    raise ValueError(f"unet_width={unet_width} differs from config.unet_width="
                     f"{config.unet_width}; set it in the config")
  points = init_gaussians(key, num_freqs, num_frames, sh_degree=SH_DEGREE,
                          center=center, spread=spread, dual=False, learn_phase=False,
                          with_rotation=True, init_gain=1.0, activation="relu")
  if source_mag is not None:
    source_mag = jnp.asarray(source_mag, points.sh.dtype)
    chex.assert_shape(source_mag, (num_freqs, num_frames))
    points = points.replace(
        sh=points.sh.at[0, :, 0].set(source_mag.reshape(-1) / sh_lib.C0))
  # numpy-drawn from the key's bits (a different stream from the positions'
  # threefry draw); see unet.init_unet.
  unet = init_unet(unet_module(config), key, in_channels=2)
  return Audio3DGSParams(points=points, unet=unet)


def _grid(points: Gaussians, config: Audio3DGSConfig):
  f = config.num_freqs
  n = points.xyz.shape[0]
  if n % f:
    raise ValueError(f"{n} points is not a multiple of {f} frequency bins "
                     f"(n_fft={config.n_fft})")
  return f, n // f


def feature_maps(points: Gaussians, pose: jnp.ndarray, config: Audio3DGSConfig) -> jnp.ndarray:
  """The U-Net's input for one pose: ``[F, T, 2]`` = (SH value map, distance map).

  Args:
    points: ``Gaussians`` with ``sh [1, N, 9]`` and (optionally) ``rotation [N, 4]``.
    pose: ``[4, 4]`` head-to-world.
    config: ``Audio3DGSConfig``.
  """
  chex.assert_shape(pose, (4, 4))
  f, t = _grid(points, config)
  p = geometry.to_head_frame(points.xyz, pose)                 # [N, 3]
  r = jnp.sqrt(jnp.sum(p * p, axis=-1) + 1e-12)                # [N]
  u = p / r[:, None]
  if points.rotation is not None:
    rot = geometry.quat_to_rotmat(points.rotation)             # [N, 3, 3]
    u = jnp.einsum("nji,nj->ni", rot, u)                       # Rot_i^T u
  coeffs = points.sh[0]                                        # [N, K]
  degree = sh_lib.degree_of(coeffs.shape[-1])
  terms = sh_lib.basis_terms(u[:, 0], u[:, 1], u[:, 2], degree)
  value = coeffs[:, 0] * terms[0]
  for k in range(1, len(terms)):  # K = 9 terms, unrolled at trace time
    value = value + coeffs[:, k] * terms[k]
  dist = r / config.max_norm
  return jnp.stack([value, dist], axis=-1).reshape(f, t, 2)


def render_masks(params: Audio3DGSParams, poses: jnp.ndarray, config: Audio3DGSConfig):
  """Mono and difference masks for poses ``[B, 4, 4]`` (or one ``[4, 4]``).

  Returns:
    ``(m, d)``, each float32 ``[B, F, T]`` (``[F, T]`` for one pose);
    ``m = sigmoid(.)`` in (0, 1), ``d = tanh(.)`` in (-1, 1). One U-Net call.
  """
  single = poses.ndim == 2
  if single:
    poses = poses[None]
  chex.assert_rank(poses, 3)
  maps = jax.vmap(feature_maps, in_axes=(None, 0, None))(params.points, poses, config)
  logits = unet_module(config).apply(params.unet, maps)        # [B, F, T, 2] float32
  m, d = jax.nn.sigmoid(logits[..., 0]), jnp.tanh(logits[..., 1])
  return (m[0], d[0]) if single else (m, d)


def ear_gains(m: jnp.ndarray, d: jnp.ndarray) -> jnp.ndarray:
  """Real ear gains ``[..., 2, F, T]`` from masks ``[..., F, T]``:
  ``relu((m + d) / 2)`` (left), ``relu((m - d) / 2)`` (right)."""
  return jax.nn.relu(jnp.stack([m + d, m - d], axis=-3) * 0.5)


def render_magnitudes(params: Audio3DGSParams, pose: jnp.ndarray, source_stft: jnp.ndarray,
                      config: Audio3DGSConfig):
  """The masked mono and difference magnitudes of the paper, before the ear split.

  Args:
    pose: ``[4, 4]`` (or ``[B, 4, 4]``).
    source_stft: complex ``[F, T]`` (or ``[B, F, T]``).

  Returns:
    ``(mono, diff)``: ``m |S|`` and ``d |S|``, float32, shaped like ``|S|``
    broadcast against the poses.
  """
  m, d = render_masks(params, pose, config)
  mag = jnp.abs(source_stft)
  return m * mag, d * mag


def render_batch(params: Audio3DGSParams, poses: jnp.ndarray, source_stft: jnp.ndarray,
                 config: Audio3DGSConfig) -> jnp.ndarray:
  """Binaural STFTs for poses ``[B, 4, 4]``.

  Args:
    params: ``Audio3DGSParams``.
    poses: ``[B, 4, 4]`` head-to-world.
    source_stft: complex ``[F, T]`` (one clip for all poses) or ``[B, F, T]``.
    config: ``Audio3DGSConfig``.

  Returns:
    complex ``[B, 2, F, T]`` (ear 0 = left), ``Y_e = g_e S`` with the real
    gains of ``ear_gains`` (so the phase is the source's).
  """
  chex.assert_rank(poses, 3)
  m, d = render_masks(params, poses, config)                   # [B, F, T]
  if source_stft.ndim == 3:
    chex.assert_axis_dimension(source_stft, 0, poses.shape[0])
  chex.assert_equal_shape([m[0], source_stft if source_stft.ndim == 2 else source_stft[0]])
  gains = ear_gains(m, d)                                      # [B, 2, F, T]
  src = source_stft if source_stft.ndim == 2 else source_stft[:, None]
  return gains.astype(jnp.real(source_stft).dtype) * src


def render(params: Audio3DGSParams, pose: jnp.ndarray, source_stft: jnp.ndarray,
           config: Audio3DGSConfig) -> jnp.ndarray:
  """Binaural STFT for one pose ``[4, 4]`` and one source clip ``[F, T]``:
  complex ``[2, F, T]``."""
  chex.assert_shape(pose, (4, 4))
  chex.assert_rank(source_stft, 2)
  return render_batch(params, pose[None], source_stft, config)[0]


def render_batch_tf(params: Audio3DGSParams, poses: jnp.ndarray, source_tf: jnp.ndarray,
                    config: Audio3DGSConfig) -> jnp.ndarray:
  """``render_batch`` in frames-major layout (the training loop's): source
  ``[T, F]`` or ``[B, T, F]`` -> complex ``[B, 2, T, F]``."""
  out = render_batch(params, poses, jnp.swapaxes(source_tf, -1, -2), config)
  return jnp.swapaxes(out, -1, -2)


def loss(pred_stft: jnp.ndarray, target_stft: jnp.ndarray):
  """The Audio 3DGS loss: L2 on the mono and difference magnitude spectrograms.

  With ``P_e = |pred[:, e]|`` and ``G_e = |target[:, e]|``::

      mono_l2 = mean over (b, f, t) of ((P_L + P_R) - (G_L + G_R))^2
      diff_l2 = mean over (b, f, t) of ((P_L - P_R) - (G_L - G_R))^2
      loss    = mono_l2 + diff_l2

  (the same value as ``losses.mono_diff_l2``, returned with its two terms).
  ``|P_e|`` is ``losses.safe_abs`` (a finite gradient at 0). Layout-agnostic: any
  ``[B, 2, ...]`` pair of complex spectrograms (``[B, 2, F, T]`` or
  ``[B, 2, T, F]``).

  Returns:
    ``(loss, {"mono_l2": ..., "diff_l2": ...})``.
  """
  chex.assert_equal_shape([pred_stft, target_stft])
  chex.assert_axis_dimension(pred_stft, 1, 2)
  pl, pr = losses.safe_abs(pred_stft[:, 0]), losses.safe_abs(pred_stft[:, 1])
  tl, tr = jnp.abs(target_stft[:, 0]), jnp.abs(target_stft[:, 1])
  mono = jnp.mean(((pl + pr) - (tl + tr)) ** 2)
  diff = jnp.mean(((pl - pr) - (tl - tr)) ** 2)
  return mono + diff, {"mono_l2": mono, "diff_l2": diff}
