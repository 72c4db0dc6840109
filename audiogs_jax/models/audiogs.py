"""AudioGS as a ``RenderModel``: the explicit renderer of ``audiogs_jax.render``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from audiogs_jax import losses
from audiogs_jax import render as render_lib
from audiogs_jax.gaussians import GaussianGrid, from_grid, init_gaussians, to_grid
from audiogs_jax.models import RenderModel, SceneInfo, register

DEFAULT_METRES_PER_UNIT = 5.0


def render_config(config) -> render_lib.RenderConfig:
  """``RenderConfig`` from a full config (``config.model`` and ``config.data``)."""
  m = config.model
  return render_lib.RenderConfig(
      sample_rate=int(config.data.sample_rate), n_fft=int(m.n_fft),
      hop_length=int(m.hop_length), head_radius=float(m.head_radius),
      speed_of_sound=float(m.speed_of_sound), r0=float(m.r0), r_min=float(m.r_min),
      activation=str(m.activation), use_attenuation=bool(m.use_attenuation),
      use_sh_directionality=bool(m.use_sh_directionality),
      use_phase_correction=bool(m.use_phase_correction),
      itd_model=str(m.get("itd_model", "straight")),
      use_learned_phase=bool(m.use_learned_phase), dual_sh=bool(m.dual_sh),
      content_mode=bool(m.content_mode), fast_math=bool(m.fast_math),
      metres_per_unit=float(m.metres_per_unit or DEFAULT_METRES_PER_UNIT))


def metres_per_unit(scene: SceneInfo, config) -> float:
  if config.model.metres_per_unit:
    return float(config.model.metres_per_unit)
  if scene.metres_per_unit:
    return float(scene.metres_per_unit)
  return DEFAULT_METRES_PER_UNIT


def _init_center(scene: SceneInfo, config) -> tuple:
  """Where the Gaussians start: the listeners' centroid, or (``model.init_position
  = "itd"``) the source position estimated from the training clips' interaural
  times (``localize.estimate_source``), so that the geometric phase correction starts
  with the source's interaural time at every pose."""
  where = config.model.get("init_position", "listeners")
  if where == "itd" and scene.source_estimate is not None:
    return tuple(scene.source_estimate)
  if where not in ("itd", "listeners"):
    raise ValueError(f"model.init_position must be listeners or itd, got {where!r}")
  return scene.center


def init(key, scene: SceneInfo, config) -> GaussianGrid:
  """Initial parameters in the grid layout (see ``gaussians.GaussianGrid``)."""
  m = config.model
  mpu = metres_per_unit(scene, config)
  g = init_gaussians(
      key, scene.num_freqs, scene.num_frames, sh_degree=int(m.sh_degree),
      center=_init_center(scene, config), spread=float(m.init_spread), dual=bool(m.dual_sh),
      learn_phase=bool(m.use_learned_phase),
      log_scale=float(np.log(mpu)) if m.learn_scale else None,
      init_gain=float(m.init_gain), activation=str(m.activation))
  return to_grid(g, scene.num_freqs)


def render(params: GaussianGrid, poses, source_tf, config):
  return render_lib.render_batch_tf(params, poses, source_tf, render_config(config))


def loss(params, pred_tf, target_tf, source_tf, config):
  del source_tf
  w = config.loss
  parts = {"mag": losses.magnitude_l2(pred_tf, target_tf)}
  total = w.mag_weight * parts["mag"]
  if w.get("frame_tie_weight", 0.0):
    parts["frame_tie"] = losses.frame_tie(
        (params.xyz, params.sh, params.decay, params.phase))
    total = total + w.frame_tie_weight * parts["frame_tie"]
  if w.log_mag_weight:
    parts["log_mag"] = losses.log_magnitude_l1(pred_tf, target_tf)
    total = total + w.log_mag_weight * parts["log_mag"]
  if w.phase_weight:
    parts["ipd"] = losses.ipd_loss(pred_tf, target_tf)
    total = total + w.phase_weight * parts["ipd"]
  return total, parts


def labels(params: GaussianGrid):
  return GaussianGrid(
      xyz="xyz", sh="sh", decay="decay",
      phase=None if params.phase is None else "phase",
      rotation=None if params.rotation is None else "rotation",
      log_scale=None if params.log_scale is None else "log_scale")


def positions(params: GaussianGrid):
  """``[N, 3]`` positions, index f * T + t."""
  return from_grid(params).xyz


def energy(params: GaussianGrid):
  """Degree-0 gain per Gaussian ``[N]``, averaged over ears (a plot's colour)."""
  return jnp.mean(jnp.abs(from_grid(params).sh[..., 0]), axis=0)


def gaussian_axes(params: GaussianGrid):
  """The frames axis (-2 of ``[..., T, F]``) of every grid field; None for the
  scalar ``log_scale``."""
  opt = lambda x: None if x is None else -2
  return GaussianGrid(xyz=-2, sh=-2, decay=-2, phase=opt(params.phase),
                      rotation=opt(params.rotation), log_scale=None)


register(RenderModel(name="audiogs", init=init, render=render, loss=loss,
                     labels=labels, positions=positions, energy=energy,
                     gaussian_axes=gaussian_axes))
