"""The AudioGS gains for a batch of poses with a hand-derived backward pass.

``gains_batch(planes, poses, config)`` returns the same complex ``[B, 2, T, F]``
gains as ``jax.vmap(render.gains_planes)`` but carries a ``custom_vjp``: the
backward pass recomputes the forward quantities elementwise and applies the
chain rule written out below, then sums over poses (and ears, for shared
fields). Plain autodiff of the vmapped renderer materialises a score of
``[B, 2, T, F]`` intermediates and is several times slower on CPU; this is the
same idea as gsplat's hand-written backward kernels, in jax.numpy. Tests compare
its gradients with autodiff of ``render.gains_planes``.

Forward, per pose b, ear e, bin (t, f) (notation of ``render``)::

    p   = s R_b^T (x - c_b)            v = p - ear_e       r = |v|   u = v / r
    a   = sum_k c_ek Y_k(u)            A = act(a)
    L   = log r0 - log max(r, r_min)   D = exp(q L)         M = A D   (q = softplus(decay))
    phi = k_f P_e + phase_e            G = M (cos phi + j sin phi)
    P_e = r - |p|  (straight)  or  +-(a/2) w(s), w(s) = asin s + s, s = p_x / |p|
    (woodworth, plus for the left ear)

Backward, from cotangents (g_re, g_im) of (Re G, Im G)::

    dM   = g_re cos phi + g_im sin phi         dphi = M (g_im cos phi - g_re sin phi)
    dA   = dM D                                dq   = dM A D L      dL = dM A D q
    dr   = k_f dphi - dL / r [r > r_min]       d|p| = -sum_e k_f dphi   (straight)
    ds   = k_f (a/2) w'(s) (dphi_L - dphi_R)   dp  += ds (e_x - s p/|p|) / |p|  (woodworth)
    da   = dA act'(a)                          dc_ek = da Y_k(u)    du = da grad_u a
    dv   = (du - u (u . du)) / r + dr u        dp = sum_e dv + d|p| p / |p|
    dx   = s R_b dp                            ds = sum p . dp / s
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from audiogs_jax import dsp
from audiogs_jax import fastmath
from audiogs_jax import render as render_lib
from audiogs_jax import sh as sh_lib

__all__ = ["gains_batch", "supported"]


def supported(planes) -> bool:
  """The custom backward covers everything but per-Gaussian SH rotations."""
  return planes.rot is None


def _math(config):
  if config.fast_math:
    return fastmath.exp, fastmath.log, fastmath.sincos
  return jnp.exp, jnp.log, (lambda x: (jnp.sin(x), jnp.cos(x)))


def _sh_sum(coeffs, ux, uy, uz):
  """sum_k coeffs[:, k] Y_k(u): coeffs [E, K, T, F], u [B, 2, T, F]."""
  terms = sh_lib.basis_terms(ux, uy, uz, sh_lib.degree_of(coeffs.shape[1]))
  out = coeffs[:, 0] * terms[0]
  for k in range(1, len(terms)):
    out = out + coeffs[:, k] * terms[k]
  return out


def _forward(xyz, coeffs, expo, phase, scale, poses, config):
  """All forward quantities, batched: arrays [B, 2, T, F] (or [B, T, F])."""
  exp, log, sincos = _math(config)
  dtype = xyz.dtype
  rot = poses[:, :3, :3] * scale                              # [B, 3, 3]
  c = poses[:, :3, 3]                                          # [B, 3]
  bc = lambda a: a[:, None, None]                              # [B] -> [B, 1, 1]
  d = [xyz[j][None] - bc(c[:, j]) for j in range(3)]           # [B, T, F]
  p = [bc(rot[:, 0, k]) * d[0] + bc(rot[:, 1, k]) * d[1] + bc(rot[:, 2, k]) * d[2]
       for k in range(3)]
  ear_x = jnp.asarray([-config.head_radius, config.head_radius], dtype)[None, :, None, None]
  vx = p[0][:, None] - ear_x                                   # [B, 2, T, F]
  vy, vz = p[1][:, None], p[2][:, None]
  r = jnp.sqrt(jnp.maximum(vx * vx + vy * vy + vz * vz, 1e-18))
  inv_r = 1.0 / r
  ux, uy, uz = vx * inv_r, vy * inv_r, vz * inv_r
  kk = coeffs.shape[1]
  if kk > 1:
    a = _sh_sum(coeffs, ux, uy, uz)          # coeffs [E, K, T, F], E broadcasts
  else:
    a = jnp.broadcast_to(coeffs[:, 0] * sh_lib.C0, r.shape)
  if config.activation == "relu":
    amp = jax.nn.relu(a)
  else:
    amp = jax.nn.softplus(a)
  if expo is not None:
    lr = np.float32(np.log(config.r0)) - log(jnp.maximum(r, config.r_min))
    att = exp(expo * lr)
  else:
    lr = att = None
  m = amp if att is None else amp * att
  phi = jnp.zeros_like(m)
  rc = None
  if config.use_phase_correction:
    rc = jnp.sqrt(jnp.maximum(p[0] * p[0] + p[1] * p[1] + p[2] * p[2], 1e-18))
    freqs = jnp.asarray(dsp.frequencies(config.n_fft, config.sample_rate), dtype)
    kf = (-2.0 * np.pi / config.speed_of_sound) * freqs
    phi = phi + kf * jnp.moveaxis(
        render_lib.itd_path(jnp.moveaxis(r, 1, 0), rc, p[0], config), 0, 1)
  if phase is not None:
    phi = phi + phase[None]
  sin_phi, cos_phi = sincos(phi)
  return dict(p=p, r=r, u=(ux, uy, uz), a=a, amp=amp, lr=lr, att=att, m=m, rc=rc,
              sin=sin_phi, cos=cos_phi)


@functools.partial(jax.custom_vjp, nondiff_argnums=(6,))
def _gains(xyz, coeffs, expo, phase, scale, poses, config):
  f = _forward(xyz, coeffs, expo, phase, scale, poses, config)
  return f["m"] * f["cos"], f["m"] * f["sin"]


def _gains_fwd(xyz, coeffs, expo, phase, scale, poses, config):
  # One pose per loop iteration: the loop's stacked outputs are materialised
  # buffers, which keeps XLA from re-evaluating the forward polynomials inside
  # every gradient fusion of the backward pass.
  f = jax.lax.map(
      lambda pose: _forward(xyz, coeffs, expo, phase, scale, pose[None], config), poses)
  f = jax.tree.map(lambda a: a[:, 0], f)
  # The forward intermediates are the residuals (about 26 arrays of [B, T, F]):
  # recomputing them in the backward pass would let XLA duplicate the
  # polynomial sin/cos/exp/log into every one of the ~15 gradient fusions.
  return (f["m"] * f["cos"], f["m"] * f["sin"]), ((xyz, coeffs, expo, phase, scale, poses), f)


def _gains_bwd(config, res, cot):
  (xyz, coeffs, expo, phase, scale, poses), fwd = res
  g_re, g_im = cot
  grads = _bwd_batch(config, (xyz, coeffs, expo, phase, scale), poses, g_re, g_im, fwd)
  return (*grads, jnp.zeros_like(poses))


def _bwd_batch(config, params, poses, g_re, g_im, f):
  """Gradients w.r.t. (xyz, coeffs, expo, phase, scale) summed over poses,
  from the forward intermediates ``f`` of those poses."""
  xyz, coeffs, expo, phase, scale = params
  inv_r = 1.0 / f["r"]
  dtype = xyz.dtype
  cos, sin, m = f["cos"], f["sin"], f["m"]
  dm = g_re * cos + g_im * sin
  dphi = m * (g_im * cos - g_re * sin)                         # [B, 2, T, F]
  dphase = None if phase is None else jnp.sum(dphi, axis=0)
  dr = jnp.zeros_like(dm)
  drc = dlat = None
  if config.use_phase_correction and config.itd_model == "woodworth":
    freqs = jnp.asarray(dsp.frequencies(config.n_fft, config.sample_rate), dtype)
    kf = (-2.0 * np.pi / config.speed_of_sound) * freqs
    _, dg = render_lib.woodworth(f["p"][0] / f["rc"])
    dlat = kf * (dphi[:, 0] - dphi[:, 1]) * (0.5 * config.head_radius) * dg   # [B, T, F]
  elif config.use_phase_correction:
    freqs = jnp.asarray(dsp.frequencies(config.n_fft, config.sample_rate), dtype)
    kf = (-2.0 * np.pi / config.speed_of_sound) * freqs
    dr = dr + kf * dphi
    drc = -jnp.sum(kf * dphi, axis=1)                          # [B, T, F]
  if expo is not None:
    da_amp = dm * f["att"]
    datt = dm * f["amp"] * f["att"]                            # d(loss)/d(q L) * ...
    dexpo = jnp.sum(datt * f["lr"], axis=(0, 1))
    dlr = datt * expo
    r = f["r"]
    dr = dr - jnp.where(r > config.r_min, dlr * inv_r, 0.0)
  else:
    da_amp = dm
    dexpo = None
  if config.activation == "relu":
    da = jnp.where(f["a"] > 0, da_amp, 0.0)
  else:
    da = da_amp * jax.nn.sigmoid(f["a"])
  ux, uy, uz = f["u"]
  kk = coeffs.shape[1]
  terms = sh_lib.basis_terms(ux, uy, uz, sh_lib.degree_of(kk))
  dco = jnp.stack([jnp.sum(da * t, axis=0) for t in terms], axis=1)   # [2, K, T, F]
  if coeffs.shape[0] == 1:
    dco = jnp.sum(dco, axis=0, keepdims=True)
  if kk > 1:
    _, vjp = jax.vjp(lambda x, y, z: _sh_sum(coeffs, x, y, z), ux, uy, uz)
    dux, duy, duz = vjp(da)
    udu = ux * dux + uy * duy + uz * duz
    dvx = (dux - ux * udu) * inv_r + dr * ux
    dvy = (duy - uy * udu) * inv_r + dr * uy
    dvz = (duz - uz * udu) * inv_r + dr * uz
  else:
    dvx, dvy, dvz = dr * ux, dr * uy, dr * uz
  p = f["p"]
  dp = [jnp.sum(dvx, axis=1), jnp.sum(dvy, axis=1), jnp.sum(dvz, axis=1)]  # [B, T, F]
  if drc is not None:
    w = drc / f["rc"]
    dp = [dp[k] + w * p[k] for k in range(3)]
  if dlat is not None:  # s = p_x / |p|: ds/dp = (e_x - s p / |p|) / |p|
    inv_rc = 1.0 / f["rc"]
    w = dlat * inv_rc
    lat = p[0] * inv_rc
    dp = [dp[k] + w * ((1.0 if k == 0 else 0.0) - lat * p[k] * inv_rc) for k in range(3)]
  rot = poses[:, :3, :3] * scale                               # s R, [B, 3, 3]
  bc = lambda a: a[:, None, None]
  dxyz = jnp.stack([
      jnp.sum(bc(rot[:, j, 0]) * dp[0] + bc(rot[:, j, 1]) * dp[1] + bc(rot[:, j, 2]) * dp[2],
              axis=0) for j in range(3)])                      # [3, T, F]
  dscale = jnp.sum(p[0] * dp[0] + p[1] * dp[1] + p[2] * dp[2]) / scale
  return (dxyz, dco.astype(coeffs.dtype), dexpo, dphase, dscale.astype(scale.dtype))


_gains.defvjp(_gains_fwd, _gains_bwd)


def gains_batch(planes, poses, config) -> jnp.ndarray:
  """Complex gains ``[B, 2, T, F]`` for poses ``[B, 4, 4]`` (custom backward).

  Poses get a zero cotangent: they are data here, not parameters.
  """
  if not supported(planes):
    raise ValueError("gains_batch does not support per-Gaussian rotations")
  g_re, g_im = _gains(planes.xyz, planes.coeffs, planes.expo, planes.phase,
                      jnp.asarray(planes.scale, planes.xyz.dtype), poses, config)
  return jax.lax.complex(g_re, g_im)
