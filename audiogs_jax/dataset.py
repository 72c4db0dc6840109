"""From a config to scene data on the device.

``load_split(config, split)`` reads one split with the reader the config names
(the built-in synthetic scene is generated on first use and cached);
``to_device(scene, config)`` precomputes the STFTs of a split and puts them on
one device (evaluation, validation). ``shard_clips`` lays the training clips
of one or several scenes out over a device mesh (``ClipShards``: each device
of the mesh's ``data`` axis holds its own shard of the clips, each process
puts only its own devices' shards), so training does no file I/O and no
host-to-device copies per step; ``sample_shards`` draws a batch on the
devices, each data shard from its own clips.

Multi-scene jobs (``config.data.scenes = "1,2,3"``): ``scene_ids`` lists the
scenes, ``scene_config`` is the single-scene config of one of them.
"""

from __future__ import annotations

import copy
import os
import pathlib
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from audiogs_jax import dsp
from audiogs_jax.data.scene import SceneData

__all__ = ["DeviceData", "ClipShards", "load_split", "to_device", "sample_batch",
           "shard_clips", "sample_shards", "scene_ids", "scene_config", "cache_dir",
           "synthetic_scene_dir", "synthetic_seed"]


def cache_dir(config) -> pathlib.Path:
  """Where built-in scenes are cached: ``config.data.root`` or
  ``$AUDIOGS_CACHE`` or ``~/.cache/audiogs_jax``."""
  if config.data.root:
    return pathlib.Path(config.data.root).expanduser()
  env = os.environ.get("AUDIOGS_CACHE")
  if env:
    return pathlib.Path(env).expanduser()
  return pathlib.Path("~/.cache/audiogs_jax").expanduser()


def scene_ids(config) -> list:
  """The scenes of a multi-scene job (``config.data.scenes``, comma-separated),
  in order; ``[]`` for a single-scene job (``config.data.scene``)."""
  text = str(config.data.get("scenes", "") or "")
  ids = [t.strip() for t in text.replace(" ", ",").split(",") if t.strip()]
  if len(set(ids)) != len(ids):
    from audiogs_jax.config import ConfigError
    raise ConfigError(f"config.data.scenes={text!r} names a scene twice")
  return ids


def scene_config(config, scene: str):
  """The single-scene config of one scene of a multi-scene job (a copy with
  ``data.scene = scene`` and no ``data.scenes``)."""
  c = copy.deepcopy(config)
  with c.data.unlocked():
    c.data.scene = str(scene)
    c.data.scenes = ""
  return c


def synthetic_seed(config) -> int:
  """The simulator seed of the config's synthetic scene: ``data.synth.seed``
  plus ``scene - 1`` for a numeric scene id, so that synthetic scenes 1, 2, 3
  are different rooms' recordings (scene 1 keeps ``data.synth.seed``)."""
  scene = str(config.data.scene)
  offset = int(scene) - 1 if scene.isdigit() and int(scene) >= 1 else 0
  return int(config.data.synth.seed) + offset


