"""From a config to scene data on the device.

``load_split(config, split)`` reads one split with the reader the config names
(the built-in synthetic scene is generated on first use and cached);
``to_device(scene, config)`` precomputes the STFTs the training loop needs and
puts everything on the device once, so training does no file I/O and no
host-to-device copies per step. ``sample_batch`` draws a batch on the device.
"""

from __future__ import annotations

import os
import pathlib
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from audiogs_jax import dsp
from audiogs_jax.data.scene import SceneData

__all__ = ["DeviceData", "load_split", "to_device", "sample_batch", "cache_dir",
           "synthetic_scene_dir"]


def cache_dir(config) -> pathlib.Path:
  """Where built-in scenes are cached: ``config.data.root`` or
  ``$AUDIOGS_CACHE`` or ``~/.cache/audiogs_jax``."""
  if config.data.root:
    return pathlib.Path(config.data.root).expanduser()
  env = os.environ.get("AUDIOGS_CACHE")
  if env:
    return pathlib.Path(env).expanduser()
  return pathlib.Path("~/.cache/audiogs_jax").expanduser()


def synthetic_scene_dir(config, progress: bool = True) -> pathlib.Path:
  """Generate (once) and return the folder of the config's synthetic scene."""
  from audiogs_jax.data import synth
  s = config.data.synth
  return synth.ensure_scene(
      cache_dir(config), scene=str(config.data.scene), room=tuple(s.room),
      rt60=float(s.rt60), signal=str(s.signal), seconds=int(s.seconds),
      trajectory=str(s.trajectory), head_radius=float(s.head_radius),
      sample_rate=int(config.data.sample_rate), seed=int(s.seed), progress=progress)


def _check_split(kind: str, split: str) -> None:
  """ConfigError (caught by the CLIs) for a split the reader does not have."""
  if kind in ("synthetic", "rwavs"):
    from audiogs_jax.data.rwavs import SPLITS as splits
  elif kind == "replay_nvas":
    from audiogs_jax.data.replay_nvas import SPLIT_SCENES as splits
  else:
    return
  if split not in splits:
    from audiogs_jax.config import ConfigError
    raise ConfigError(f"split {split!r} does not exist for config.data.kind={kind!r} "
                      f"(splits: {', '.join(splits)})")


def load_split(config, split: str, *, progress: bool = True) -> SceneData:
  """Read one split of the config's scene as ``SceneData`` (host numpy)."""
  d = config.data
  _check_split(d.kind, split)
  if d.kind == "synthetic":
    from audiogs_jax.data import rwavs
    folder = synthetic_scene_dir(config, progress=progress)
    return rwavs.load(folder.parent, folder.name, split, clip=str(d.clip),
                      sample_rate=int(d.sample_rate), normalize=bool(d.normalize))
  if d.kind == "rwavs":
    from audiogs_jax.data import rwavs
    return rwavs.load(d.root, str(d.scene), split, clip=str(d.clip),
                      sample_rate=int(d.sample_rate), normalize=bool(d.normalize))
  if d.kind == "replay_nvas":
    from audiogs_jax.data import replay_nvas
    hold = int(d.holdout_camera) or None
    scenes = [str(d.scene)] if d.scene else None
    return replay_nvas.load(d.root, split, scenes=scenes, holdout_camera=hold,
                            sample_rate=int(d.sample_rate),
                            clip_seconds=float(d.clip_seconds),
                            normalize=bool(d.normalize))
  raise ValueError(f"config.data.kind={d.kind!r} is not one of synthetic, rwavs, "
                   "replay_nvas")


@struct.dataclass
class DeviceData:
  """A split on the device, frames-major STFTs (see ``dsp.stft_frames``)."""
  poses: jnp.ndarray        # [N, 4, 4]
  source_tf: jnp.ndarray    # [N, T, F] complex64
  target_tf: jnp.ndarray    # [N, 2, T, F] complex64
  source: jnp.ndarray       # [N, L]
  target: jnp.ndarray       # [N, 2, L]

  @property
  def num(self) -> int:
    return self.poses.shape[0]


def stft_kwargs(config) -> dict:
  return dict(n_fft=int(config.model.n_fft), hop_length=int(config.model.hop_length))


_stft_frames = jax.jit(dsp.stft_frames, static_argnames=("n_fft", "hop_length"))


def to_device(scene: SceneData, config, sharding=None) -> DeviceData:
  """STFTs of every clip, computed once, and the arrays on the device."""
  kw = stft_kwargs(config)
  source = jnp.asarray(scene.source)
  target = jnp.asarray(scene.binaural)
  data = DeviceData(
      poses=jnp.asarray(scene.poses, jnp.float32),
      source_tf=_stft_frames(source, **kw),
      target_tf=_stft_frames(target, **kw),
      source=source, target=target)
  if sharding is not None:
    data = jax.device_put(data, sharding)
  return data


def sample_batch(data: DeviceData, key: jax.Array, batch_size: int,
                 frame_roll: bool = False) -> dict:
  """A batch of clips drawn uniformly with replacement, on the device.

  With ``frame_roll``, each clip's source and target STFTs are rolled together
  by a random number of frames (an augmentation, not part of the published
  method): the transfer a pose implies is unchanged, but each Gaussian (f, t)
  sees the content of other frames, which discourages per-frame memorisation
  of the training clips' content.

  Returns a dict with ``poses [B,4,4]``, ``source_tf [B,T,F]``,
  ``target_tf [B,2,T,F]``.
  """
  idx = jax.random.randint(key, (batch_size,), 0, data.num)
  src, tgt = data.source_tf[idx], data.target_tf[idx]
  if frame_roll:
    shifts = jax.random.randint(jax.random.fold_in(key, 1), (batch_size,), 0,
                                src.shape[-2])
    src = jax.vmap(lambda x, s: jnp.roll(x, s, axis=-2))(src, shifts)
    tgt = jax.vmap(lambda x, s: jnp.roll(x, s, axis=-2))(tgt, shifts)
  return {"poses": data.poses[idx], "source_tf": src, "target_tf": tgt}


def listener_center(scene: SceneData) -> tuple:
  return tuple(float(v) for v in np.mean(scene.poses[:, :3, 3], axis=0))


def metres_per_unit(scene: SceneData) -> Optional[float]:
  v = scene.meta.get("metres_per_unit") if scene.meta else None
  return float(v) if v else None
