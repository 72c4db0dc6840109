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
from typing import NoReturn, Sequence

import ml_collections

__all__ = ["ConfigError", "load_config_file", "apply_overrides", "parse_config_args",
           "save_config", "load_saved_config", "default_config_path", "check_config", "migrate",
           "CONFIG_DIR", "CONFIG_FORMAT", "DATA_KINDS"]

#: Version of the saved ``config.json`` layout (its ``_format`` field); a file
#: written by a newer version of the code is refused rather than misread, an
#: older one is converted (``migrate``).
CONFIG_FORMAT = 4
#: The readers ``config.data.kind`` may name (``audiogs_jax.dataset.load_split``).
DATA_KINDS = ("synthetic", "rwavs", "replay_nvas")
#: Fields that shape the learning-rate schedule of the whole run.
SCHEDULE_FIELDS = ("train.steps", "train.warmup_steps", "train.schedule",
                   "train.final_lr_factor", "train.lr")

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
  if isinstance(current, float):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      return float(value)
    raise ConfigError(f"expected a number, got {text!r}")
  if isinstance(current, int):
    if isinstance(value, int) and not isinstance(value, bool):
      return int(value)
    raise ConfigError(f"expected an integer, got {text!r}")
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
        try:
          with node.unlocked():
            node[key] = new
        except (TypeError, ValueError) as e:  # ml_collections' own type check
          raise ConfigError(f"--{path}: cannot take {text!r} "
                            f"(the field is a {type(current).__name__})") from e
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


def check_config(cfg: ml_collections.ConfigDict) -> None:
  """ConfigError for values no reader or model accepts (checked before any
  work): an unknown ``data.kind`` or ``train.schedule``, a non-positive
  ``train.steps`` / ``train.batch_size``. (``model.name`` is checked against
  the model registry by ``train``.)"""
  kind = cfg.data.get("kind")
  if kind not in DATA_KINDS:
    raise ConfigError(f"--config.data.kind={kind!r} is not a known data reader "
                      f"(known: {', '.join(DATA_KINDS)})")
  schedule = cfg.train.get("schedule", "cosine")
  if schedule not in ("cosine", "exponential", "constant"):
    raise ConfigError(f"--config.train.schedule={schedule!r}: use cosine, exponential "
                      f"or constant")
  for field in ("steps", "batch_size"):
    v = cfg.train.get(field)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
      raise ConfigError(f"--config.train.{field}={v!r}: must be a positive integer")


def get_dotted(cfg, dotted: str):
  """``cfg.a.b`` for ``"a.b"``; None when a part is missing."""
  node = cfg
  for part in dotted.split("."):
    if not hasattr(node, "get") or part not in node:
      return None
    node = node[part]
  return node.to_dict() if isinstance(node, ml_collections.ConfigDict) else node


def save_config(cfg: ml_collections.ConfigDict, path) -> None:
  path = pathlib.Path(path)
  tmp = path.with_suffix(path.suffix + ".tmp")
  data = json.loads(cfg.to_json_best_effort(sort_keys=True))
  data["_format"] = CONFIG_FORMAT
  tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
  tmp.replace(path)


def load_saved_config(path) -> ml_collections.ConfigDict:
  path = pathlib.Path(path)
  if not path.exists():
    raise ConfigError(f"{path}: no saved config (is this a training workdir?)")
  try:
    data = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ConfigError(f"{path}: malformed JSON at line {e.lineno}: {e.msg}") from None
  except (OSError, UnicodeDecodeError) as e:
    raise ConfigError(f"{path}: cannot be read ({e})") from None
  if not isinstance(data, dict):
    raise ConfigError(f"{path}: expected a JSON object, found {type(data).__name__}")
  fmt = data.pop("_format", 1)
  if not isinstance(fmt, int) or fmt > CONFIG_FORMAT:
    raise ConfigError(f"{path}: written in config format {fmt!r} by a newer audiogs_jax; "
                      f"this version reads format {CONFIG_FORMAT} (upgrade the package)")
  for group in ("data", "model", "train"):
    if not isinstance(data.get(group), dict):
      raise ConfigError(f"{path}: not a training config (no {group!r} section)")
  return ml_collections.ConfigDict(_tuplify(migrate(data, fmt)))


