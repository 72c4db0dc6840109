"""Audio 3DGS (U-Net mask renderer) as a ``RenderModel`` (``model.name = audio3dgs_unet``).

The points and the U-Net's parameters live in one ``Audio3DGSParams`` pytree,
so the shared ``train_step``, checkpoints, evaluation and rendering serve it
unchanged. The published loss (L2 on mono and difference magnitudes) is used.

Its own config fields (``default_config``) are read through ``_fields``; the
STFT (``n_fft``, ``hop_length``), ``head_radius`` and ``init_spread`` are the
shared ``config.model`` fields. The model has convolutions (the U-Net), which
the backend may compile with its convolution options
(``backend.compiler_options``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

from audiogs_jax import backend
from audiogs_jax.gaussians import Gaussians
from audiogs_jax.models import RenderModel, SceneInfo, register
from audiogs_jax.models import audio3dgs as a3

NAME = "audio3dgs_unet"
#: The model's name in report tables.
label = "Audio 3DGS"
#: Its maths has convolutions (``RenderModel.convolutional``).
CONVOLUTIONAL = True


def default_config() -> ml_collections.ConfigDict:
  """Audio 3DGS's own config fields and their defaults."""
  c = ml_collections.ConfigDict()
  c.unet_width = 64                   # channels of the first U-Net level (64 published)
  c.unet_levels = 4                   # down/up levels
  c.max_norm = 25.0                   # scene units; distance map = |p| / max_norm
  c.compute_dtype = "float32"         # float32 | bfloat16 (U-Net compute only)
  return c


def _fields(config):
  """The config holding this model's own fields (``default_config``)."""
  return config.model


def model_config(config) -> a3.Audio3DGSConfig:
  """``Audio3DGSConfig`` from a full config (``config.model``, ``config.data``)."""
  m, shared = _fields(config), config.model
  return a3.Audio3DGSConfig(
      sample_rate=int(config.data.sample_rate), n_fft=int(shared.n_fft),
      hop_length=int(shared.hop_length), max_norm=float(m.max_norm),
      unet_width=int(m.unet_width), unet_levels=int(m.unet_levels),
      compute_dtype=str(m.compute_dtype), head_radius=float(shared.head_radius))


def init(key, scene: SceneInfo, config) -> a3.Audio3DGSParams:
  return a3.init_params(key, scene.num_freqs, scene.num_frames, config=model_config(config),
                        source_mag=scene.source_mag, center=scene.center,
                        spread=float(config.model.init_spread))


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


def _interface_fields() -> dict:
  """``convolutional=CONVOLUTIONAL`` where ``RenderModel`` has that field;
  otherwise the ``compiler_options`` hook with the same options."""
  if "convolutional" in {f.name for f in dataclasses.fields(RenderModel)}:
    return {"convolutional": CONVOLUTIONAL}
  return {"compiler_options": lambda: backend.compiler_options(CONVOLUTIONAL) or {}}


register(RenderModel(name=NAME, init=init, render=render, loss=loss,
                     labels=labels, positions=positions, energy=energy,
                     gaussian_axes=gaussian_axes, **_interface_fields()))
