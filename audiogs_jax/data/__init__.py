"""Reading scenes: the in-memory :class:`SceneData`, readers for RWAVS and
Replay-NVAS, the built-in physically simulated scenes and test fixtures.

- :mod:`.scene`: ``SceneData``, ``DataError`` and the shared input checks.
- :mod:`.rwavs`: ``load(root, scene, split, clip=...)`` (also reads synthetic scenes).
- :mod:`.replay_nvas`: ``load(root, split, scenes=..., holdout_camera=...)``.
- :mod:`.synth`: ``generate_scene`` / ``ensure_scene`` and the CLI
  ``python -m audiogs_jax.data.synth``.
- :mod:`.signals`: procedural source signals.
- :mod:`.fixtures`: tiny scenes on disk in the released layouts.
"""

from . import fixtures, replay_nvas, rwavs, scene, signals, synth
from .scene import DataError, SceneData

__all__ = ["DataError", "SceneData", "fixtures", "replay_nvas", "rwavs", "scene",
           "signals", "synth"]
