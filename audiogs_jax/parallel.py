"""Devices, meshes and hosts: how a training job is laid out on the hardware.

Everything here is plain ``jax.sharding`` and ``jax.distributed``; XLA inserts
the collectives (gradient all-reduce, parameter all-gather) from the shardings.

- ``initialize_distributed``: ``jax.distributed.initialize`` when the job has
  several processes (command-line flags, ``JAX_COORDINATOR_ADDRESS`` /
  ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``, or a cluster JAX detects:
  SLURM, Open MPI, Cloud TPU pods).
- ``make_mesh(config, num_scenes)``: a 2-D mesh ``("scenes", "data")`` of
  ``config.mesh.scenes x config.mesh.data`` devices (``data = -1``: all
  the devices left). One device is a 1 x 1 mesh; the code is the same.
- ``Layout``: the mesh plus what is laid out on it:

  - the training clips, ``[S?, D, n, ...]`` (``dataset.ClipShards``): the
    scene axis (multi-scene jobs) over ``scenes``, the ``D`` clip shards
    over ``data``;
  - the train state: replicated over ``data`` by default; with
    ``config.mesh.shard_gaussians`` every Gaussian field (and its Adam
    moments) split along its Gaussian axis over ``data`` (padded to a
    multiple of the axis size inside the state; checkpoints hold the
    unpadded state); the scene axis of a multi-scene state over ``scenes``.

Process 0 is the one that logs, prints and writes files (``is_main``).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from audiogs_jax.config import ConfigError

__all__ = ["MESH_AXES", "initialize_distributed", "distributed_env", "make_mesh",
           "Layout", "make_layout", "is_main", "put_global", "local_copy"]

MESH_AXES = ("scenes", "data")


# ----------------------------------------------------------------------------- processes

def is_main() -> bool:
  """True on process 0 (the only one that logs, prints and writes files)."""
  return jax.process_index() == 0


def distributed_env(environ=None) -> Optional[dict]:
  """Multi-process settings found in the environment, or None.

  ``JAX_COORDINATOR_ADDRESS`` with ``JAX_NUM_PROCESSES`` and
  ``JAX_PROCESS_ID`` (what ``scripts/launch_local_multihost.sh`` sets) give
  explicit values; a multi-task SLURM step, a multi-rank Open MPI job or a
  multi-host Cloud TPU (``TPU_WORKER_HOSTNAMES`` with several hosts) is left
  to JAX's own cluster detection (``{}``).
  """
  env = os.environ if environ is None else environ
  if env.get("JAX_COORDINATOR_ADDRESS") and env.get("JAX_NUM_PROCESSES"):
    return {"coordinator_address": env["JAX_COORDINATOR_ADDRESS"],
            "num_processes": int(env["JAX_NUM_PROCESSES"]),
            "process_id": int(env.get("JAX_PROCESS_ID", "0"))}
  if int(env.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_PROCID" in env:
    return {}
  if int(env.get("OMPI_COMM_WORLD_SIZE", "1") or 1) > 1:
    return {}
  if len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1:
    return {}
  return None


def initialize_distributed(coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None, *,
                           auto: bool = False) -> bool:
  """Start ``jax.distributed`` when this is a multi-process job; returns whether it did.

  Explicit arguments win over the environment (``distributed_env``);
  ``auto=True`` calls ``jax.distributed.initialize()`` with no arguments
  (JAX detects the cluster: Cloud TPU pod, SLURM, Open MPI). Must run before
  anything touches a JAX device. On CPU the collectives go through gloo.
  """
  kwargs: Optional[dict] = None
  if coordinator_address or num_processes is not None or process_id is not None:
    kwargs = {"coordinator_address": coordinator_address,
              "num_processes": num_processes, "process_id": process_id}
  elif auto:
    kwargs = {}
  else:
    kwargs = distributed_env()
  if kwargs is None:
    return False
  try:  # CPU processes need a collectives backend (gloo is the default in new JAX)
    if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
  except AttributeError:
    pass
  jax.distributed.initialize(**{k: v for k, v in kwargs.items() if v is not None})
  return True


# ----------------------------------------------------------------------------- mesh

def mesh_shape(config, num_scenes: int, num_devices: int) -> tuple[int, int]:
  """``(scenes, data)`` axis sizes from ``config.mesh`` for ``num_devices``.

  Raises ``ConfigError`` when the sizes do not fit the devices or the scenes.
  """
  m = config.get("mesh") or {}
  scenes = int(m.get("scenes", 1) or 1)
  data = int(m.get("data", -1))
  if scenes < 1:
    raise ConfigError(f"config.mesh.scenes={scenes} must be >= 1")
  if data == -1:
    if num_devices % scenes:
      raise ConfigError(f"config.mesh.scenes={scenes} does not divide the {num_devices} "
                        "devices")
    data = num_devices // scenes
  if data < 1 or scenes * data != num_devices:
    raise ConfigError(f"config.mesh: scenes={scenes} x data={data} does not use the "
                      f"{num_devices} devices (set config.mesh.data=-1 for all of them)")
  if num_scenes == 0 and scenes != 1:
    raise ConfigError(f"config.mesh.scenes={scenes} needs a multi-scene job "
                      "(config.data.scenes=1,2,...)")
  if num_scenes and num_scenes % scenes:
    raise ConfigError(f"{num_scenes} scenes do not split evenly over config.mesh.scenes="
                      f"{scenes} devices")
  return scenes, data


def make_mesh(config, num_scenes: int = 0,
              devices: Optional[Sequence[Any]] = None) -> Mesh:
  """The ``("scenes", "data")`` mesh of ``config.mesh`` over ``devices``
  (default: every device of every process), with automatic (XLA-chosen)
  collectives."""
  devices = list(jax.devices() if devices is None else devices)
  shape = mesh_shape(config, num_scenes, len(devices))
  auto = getattr(jax.sharding, "AxisType", None)
  kw = {"axis_types": (auto.Auto,) * 2} if auto is not None else {}
  return jax.make_mesh(shape, MESH_AXES, devices=devices, **kw)


# ----------------------------------------------------------------------------- placement

def put_global(tree, shardings):
  """Host (numpy) values, the same in every process, as global ``jax.Array``s.

  Each process puts only the blocks its own devices hold
  (``jax.make_array_from_callback``), so this works across hosts.
  """
  def put(x, s):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, s, lambda idx: x[idx])
  return jax.tree.map(put, tree, shardings)


def local_copy(tree):
  """A fully replicated global tree as arrays on this process's first device
  (what a single-device ``jit`` such as ``make_predict`` can take)."""
  return jax.tree.map(lambda x: x.addressable_data(0), tree)


class _Axis:
  """A Gaussian-axis marker (a pytree leaf, unlike a bare ``None``)."""

  def __init__(self, axis: Optional[int]):
    self.axis = axis


@dataclasses.dataclass(frozen=True)
class Layout:
  """A mesh and how the training clips and state lie on it.

  Attributes:
    mesh: the ``("scenes", "data")`` mesh.
    num_scenes: scenes trained in the job; 0 for a single-scene job (no
      scene axis anywhere).
    shard_gaussians: split the Gaussian fields over the ``data`` axis.
    gaussian_axes: ``params -> pytree of Optional[int]`` (the model's
      ``gaussian_axes``): each parameter leaf's Gaussian axis, or None.
    gaussian_size: the unpadded length of those axes (``for_params``).
  """
  mesh: Mesh
  num_scenes: int = 0
  shard_gaussians: bool = False
  gaussian_axes: Optional[Callable[[Any], Any]] = None
  gaussian_size: Optional[int] = None

  @property
  def data_shards(self) -> int:
    """D: the size of the ``data`` axis (clip shards, batch split)."""
    return int(self.mesh.shape["data"])

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  def _lead(self) -> tuple:
    return ("scenes",) if self.num_scenes else ()

  def clip_sharding(self, ndim: int) -> NamedSharding:
    """Sharding of a ``ClipShards`` leaf ``[S?, D, ...]`` of rank ``ndim``."""
    spec = self._lead() + ("data",)
    return NamedSharding(self.mesh, P(*spec, *([None] * (ndim - len(spec)))))

  def batch_spec(self, ndim: int) -> P:
    """PartitionSpec of one scene's batch leaf ``[D, B/D, ...]``."""
    return P("data", *([None] * (ndim - 1)))

  # -- the train state ---------------------------------------------------------

  def _axes_markers(self, params):
    """``params``-shaped tree of ``_Axis`` (Gaussian axis of each leaf, or None)."""
    if not (self.shard_gaussians and self.gaussian_axes is not None):
      return jax.tree.map(lambda _: _Axis(None), params)
    axes = self.gaussian_axes(params)
    return jax.tree.map(lambda _, a: _Axis(a), params, axes)

  def _leaf_spec(self, x, marker: Optional[_Axis], stacked: bool) -> P:
    nd = np.ndim(x)
    spec = [None] * nd
    if stacked and nd:
      spec[0] = "scenes"
    if marker is not None and marker.axis is not None and nd:
      spec[marker.axis % nd] = "data"
    return P(*spec)

  def _map_state(self, state, tx, fn):
    """Apply ``fn(leaf, marker)`` to every array of a ``TrainState``:
    parameters and their optimiser copies get their ``_Axis`` marker,
    everything else ``None``."""
    markers = self._axes_markers(state.params)
    new_params = jax.tree.map(fn, state.params, markers)
    # Adam's moments of a masked (multi_transform) field are MaskedNodes.
    masked = lambda x: isinstance(x, optax.MaskedNode)
    opt = optax.tree_map_params(
        tx, lambda x, m: x if masked(x) else fn(x, m), state.opt_state, markers,
        transform_non_params=lambda x: fn(x, None), is_leaf=masked)
    return state.replace(params=new_params, opt_state=opt,
                         step=fn(state.step, None), rng=fn(state.rng, None),
                         norm_factor=fn(state.norm_factor, None))

  def state_shardings(self, state, tx):
    """NamedShardings for a (padded) ``TrainState``."""
    stacked = bool(self.num_scenes)

    def spec(x, marker):
      if not hasattr(x, "shape"):
        return x
      # The step counter and the RNG key are shared by the scenes.
      lead = stacked and x is not state.step and x is not state.rng
      return NamedSharding(self.mesh, self._leaf_spec(x, marker, lead))

    return self._map_state(state, tx, spec)

  def for_params(self, params) -> "Layout":
    """This layout with the (unpadded) Gaussian-axis size of ``params`` recorded
    (needed to pad and cut back); the same layout without Gaussian sharding."""
    if not self.shard_gaussians:
      return self
    marks = jax.tree.leaves(self._axes_markers(params))
    sizes = {int(np.shape(x)[m.axis]) for x, m in zip(jax.tree.leaves(params), marks)
             if m.axis is not None}
    if len(sizes) != 1:
      raise ValueError(f"Gaussian axes of different sizes {sorted(sizes)}")
    return dataclasses.replace(self, gaussian_size=sizes.pop())

  def _cut_or_pad(self, size: int, xp):
    def fn(x, marker):
      if marker is None or marker.axis is None or not hasattr(x, "shape"):
        return x
      ax = marker.axis % x.ndim
      if xp is np:
        widths = [(0, 0)] * x.ndim
        widths[ax] = (0, size - x.shape[ax])
        return np.pad(np.asarray(x), widths)
      return jax.lax.slice_in_dim(x, 0, size, axis=ax)
    return fn

  @property
  def padded_size(self) -> int:
    g = int(self.gaussian_size)
    return g + (-g) % self.data_shards

  def pad_state(self, state, tx):
    """Host (numpy) state -> every Gaussian axis zero-padded to a multiple of
    the ``data`` axis size (the identity without Gaussian sharding)."""
    if not self.shard_gaussians:
      return state
    return self._map_state(state, tx, self._cut_or_pad(self.padded_size, np))

  def unpad(self, params):
    """The model's parameters from padded ones (inside jit)."""
    if not self.shard_gaussians:
      return params
    return jax.tree.map(self._cut_or_pad(self.gaussian_size, jnp), params,
                        self._axes_markers(params))

  def unpad_state(self, state, tx):
    """The checkpointed (unpadded) state from a padded one (inside jit)."""
    if not self.shard_gaussians:
      return state
    return self._map_state(state, tx, self._cut_or_pad(self.gaussian_size, jnp))


def make_layout(config, num_scenes: int = 0, model=None,
                devices: Optional[Sequence[Any]] = None) -> Layout:
  """The ``Layout`` of ``config.mesh`` (``shard_gaussians`` included)."""
  m = config.get("mesh") or {}
  shard = bool(m.get("shard_gaussians", False))
  axes = getattr(model, "gaussian_axes", None) if model is not None else None
  if shard and axes is None:
    raise ConfigError("config.mesh.shard_gaussians: the model declares no Gaussian axes")
  return Layout(mesh=make_mesh(config, num_scenes, devices), num_scenes=int(num_scenes),
                shard_gaussians=shard, gaussian_axes=axes)
