"""Benchmark room `living` (configs/bench_rooms.py): the default model on its scene.

    python -m audiogs_jax.train --config configs/bench_room_living.py --workdir runs/bench_room_living
"""

import pathlib
import runpy


def get_config():
  rooms = runpy.run_path(str(pathlib.Path(__file__).with_name("bench_rooms.py")))
  return rooms["room_config"]("living")