def synthetic_scene_dir(config, progress: bool = True) -> pathlib.Path:
  """Generate (once) and return the folder of the config's synthetic scene."""
  import sys
  from audiogs_jax.data import synth
  s = config.data.synth
  root = cache_dir(config)
  before = set(os.listdir(root)) if root.is_dir() else set()
  folder = synth.ensure_scene(
      cache_dir(config), scene=str(config.data.scene), room=tuple(s.room),
      rt60=float(s.rt60), signal=str(s.signal), seconds=int(s.seconds),
      trajectory=str(s.trajectory), head_radius=float(s.head_radius),
      sample_rate=int(config.data.sample_rate), seed=synthetic_seed(config),
      ears="sofa" if s.get("hrtf") else str(s.get("ears", "kemar")),
      hrtf=str(s.get("hrtf")) or None, progress=progress)
  if progress and folder.parent.name not in before:  # simulated just now
    print(f"scene {config.data.scene} cached in {folder}", file=sys.stderr)
  return folder


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
                      f"(splits: {', '.join(splits)}; chosen by --config.data.train_split, "
                      f"--config.data.eval_split or evaluate's --split)")


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
  from audiogs_jax.config import ConfigError
  raise ConfigError(f"--config.data.kind={d.kind!r} is not one of synthetic, rwavs, "
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
                 frame_roll: bool = False, count=None) -> dict:
  """A batch of clips drawn uniformly with replacement, on the device.

  With ``frame_roll``, each clip's source and target STFTs are rolled together
  by a random number of frames (an augmentation, not part of the published
  method): the transfer a pose implies is unchanged, but each Gaussian (f, t)
  sees the content of other frames, which discourages per-frame memorisation
  of the training clips' content.

  ``count`` (int32 scalar, may be traced): draw from the first ``count``
  clips only (the rest is padding); default all ``data.num``.

  Returns a dict with ``poses [B,4,4]``, ``source_tf [B,T,F]``,
  ``target_tf [B,2,T,F]``.
  """
  idx = jax.random.randint(key, (batch_size,), 0, data.num if count is None else count)
  src, tgt = data.source_tf[idx], data.target_tf[idx]
  if frame_roll:
    shifts = jax.random.randint(jax.random.fold_in(key, 1), (batch_size,), 0,
                                src.shape[-2])
    src = jax.vmap(lambda x, s: jnp.roll(x, s, axis=-2))(src, shifts)
    tgt = jax.vmap(lambda x, s: jnp.roll(x, s, axis=-2))(tgt, shifts)
  return {"poses": data.poses[idx], "source_tf": src, "target_tf": tgt}


@struct.dataclass
class ClipShards:
  """The training clips of one scene (or of S scenes, stacked) in D shards.

  A scene's N clips are split in order into D contiguous runs of
  ``floor(N / D)`` or ``ceil(N / D)`` clips (shard ``d`` starts at clip
  ``d * N // D``); each shard is ``n = ceil(N / D)`` rows long (the longest
  scene's, in a multi-scene job), the rows past its ``count`` zero padding.
  On a mesh the scene axis lies over ``scenes`` and the shard axis over ``data``.
  """
  poses: jnp.ndarray        # [S?, D, n, 4, 4]
  source_tf: jnp.ndarray    # [S?, D, n, T, F] complex64
  target_tf: jnp.ndarray    # [S?, D, n, 2, T, F] complex64
  count: jnp.ndarray        # int32 [S?, D]

  @property
  def num_shards(self) -> int:
    return self.count.shape[-1]


