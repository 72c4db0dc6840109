"""The interface between the shared training / evaluation code and a model.

A ``RenderModel`` bundles what the shared code (training state, evaluation,
rendering, streaming) needs from a model variant; data, STFTs, optimiser,
checkpoints and metrics are shared. Everything model-specific lives with the
model: its label, its config fields (``config.model.<name>``, defaults from
``default_config``), its loss, and what it needs to know about a scene.

- ``init(key, scene: SceneInfo, config) -> params`` (any pytree)
- ``render(params, poses [B,4,4], source_tf [B,T,F] complex, config)
  -> complex [B, 2, T, F]`` (frames-major STFT of the two ears)
- ``loss(params, pred_tf, target_tf, source_tf, config) -> (scalar, aux)``
- ``labels(params) -> pytree of str``: which learning rate (``config.train.lr``
  field) each parameter leaf uses.
- ``positions(params) -> [N, 3]`` and ``energy(params) -> [N]`` for plots.
- ``default_config() -> ConfigDict``: the model's own fields and their defaults.
- ``scene_extras(scene, config) -> dict`` (optional): extra ``SceneInfo`` fields
  its ``init`` reads (computed from the training split).
- ``gaussian_axes(params) -> pytree of Optional[int]`` (optional): for each
  parameter leaf, the axis that runs over Gaussians (None for network weights
  and scalars); ``config.mesh.shard_gaussians`` splits those axes over the
  devices (``audiogs_jax.parallel``).
- ``stream_fields(params, config) -> Fields`` (optional): the AudioGS fields the
  block-wise streaming renderer reads; ``no_stream`` says why a model has none.
- ``render_parts(config) -> (first, second) | None`` (optional): the render in two
  parts, ``first(params, poses, source_tf, config) -> x`` and ``second(x, params,
  source_tf, config) -> render``, which ``predict`` compiles as two programs (XLA's
  CPU backend ran AudioGS's render with the reverberant tail as one program 1.7x
  slower than as these two; docs/performance.md); None: one program.
- ``fit(scene, config) -> (params -> params) | None`` (optional): a data-driven
  start on the training split ``scene`` (``data.scene.SceneData``), the function
  that refines the initial parameters before the first step (AudioGS:
  ``renderer.fit``); None where the config asks for none. The training calls it
  before the scene analysis and ``init``, so the model may prepare the start
  meanwhile (compile it in the background).
- ``convolutional``: the model's maths has convolutions (the backend may then
  compile it with its convolution options, ``backend.compiler_options``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import numpy as np

__all__ = ["RenderModel", "SceneInfo", "fields_of"]


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
  rt60_estimate: Optional[float] = None     # s, the training clips' blind RT60


@dataclasses.dataclass(frozen=True)
class RenderModel:
  name: str
  label: str
  init: Callable[..., Any]
  render: Callable[..., Any]
  loss: Callable[..., Any]
  labels: Callable[[Any], Any]
  positions: Callable[[Any], Any]
  energy: Callable[[Any], Any]
  default_config: Callable[[], Any]
  scene_extras: Optional[Callable[[Any, Any], dict]] = None
  gaussian_axes: Optional[Callable[[Any], Any]] = None
  stream_fields: Optional[Callable[[Any, Any], Any]] = None
  no_stream: str = ""
  render_parts: Optional[Callable[[Any], Optional[tuple]]] = None
  fit: Optional[Callable[[Any, Any], Any]] = None
  convolutional: bool = False


def fields_of(config, name: str):
  """``config.model.<name>``: a model's own config fields."""
  return config.model[name]