#: Format 1 kept every model's fields in ``model`` and AudioGS's loss weights in
#: ``loss``; format 2 gives each model its own sub-config ``model.<name>``.
_V1_SHARED = ("name", "n_fft", "hop_length")
_V1_AUDIO3DGS = ("unet_width", "unet_levels", "max_norm", "compute_dtype", "init_spread")
_V1_LOSS = ("mag_weight", "log_mag_weight", "phase_weight", "frame_tie_weight")


def migrate(data: dict, fmt: int) -> dict:
  """A saved config (JSON object) of format ``fmt`` in the current layout.

  Format 1 -> 2: ``model.<field>`` moves to ``model.audiogs.<field>`` (and, for
  Audio 3DGS's fields, to ``model.audio3dgs_unet.<field>``), ``loss.<weight>`` to
  ``model.audiogs.<weight>``; the unused ``loss.env_weight`` and
  ``eval.checkpoint`` are dropped. Values are kept as they were.
  Format 2 -> 3: AudioGS gains the reverberant tail's fields with
  ``tail_frames = 0`` (what a config without them trained: no tail) and
  ``train.lr.tail``.
  Format 3 -> 4: AudioGS gains the closed-form start with ``init_fit = 0`` (what
  a config without it trained from: the constant start) and ``train`` gains
  ``eval_at_start = False``.
  """
  if fmt < 2:
    data = _migrate_1_to_2(data)
  if fmt < 3:
    data = _migrate_2_to_3(data)
  if fmt < 4:
    data = _migrate_3_to_4(data)
  return data


def _migrate_3_to_4(data: dict) -> dict:
  data = dict(data)
  model = dict(data["model"])
  if isinstance(model.get("audiogs"), dict):
    model["audiogs"] = {"init_fit": 0, "init_fit_ridge": 0.01, **model["audiogs"]}
  data["model"] = model
  data["train"] = {"eval_at_start": False, **data["train"]}
  return data


def _migrate_2_to_3(data: dict) -> dict:
  data = dict(data)
  model = dict(data["model"])
  if isinstance(model.get("audiogs"), dict):
    model["audiogs"] = {**_V2_TAIL, **model["audiogs"]}
  data["model"] = model
  train = dict(data["train"])
  if isinstance(train.get("lr"), dict):
    train["lr"] = {**train["lr"], "tail": train["lr"].get("tail", 1e-2)}
  data["train"] = train
  return data


#: The tail's fields as a format-2 config means them: no tail.
_V2_TAIL = {"tail_frames": 0, "tail_mode": "power", "tail_coherence": True,
            "tail_init_rt60": 0.5, "tail_init_level": 0.02}


def _migrate_1_to_2(data: dict) -> dict:
  data = dict(data)
  old = dict(data["model"])
  model = {k: old.pop(k) for k in _V1_SHARED if k in old}
  model["audio3dgs_unet"] = {k: old[k] for k in _V1_AUDIO3DGS if k in old}
  for k in ("unet_width", "unet_levels", "max_norm", "compute_dtype"):
    old.pop(k, None)
  loss = dict(data.pop("loss", {}))
  # Fields added within format 1 mean, when absent, what they meant before them.
  model["audiogs"] = {"itd_model": "straight", "init_position": "listeners",
                      "frame_tie_weight": 0.0, **old,
                      **{k: loss[k] for k in _V1_LOSS if k in loss}}
  data["model"] = model
  if isinstance(data.get("eval"), dict):
    data["eval"] = {k: v for k, v in data["eval"].items() if k != "checkpoint"}
  return data


def _tuplify(x):
  if isinstance(x, dict):
    return {k: _tuplify(v) for k, v in x.items()}
  if isinstance(x, list):
    return tuple(_tuplify(v) for v in x)
  return x


def error_exit(msg: str) -> NoReturn:
  """``error: msg`` as one line on stderr, exit status 2."""
  print(f"error: {' '.join(str(msg).split())}", file=sys.stderr)
  raise SystemExit(2)
