"""Built-in scenes generated once and reused: a cache folder keyed by the arguments.

``ensure_scene(cache_dir, **kwargs)`` writes the release of
:func:`~audiogs_jax.data.synth.generate_scene` to ``cache_dir/<key>/``, the key
a hash of every argument (defaults spelled out, the contents of a WAV signal or
SOFA file, and ``GENERATOR_VERSION``), so that a change of any of them makes a
new scene and an unchanged call reuses the old one.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import pathlib
import shutil
import tempfile

from .release import jsonable
from .signals import SIGNALS
from .synth import GENERATOR_VERSION, generate_scene

__all__ = ["ensure_scene"]


def _cache_key(kwargs: dict) -> str:
  """16 hex digits of the sha256 of the arguments (see the module docstring)."""
  bound = inspect.signature(generate_scene).bind("<out_root>", **kwargs)
  bound.apply_defaults()
  args = dict(bound.arguments)
  args.pop("out_root")
  args.pop("progress", None)
  norm = jsonable(dict(sorted(args.items())))
  sig = kwargs.get("signal", "speech")
  if os.fspath(sig) not in SIGNALS and os.path.isfile(os.fspath(sig)):
    with open(os.fspath(sig), "rb") as f:
      norm["signal_sha256"] = hashlib.sha256(f.read()).hexdigest()
  hrtf = kwargs.get("hrtf")
  if hrtf and os.path.isfile(os.fspath(hrtf)):
    with open(os.fspath(hrtf), "rb") as f:
      norm["hrtf_sha256"] = hashlib.sha256(f.read()).hexdigest()
  norm["generator_version"] = GENERATOR_VERSION
  blob = json.dumps(norm, sort_keys=True).encode()
  return hashlib.sha256(blob).hexdigest()[:16]


def ensure_scene(cache_dir: os.PathLike | str, **kwargs) -> pathlib.Path:
  """Generate a scene once into ``cache_dir`` and reuse it afterwards.

  The release root is ``cache_dir/<hash of the arguments>/`` (with its own
  ``position.json``); it is written to a temporary folder and renamed into
  place atomically, so an interrupted run never leaves a half scene.

  Args:
    cache_dir: the cache folder.
    **kwargs: arguments of :func:`~audiogs_jax.data.synth.generate_scene` (except
      ``out_root``).
  Returns:
    The scene folder ``cache_dir/<hash>/<scene>``.
  """
  kwargs = dict(kwargs)
  progress = kwargs.pop("progress", True)
  scene = str(kwargs.get("scene", "1"))
  cache_dir = pathlib.Path(cache_dir)
  final = cache_dir / _cache_key(kwargs)
  if (final / scene / "scene_meta.json").is_file():
    return final / scene
  cache_dir.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=cache_dir))
  try:
    generate_scene(tmp, progress=progress, **kwargs)
    try:
      os.rename(tmp, final)
    except OSError:
      if not (final / scene / "scene_meta.json").is_file():  # not a lost race
        raise
  finally:
    if tmp.exists():
      shutil.rmtree(tmp, ignore_errors=True)
  return final / scene


