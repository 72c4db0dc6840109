"""The AudioGS renderer: explicit, no network (method.md, "AudioGS render").

For ear e and Gaussian i = (f, t)::

    A_ie   = act( sum_k sh[e, i, k] * Y_k(u_ie) )          directional magnitude
    D_ie   = (r0 / max(r_ie, r_min)) ** softplus(decay_i)   distance attenuation
    tau_ie = (r_ie - r_ic) / c_sound                        ITD vs. the head centre
    G_e(f, t) = A_ie * D_ie * exp(-j 2 pi freq_f tau_ie + j phase[e, i])

``itd_model = "woodworth"`` replaces the straight-line path difference by the
spherical-head (Woodworth) one, ``tau_ie = -/+ (a / 2 c) (asin(s_i) + s_i)`` (left /
right ear; ``s_i`` the lateral component, towards the right ear, of the unit vector
from the head centre to the Gaussian; see ``itd_path``): the sound travels around the
head to the far ear, so the interaural time reaches ``(a / c)(pi / 2 + 1)`` at 90
degrees instead of the straight line's ``2 a / c``.
    Y_e(f, t) = G_e(f, t) * S(f, t)
    y_e = ISTFT(Y_e)

Distances are in metres: scene-unit positions are multiplied by
``exp(log_scale)`` (metres per unit) when the Gaussians carry ``log_scale``,
and by ``config.metres_per_unit`` otherwise.

Everything is a pure function of arrays. ``render`` handles one pose;
``render_batch`` vmaps it over poses (and, optionally, source clips). There are
no Python loops over Gaussians, frames or poses: a fixed batch shape compiles once.

Run as ``python -m audiogs_jax.render`` this module is the command-line renderer
(see ``audiogs_jax.render_cli``).
"""

from __future__ import annotations

if __name__ == "__main__":  # the CLI (render_cli): parse arguments before importing JAX
  import sys
  from audiogs_jax import render_cli
  sys.exit(render_cli.main())

import dataclasses
from typing import Optional

import chex
from flax import struct
import jax
import jax.numpy as jnp
import numpy as np

from audiogs_jax import dsp
from audiogs_jax import fastmath
from audiogs_jax import geometry
from audiogs_jax import sh as sh_lib
from audiogs_jax.gaussians import GaussianGrid, Gaussians

__all__ = ["RenderConfig", "Planes", "to_planes", "prepare", "gains_planes", "gains", "gains_tf",
           "render", "render_tf", "render_waveform", "render_batch", "render_batch_tf",
           "render_waveform_batch", "render_reference"]


@dataclasses.dataclass(frozen=True)
class RenderConfig:
  """Static settings of the AudioGS renderer (hashable: a jit static argument).

  Ablation switches: ``use_attenuation`` (D = 1 when off),
  ``use_sh_directionality`` (only the degree-0 coefficient when off),
  ``use_phase_correction`` (tau = 0 when off), ``use_learned_phase``
  (ignore ``Gaussians.phase``), ``dual_sh`` (both ears read field 0 when off).
  ``content_mode`` is Audio 3DGS's alternative: the Gaussians give the output
  magnitude directly and only the source's phase is used.
  """
  sample_rate: int = 22050
  n_fft: int = 512
  hop_length: int = 128
  win_length: Optional[int] = None
  window: str = "hann"
  head_radius: float = 0.0875          # metres
  speed_of_sound: float = 343.0        # metres / second
  r0: float = 1.0                      # reference distance of the attenuation law, metres
  r_min: float = 0.1                   # distances are clamped below at this, metres
  metres_per_unit: float = 1.0         # used when Gaussians.log_scale is None
  activation: str = "relu"             # "relu" or "softplus"
  use_attenuation: bool = True
  use_sh_directionality: bool = True
  use_phase_correction: bool = True
  itd_model: str = "straight"          # "straight" (ear points) | "woodworth" (spherical head)
  use_learned_phase: bool = True
  dual_sh: bool = True
  content_mode: bool = False
  fast_math: bool = True               # polynomial sin/cos/exp/log (fastmath.py)
  custom_backward: bool = True         # hand-derived VJP for batches (render_vjp.py)

  @property
  def num_freqs(self) -> int:
    return self.n_fft // 2 + 1

  def stft_kwargs(self) -> dict:
    return dict(n_fft=self.n_fft, hop_length=self.hop_length,
                win_length=self.win_length, window=self.window)


