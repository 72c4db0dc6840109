"""Render models, chosen by ``config.model.name``: AudioGS and Audio 3DGS.

``get_model(name)`` returns the model's ``RenderModel`` (``models.base``), the
one interface the shared training, evaluation and rendering code uses.
"""

from __future__ import annotations

from audiogs_jax.models import audio3dgs_model
from audiogs_jax.models import audiogs
from audiogs_jax.models.base import RenderModel, SceneInfo

__all__ = ["RenderModel", "SceneInfo", "get_model", "MODELS"]

MODELS: dict = {m.name: m for m in (audiogs.MODEL, audio3dgs_model.MODEL)}


def get_model(name: str) -> RenderModel:
  """The model called ``name``; ValueError naming the known ones otherwise."""
  if name not in MODELS:
    raise ValueError(f"config.model.name={name!r} is not a known model "
                     f"(known: {', '.join(sorted(MODELS))})")
  return MODELS[name]
