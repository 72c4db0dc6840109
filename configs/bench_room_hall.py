"""Benchmark room `hall` (configs/bench_rooms.py): the default model on its scene.

    python -m audiogs_jax.train --config configs/bench_room_hall.py --workdir runs/bench_room_hall
"""

import pathlib
import runpy


def get_config():
  rooms = runpy.run_path(str(pathlib.Path(__file__).with_name("bench_rooms.py")))
  return rooms["room_config"]("hall")