def _activation(x, name: str):
  if name == "relu":
    return jax.nn.relu(x)
  if name == "softplus":
    return jax.nn.softplus(x)
  raise ValueError(f"unknown activation {name!r}")


def _metres_per_unit(g: Gaussians, config: RenderConfig):
  if g.log_scale is not None:
    return jnp.exp(g.log_scale)
  return jnp.asarray(config.metres_per_unit, g.xyz.dtype)


@struct.dataclass
class Planes:
  """Pose-independent Gaussian fields laid out frames-major, ``[..., T, F]``.

  The renderer's device layout. ``Gaussians`` (method.md's ``[N, ...]``
  fields) is the interchange layout; ``to_planes`` converts. Every render
  function accepts either. Inside one jit, XLA fuses the re-layout into the
  per-pose loop, so every pose re-gathers the ``[N, K]`` fields with strided
  reads; for inference over many poses, ``prepare`` once (jit it) and render
  from the returned ``Planes``: this is 2-3x faster per clip on CPU.
  """
  xyz: jnp.ndarray                      # [3, T, F] scene units
  coeffs: jnp.ndarray                   # [E, K, T, F]
  expo: Optional[jnp.ndarray]           # [T, F] softplus(decay)
  phase: Optional[jnp.ndarray]          # [2, T, F]
  rot: Optional[jnp.ndarray]            # [3, 3, T, F] per-Gaussian SH frame
  scale: jnp.ndarray                    # [] metres per scene unit


def to_planes(g, config: RenderConfig) -> Planes:
  """Reorder a ``Gaussians`` pytree into ``Planes`` (bin (f, t) = index f*T + t).

  ``Planes`` pass through unchanged. The config's ablation switches are
  applied here (fields that are switched off are dropped).
  """
  if isinstance(g, Planes):
    return g
  if isinstance(g, GaussianGrid):
    return _grid_to_planes(g, config)
  f = config.num_freqs
  n = g.xyz.shape[0]
  if n % f:
    raise ValueError(f"{n} Gaussians is not a multiple of {f} frequency bins "
                     f"(n_fft={config.n_fft})")
  t = n // f
  tf = lambda a: jnp.swapaxes(a.reshape(a.shape[:-1] + (f, t)), -1, -2)
  degree = g.sh_degree if config.use_sh_directionality else 0
  kk = (degree + 1) ** 2
  coeffs = g.sh[..., :kk]
  if not config.dual_sh:
    coeffs = coeffs[:1]
  rot = None
  if g.rotation is not None and degree > 0:
    rot = tf(jnp.moveaxis(geometry.quat_to_rotmat(g.rotation), (1, 2), (0, 1)))
  planes = Planes(
      xyz=tf(jnp.moveaxis(g.xyz, -1, 0)),
      coeffs=tf(jnp.moveaxis(coeffs, -1, 1)),
      expo=tf(jax.nn.softplus(g.decay)) if config.use_attenuation else None,
      phase=(tf(g.phase) if config.use_learned_phase and g.phase is not None
             else None),
      rot=rot,
      scale=_metres_per_unit(g, config),
  )
  return planes


def _grid_to_planes(g: GaussianGrid, config: RenderConfig) -> Planes:
  """Planes from the grid layout: elementwise only, no re-layout."""
  if g.num_freqs != config.num_freqs:
    raise ValueError(f"grid has {g.num_freqs} frequency bins, config expects "
                     f"{config.num_freqs} (n_fft={config.n_fft})")
  degree = g.sh_degree if config.use_sh_directionality else 0
  coeffs = g.sh[:, :(degree + 1) ** 2]
  if not config.dual_sh:
    coeffs = coeffs[:1]
  rot = None
  if g.rotation is not None and degree > 0:
    rot = jnp.moveaxis(geometry.quat_to_rotmat(jnp.moveaxis(g.rotation, 0, -1)),
                       (-2, -1), (0, 1))
  return Planes(
      xyz=g.xyz, coeffs=coeffs,
      expo=jax.nn.softplus(g.decay) if config.use_attenuation else None,
      phase=g.phase if config.use_learned_phase else None, rot=rot,
      scale=_metres_per_unit(g, config))


