"""One listening-page socket: poses in, rendered binaural blocks out.

Protocol (``/ws``). The page sends JSON text messages:

- ``{"type": "start", "credits": n}``: begin; the page can hold ``n`` blocks.
- ``{"type": "credit", "n": k}``: the page played ``k`` more blocks (flow
  control: the server renders a block only when the page has room, so the
  pose of each block is the newest one and the buffer stays short).
- ``{"type": "pose", "seq": s, "x": .., "y": .., "yaw": ..}``: the listener
  (top-view coordinates, radians; see ``stream.TopView``).
- ``{"type": "output", "output": "model" | "recorded", "model": i}``: A/B.
- ``{"type": "upload", "name": ..}`` then one binary message, the file's
  bytes: a new source. ``{"type": "scene_source"}``: back to the scene's.

The server sends binary blocks, float32: an 8-value header ``[seq, render_ms,
pose_seq, output (0/1 model A/B, 2 recorded), source_id, 0, 0, 0]`` then the
left and right channels (``block`` samples each); and JSON text messages
``{"type": "error" | "source" | "nearest" | "ready", ...}``. A bad message gets
an ``error`` message and the session goes on; a disconnect ends only this
session.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time

import numpy as np
import soundfile as sf
from starlette.websockets import WebSocketDisconnect

from audiogs_jax import stream
from audiogs_jax.data.scene import resample

__all__ = ["Session", "decode_audio", "AudioError"]

MAX_UPLOAD = 64 * 2**20


class AudioError(ValueError):
  """A dropped file that cannot be played; the message says why."""


def decode_audio(data: bytes, name: str, sample_rate: int) -> tuple:
  """``(mono float32 [S], notice or None)`` of an audio file's bytes,
  resampled to ``sample_rate``. Raises ``AudioError`` naming the file."""
  if not data:
    raise AudioError(f"{name}: empty file")
  try:
    x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
  except Exception as e:  # libsndfile's errors for anything that is not audio
    raise AudioError(f"{name}: not an audio file ({str(e).splitlines()[0][:120]})") from None
  if x.shape[0] == 0:
    raise AudioError(f"{name}: no samples")
  if not np.all(np.isfinite(x)):
    raise AudioError(f"{name}: contains NaN/Inf samples")
  notes = []
  if x.shape[1] > 1:
    notes.append(f"{x.shape[1]} channels mixed down to mono")
  x = x.mean(axis=1)
  if sr != sample_rate:
    x = resample(x, sr, sample_rate)
    notes.append(f"resampled from {sr} Hz to the model's {sample_rate} Hz")
  return np.asarray(x, np.float32), ("; ".join(notes) or None)


class Session:
  """The state of one page: pose, source, A/B choice, each model's stream state."""

  def __init__(self, state, websocket):
    self.app, self.ws = state, websocket
    self.view = state.view
    x, y, yaw = state.scene_json["start"]
    self.pose = self.view.pose(x, y, yaw)
    self.pose_seq = 0
    self.source, self.source_id, self.cursor = state.source, 0, 0
    self.output, self.model = "model", 0
    self.prev_code = 0
    self.nearest = self._nearest(x, y)
    self.states = [m.init(self.pose) for m in state.models]
    self.credits = 0
    self.wake = asyncio.Event()
    self.upload_name = None
    self.seq = 0

  def _nearest(self, x: float, y: float) -> int:
    d = np.sum((self.app.clip_xy - [x, y]) ** 2, axis=1)
    return int(np.argmin(d))

  async def send_json(self, obj: dict) -> None:
    await self.ws.send_text(json.dumps(obj))

  async def error(self, message: str) -> None:
    await self.send_json({"type": "error", "message": message})

  def _next_source_block(self) -> np.ndarray:
    b, src = self.app.block, self.source
    idx = (self.cursor + np.arange(b)) % src.shape[0]
    self.cursor = (self.cursor + b) % src.shape[0]
    return src[idx], idx

  def render_block(self) -> bytes:
    """Every model's next block (all stay warm for a seamless A/B), the chosen
    output sent; a one-block linear crossfade when the output changes."""
    block, idx = self._next_source_block()
    t0 = time.perf_counter()
    outs = []
    for i, m in enumerate(self.app.models):
      self.states[i], y = m.step(self.states[i], block / m.norm_factor, self.pose)
      outs.append(np.asarray(y) * m.norm_factor)
    render_ms = 1000.0 * (time.perf_counter() - t0)
    clips = self.app.clips
    recorded = clips[self.nearest][:, idx % clips.shape[-1]]
    code = 2 if self.output == "recorded" else self.model
    y = recorded if code == 2 else outs[code]
    if code != self.prev_code:
      old = recorded if self.prev_code == 2 else outs[self.prev_code]
      ramp = (np.arange(1, y.shape[-1] + 1, dtype=np.float32) / y.shape[-1])
      y = old * (1.0 - ramp) + y * ramp
      self.prev_code = code
    header = np.asarray([self.seq, render_ms, self.pose_seq, code, self.source_id, 0, 0, 0],
                        np.float32)
    self.seq += 1
    return np.concatenate([header, np.asarray(y, np.float32).reshape(-1)]).tobytes()

  async def handle_text(self, text: str) -> None:
    try:
      msg = json.loads(text)
    except ValueError:
      return await self.error(f"malformed message (not JSON): {text[:80]!r}")
    kind = msg.get("type") if isinstance(msg, dict) else None
    if kind == "pose":
      try:
        pose = stream.pose_from_message(msg, self.view)
        seq = int(msg.get("seq", self.pose_seq + 1))
      except stream.PoseError as e:
        return await self.error(str(e))
      except (TypeError, ValueError, OverflowError):
        return await self.error(f"pose message: seq must be an integer, got {msg['seq']!r}")
      self.pose, self.pose_seq = pose, seq
      near = self._nearest(float(msg["x"]), float(msg["y"]))
      if near != self.nearest:
        self.nearest = near
        x, y = self.app.clip_xy[near]
        await self.send_json({"type": "nearest", "index": near, "x": float(x),
                              "y": float(y)})
    elif kind in ("start", "credit"):
      n = msg.get("credits" if kind == "start" else "n", 1)
      if not isinstance(n, int) or isinstance(n, bool) or not 0 < n <= 64:
        return await self.error(f"{kind} message: credits must be an integer in 1..64")
      self.credits = min(self.credits + n, 64)
      self.wake.set()
    elif kind == "output":
      out, model = msg.get("output"), msg.get("model", self.model)
      if (out not in ("model", "recorded") or not isinstance(model, int)
          or isinstance(model, bool) or not 0 <= model < len(self.app.models)):
        return await self.error(f"output message: output must be 'model' or 'recorded' "
                                f"and model one of 0..{len(self.app.models) - 1}")
      self.output, self.model = out, model
    elif kind == "upload":
      self.upload_name = str(msg.get("name") or "dropped file")[:200]
    elif kind == "scene_source":
      self._set_source(self.app.source)
      await self._announce(self.app.source_name, None)
    else:
      await self.error(f"unknown message type {kind!r} (expected start, credit, pose, "
                       f"output, upload, scene_source)")

  def _set_source(self, x: np.ndarray) -> None:
    self.source, self.cursor = x, 0
    self.source_id += 1

  async def _announce(self, name: str, notice) -> None:
    await self.send_json({"type": "source", "name": name, "id": self.source_id,
                          "seconds": self.source.shape[0] / self.app.sample_rate,
                          "notice": notice})

  async def handle_bytes(self, data: bytes) -> None:
    name = self.upload_name or "dropped file"
    self.upload_name = None
    if len(data) > MAX_UPLOAD:
      return await self.error(f"{name}: larger than {MAX_UPLOAD >> 20} MiB")
    try:
      x, notice = await asyncio.to_thread(decode_audio, data, name, self.app.sample_rate)
    except AudioError as e:
      return await self.error(str(e))
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1.0:
      x = x / peak
    if x.shape[0] < self.app.block:
      x = np.pad(x, (0, self.app.block - x.shape[0]))
    self._set_source(x)
    await self._announce(name, notice)

  async def _receive(self) -> None:
    try:
      while True:
        msg = await self.ws.receive()
        if msg["type"] == "websocket.disconnect":
          return
        if msg.get("text") is not None:
          await self.handle_text(msg["text"])
        elif msg.get("bytes") is not None:
          await self.handle_bytes(msg["bytes"])
    except WebSocketDisconnect:
      return

  async def _send_loop(self) -> None:
    while True:
      await self.wake.wait()
      while self.credits > 0:
        self.credits -= 1
        await self.ws.send_bytes(self.render_block())
        await asyncio.sleep(0)  # let other sessions and this socket's reader run
      self.wake.clear()

  async def run(self) -> None:
    """Serve until the page goes away; errors end this session only."""
    await self.ws.accept()
    await self.send_json({"type": "ready", "models": self.app.labels,
                          "source": self.app.source_name, "nearest": self.nearest})
    tasks = [asyncio.create_task(self._send_loop()), asyncio.create_task(self._receive())]
    try:
      done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
      for t in done:
        e = t.exception()
        if e is not None and not _is_disconnect(e):
          print(f"listen: a session ended on {type(e).__name__}: {e}", file=sys.stderr)
    finally:
      for t in tasks:
        t.cancel()
      for t in tasks:
        try:
          await t
        except (asyncio.CancelledError, Exception):  # a send after the close is expected
          pass


def _is_disconnect(e: BaseException) -> bool:
  """The page went away (closed, reloaded, lost its network) while sending."""
  return isinstance(e, (WebSocketDisconnect, ConnectionError)) or \
      type(e).__name__ in ("ClientDisconnected", "LocalProtocolError")
