"""The AudioGS gains with a hand-derived backward pass.

``gains(fields, poses, config)`` returns the same complex ``[B, 2, T, F]`` gains
as ``formula.gains`` (it calls the same ``formula.forward``) but carries a
``custom_vjp``: the backward pass applies the chain rule written out below to
the forward intermediates, then sums over poses (and ears, for shared fields).
Plain autodiff of the batched renderer materialises a score of ``[B, 2, T, F]``
intermediates per pose; this is the idea of gsplat's hand-written backward
kernels, in jax.numpy. Tests compare its gradients with autodiff of
``formula.gains``; ``scripts/bench.py`` times both.

Forward (``formula``; per pose b, ear e, bin (t, f))::

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

from audiogs_jax import sh as sh_lib
from audiogs_jax.renderer import formula

__all__ = ["gains"]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _gains(f: formula.Fields, poses, config):
  out = formula.forward(f, poses, config)
  return out["m"] * out["cos"], out["m"] * out["sin"]


def _gains_fwd(f: formula.Fields, poses, config):
  # One pose per loop iteration: the loop's stacked outputs are materialised
  # buffers, which keeps XLA from re-evaluating the forward polynomials inside
  # every gradient fusion of the backward pass.
  out = jax.lax.map(lambda pose: formula.forward(f, pose[None], config), poses)
  out = jax.tree.map(lambda a: a[:, 0], out)
  # The forward intermediates are the residuals: recomputing them in the
  # backward pass would let XLA duplicate the transcendental functions into
  # every gradient fusion.
  return (out["m"] * out["cos"], out["m"] * out["sin"]), (f, poses, out)


def _gains_bwd(config, res, cot):
  f, poses, fwd = res
  g_re, g_im = cot
  dxyz, dco, dexpo, dphase, dscale = _bwd_batch(
      config, (f.xyz, f.coeffs, f.expo, f.phase, f.scale), poses, g_re, g_im, fwd)
  grads = formula.Fields(xyz=dxyz, coeffs=dco, expo=dexpo, phase=dphase, scale=dscale)
  return grads, jnp.zeros_like(poses)


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
    kf = formula.wavenumbers(config, dtype)
    _, dg = formula.woodworth(f["p"][0] / f["rc"])
    dlat = kf * (dphi[:, 0] - dphi[:, 1]) * (0.5 * config.head_radius) * dg   # [B, T, F]
  elif config.use_phase_correction:
    kf = formula.wavenumbers(config, dtype)
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
    _, vjp = jax.vjp(lambda x, y, z: sh_lib.expand(coeffs, x, y, z), ux, uy, uz)
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


def gains(f: formula.Fields, poses: jnp.ndarray, config) -> jnp.ndarray:
  """Complex gains ``[B, 2, T, F]`` for poses ``[B, 4, 4]``: ``formula.gains`` with
  the hand-derived VJP. Poses get a zero cotangent: they are data, not parameters."""
  f = f.replace(scale=jnp.asarray(f.scale, f.xyz.dtype))
  g_re, g_im = _gains(f, poses, config)
  return jax.lax.complex(g_re, g_im)
