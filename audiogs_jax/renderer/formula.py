"""The AudioGS gain, written once (method.md, "AudioGS render").

For pose b, ear e and Gaussian (t, f)::

    p     = s R_b^T (x - c_b)                        head frame, metres
    v_e   = p - ear_e,  r_e = |v_e|,  u_e = v_e / r_e  ears at x = -a (left), +a (right)
    A_e   = act( sum_k sh[e, k] Y_k(u_e) )          directional magnitude (dual SH)
    D_e   = (r0 / max(r_e, r_min)) ** q              q = softplus(decay): distance decay
    P_e   = r_e - |p|                                path beyond the head centre (straight)
          = +-(a / 2) (asin(s) + s),  s = p_x / |p|  (woodworth: around a spherical head,
                                                      plus for the left ear)
    phi_e = -2 pi freq_f P_e / c + phase[e]
    G_e   = A_e D_e exp(j phi_e)

``forward`` computes every intermediate of this for a batch of poses: ``gains``
(autodiff) and ``renderer.backward`` (the hand-derived VJP) both call it, and
``renderer.reference`` restates it in float64 numpy for the tests.

The parameters (``gaussians.GaussianGrid``) are turned into the ``Fields`` that
``forward`` reads by ``fields``: the activations that do not depend on the pose
(softplus of the decay, metres per unit) are applied once, and the ablation
switches of ``RenderConfig`` drop what is switched off.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from audiogs_jax import backend
from audiogs_jax import dsp
from audiogs_jax import geometry
from audiogs_jax import sh as sh_lib
from audiogs_jax.gaussians import GaussianGrid, Tail
from audiogs_jax.renderer.config import RenderConfig

__all__ = ["Fields", "fields", "forward", "gains", "itd_path", "woodworth",
           "WOODWORTH_MAX_LATERAL"]

#: |lateral component| is clipped here in the Woodworth model (finite gradient).
WOODWORTH_MAX_LATERAL = 0.999


@struct.dataclass
class Fields:
  """What ``forward`` reads: the pose-independent fields, ``[..., T, F]``.

  Fields that the config switches off are ``None``.
  """
  xyz: jnp.ndarray                      # [3, T, F] scene units
  coeffs: jnp.ndarray                   # [E, K, T, F] SH coefficients (K cut by config)
  expo: Optional[jnp.ndarray]           # [T, F] softplus(decay)
  phase: Optional[jnp.ndarray]          # [2, T, F] learned phase, radians
  scale: jnp.ndarray                    # [] metres per scene unit
  tail: Optional[Tail] = None           # the reverberant tail (renderer.tail), if any


def fields(g: GaussianGrid, config: RenderConfig) -> Fields:
  """``Fields`` of the parameters ``g`` under ``config``'s switches."""
  if g.num_freqs != config.num_freqs:
    raise ValueError(f"grid has {g.num_freqs} frequency bins, config expects "
                     f"{config.num_freqs} (n_fft={config.n_fft})")
  degree = g.sh_degree if config.use_sh_directionality else 0
  coeffs = g.sh[:, :(degree + 1) ** 2]
  if not config.dual_sh:
    coeffs = coeffs[:1]
  scale = (jnp.exp(g.log_scale) if g.log_scale is not None
           else jnp.asarray(config.metres_per_unit, g.xyz.dtype))
  return Fields(
      xyz=g.xyz, coeffs=coeffs,
      expo=jax.nn.softplus(g.decay) if config.use_attenuation else None,
      phase=g.phase if config.use_learned_phase else None, scale=scale,
      tail=g.tail if config.tail_frames else None)


def woodworth(s, asin=jnp.arcsin):
  """``(asin(s) + s, d/ds)`` of the lateral components ``s``, clipped to +-0.999 (the
  derivative is 0 where clipped, as autodiff of the clip gives)."""
  inside = jnp.abs(s) < WOODWORTH_MAX_LATERAL
  s = jnp.clip(s, -WOODWORTH_MAX_LATERAL, WOODWORTH_MAX_LATERAL)
  return asin(s) + s, jnp.where(inside, 1.0 / jnp.sqrt(1.0 - s * s) + 1.0, 0.0)


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
    g, _ = woodworth(px / rc, backend.arcsin(config.fast_arcsin))
    half = 0.5 * config.head_radius * g
    return jnp.stack([half, -half])
  raise ValueError(f"itd_model must be straight or woodworth, got {config.itd_model!r}")


def wavenumbers(config: RenderConfig, dtype) -> jnp.ndarray:
  """``-2 pi freq_f / c`` per frequency bin ``[F]``: phase per metre of path."""
  freqs = jnp.asarray(dsp.frequencies(config.n_fft, config.sample_rate), dtype)
  return (-2.0 * np.pi / config.speed_of_sound) * freqs


def _activation(a, name: str):
  if name == "relu":
    return jax.nn.relu(a)
  if name == "softplus":
    return jax.nn.softplus(a)
  raise ValueError(f"unknown activation {name!r}")


def forward(f: Fields, poses: jnp.ndarray, config: RenderConfig) -> dict:
  """Every intermediate of the gain for poses ``[B, 4, 4]``.

  Returns a dict of arrays: ``p`` (3 x ``[B, T, F]``), ``r``, ``u`` (3 x ``[B, 2, T, F]``),
  ``a`` (SH sum), ``amp`` (A), ``lr`` (log r0 - log max(r, r_min)) and ``att`` (D) or
  None without attenuation, ``m`` (A D), ``rc`` (``[B, T, F]`` |p|, or None without
  phase correction), ``sin``/``cos`` of phi, all ``[B, 2, T, F]`` unless stated.
  """
  exp, log, sincos = backend.transcendentals(config.fast_math)
  p = geometry.head_frame_planes(f.xyz, poses, f.scale)
  r, u = geometry.distance_and_direction(*geometry.ear_vectors(p, config.head_radius))
  if f.coeffs.shape[1] > 1:
    a = sh_lib.expand(f.coeffs, *u)          # coeffs [E, K, T, F], E broadcasts
  else:
    a = jnp.broadcast_to(f.coeffs[:, 0] * sh_lib.C0, r.shape)
  amp = _activation(a, config.activation)
  lr = att = None
  m = amp
  if f.expo is not None:
    lr = np.float32(np.log(config.r0)) - log(jnp.maximum(r, config.r_min))
    att = exp(f.expo * lr)
    m = amp * att
  phi = jnp.zeros_like(m)
  rc = None
  if config.use_phase_correction:
    rc = jnp.sqrt(jnp.maximum(p[0] * p[0] + p[1] * p[1] + p[2] * p[2], 1e-18))
    kf = wavenumbers(config, f.xyz.dtype)
    phi = phi + kf * jnp.moveaxis(itd_path(jnp.moveaxis(r, 1, 0), rc, p[0], config), 0, 1)
  if f.phase is not None:
    phi = phi + f.phase[None]
  sin_phi, cos_phi = sincos(phi)
  return dict(p=p, r=r, u=u, a=a, amp=amp, lr=lr, att=att, m=m, rc=rc,
              sin=sin_phi, cos=cos_phi)


def gains(f: Fields, poses: jnp.ndarray, config: RenderConfig) -> jnp.ndarray:
  """Complex gains ``[B, 2, T, F]`` for poses ``[B, 4, 4]`` (differentiated by
  autodiff; ``renderer.backward.gains`` is the same value with a hand-derived VJP)."""
  out = forward(f, poses, config)
  return jax.lax.complex(out["m"] * out["cos"], out["m"] * out["sin"])
