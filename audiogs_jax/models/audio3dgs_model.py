"""Audio 3DGS (U-Net mask renderer) as a ``RenderModel`` (``model.name = audio3dgs_unet``).

The points and the U-Net's parameters live in one ``Audio3DGSParams`` pytree,
so the shared ``train_step``, checkpoints, evaluation and rendering serve it
unchanged. The published loss (L2 on mono and difference magnitudes) is used.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from audiogs_jax import dsp
from audiogs_jax.gaussians import Gaussians
from audiogs_jax.models import audio3dgs as a3
from audiogs_jax.models.base import RenderModel, SceneInfo, fields_of

NAME = "audio3dgs_unet"


def default_config() -> ml_collections.ConfigDict:
  """Audio 3DGS's config fields (``config.model.audio3dgs_unet``) and defaults."""
  return ml_collections.ConfigDict(dict(
      unet_width=64,                  # channels of the first U-Net level (64 published)
      unet_levels=4,                  # down/up levels
      max_norm=25.0,                  # scene units; distance map = |p| / max_norm
      compute_dtype="float32",        # float32 | bfloat16 (U-Net compute only)
      init_spread=0.05))              # scene units around the listeners' centroid


def model_config(config) -> a3.Audio3DGSConfig:
  m = fields_of(config, NAME)
  return a3.Audio3DGSConfig(
      sample_rate=int(config.data.sample_rate), n_fft=int(config.model.n_fft),
      hop_length=int(config.model.hop_length), max_norm=float(m.max_norm),
      unet_width=int(m.unet_width), unet_levels=int(m.unet_levels),
      compute_dtype=str(m.compute_dtype))


def scene_extras(scene, config) -> dict:
  """``source_mag``: the mean source magnitude ``[F, T]`` over the training clips
  (the points' degree-0 coefficients start from it)."""
  s = np.asarray(dsp.stft(jnp.asarray(scene.source), n_fft=int(config.model.n_fft),
                          hop_length=int(config.model.hop_length)))
  return {"source_mag": np.mean(np.abs(s), axis=0).astype(np.float32)}


def init(key, scene: SceneInfo, config) -> a3.Audio3DGSParams:
  return a3.init_params(key, scene.num_freqs, scene.num_frames, config=model_config(config),
                        source_mag=scene.source_mag, center=scene.center,
                        spread=float(fields_of(config, NAME).init_spread))


def render(params, poses, source_tf, config):
  return a3.render_batch_tf(params, poses, source_tf, model_config(config))


def loss(params, pred_tf, target_tf, source_tf, config):
  del params, source_tf, config
  return a3.loss(pred_tf, target_tf)


def labels(params: a3.Audio3DGSParams):
  p = params.points
  points = Gaussians(xyz="xyz", sh="sh", decay="decay",
                     phase=None if p.phase is None else "phase",
                     rotation=None if p.rotation is None else "rotation",
                     log_scale=None if p.log_scale is None else "log_scale")
  return a3.Audio3DGSParams(points=points,
                            unet=jax.tree.map(lambda _: "network", params.unet))


def positions(params: a3.Audio3DGSParams):
  return params.points.xyz


def energy(params: a3.Audio3DGSParams):
  return jnp.abs(params.points.sh[0, :, 0])


def gaussian_axes(params: a3.Audio3DGSParams):
  """The point axis N of ``xyz [N, 3]``, ``sh [1, N, 9]``, ``decay [N]`` and
  ``rotation [N, 4]``; None for the U-Net's weights."""
  p = params.points
  opt = lambda x, ax: None if x is None else ax
  points = Gaussians(xyz=-2, sh=-2, decay=-1, phase=opt(p.phase, -1),
                     rotation=opt(p.rotation, -2), log_scale=None)
  return a3.Audio3DGSParams(points=points, unet=jax.tree.map(lambda _: None, params.unet))


MODEL = RenderModel(
    name=NAME, label="Audio 3DGS (U-Net)", init=init, render=render, loss=loss,
    labels=labels, positions=positions, energy=energy, default_config=default_config,
    scene_extras=scene_extras, gaussian_axes=gaussian_axes, convolutional=True,
    no_stream="Audio 3DGS (audio3dgs_unet) cannot stream: its U-Net maps the magnitude "
              "spectrogram of a whole clip at once (each output frame depends on every "
              "frame of the clip), so a block of a few frames has no defined output; "
              "render whole sources with python -m audiogs_jax.render instead")
