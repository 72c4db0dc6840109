"""The Audio Gaussian parameter pytrees.

One Gaussian per time-frequency bin: for a grid of F frequency bins and T frames
there are N = F * T Gaussians and bin (f, t) <-> index ``f * T + t``
(method.md, "Shared representation"). Two layouts of the same fields:

- ``Gaussians``: a list of N points, fields ``[N, ...]`` (method.md's layout;
  Audio 3DGS's points, which carry a rotation).
- ``GaussianGrid``: AudioGS's parameters, the same fields on the ``[T, F]`` grid,
  coordinate-major (``[..., T, F]``), which the renderer reads with contiguous
  vectorised loads. ``to_grid`` / ``from_grid`` convert losslessly.

| field       | shape                | meaning                                              |
|-------------|----------------------|------------------------------------------------------|
| xyz         | [N, 3]               | position in scene coordinates                        |
| sh          | [E, N, K]            | SH coefficients; E = 2 (dual: left, right) or 1      |
| decay       | [N]                  | attenuation exponent before softplus                 |
| phase       | [2, N] or None       | learned residual phase per ear (radians)             |
| rotation    | [N, 4] or None       | per-Gaussian SH frame rotation, quaternion (w,x,y,z) |
| log_scale   | [] or None           | log metres per scene unit                            |

``Gaussians`` is a ``flax.struct`` dataclass, so it is a pytree: it goes through
``jit``, ``vmap``, ``grad``, optax and orbax as one value. Optional fields are
``None`` (an empty subtree) when unused.
"""

from __future__ import annotations

from typing import Optional

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from audiogs_jax import sh as sh_lib

__all__ = ["Gaussians", "GaussianGrid", "Tail", "init_gaussians", "check_gaussians",
           "inverse_softplus", "to_grid", "from_grid"]


@struct.dataclass
class Gaussians:
  xyz: jnp.ndarray
  sh: jnp.ndarray
  decay: jnp.ndarray
  phase: Optional[jnp.ndarray] = None
  rotation: Optional[jnp.ndarray] = None
  log_scale: Optional[jnp.ndarray] = None

  @property
  def num(self) -> int:
    return self.xyz.shape[0]

  @property
  def sh_degree(self) -> int:
    return sh_lib.degree_of(self.sh.shape[-1])

  @property
  def num_ears(self) -> int:
    return self.sh.shape[0]


def inverse_softplus(y: float) -> float:
  """x such that softplus(x) = y (y > 0)."""
  return float(np.log(np.expm1(y)))


def check_gaussians(g: Gaussians, num: Optional[int] = None) -> None:
  """chex shape/rank assertions for a ``Gaussians`` value."""
  n = g.xyz.shape[0] if num is None else num
  chex.assert_shape(g.xyz, (n, 3))
  chex.assert_rank(g.sh, 3)
  chex.assert_axis_dimension(g.sh, 1, n)
  if g.sh.shape[0] not in (1, 2):
    raise ValueError(f"sh must have 1 or 2 ear fields, got shape {g.sh.shape}")
  sh_lib.degree_of(g.sh.shape[-1])
  chex.assert_shape(g.decay, (n,))
  if g.phase is not None:
    chex.assert_shape(g.phase, (2, n))
  if g.rotation is not None:
    chex.assert_shape(g.rotation, (n, 4))
  if g.log_scale is not None:
    chex.assert_shape(g.log_scale, ())


def init_gaussians(key: jax.Array, num_freqs: int, num_frames: int, *,
                   sh_degree: int = 2, center=(0.0, 0.0, 0.0),
                   spread: float = 0.1, dual: bool = True,
                   learn_phase: bool = True, with_rotation: bool = False,
                   log_scale: Optional[float] = None, init_gain: float = 1.0,
                   activation: str = "relu", init_decay: float = 0.0,
                   dtype=jnp.float32) -> Gaussians:
  """Initial Gaussians for an F x T grid (method.md, "Initialisation").

  Positions: ``center`` plus isotropic Gaussian noise of std ``spread`` (scene
  units). SH degree 0 is set so that the directional magnitude is ``init_gain``
  after the activation; higher degrees, decay and phase are 0; rotations identity.

  Args:
    key: PRNG key.
    num_freqs, num_frames: F and T; N = F * T.
    sh_degree: 0..3 (K = 1, 4, 9, 16).
    center: ``[3]`` scene-unit centre (the listener centroid, typically).
    spread: std of the initial positions around ``center``.
    dual: two SH fields (left, right) as AudioGS; one shared field otherwise.
    learn_phase: include the per-ear residual phase field.
    with_rotation: include per-Gaussian quaternions (Audio 3DGS).
    log_scale: include a learned log metres-per-unit scalar with this value.
    init_gain: directional magnitude at initialisation.
    activation: ``"relu"`` or ``"softplus"`` (the render config's activation).
    init_decay: initial unconstrained decay (exponent = softplus(init_decay)).

  Returns:
    ``Gaussians`` with N = num_freqs * num_frames.
  """
  n = int(num_freqs) * int(num_frames)
  k = sh_lib.num_coeffs(sh_degree)
  e = 2 if dual else 1
  center = jnp.asarray(center, dtype)
  chex.assert_shape(center, (3,))
  xyz = center + spread * jax.random.normal(key, (n, 3), dtype)
  if activation == "relu":
    pre = init_gain
  elif activation == "softplus":
    pre = inverse_softplus(init_gain)
  else:
    raise ValueError(f"activation must be 'relu' or 'softplus', got {activation!r}")
  sh = jnp.zeros((e, n, k), dtype).at[:, :, 0].set(pre / sh_lib.C0)
  g = Gaussians(
      xyz=xyz,
      sh=sh,
      decay=jnp.full((n,), init_decay, dtype),
      phase=jnp.zeros((2, n), dtype) if learn_phase else None,
      rotation=(jnp.zeros((n, 4), dtype).at[:, 0].set(1.0)
                if with_rotation else None),
      log_scale=None if log_scale is None else jnp.asarray(log_scale, dtype),
  )
  check_gaussians(g, n)
  return g


