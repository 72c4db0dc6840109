"""Streaming, head-tracked rendering: one block of source in, one binaural block out.

``step(params, state, block, pose, config) -> (state, out)`` is pure and
jit-compiled once per configuration. A block is ``config.block`` samples, a
multiple of the STFT hop (default 256 = 2 hops = 11.6 ms at 22050 Hz). The
state carries what one block needs from the last:

- ``inbuf [n_fft - hop]``: the newest input samples, so that the block's
  ``block / hop`` analysis frames (window ``n_fft``, step ``hop``) see a full
  window;
- ``outbuf [2, n_fft - hop]``: the synthesis overlap-add that later frames
  still add to;
- ``gain [2, F]``: the complex gains the previous block ended with;
- ``tail_z [2, F]``, ``tail_p [F]``: the reverberant tail's recursions over the
  source frames so far (``renderer.tail``; zeros without a tail).

Output sample ``n`` is the input sample ``n - (n_fft - hop)`` filtered (the
STFT look-ahead, 384 samples = 17.4 ms for 512/128); in the stream's steady
state the result is exactly the offline ``dsp.istft(G * dsp.stft(x))`` for a
fixed gain ``G`` (the window-sum-square normalisation is the interior one).

Pose changes. The gain at the new pose is reached frame by frame across the
block: frame ``j`` of ``k`` frames uses ``g_prev + (j + 1) / k (g_new - g_prev)``
(the linear crossfade of the old and new filters' outputs), and the synthesis
window's overlap-add spreads every frame's change over ``n_fft`` samples, so a
head turn never steps the waveform.

A per-frame model in a stream. AudioGS holds a Gaussian per (frequency bin,
frame of the training clip); an endless stream has no clip frames, so every
frame of the stream gets one gain per bin:

- ``gain_mode="gain_mean"``: the complex gains of the ``T x F``
  Gaussians rendered at the pose and averaged over the T frames: the clip
  renderer's gain, averaged in time. ``frame_stride = s`` averages every s-th
  frame only (s times less work per pose change; default 4, ``1`` for all).
- ``gain_mode="param_mean"`` (default): the Gaussians of each bin averaged over the
  clip's frames once (positions, SH coefficients, decay exponents; the learned
  phase by its circular mean), then rendered
  at the pose: F Gaussians per pose change, but the average of the positions
  is not where the frames' Gaussians are, so near them it is a different field.
  Which of the two is closer to the recordings depends on the model (README,
  "Listen to it"); the default is the one that keeps a moving head real-time
  with the reverberant tail.

Audio 3DGS cannot stream: its U-Net maps the magnitude spectrogram of a whole
clip (every frame to every frame through its receptive field), so a block of a
few frames has no defined output; ``load_streamer`` raises ``StreamError``
with the model's reason (``RenderModel.no_stream``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from audiogs_jax import dsp
from audiogs_jax import renderer
from audiogs_jax import workdir as workdir_lib
from audiogs_jax.gaussians import GaussianGrid
from audiogs_jax.renderer import Fields, formula

__all__ = ["StreamError", "PoseError", "StreamConfig", "StreamState", "stream_params",
           "stream_gain", "init_state", "step", "render_trajectory", "stream_clips",
           "latency_samples", "Streamer", "load_streamer", "TopView", "pose_from_message",
           "GAIN_MODES"]

GAIN_MODES = ("param_mean", "gain_mean")


class StreamError(ValueError):
  """A model or setting that cannot stream; the message says why."""


class PoseError(ValueError):
  """A pose (or pose message) that cannot be used; the message says why."""


@dataclasses.dataclass(frozen=True)
class StreamConfig:
  """Static settings of the streaming renderer (hashable: a jit static argument).

  ``block``: samples per step, a positive multiple of ``render.hop_length``.
  ``gain_mode`` and ``frame_stride``: how a per-frame model gives one gain per
  bin (module docs).
  """
  render: renderer.RenderConfig
  block: int = 256
  gain_mode: str = "param_mean"
  frame_stride: int = 4

  def __post_init__(self):
    hop, n_fft = self.render.hop_length, self.render.n_fft
    if n_fft % hop:
      raise StreamError(f"n_fft={n_fft} is not a multiple of hop_length={hop}: the "
                        f"stream's overlap-add needs whole hops")
    if not isinstance(self.block, int) or self.block <= 0 or self.block % hop:
      raise StreamError(f"block={self.block!r} must be a positive multiple of the "
                        f"STFT hop ({hop} samples)")
    if self.gain_mode not in GAIN_MODES:
      raise StreamError(f"gain_mode={self.gain_mode!r} is not one of {GAIN_MODES}")
    if not isinstance(self.frame_stride, int) or self.frame_stride < 1:
      raise StreamError(f"frame_stride={self.frame_stride!r} must be a positive integer")

  @property
  def frames_per_block(self) -> int:
    return self.block // self.render.hop_length


@struct.dataclass
class StreamState:
  """What one block hands the next (module docstring)."""
  inbuf: jnp.ndarray    # [n_fft - hop] float32
  outbuf: jnp.ndarray   # [2, n_fft - hop] float32
  gain: jnp.ndarray     # [2, F] complex64, at ``pose``
  pose: jnp.ndarray     # [4, 4] float32, the last finite pose
  tail_z: jnp.ndarray   # [2, F] complex64, the tail's coherent recursion (renderer.tail)
  tail_p: jnp.ndarray   # [F] float32, its power recursion


def latency_samples(config: StreamConfig) -> int:
  """The STFT look-ahead: output lags input by ``n_fft - hop`` samples."""
  return config.render.n_fft - config.render.hop_length


def _mean_fields(f: Fields) -> Fields:
  """Fields ``[..., T, F]`` averaged over T (kept as a length-1 axis); the phase
  as the angle of the mean unit phasor."""
  mean = lambda a: None if a is None else jnp.mean(a, axis=-2, keepdims=True)
  phase = None
  if f.phase is not None:
    phase = jnp.angle(jnp.mean(jnp.exp(1j * f.phase), axis=-2, keepdims=True))
  return Fields(xyz=mean(f.xyz), coeffs=mean(f.coeffs), expo=mean(f.expo), phase=phase,
                scale=f.scale, tail=f.tail)


def stream_params(params: "GaussianGrid | Fields", config: StreamConfig) -> Fields:
  """The fields ``step`` reads, from AudioGS parameters (or their
  ``renderer.fields``): every ``frame_stride``-th frame ``[..., T', F]``
  (``gain_mode="gain_mean"``) or their frame mean ``[..., 1, F]`` (``"param_mean"``)."""
  f = params if isinstance(params, Fields) else renderer.fields(params, config.render)
  if config.render.tail_frames and f.tail is None:
    raise StreamError(f"tail_frames={config.render.tail_frames} but the model has no tail")
  if config.gain_mode == "param_mean":
    f = _mean_fields(f)
  elif config.frame_stride > 1:
    stride = lambda a: a[..., ::config.frame_stride, :] if a.ndim >= 2 else a
    f = jax.tree.map(stride, f.replace(tail=None)).replace(tail=f.tail)
  return jax.tree.map(jnp.asarray, f)


def stream_gain(sp: Fields, pose: jnp.ndarray, config: StreamConfig):
  """Complex gains ``[2, F]`` of the stream at one pose ``[4, 4]`` (with the
  backend's fast arcsine for the Woodworth path: ``RenderConfig.fast_arcsin``)."""
  render = dataclasses.replace(config.render, fast_arcsin=True)
  return jnp.mean(formula.gains(sp, pose[None], render)[0], axis=-2)


def init_state(sp: Fields, pose, config: StreamConfig) -> StreamState:
  """Silence in both buffers; the gain of ``pose`` (no fade-in from zero)."""
  n = latency_samples(config)
  pose = jnp.asarray(pose, jnp.float32)
  return StreamState(inbuf=jnp.zeros((n,), jnp.float32),
                     outbuf=jnp.zeros((2, n), jnp.float32),
                     gain=stream_gain(sp, pose, config), pose=pose,
                     tail_z=jnp.zeros((2, config.render.num_freqs), jnp.complex64),
                     tail_p=jnp.zeros((config.render.num_freqs,), jnp.float32))


@functools.lru_cache(maxsize=16)
def _inv_wss(window: str, win_length: Optional[int], n_fft: int, hop: int) -> np.ndarray:
  """1 / (steady-state window sum-square) for each sample position mod hop ``[hop]``."""
  w2 = dsp.get_window(window, win_length, n_fft) ** 2
  return (1.0 / w2.reshape(n_fft // hop, hop).sum(axis=0)).astype(np.float32)


def step(sp: Fields, state: StreamState, block: jnp.ndarray, pose: jnp.ndarray,
         config: StreamConfig):
  """One block: ``(state, block [B], pose [4, 4]) -> (state, out [2, B])``.

  The gains are computed only when the pose differs from the previous
  block's (``lax.cond``); a pose with a non-finite entry keeps the previous
  pose and gain (never NaN audio).
  """
  rc = config.render
  hop, n_fft, k = rc.hop_length, rc.n_fft, config.frames_per_block
  r = n_fft // hop
  buf = jnp.concatenate([state.inbuf, block.astype(jnp.float32)])       # [(r-1+k) hop]
  chunks = buf.reshape(r - 1 + k, hop)
  frames = jnp.concatenate([chunks[m:m + k] for m in range(r)], axis=-1)  # [k, n_fft]
  win = jnp.asarray(dsp.get_window(rc.window, rc.win_length, n_fft), jnp.float32)
  spec = jnp.fft.rfft(frames * win, axis=-1)                            # [k, F]
  if rc.content_mode:
    spec = spec / jnp.maximum(jnp.abs(spec), 1e-8)

  pose = jnp.where(jnp.all(jnp.isfinite(pose)), pose.astype(jnp.float32), state.pose)
  new = jax.lax.cond(jnp.any(pose != state.pose),
                     lambda: stream_gain(sp, pose, config), lambda: state.gain)  # [2, F]
  w = (jnp.arange(1, k + 1, dtype=jnp.float32) / k)[None, :, None]     # [1, k, 1]
  g = state.gain[:, None] + w * (new - state.gain)[:, None]              # [2, k, F]

  out_tf = g * spec[None]                                              # [2, k, F]
  tail_z, tail_p = state.tail_z, state.tail_p
  if rc.tail_frames:
    out_tf, (tail_z, tail_p) = renderer.combine_tail(
        out_tf[None], sp.tail, spec[None].astype(jnp.complex64), 0, rc,
        state=(tail_z[None], tail_p[None]))
    out_tf, tail_z, tail_p = out_tf[0], tail_z[0], tail_p[0]
  y = jnp.fft.irfft(out_tf, n=n_fft, axis=-1) * win                    # [2, k, n_fft]
  parts = y.reshape(2, k, r, hop)
  acc = jnp.pad(state.outbuf, ((0, 0), (0, k * hop)))                  # [2, (r-1+k) hop]
  acc = acc.reshape(2, r - 1 + k, hop)
  for m in range(r):  # r = n_fft / hop shifted adds, not a loop over frames
    acc = acc + jnp.pad(parts[:, :, m], ((0, 0), (m, r - 1 - m), (0, 0)))
  inv = jnp.asarray(_inv_wss(rc.window, rc.win_length, n_fft, hop))
  out = (acc[:, :k] * inv).reshape(2, k * hop)
  state = StreamState(inbuf=buf[k * hop:], outbuf=acc[:, k:].reshape(2, -1), gain=new,
                      pose=pose, tail_z=tail_z, tail_p=tail_p)
  return state, out


def render_trajectory(sp, state: StreamState, blocks: jnp.ndarray, poses: jnp.ndarray,
                      config: StreamConfig):
  """``lax.scan`` of ``step``: blocks ``[N, B]``, poses ``[N, 4, 4]`` ->
  ``(state, out [N, 2, B])``; the same numbers as N calls of ``step``."""
  def body(s, xs):
    return step(sp, s, xs[0], xs[1], config)
  return jax.lax.scan(body, state, (blocks, poses))


def stream_clips(sp, sources: jnp.ndarray, poses: jnp.ndarray, config: StreamConfig):
  """Each clip streamed at its (fixed) pose, look-ahead removed: sources ``[N, L]``,
  poses ``[N, 4, 4]`` -> ``[N, 2, L]`` aligned with the sources."""
  n, length = sources.shape
  lat, b = latency_samples(config), config.block
  nb = -(-(length + lat) // b)
  x = jnp.pad(sources, ((0, 0), (0, nb * b - length)))

  def one(src, pose):
    s0 = init_state(sp, pose, config)
    _, out = render_trajectory(sp, s0, src.reshape(nb, b),
                               jnp.broadcast_to(pose, (nb, 4, 4)), config)
    return jnp.moveaxis(out, 0, 1).reshape(2, nb * b)[:, lat:lat + length]

  return jax.vmap(one)(x, poses)


@dataclasses.dataclass
class Streamer:
  """A trained model ready to stream: jitted ``step(state, block, pose)``.

  ``norm_factor`` is the scene's normalisation (the model works on
  ``recording / norm_factor``); ``meta`` the checkpoint's meta; ``model`` and
  ``params`` the trained model and its parameters (for figures).
  """
  sp: Fields
  config: StreamConfig
  norm_factor: float = 1.0
  meta: dict = dataclasses.field(default_factory=dict)
  model: Any = None
  params: Any = None

  def __post_init__(self):
    # The stream parameters are closed over (compile-time constants): per call
    # only the state, the block and the pose cross the jit boundary.
    cfg, sp = self.config, self.sp
    self._step = jax.jit(lambda s, b, p: step(sp, s, b, p, cfg))
    self._init = jax.jit(lambda p: init_state(sp, p, cfg))
    self._scan = jax.jit(lambda s, b, p: render_trajectory(sp, s, b, p, cfg))

  @property
  def sample_rate(self) -> int:
    return self.config.render.sample_rate

  def init(self, pose) -> StreamState:
    return self._init(_f32(pose))

  def step(self, state: StreamState, block, pose):
    # Host numpy goes straight into the jitted call (cheaper than jnp.asarray
    # first: one transfer per argument inside the call, no eager conversion op).
    block, pose = _f32(block), _f32(pose)
    if block.shape != (self.config.block,) or pose.shape != (4, 4):
      raise StreamError(f"step takes a block of {self.config.block} samples and a 4x4 "
                        f"pose, got shapes {block.shape} and {pose.shape}")
    return self._step(state, block, pose)

  def scan(self, state: StreamState, blocks, poses):
    return self._scan(state, _f32(blocks), _f32(poses))


def _f32(x):
  return x if isinstance(x, jax.Array) and x.dtype == jnp.float32 else np.asarray(x, np.float32)


def load_streamer(workdir, *, which: str = "latest", scene: Optional[str] = None,
                  block: int = 256, gain_mode: str = "param_mean",
                  frame_stride: int = 4) -> Streamer:
  """A ``Streamer`` of a training workdir (``workdir.load_trained``).
  Raises ``CheckpointError``/``ConfigError`` for a bad workdir, ``StreamError``
  for a model that cannot stream (its ``RenderModel.no_stream`` says why)."""
  config, model, params, meta = workdir_lib.load_trained(workdir, which, scene=scene)
  if model.stream_fields is None:
    raise StreamError(model.no_stream or f"model {model.name!r} has no streaming renderer")
  fields, render_config = model.stream_fields(params, config)
  cfg = StreamConfig(render=render_config, block=int(block), gain_mode=gain_mode,
                     frame_stride=int(frame_stride))
  return Streamer(sp=stream_params(fields, cfg), config=cfg,
                  norm_factor=float(meta.get("norm_factor", 1.0)),
                  meta=dict(meta, train_config=config, workdir=str(workdir)),
                  model=model, params=params)


@dataclasses.dataclass(frozen=True)
class TopView:
  """The scene seen from above: which world axis is up, the listener's height.

  Horizontal coordinates ``(x, y)`` are the two other world axes in order;
  ``yaw`` (radians) turns the facing direction from the first horizontal axis
  towards the second (the synthetic scenes' convention: z up, yaw 0 faces +x).
  Poses are head-to-world with columns right, up, backward (OpenGL).
  """
  up_axis: int = 2
  up_sign: float = 1.0
  height: float = 0.0

  @property
  def axes(self) -> tuple:
    return tuple(a for a in range(3) if a != self.up_axis)

  @classmethod
  def from_poses(cls, poses) -> "TopView":
    """Up = the dominant axis of the poses' mean up column; height = their mean."""
    poses = np.asarray(poses, np.float64)
    up = poses[:, :3, 1].mean(axis=0)
    axis = int(np.argmax(np.abs(up)))
    return cls(up_axis=axis, up_sign=float(np.sign(up[axis]) or 1.0),
               height=float(poses[:, axis, 3].mean()))

  def pose(self, x: float, y: float, yaw: float) -> np.ndarray:
    """``[4, 4]`` float32 head-to-world pose at ``(x, y)`` facing ``yaw``."""
    a, b = self.axes
    f, u = np.zeros(3), np.zeros(3)
    f[a], f[b] = math.cos(yaw), math.sin(yaw)
    u[self.up_axis] = self.up_sign
    out = np.eye(4)
    out[:3, 0], out[:3, 1], out[:3, 2] = np.cross(f, u), u, -f
    out[a, 3], out[b, 3], out[self.up_axis, 3] = x, y, self.height
    return out.astype(np.float32)

  def project(self, pose) -> tuple:
    """``(x, y, yaw)`` of a ``[4, 4]`` pose."""
    pose = np.asarray(pose, np.float64)
    a, b = self.axes
    f = -pose[:3, 2]
    return float(pose[a, 3]), float(pose[b, 3]), float(math.atan2(f[b], f[a]))


def _finite(x, name: str, bound: float = 1e4) -> float:
  if isinstance(x, bool):
    raise PoseError(f"pose message: {name} must be a number, got {x!r}")
  try:
    v = float(x)
  except (TypeError, ValueError):
    raise PoseError(f"pose message: {name} must be a number, got {x!r}") from None
  if not math.isfinite(v) or abs(v) > bound:
    raise PoseError(f"pose message: {name} must be finite and within +-{bound:g}, "
                    f"got {x!r}")
  return v


def pose_from_message(msg, view: TopView) -> np.ndarray:
  """The ``[4, 4]`` pose of a listening-page message ``{"x", "y", "yaw"}``
  (top-view coordinates, radians). Raises ``PoseError`` naming what is wrong."""
  if not isinstance(msg, dict):
    raise PoseError(f"pose message must be a JSON object, got {type(msg).__name__}")
  missing = [k for k in ("x", "y", "yaw") if k not in msg]
  if missing:
    raise PoseError(f"pose message lacks {', '.join(missing)} (expected x, y, yaw)")
  x, y = _finite(msg["x"], "x"), _finite(msg["y"], "y")
  return view.pose(x, y, _finite(msg["yaw"], "yaw"))