def prepare(g: Gaussians, config: RenderConfig) -> Planes:
  """``to_planes`` for use outside jit: ``jax.jit(prepare, static_argnums=1)``
  once per scene, then render any number of pose batches from the result."""
  return to_planes(g, config)


def gains_planes(p: Planes, pose: jnp.ndarray, config: RenderConfig) -> jnp.ndarray:
  """Complex binaural gains for one pose from ``Planes``: ``[2, T, F]``.

  One fused elementwise pass: head-frame geometry, dual SH magnitude,
  attenuation, ITD and learned phase, ``A * D * exp(j phi)``.
  """
  dtype = p.xyz.dtype
  if config.fast_math:
    exp, log, sincos = fastmath.exp, fastmath.log, fastmath.sincos
  else:
    exp, log = jnp.exp, jnp.log
    sincos = lambda x: (jnp.sin(x), jnp.cos(x))
  rot, c = geometry.rotation(pose) * p.scale, geometry.translation(pose)
  # Head-frame position in metres, p = s R^T (x - c), one plane per axis.
  d0, d1, d2 = p.xyz[0] - c[0], p.xyz[1] - c[1], p.xyz[2] - c[2]
  px = rot[0, 0] * d0 + rot[1, 0] * d1 + rot[2, 0] * d2
  py = rot[0, 1] * d0 + rot[1, 1] * d1 + rot[2, 1] * d2
  pz = rot[0, 2] * d0 + rot[1, 2] * d1 + rot[2, 2] * d2
  a = config.head_radius
  # Ear e sits at x = -a (left) / +a (right): vector to Gaussian = p - ear.
  ear_x = jnp.asarray([-a, a], dtype)[:, None, None]            # [2, 1, 1]
  vx = px[None] - ear_x                                          # [2, T, F]
  vy, vz = py[None], pz[None]
  r = jnp.sqrt(jnp.maximum(vx * vx + vy * vy + vz * vz, 1e-18))

  # Directional magnitude from the (dual) SH field.
  coeffs = p.coeffs                                              # [E, K, T, F]
  kk = coeffs.shape[1]
  degree = sh_lib.degree_of(kk)
  if degree > 0:
    inv_r = 1.0 / r
    ux, uy, uz = vx * inv_r, vy * inv_r, vz * inv_r             # [2, T, F]
    if p.rot is not None:
      q = p.rot
      # Direction in the Gaussian's own frame: R_i^T u.
      ux, uy, uz = (q[0, k] * ux + q[1, k] * uy + q[2, k] * uz for k in range(3))
    terms = sh_lib.basis_terms(ux, uy, uz, degree)
    amp = coeffs[:, 0] * terms[0]
    for k in range(1, kk):  # K <= 16 terms, unrolled at trace time
      amp = amp + coeffs[:, k] * terms[k]
  else:
    amp = jnp.broadcast_to(coeffs[:, 0] * sh_lib.C0, r.shape)
  amp = _activation(amp, config.activation)

  if p.expo is not None:
    log_ratio = np.float32(np.log(config.r0)) - log(jnp.maximum(r, config.r_min))
    amp = amp * exp(p.expo * log_ratio)

  phi = jnp.zeros_like(amp)
  if config.use_phase_correction:
    rc = jnp.sqrt(jnp.maximum(px * px + py * py + pz * pz, 1e-18))  # [T, F]
    freqs = jnp.asarray(dsp.frequencies(config.n_fft, config.sample_rate), dtype)
    k = (-2.0 * np.pi / config.speed_of_sound) * freqs           # [F]
    phi = phi + k * itd_path(r, rc, px, config)
  if p.phase is not None:
    phi = phi + p.phase
  sin_phi, cos_phi = sincos(phi)
  return jax.lax.complex(amp * cos_phi, amp * sin_phi)


