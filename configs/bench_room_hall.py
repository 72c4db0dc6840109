"""Benchmark room `hall` (see configs/bench_rooms.py): the default model on its scene.

    python -m audiogs_jax.train --config configs/bench_room_hall.py --workdir runs/bench_room_hall
"""

import importlib.util
import pathlib


def get_config():
  path = pathlib.Path(__file__).with_name("bench_rooms.py")
  spec = importlib.util.spec_from_file_location("_audiogs_bench_rooms", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.room_config("hall")