def shard_clips(load_scene: Callable[[int], SceneData], num_scenes: int, config,
                layout) -> ClipShards:
  """Lay out the training clips over ``layout.mesh`` as ``ClipShards``.

  Args:
    load_scene: ``i -> SceneData`` (host numpy) of scene ``i``; called only for
      the scenes this process's devices hold (cache it: it is called again
      per array).
    num_scenes: S for a multi-scene job (a leading scene axis), 0 for one
      scene (``load_scene(0)``, no scene axis).
    config: the config (STFT settings).
    layout: ``parallel.Layout`` (the mesh; D = ``layout.data_shards``).

  Each process builds only the blocks of its own devices
  (``jax.make_array_from_callback``): its share of the clips. The STFTs are
  computed on the devices, shard by shard.
  """
  d = layout.data_shards
  scenes = range(max(num_scenes, 1))
  sizes = {i: len(load_scene(i)) for i in scenes}
  for i in scenes:
    if sizes[i] < d:
      from audiogs_jax.config import ConfigError
      raise ConfigError(f"scene {i}: {sizes[i]} training clips cannot be split over the "
                        f"{d} devices of the mesh's data axis (config.mesh.data)")
  starts = {i: [k * sizes[i] // d for k in range(d + 1)] for i in scenes}
  n = max(-(-sizes[i] // d) for i in scenes)
  length = load_scene(0).clip_length
  lead = (num_scenes,) if num_scenes else ()

  def block(field: str, tail: tuple, dtype):
    shape = lead + (d, n) + tail

    def cb(index):
      index = tuple(index) + (slice(None),) * (len(shape) - len(index))
      sc = index[0] if num_scenes else slice(0, 1)
      ds, rows = index[len(lead)], index[len(lead) + 1]
      out = []
      for i in range(*sc.indices(max(num_scenes, 1))):
        src = np.asarray(getattr(load_scene(i), field), dtype)
        if src.shape[1:] != tail:
          raise ValueError(f"scene {i}: clips of shape {src.shape[1:]}, expected {tail} "
                           "(every scene of a job needs the same clip length)")
        shards = range(*ds.indices(d))   # the asking device's shards (one, usually)
        part = np.zeros((len(shards), n) + tail, dtype)
        for j, k in enumerate(shards):
          a, b = starts[i][k], starts[i][k + 1]
          part[j, :b - a] = src[a:b]
        out.append(part[:, rows])
      arr = np.stack(out)
      return arr if num_scenes else arr[0]

    return jax.make_array_from_callback(shape, layout.clip_sharding(len(shape)), cb)

  def counts(index):
    c = np.asarray([np.diff(starts[i]) for i in scenes], np.int32)
    return (c if num_scenes else c[0])[index]

  count_shape = lead + (d,)
  count = jax.make_array_from_callback(count_shape, layout.clip_sharding(len(count_shape)),
                                       counts)
  poses = block("poses", (4, 4), np.float32)
  source = block("source", (length,), np.float32)
  target = block("binaural", (2, length), np.float32)
  kw = stft_kwargs(config)
  nd = len(lead) + 2
  stft = jax.jit(lambda x: dsp.stft_frames(x, **kw),
                 out_shardings=layout.clip_sharding(nd + 2))
  stft2 = jax.jit(lambda x: dsp.stft_frames(x, **kw),
                  out_shardings=layout.clip_sharding(nd + 3))
  return ClipShards(poses=poses, source_tf=stft(source), target_tf=stft2(target),
                    count=count)


def sample_shards(data: ClipShards, key: jax.Array, batch_size: int,
                  frame_roll: bool = False) -> dict:
  """A batch of one scene's clips, ``batch_size / D`` drawn by each data shard
  from its own clips (uniformly, with replacement; see ``sample_batch``).

  With one shard the draw is ``sample_batch(all clips, key)``: the same
  batches as a single device. With D shards shard ``d`` uses
  ``jax.random.split(key, D)[d]``.

  Returns ``poses [D, B/D, 4, 4]``, ``source_tf [D, B/D, T, F]``,
  ``target_tf [D, B/D, 2, T, F]``, the shard axis first.
  """
  d = data.num_shards
  if batch_size % d:
    from audiogs_jax.config import ConfigError
    raise ConfigError(f"config.train.batch_size={batch_size} does not split over the "
                      f"{d} devices of the mesh's data axis")
  keys = key[None] if d == 1 else jax.random.split(key, d)

  def one(poses, src, tgt, count, k):
    shard = DeviceData(poses=poses, source_tf=src, target_tf=tgt, source=None, target=None)
    return sample_batch(shard, k, batch_size // d, frame_roll=frame_roll, count=count)

  return jax.vmap(one)(data.poses, data.source_tf, data.target_tf, data.count, keys)


def listener_center(scene: SceneData) -> tuple:
  return tuple(float(v) for v in np.mean(scene.poses[:, :3, 3], axis=0))


def metres_per_unit(scene: SceneData) -> Optional[float]:
  v = scene.meta.get("metres_per_unit") if scene.meta else None
  return float(v) if v else None