#: |lateral component| is clipped here in the Woodworth model (finite gradient).
WOODWORTH_MAX_LATERAL = 0.999


def woodworth(s):
  """``(asin(s) + s, d/ds)`` of the lateral components ``s``, clipped to +-0.999 (the
  derivative is 0 where clipped, as autodiff of the clip gives)."""
  inside = jnp.abs(s) < WOODWORTH_MAX_LATERAL
  s = jnp.clip(s, -WOODWORTH_MAX_LATERAL, WOODWORTH_MAX_LATERAL)
  return jnp.arcsin(s) + s, jnp.where(inside, 1.0 / jnp.sqrt(1.0 - s * s) + 1.0, 0.0)


def itd_path(r, rc, px, config: RenderConfig):
  """Extra path to each ear beyond the head centre, metres ``[2, ...]`` (``c tau``).

  ``r``: ``[2, ...]`` ear-to-Gaussian distances; ``rc``, ``px``: ``[...]`` distance from
  the head centre and the head-frame x (towards the right ear) of the Gaussian.
  ``straight``: ``r - rc``. ``woodworth``: ``+-(a / 2)(asin(s) + s)``, ``s = px / rc``,
  plus for the left, minus for the right ear.
  """
  if config.itd_model == "straight":
    return r - rc
  if config.itd_model == "woodworth":
    g, _ = woodworth(px / rc)
    half = 0.5 * config.head_radius * g
    return jnp.stack([half, -half])
  raise ValueError(f"itd_model must be straight or woodworth, got {config.itd_model!r}")


def gains_tf(g: "Gaussians | Planes", pose: jnp.ndarray, config: RenderConfig) -> jnp.ndarray:
  """Complex binaural gains of all Gaussians for one pose, frames-major.

  Args:
    g: ``Gaussians`` with N = F * T (F = n_fft // 2 + 1).
    pose: ``[4, 4]`` head-to-world pose (scene units).
    config: ``RenderConfig``.

  Returns:
    complex64 ``[2, T, F]``: ``A * D * exp(j phi)`` per ear and bin.
  """
  chex.assert_shape(pose, (4, 4))
  return gains_planes(to_planes(g, config), pose, config)



def gains(g: "Gaussians | Planes", pose: jnp.ndarray, config: RenderConfig) -> jnp.ndarray:
  """Complex binaural gains ``[2, F, T]`` of all Gaussians for one pose."""
  return jnp.swapaxes(gains_tf(g, pose, config), -1, -2)


def _apply_source(gain_tf, source_tf, config: RenderConfig):
  """gain ``[2, T, F]`` times the source STFT ``[T, F]`` (or its phase only)."""
  chex.assert_equal_shape([gain_tf[0], source_tf])
  if config.content_mode:
    source_tf = source_tf / jnp.maximum(jnp.abs(source_tf), 1e-8)
  return gain_tf * source_tf[None]


def render_tf(g: "Gaussians | Planes", pose: jnp.ndarray, source_tf: jnp.ndarray,
              config: RenderConfig) -> jnp.ndarray:
  """``render`` in frames-major layout.

  Args:
    source_tf: complex ``[T, F]`` source STFT (``dsp.stft_frames``).

  Returns:
    complex ``[2, T, F]``.
  """
  chex.assert_rank(source_tf, 2)
  return _apply_source(gains_tf(g, pose, config), source_tf, config)


def render(g: "Gaussians | Planes", pose: jnp.ndarray, source_stft: jnp.ndarray,
           config: RenderConfig) -> jnp.ndarray:
  """Binaural STFT for one pose and one source clip.

  Args:
    g: ``Gaussians`` (N = F * T).
    pose: ``[4, 4]`` head-to-world.
    source_stft: complex ``[F, T]`` STFT of the (mono) source clip.
    config: ``RenderConfig``.

  Returns:
    complex ``[2, F, T]`` (ear 0 = left).
  """
  chex.assert_rank(source_stft, 2)
  return jnp.swapaxes(
      render_tf(g, pose, jnp.swapaxes(source_stft, -1, -2), config), -1, -2)


