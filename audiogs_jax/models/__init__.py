"""Render models: a render function plus its parameters, chosen by config.

A ``RenderModel`` bundles what the shared training, evaluation and rendering
code needs from a model variant; everything else (data, STFTs, optimiser,
checkpoints, metrics) is shared. ``get_model(config.model.name)`` picks one.

- ``init(key, scene: SceneInfo, config) -> params`` (any pytree)
- ``render(params, poses [B,4,4], source_tf [B,T,F] complex, config)
  -> complex [B, 2, T, F]`` (frames-major STFT of the two ears)
- ``loss(params, pred_tf, target_tf, source_tf, config) -> (scalar, aux)``
- ``labels(params) -> pytree of str``: which learning rate (``config.train.lr``
  field) each parameter leaf uses.
- ``positions(params) -> [N, 3]`` and ``energy(params) -> [N]`` for plots.
- ``gaussian_axes(params) -> pytree of Optional[int]`` (optional): for each
  parameter leaf, the axis that runs over Gaussians (None for network
  weights and scalars); ``config.mesh.shard_gaussians`` splits those axes
  over the devices (``audiogs_jax.parallel``).
- ``compiler_options() -> dict`` (optional): XLA compiler options for the
  jitted programs that run this model (``jax.jit(..., compiler_options=)``);
  the Audio 3DGS U-Net uses ``runtime.conv_compiler_options``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import numpy as np

__all__ = ["RenderModel", "SceneInfo", "register", "get_model", "compiler_options", "MODELS"]


@dataclasses.dataclass(frozen=True)
class SceneInfo:
  """What a model's init may know about the training scene."""
  num_freqs: int
  num_frames: int
  sample_rate: int
  center: tuple                       # listener centroid, scene units
  metres_per_unit: Optional[float]    # from the scene's metadata, if known
  source_mag: Optional[np.ndarray] = None   # [F, T] mean |S| over training clips
  source_estimate: Optional[tuple] = None   # [3] scene units, from the clips' ITDs


@dataclasses.dataclass(frozen=True)
class RenderModel:
  name: str
  init: Callable[..., Any]
  render: Callable[..., Any]
  loss: Callable[..., Any]
  labels: Callable[[Any], Any]
  positions: Callable[[Any], Any]
  energy: Callable[[Any], Any]
  gaussian_axes: Optional[Callable[[Any], Any]] = None
  compiler_options: Optional[Callable[[], dict]] = None


def compiler_options(model: RenderModel) -> Optional[dict]:
  """``model.compiler_options()``, or None (XLA's defaults) when it has none
  or they are empty; for ``jax.jit(..., compiler_options=...)``."""
  return (model.compiler_options() or None) if model.compiler_options else None


MODELS: dict = {}


def register(model: RenderModel) -> RenderModel:
  MODELS[model.name] = model
  return model


def get_model(name: str) -> RenderModel:
  # Import for the registration side effect.
  from audiogs_jax.models import audiogs  # noqa: F401
  try:
    from audiogs_jax.models import audio3dgs_model  # noqa: F401
  except ImportError:
    pass
  if name not in MODELS:
    raise ValueError(f"config.model.name={name!r} is not a known model "
                     f"(known: {', '.join(sorted(MODELS))})")
  return MODELS[name]
