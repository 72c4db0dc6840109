"""Reading scenes: the in-memory :class:`SceneData`, readers for RWAVS and
Replay-NVAS, the built-in physically simulated scenes and test fixtures.

- :mod:`.scene`: ``SceneData``, ``DataError`` and the shared input checks.
- :mod:`.rwavs`: ``load(root, scene, split, clip=...)`` (also reads synthetic scenes).
- :mod:`.replay_nvas`: ``load(root, split, scenes=..., holdout_camera=...)``.
- :mod:`.synth`: ``generate_scene`` and the CLI ``python -m audiogs_jax.data.synth``
  (options in :mod:`.synth_args`), from the parts of a simulated scene:
  :mod:`.trajectory` (listener paths, head poses), :mod:`.room` (shoebox and
  image sources), :mod:`.reverb` (RT60 measured and calibrated), :mod:`.ears`
  and :mod:`.heads` (ear IRs), :mod:`.track` (the moving listener's track),
  :mod:`.signals` (procedural source signals) and :mod:`.release` (the files).
- :mod:`.cache`: ``ensure_scene``, a scene generated once and reused.
- :mod:`.fixtures`: tiny scenes on disk in the released layouts.

The submodules are imported on first use (``from audiogs_jax.data import rwavs``
or ``audiogs_jax.data.rwavs``), so that ``python -m audiogs_jax.data.synth`` and
light users do not pay for scipy.signal / pyroomacoustics up front.
"""

import importlib

from .scene import DataError, SceneData

_SUBMODULES = ("cache", "ears", "fixtures", "heads", "release", "replay_nvas", "reverb",
               "room", "rwavs", "scene", "signals", "synth", "synth_args", "track",
               "trajectory")

__all__ = ["DataError", "SceneData", *_SUBMODULES]


def __getattr__(name):
  if name in _SUBMODULES:
    return importlib.import_module(f"{__name__}.{name}")
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
