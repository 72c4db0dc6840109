"""``python -m audiogs_jax.listen --workdir DIR``: walk through a learned sound field by ear.

Starts a local web server (``127.0.0.1`` unless ``--host`` is given) and prints
the URL of the listening page. The page draws the scene from above (the room
outline when known, the training poses, the Gaussians coloured by energy, the
source when its position is known); drag the listener, turn the head with the
mouse wheel or the arrow keys, and hear what the model renders there: the
server renders block by block (``audiogs_jax.stream``) with the pose the page
sent last and streams the blocks over a WebSocket into an AudioWorklet. The
source is the scene's recording, or a WAV dropped on the page. A/B: the model
against the recorded clip of the nearest training pose, and model A against
model B when two workdirs are given.

The page (``listen_static/``: HTML, JS, CSS) ships in the package: no build
step, nothing fetched from elsewhere.
"""

from __future__ import annotations

import argparse
import pathlib
import socket
import sys

__all__ = ["main", "check_workdir"]


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="python -m audiogs_jax.listen",
      description="Serve a listening page: drag the listener through a trained workdir's "
                  "sound field and hear the model render it in real time.")
  p.add_argument("--workdir", action="append", required=True,
                 help="a training workdir (give two to switch A/B between their models)")
  p.add_argument("--host", default="127.0.0.1",
                 help="address to listen on (default 127.0.0.1: this machine only)")
  p.add_argument("--port", type=int, default=8765, help="TCP port (0: any free port)")
  p.add_argument("--checkpoint", default="latest", choices=("latest", "best"))
  p.add_argument("--scene", default=None,
                 help="the scene to serve, for a multi-scene workdir (required there)")
  p.add_argument("--block", type=int, default=256,
                 help="samples per streamed block, a multiple of the STFT hop (256)")
  p.add_argument("--gain-mode", default="gain_mean", choices=("gain_mean", "param_mean"),
                 help="how the per-frame model gives one gain per bin (audiogs_jax.stream)")
  p.add_argument("--frame-stride", type=int, default=4,
                 help="average the gains of every n-th clip frame (4; 1: all frames)")
  return p


def check_workdir(path: str) -> str:
  """``None`` when ``path`` looks like a trained workdir, else what is wrong
  (checked without importing JAX, so that a typo fails at once)."""
  d = pathlib.Path(path)
  if not d.is_dir():
    return f"--workdir {path}: no such directory"
  if not (d / "config.json").is_file():
    return f"--workdir {path}: no config.json (not a training workdir)"
  ckpt = d / "checkpoints"
  if not ckpt.is_dir() or not any(p.name.isdigit() for p in ckpt.iterdir()):
    return f"--workdir {path}: no checkpoint (train first: python -m audiogs_jax.train)"
  return None


def _bind(host: str, port: int) -> socket.socket:
  family = socket.AF_INET6 if ":" in host else socket.AF_INET
  sock = socket.socket(family, socket.SOCK_STREAM)
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  sock.bind((host, port))
  sock.listen(64)
  sock.setblocking(False)
  return sock


def main(argv=None) -> int:
  args = _parser().parse_args(argv)
  if len(args.workdir) > 2:
    print("error: --workdir: give one or two workdirs", file=sys.stderr)
    return 2
  for w in args.workdir:
    problem = check_workdir(w)
    if problem:
      print(f"error: {problem}", file=sys.stderr)
      return 2
  if not 0 <= args.port <= 65535:
    print(f"error: --port {args.port}: not a TCP port (0-65535)", file=sys.stderr)
    return 2
  try:
    sock = _bind(args.host, args.port)
  except OSError as e:
    print(f"error: --host {args.host} --port {args.port}: cannot listen there ({e.strerror})",
          file=sys.stderr)
    return 2

  from audiogs_jax import listen_app  # JAX and the models load here, after the checks
  try:
    app_state = listen_app.load(args.workdir, which=args.checkpoint, scene=args.scene,
                                block=args.block, gain_mode=args.gain_mode,
                                frame_stride=args.frame_stride)
  except listen_app.LoadError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  host, port = sock.getsockname()[:2]
  shown = f"[{host}]" if ":" in host else host
  print(f"listening page: http://{shown}:{port}/  (Ctrl-C to stop)", flush=True)
  if host not in ("127.0.0.1", "::1", "localhost"):
    print(f"note: --host {args.host}: the page and its audio are reachable from other "
          f"machines on the network", file=sys.stderr, flush=True)
  listen_app.serve(app_state, sock)
  return 0


if __name__ == "__main__":
  sys.exit(main())