@struct.dataclass
class Tail:
  """The reverberant tail of ``renderer.tail`` (per ear and frequency bin, not per
  Gaussian): tap ``k >= 1`` of ear ``e`` is
  ``exp(level_e - k softplus(decay)) exp(j (phase_e + k omega_e))``."""
  level: jnp.ndarray      # [2, F] log amplitude of the tap k = 0 (extrapolated), per ear
  decay: jnp.ndarray      # [F] softplus(decay) = amplitude decay per frame, nepers
  phase: Optional[jnp.ndarray] = None   # [2, F] phase of the tap k = 0, radians
  omega: Optional[jnp.ndarray] = None   # [2, F] phase advance per frame, radians
  # (None: fixed random values, renderer.tail.fixed_phases; the power mode)


@struct.dataclass
class GaussianGrid:
  """AudioGS's parameters: the fields of ``Gaussians`` on the grid, frames-major.

  | field     | shape          | ``Gaussians`` equivalent         |
  |-----------|----------------|----------------------------------|
  | xyz       | [3, T, F]      | xyz [N, 3]                       |
  | sh        | [E, K, T, F]   | sh [E, N, K]                     |
  | decay     | [T, F]         | decay [N]                        |
  | phase     | [2, T, F]      | phase [2, N]                     |
  | rotation  | None           | rotation [N, 4]                  |
  | log_scale | []             | log_scale []                     |
  | tail      | ``Tail``       | (none: per ear and bin)          |

  AudioGS reads its SH in the head frame: ``rotation`` is always None (an empty
  subtree; the field keeps the pytree structure of the checkpoints it is saved in).
  """
  xyz: jnp.ndarray
  sh: jnp.ndarray
  decay: jnp.ndarray
  phase: Optional[jnp.ndarray] = None
  rotation: None = None
  log_scale: Optional[jnp.ndarray] = None
  tail: Optional[Tail] = None

  @property
  def num_frames(self) -> int:
    return self.xyz.shape[1]

  @property
  def num_freqs(self) -> int:
    return self.xyz.shape[2]

  @property
  def sh_degree(self) -> int:
    return sh_lib.degree_of(self.sh.shape[1])


def to_grid(g: Gaussians, num_freqs: int) -> GaussianGrid:
  """``Gaussians`` (without rotations) -> ``GaussianGrid`` for F = ``num_freqs`` bins."""
  n = g.xyz.shape[0]
  if n % num_freqs:
    raise ValueError(f"{n} Gaussians is not a multiple of {num_freqs} frequency bins")
  if g.rotation is not None:
    raise ValueError("GaussianGrid holds no rotations; these Gaussians carry some")
  t = n // num_freqs
  tf = lambda a: jnp.swapaxes(a.reshape(a.shape[:-1] + (num_freqs, t)), -1, -2)
  return GaussianGrid(
      xyz=tf(g.xyz.T), sh=tf(jnp.moveaxis(g.sh, -1, 1)), decay=tf(g.decay),
      phase=None if g.phase is None else tf(g.phase), log_scale=g.log_scale)


def from_grid(grid: GaussianGrid) -> Gaussians:
  """``GaussianGrid`` -> ``Gaussians`` (index f * T + t)."""
  ft = lambda a: jnp.swapaxes(a, -1, -2).reshape(a.shape[:-2] + (-1,))
  return Gaussians(
      xyz=ft(grid.xyz).T, sh=jnp.moveaxis(ft(grid.sh), 1, -1), decay=ft(grid.decay),
      phase=None if grid.phase is None else ft(grid.phase), log_scale=grid.log_scale)
