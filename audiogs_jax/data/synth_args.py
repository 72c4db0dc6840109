"""The command-line options of ``python -m audiogs_jax.data.synth``.

Kept apart from the generator so that the option list (one per
:func:`~audiogs_jax.data.synth.generate_scene` argument) reads in one place;
usage errors are one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse

__all__ = ["parser"]


def _floats(n: int):
  def parse(s: str):
    try:
      vals = [float(v) for v in s.replace(" ", "").split(",")]
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {s!r}")
    if len(vals) != n:
      raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got {s!r}")
    return tuple(vals)
  return parse


class _Parser(argparse.ArgumentParser):
  """Usage errors as one line on stderr, exit status 2 (no usage dump)."""

  def error(self, message: str):
    self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
  """Shows defaults, except None/False ones (the help text says what happens)."""

  def _get_help_string(self, action):
    if action.default is None or action.default is False:
      return action.help
    return super()._get_help_string(action)


def parser() -> argparse.ArgumentParser:
  """The parser of ``python -m audiogs_jax.data.synth`` (the options of
  :func:`~audiogs_jax.data.synth.generate_scene`)."""
  p = _Parser(
      prog="python -m audiogs_jax.data.synth",
      description="Simulate a binaural scene (shoebox room, image sources heard through "
                  "the MIT KEMAR HRIRs, or another SOFA head) and write it in the RWAVS layout: OUT/<scene>/binaural_syn_re.wav, "
                  "source_syn_re.wav, transforms_scale_{train,val}.json, "
                  "transforms_{train,val}.json, scene_meta.json and OUT/position.json.",
      formatter_class=_HelpFormatter)
  p.add_argument("--out", required=True, help="release root to write into")
  p.add_argument("--scene", default="1", help="scene id (folder name)")
  p.add_argument("--seconds", type=int, default=60,
                 help="number of 1-second frames (audio is seconds + 0.5 s)")
  p.add_argument("--room", type=_floats(3), default="6,5,3",
                 help="room size in metres: X,Y,Z (Z up)")
  p.add_argument("--rt60", type=float, default=0.5,
                 help="target reverberation time in seconds (walls via inverse Sabine)")
  p.add_argument("--materials", default=None,
                 help="pyroomacoustics material name for all walls (e.g. 'brickwork', "
                      "'curtains_cotton_0.5'); overrides --rt60")
  p.add_argument("--source", type=_floats(3), default=None,
                 help="source position in metres X,Y,Z (omitted: random, >= 1 m from "
                      "the walls, for the seed)")
  p.add_argument("--signal", default="speech",
                 help="source signal: speech | music | noise | path/to/file.wav")
  p.add_argument("--trajectory", default="random_walk",
                 choices=["random_walk", "circle", "grid"], help="listener path")
  p.add_argument("--yaw", default="follow", choices=["follow", "random", "fixed"],
                 help="head yaw: direction of motion, random, or fixed (+x)")
  p.add_argument("--pitch-deg", type=float, default=0.0,
                 help="maximum random head pitch in degrees (0: level)")
  p.add_argument("--ears", default="kemar", choices=["kemar", "cardioid"],
                 help="kemar: the packaged MIT KEMAR HRIRs (Gardner & Martin 1994); "
                      "cardioid: two ear points --head-radius apart with a spherical-head "
                      "shadow filter")
  p.add_argument("--hrtf", default=None, metavar="FILE.sofa",
                 help="hear the room through this SimpleFreeFieldHRIR SOFA file "
                      "instead (overrides --ears)")
  p.add_argument("--head-radius", type=float, default=0.0875,
                 help="metres (cardioid ears; recorded in the scene metadata)")
  p.add_argument("--sample-rate", type=int, default=22050, help="Hz")
  p.add_argument("--seed", type=int, default=0, help="random seed (output is deterministic)")
  p.add_argument("--ray-tracing", action="store_true",
                 help="low-order image sources plus a ray-traced late tail")
  p.add_argument("--max-order", type=int, default=None,
                 help="image-source order (omitted: enough to fill the IR; 3 with "
                      "--ray-tracing)")
  p.add_argument("--val-fraction", type=float, default=0.2,
                 help="fraction of frames in the val split")
  p.add_argument("--ir-seconds", type=float, default=None,
                 help="impulse response length in seconds (omitted: RT60 + 50 ms, "
                      "capped at 2 s and, without ray tracing, at ~1e6 image sources)")
  p.add_argument("--quiet", action="store_true", help="no progress bar")
  return p