def render_waveform(g: "Gaussians | Planes", pose: jnp.ndarray, source_stft: jnp.ndarray,
                    config: RenderConfig, length: Optional[int] = None) -> jnp.ndarray:
  """As ``render``, then ISTFT: returns ``[2, samples]``."""
  spec = render_tf(g, pose, jnp.swapaxes(source_stft, -1, -2), config)
  return dsp.istft_frames(spec, length=length, **config.stft_kwargs())


def render_batch_tf(g: "Gaussians | Planes", poses: jnp.ndarray,
                    source_tf: jnp.ndarray,
                    config: RenderConfig) -> jnp.ndarray:
  """Frames-major batch render: poses ``[B, 4, 4]``, source ``[T, F]`` or
  ``[B, T, F]`` -> complex ``[B, 2, T, F]``. The layout the training loop uses."""
  chex.assert_rank(poses, 3)
  planes = to_planes(g, config)
  from audiogs_jax import render_vjp
  if config.custom_backward and render_vjp.supported(planes):
    gain = render_vjp.gains_batch(planes, poses, config)
  else:
    gain = jax.vmap(gains_planes, in_axes=(None, 0, None))(planes, poses, config)
  if source_tf.ndim == 2:
    source_tf = source_tf[None]
  return jax.vmap(_apply_source, in_axes=(0, 0, None))(
      gain, jnp.broadcast_to(source_tf, (gain.shape[0],) + source_tf.shape[1:]),
      config)


def render_batch(g: "Gaussians | Planes", poses: jnp.ndarray, source_stft: jnp.ndarray,
                 config: RenderConfig) -> jnp.ndarray:
  """``render`` over poses ``[B, 4, 4]``.

  ``source_stft`` is ``[F, T]`` (one clip for every pose) or ``[B, F, T]``.
  Returns complex ``[B, 2, F, T]``.
  """
  spec = render_batch_tf(g, poses, jnp.swapaxes(source_stft, -1, -2), config)
  return jnp.swapaxes(spec, -1, -2)


