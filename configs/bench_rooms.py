"""The three built-in benchmark rooms of ``python -m audiogs_jax.benchmark``.

Each room is a synthetic scene (``audiogs_jax.data.synth``) with fixed seeds, its
own source signal and its own listener trajectory:

==========  =================  ======  ========  ===========  ====
room        size (m)           RT60    signal    trajectory   seed
==========  =================  ======  ========  ===========  ====
dry         4.0 x 3.5 x 2.7    0.25 s  speech    random_walk  11
living      6.0 x 5.0 x 2.8    0.5 s   music     circle       22
hall        15.0 x 10.0 x 6.0  1.2 s   noise     grid         33
==========  =================  ======  ========  ===========  ====

``configs/bench_room_<name>.py`` is the config of one room (``get_config()``
here is the dry room); everything else (model, loss, optimiser) is
``configs/default.py``. Train one room from the shell with, e.g.::

    python -m audiogs_jax.train --config configs/bench_room_hall.py --workdir runs/hall
"""

import pathlib

import ml_collections

from audiogs_jax.config import load_config_file

#: name -> data.synth fields and a one-line description.
ROOMS = {
    "dry": dict(room=(4.0, 3.5, 2.7), rt60=0.25, signal="speech",
                trajectory="random_walk", seed=11,
                description="small dry room"),
    "living": dict(room=(6.0, 5.0, 2.8), rt60=0.5, signal="music",
                   trajectory="circle", seed=22,
                   description="living-room-like room"),
    "hall": dict(room=(15.0, 10.0, 6.0), rt60=1.2, signal="noise",
                 trajectory="grid", seed=33,
                 description="large reverberant hall"),
}

#: Scene length (frames = seconds; 80 % train / 20 % val clips of 1 s).
SECONDS = 240


def room_config(name: str) -> ml_collections.ConfigDict:
  """``configs/default.py`` with the synthetic scene of benchmark room ``name``."""
  if name not in ROOMS:
    raise ValueError(f"unknown benchmark room {name!r}; rooms: {', '.join(ROOMS)}")
  spec = ROOMS[name]
  c = load_config_file(pathlib.Path(__file__).with_name("default.py"))
  c.name = f"bench_room_{name}"
  c.workdir = f"runs/bench_room_{name}"
  c.data.kind = "synthetic"
  c.data.synth.seconds = SECONDS
  c.data.synth.room = tuple(float(v) for v in spec["room"])
  c.data.synth.rt60 = float(spec["rt60"])
  c.data.synth.signal = spec["signal"]
  c.data.synth.trajectory = spec["trajectory"]
  c.data.synth.seed = int(spec["seed"])
  c.eval.dpam = False
  return c


def get_config() -> ml_collections.ConfigDict:
  return room_config("dry")
