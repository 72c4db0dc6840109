"""The command line of ``python -m audiogs_jax.listen``, checked without JAX."""

from __future__ import annotations

import argparse
import pathlib
import socket
import sys

from audiogs_jax import cli

__all__ = ["prepare", "announce", "check_workdir", "bind"]


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
  p.add_argument("--gain-mode", default="param_mean", choices=("param_mean", "gain_mean"),
                 help="how the per-frame model gives one gain per bin (audiogs_jax.stream): "
                      "param_mean (default) averages each bin's Gaussians over the frames, "
                      "gain_mean their gains at the pose")
  p.add_argument("--frame-stride", type=int, default=4,
                 help="gain_mean: average the gains of every n-th clip frame (4; 1: all)")
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


def bind(host: str, port: int) -> socket.socket:
  family = socket.AF_INET6 if ":" in host else socket.AF_INET
  sock = socket.socket(family, socket.SOCK_STREAM)
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  sock.bind((host, port))
  sock.listen(64)
  sock.setblocking(False)
  return sock


def prepare(argv=None):
  """``(args, sock)``: the parsed arguments and the bound listening socket; a bad
  argument prints one ``error:`` line and exits with status 2 (before JAX loads)."""
  args = _parser().parse_args(argv)
  if len(args.workdir) > 2:
    cli.fail("--workdir: give one or two workdirs")
  for w in args.workdir:
    problem = check_workdir(w)
    if problem:
      cli.fail(problem)
  if not 0 <= args.port <= 65535:
    cli.fail(f"--port {args.port}: not a TCP port (0-65535)")
  try:
    sock = bind(args.host, args.port)
  except OSError as e:
    cli.fail(f"--host {args.host} --port {args.port}: cannot listen there ({e.strerror})")
  return args, sock



def announce(args, sock) -> None:
  """Print the page's URL (and a note when it is reachable from other machines)."""
  host, port = sock.getsockname()[:2]
  shown = f"[{host}]" if ":" in host else host
  print(f"listening page: http://{shown}:{port}/  (Ctrl-C to stop)", flush=True)
  if host not in ("127.0.0.1", "::1", "localhost"):
    print(f"note: --host {args.host}: the page and its audio are reachable from other "
          f"machines on the network", file=sys.stderr, flush=True)