def render_waveform_batch(g: "Gaussians | Planes", poses: jnp.ndarray,
                          source_stft: jnp.ndarray, config: RenderConfig,
                          length: Optional[int] = None, *,
                          frames_major: bool = False,
                          chunk_size: Optional[int] = None) -> jnp.ndarray:
  """``render_waveform`` over a batch of poses: returns ``[B, 2, samples]``.

  ``source_stft`` is ``[F, T]`` or ``[B, F, T]`` as in ``render_batch``, or
  ``[T, F]`` / ``[B, T, F]`` with ``frames_major=True`` (the fast path: no
  transpose of the source per call).

  ``chunk_size``: render the batch ``chunk_size`` poses at a time inside one
  ``lax.map`` (same result). On CPU this keeps the program's temporaries
  (the gains and the inverse FFT's frames: 49 MB for 32 poses at once, 6 MB
  in chunks of 2) in cache and under glibc's mmap threshold, so the allocator
  reuses them instead of mapping and page-faulting them afresh on every call
  (with glibc's default allocator, batch 32 of 1-s clips on the 2-core CPU:
  1.7 ms per clip in chunks of 2 against 2.7 ms for the whole batch, in one
  interleaved run). ``runtime.tune_host_allocator()`` (which the command-line
  tools call) removes the page faults too, and then the whole batch is as fast
  or faster; ``scripts/bench.py`` times the four combinations. ``None``: the
  whole batch at once (what gradients should use).
  """
  src = source_stft if frames_major else jnp.swapaxes(source_stft, -1, -2)
  b = poses.shape[0]
  if chunk_size is None or b <= chunk_size:
    spec = render_batch_tf(g, poses, src, config)               # [B, 2, T, F]
    return dsp.istft_frames(spec, length=length, **config.stft_kwargs())
  c = int(chunk_size)
  planes = to_planes(g, config)
  n = -(-b // c)
  pad = n * c - b
  if src.ndim == 2:
    src = jnp.broadcast_to(src, (b,) + src.shape)
  if pad:  # repeat the last pose; the extra outputs are dropped below
    poses = jnp.concatenate([poses, jnp.repeat(poses[-1:], pad, axis=0)])
    src = jnp.concatenate([src, jnp.repeat(src[-1:], pad, axis=0)])
  out = jax.lax.map(
      lambda a: render_waveform_batch(planes, a[0], a[1], config, length,
                                      frames_major=True),
      (poses.reshape((n, c) + poses.shape[1:]), src.reshape((n, c) + src.shape[1:])))
  return out.reshape((n * c,) + out.shape[2:])[:b]


def render_reference(g: Gaussians, pose, source_stft, config: RenderConfig) -> np.ndarray:
  """Slow, obviously-correct numpy version of ``render`` (for tests).

  Loops over ears and evaluates the formulas of the module docstring literally,
  one Gaussian per row, in float64, except the SH basis (``sh.sh_basis``) and
  the quaternion conversion, which run through jax.numpy in float32 (about
  1e-7 relative error, far inside the tests' tolerances).
  """
  xyz = np.asarray(g.xyz, np.float64)
  shc = np.asarray(g.sh, np.float64)
  n = xyz.shape[0]
  f = config.num_freqs
  t = n // f
  pose = np.asarray(pose, np.float64)
  rmat, c = pose[:3, :3], pose[:3, 3]
  s = (float(np.exp(np.asarray(g.log_scale))) if g.log_scale is not None
       else config.metres_per_unit)
  p = ((xyz - c) @ rmat) * s                                  # R^T (x - c), metres
  freqs = np.repeat(dsp.frequencies(config.n_fft, config.sample_rate), t)
  out = np.zeros((2, n), np.complex128)
  degree = sh_lib.degree_of(shc.shape[-1]) if config.use_sh_directionality else 0
  kk = (degree + 1) ** 2
  for e, ear_x in enumerate((-config.head_radius, config.head_radius)):
    d = p - np.array([ear_x, 0.0, 0.0])
    r = np.linalg.norm(d, axis=1)
    u = d / r[:, None]
    if g.rotation is not None:
      rot = np.asarray(geometry.quat_to_rotmat(jnp.asarray(g.rotation)), np.float64)
      u = np.einsum("nji,nj->ni", rot, u)
    basis = np.asarray(sh_lib.sh_basis(jnp.asarray(u), degree), np.float64)
    field = shc[e if (config.dual_sh and shc.shape[0] == 2) else 0][:, :kk]
    a = np.sum(field * basis, axis=1)
    a = np.maximum(a, 0.0) if config.activation == "relu" else np.log1p(np.exp(a))
    if config.use_attenuation:
      expo = np.log1p(np.exp(np.asarray(g.decay, np.float64)))
      a = a * (config.r0 / np.maximum(r, config.r_min)) ** expo
    phi = np.zeros(n)
    if config.use_phase_correction and config.itd_model == "woodworth":
      lat = np.clip(p[:, 0] / np.linalg.norm(p, axis=1), -WOODWORTH_MAX_LATERAL,
                    WOODWORTH_MAX_LATERAL)
      tau = (1 - 2 * e) * 0.5 * config.head_radius * (np.arcsin(lat) + lat)
      phi = phi - 2.0 * np.pi * freqs * tau / config.speed_of_sound
    elif config.use_phase_correction:
      tau = (r - np.linalg.norm(p, axis=1)) / config.speed_of_sound
      phi = phi - 2.0 * np.pi * freqs * tau
    if config.use_learned_phase and g.phase is not None:
      phi = phi + np.asarray(g.phase[e], np.float64)
    out[e] = a * np.exp(1j * phi)
  src = np.asarray(source_stft).reshape(-1)
  if config.content_mode:
    src = src / np.maximum(np.abs(src), 1e-8)
  return (out * src[None]).reshape(2, f, t)

