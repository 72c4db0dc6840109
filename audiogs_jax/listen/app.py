"""The listening page's server: scene data, the ASGI app, one streaming session per socket.

``load(workdirs)`` restores the models (``stream.load_streamer``) and the
scene (training poses and clips, the source recording, the room and source
when known); ``make_app(state)`` is the Starlette app: ``/`` the page,
``/static/*`` its files, ``/api/scene`` the scene as JSON, ``/ws`` the audio
socket (protocol in ``listen.session``). ``serve(state, sock)`` runs it with
uvicorn on an already bound socket.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Optional

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from audiogs_jax import checkpoint as ckpt_lib
from audiogs_jax import config as config_lib
from audiogs_jax import dataset
from audiogs_jax import stream
from audiogs_jax.data.scene import DataError
from audiogs_jax.listen import session

__all__ = ["LoadError", "ListenState", "load", "make_app", "serve", "STATIC"]

STATIC = pathlib.Path(__file__).resolve().parent / "static"
MAX_POINTS = 3000        # Gaussians drawn per model


class LoadError(RuntimeError):
  """A workdir that cannot be served; the message names it and says why."""


@dataclasses.dataclass
class ListenState:
  """Everything the sessions share (read-only after ``load``)."""
  models: list                     # [Streamer]
  labels: list                     # [str]
  view: stream.TopView
  sample_rate: int
  block: int
  source: np.ndarray               # [S] mono, recording scale
  source_name: str
  clips: np.ndarray                # [N, 2, L] recorded training clips, recording scale
  clip_xy: np.ndarray              # [N, 2] their top-view positions
  scene_json: dict


def _label(streamer, workdir: str, i: int, n: int) -> str:
  name = streamer.model.label
  tag = f"{'AB'[i]}: " if n > 1 else ""
  return f"{tag}{name} ({pathlib.Path(workdir).name})"


def _scene_source(scene, nf: float) -> np.ndarray:
  """The source recording: clips in time order, overlapping ones skipped."""
  order = np.argsort(scene.times, kind="stable")
  half = scene.clip_length / (2.0 * scene.sample_rate)
  parts, end = [], -np.inf
  for i in order:  # host-side, once per server start
    if scene.times[i] - half >= end - 1e-6:
      parts.append(scene.source[i])
      end = scene.times[i] + half
  return (np.concatenate(parts) * nf).astype(np.float32)


def _gaussians_json(streamer, view: stream.TopView) -> dict:
  xyz = np.asarray(streamer.model.positions(streamer.params), np.float64)
  e = np.asarray(streamer.model.energy(streamer.params), np.float64)
  if xyz.shape[0] > MAX_POINTS:
    idx = np.random.default_rng(0).choice(xyz.shape[0], MAX_POINTS, replace=False)
    xyz, e = xyz[idx], e[idx]
  order = np.argsort(e)
  xyz, e = xyz[order], e[order]
  c = np.log10(e + 1e-6)
  c = (c - c.min()) / max(float(np.ptp(c)), 1e-9)
  a, b = view.axes
  r = lambda v: [round(float(t), 4) for t in v]
  return {"x": r(xyz[:, a]), "y": r(xyz[:, b]), "c": r(c)}


def _room(meta: dict, view: stream.TopView) -> Optional[list]:
  """Room rectangle ``[[x0, y0], [x1, y1]]`` in scene units (synthetic scenes)."""
  sm = meta.get("scene_meta") or {}
  dim, centre, mpu = sm.get("room_dim"), sm.get("centre_m"), sm.get("metres_per_unit")
  if not (dim and centre and mpu):
    return None
  lo = (np.zeros(3) - np.asarray(centre)) / float(mpu)
  hi = (np.asarray(dim, np.float64) - np.asarray(centre)) / float(mpu)
  a, b = view.axes
  return [[float(lo[a]), float(lo[b])], [float(hi[a]), float(hi[b])]]


def load(workdirs, *, which="latest", scene=None, block=256, gain_mode="param_mean",
         frame_stride=4) -> ListenState:
  """Restore the models of ``workdirs`` (one or two) and the first one's scene."""
  models = []
  for w in workdirs:
    try:
      models.append(stream.load_streamer(w, which=which, scene=scene, block=block,
                                         gain_mode=gain_mode, frame_stride=frame_stride))
    except (ckpt_lib.CheckpointError, config_lib.ConfigError, stream.StreamError) as e:
      raise LoadError(f"--workdir {w}: {e}") from None
  for m in models:  # compile the step now, not on the first page's first block
    p0 = np.eye(4, dtype=np.float32)
    st, _ = m.step(m.init(p0), np.zeros(block, np.float32), p0)
    np.asarray(m.step(st, np.zeros(block, np.float32), p0 * 0.5)[1])
  rates = {m.sample_rate for m in models}
  if len(rates) > 1:
    raise LoadError(f"the workdirs' models run at different sample rates {sorted(rates)}")
  first = models[0]
  config = first.meta["train_config"]
  try:
    train = dataset.load_split(config, config.data.train_split, progress=False)
  except (DataError, config_lib.ConfigError, OSError) as e:
    raise LoadError(f"--workdir {workdirs[0]}: cannot read its training scene ({e})") from None
  nf = float(first.norm_factor)
  view = stream.TopView.from_poses(train.poses)
  xy = np.stack([view.project(p)[:2] for p in train.poses])
  yaw = [view.project(p)[2] for p in train.poses]
  src_pos = first.meta.get("source_position")
  a, b = view.axes
  start = train.poses[int(np.argmin(np.abs(train.times - np.median(train.times))))]
  labels = [_label(m, w, i, len(models)) for i, (m, w) in enumerate(zip(models, workdirs))]
  scene_json = {
      "sample_rate": first.sample_rate, "block": int(block),
      "latency_ms": 1000.0 * stream.latency_samples(first.config) / first.sample_rate,
      "models": [{"label": l, "gaussians": _gaussians_json(m, view)}
                 for l, m in zip(labels, models)],
      "poses": [[float(x), float(y), float(t)] for (x, y), t in zip(xy, yaw)],
      "room": _room(first.meta, view),
      "source": None if src_pos is None else [float(src_pos[a]), float(src_pos[b])],
      "start": list(view.project(start)),
      "axes": ["xyz"[a], "xyz"[b]],
  }
  return ListenState(models=models, labels=labels, view=view,
                     sample_rate=first.sample_rate, block=int(block),
                     source=_scene_source(train, nf), source_name="scene source recording",
                     clips=(train.binaural * nf).astype(np.float32), clip_xy=xy,
                     scene_json=scene_json)


def make_app(state: ListenState):
  """The Starlette app serving ``state``."""

  async def index(request):
    return FileResponse(STATIC / "index.html")

  async def scene(request):
    return JSONResponse(state.scene_json)

  async def favicon(request):
    return Response(status_code=204)

  async def ws(websocket):
    await session.Session(state, websocket).run()

  return Starlette(routes=[
      Route("/", index), Route("/api/scene", scene), Route("/favicon.ico", favicon),
      WebSocketRoute("/ws", ws),
      Mount("/static", app=StaticFiles(directory=STATIC), name="static")])


def serve(state: ListenState, sock) -> None:
  """Run the app with uvicorn on the bound socket until interrupted."""
  config = uvicorn.Config(make_app(state), log_level="warning", ws="wsproto",
                          ws_max_size=64 * 2**20, lifespan="off")
  uvicorn.Server(config).run(sockets=[sock])
