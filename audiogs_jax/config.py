"""Config files with command-line overrides.

A config is a Python file defining ``get_config()`` that returns an
``ml_collections.ConfigDict``. Any field can be overridden on the command line::

    python -m audiogs_jax.train --config configs/rwavs.py --config.train.steps=2000

Overrides are parsed as Python literals (numbers, booleans, tuples, lists) and
cast to the existing field's type; a string that is not a literal stays a
string. An override that names no field is an error that lists the fields that
do exist. The resolved config is saved as JSON in the workdir so that evaluate
and render need only the workdir.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import pathlib
import sys
from typing import Sequence

import ml_collections

__all__ = ["ConfigError", "load_config_file", "apply_overrides", "parse_config_args",
           "save_config", "load_saved_config", "default_config_path", "CONFIG_DIR"]

#: ``configs/`` of a source checkout (the repository root beside the package).
CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"


class ConfigError(ValueError):
  """A config file or override that cannot be used; the message says why."""


def default_config_path() -> pathlib.Path:
  """``configs/default.py`` of the working directory, else of the checkout."""
  local = pathlib.Path("configs/default.py")
  return local if local.exists() else CONFIG_DIR / "default.py"


def resolve_config_path(path: str) -> pathlib.Path:
  p = pathlib.Path(path)
  if p.exists():
    return p
  # "smoke" or "configs/smoke.py" from anywhere: fall back to the checkout's configs/.
  name = p.name if p.suffix == ".py" else p.name + ".py"
  if (CONFIG_DIR / name).exists():
    return CONFIG_DIR / name
  raise ConfigError(f"config file {path!r} not found (looked in the working directory "
                    f"and {CONFIG_DIR})")


def load_config_file(path) -> ml_collections.ConfigDict:
  """Run a config file's ``get_config()``."""
  path = resolve_config_path(str(path))
  spec = importlib.util.spec_from_file_location(f"_audiogs_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # a broken config file: say which one
    raise ConfigError(f"{path}: could not be executed: {type(e).__name__}: {e}") from e
  if not hasattr(module, "get_config"):
    raise ConfigError(f"{path}: defines no get_config()")
  try:
    cfg = module.get_config()
  except Exception as e:  # get_config() itself fails: say which file
    raise ConfigError(f"{path}: get_config() failed: {type(e).__name__}: {e}") from e
  if not isinstance(cfg, ml_collections.ConfigDict):
    raise ConfigError(f"{path}: get_config() must return an ml_collections.ConfigDict")
  return cfg


def _parse_value(text: str, current):
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text
  if current is None:
    return value
  if isinstance(current, bool):
    if isinstance(value, bool):
      return value
    if str(text).lower() in ("true", "1", "yes"):
      return True
    if str(text).lower() in ("false", "0", "no"):
      return False
    raise ConfigError(f"expected a boolean, got {text!r}")
  if isinstance(current, float) and isinstance(value, (int, float)):
    return float(value)
  if isinstance(current, int) and isinstance(value, int):
    return int(value)
  if isinstance(current, str):
    return str(text) if not isinstance(value, str) else value
  if isinstance(current, (tuple, list)):
    if isinstance(value, (int, float, str)):
      value = (value,)
    return type(current)(value)
  return value


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: dict) -> ml_collections.ConfigDict:
  """Apply ``{"train.steps": "2000", ...}`` to ``cfg`` in place; returns it."""
  for dotted, text in overrides.items():
    node = cfg
    parts = dotted.split(".")
    for i, key in enumerate(parts):
      path = "config." + ".".join(parts[:i + 1])
      if not isinstance(node, ml_collections.ConfigDict) or key not in node:
        parent = "config" + ("." + ".".join(parts[:i]) if i else "")
        fields = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
        raise ConfigError(f"--{path}: no such field {key!r} in {parent}"
                          + (f" (fields: {', '.join(fields)})" if fields else ""))
      if i == len(parts) - 1:
        current = node[key]
        if isinstance(current, ml_collections.ConfigDict):
          raise ConfigError(f"--{path} is a group of fields, not a value")
        try:
          new = _parse_value(text, current)
        except ConfigError as e:
          raise ConfigError(f"--{path}: {e}") from None
        with node.unlocked():
          node[key] = new
      else:
        node = node[key]
  return cfg


def parse_config_args(argv: Sequence[str]) -> tuple[dict, list]:
  """Split ``--config.a.b=v`` / ``--config.a.b v`` overrides from other args."""
  overrides, rest = {}, []
  argv = list(argv)
  i = 0
  while i < len(argv):
    a = argv[i]
    if a.startswith("--config."):
      key = a[len("--config."):]
      if "=" in key:
        key, val = key.split("=", 1)
      else:
        if i + 1 >= len(argv):
          raise ConfigError(f"{a} needs a value")
        val = argv[i + 1]
        i += 1
      overrides[key] = val
    else:
      rest.append(a)
    i += 1
  return overrides, rest


def save_config(cfg: ml_collections.ConfigDict, path) -> None:
  path = pathlib.Path(path)
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(cfg.to_json_best_effort(indent=2, sort_keys=True))
  tmp.replace(path)


def load_saved_config(path) -> ml_collections.ConfigDict:
  path = pathlib.Path(path)
  if not path.exists():
    raise ConfigError(f"{path}: no saved config (is this a training workdir?)")
  try:
    data = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ConfigError(f"{path}: malformed JSON at line {e.lineno}: {e.msg}") from None
  return ml_collections.ConfigDict(_tuplify(data))


def _tuplify(x):
  if isinstance(x, dict):
    return {k: _tuplify(v) for k, v in x.items()}
  if isinstance(x, list):
    return tuple(_tuplify(v) for v in x)
  return x


def error_exit(msg: str) -> "NoReturn":  # noqa: F821
  print(f"error: {msg}", file=sys.stderr)
  raise SystemExit(2)
