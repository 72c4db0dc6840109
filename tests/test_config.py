"""Config files, command-line overrides and the saved config."""

from __future__ import annotations

import json

import ml_collections
import pytest

from audiogs_jax import config as config_lib


@pytest.fixture
def cfg():
  return config_lib.load_config_file("configs/smoke.py")


def test_smoke_config_is_the_default_with_smaller_fields(cfg):
  default = config_lib.load_config_file(config_lib.default_config_path())
  assert cfg.name == "smoke" and default.name == "default"
  assert cfg.train.steps < default.train.steps
  assert cfg.data.synth.seconds < default.data.synth.seconds
  # Same fields: the smoke config only changes values.
  flat = lambda c: set(c.to_dict()) | {f"{k}.{k2}" for k, v in c.items()
                                        if isinstance(v, ml_collections.ConfigDict)
                                        for k2 in v}
  assert flat(cfg) == flat(default)


def test_config_by_name_from_anywhere(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert config_lib.load_config_file("smoke").name == "smoke"
  assert config_lib.load_config_file("configs/smoke.py").name == "smoke"
  assert config_lib.default_config_path() == config_lib.CONFIG_DIR / "default.py"


@pytest.mark.parametrize("field,text,expected", [
    ("train.steps", "7", 7),
    ("train.steps", "1_000", 1000),
    ("seed", "-3", -3),
    ("train.clip_norm", "3", 3.0),            # an int given for a float field
    ("train.lr.xyz", "1e-4", 1e-4),
    ("data.normalize", "False", False),
    ("data.normalize", "false", False),
    ("data.normalize", "0", False),
    ("model.fast_math", "yes", True),
    ("model.fast_math", "True", True),
    ("data.synth.room", "(4, 3.5, 2.5)", (4, 3.5, 2.5)),
    ("data.synth.room", "[7, 6, 5]", (7, 6, 5)),
    ("data.scene", "office_4", "office_4"),  # not a Python literal: stays a string
    ("data.scene", "3", "3"),                # a literal, but the field is a string
    ("data.root", "/tmp/some dir/x", "/tmp/some dir/x"),
    ("data.clip", "'preceding'", "preceding"),
])
def test_override_casts_to_the_field_type(cfg, field, text, expected):
  config_lib.apply_overrides(cfg, {field: text})
  node = cfg
  for k in field.split("."):
    node = node[k]
  assert node == expected
  assert type(node) is type(expected)


def test_parse_config_args_both_forms():
  over, rest = config_lib.parse_config_args(
      ["--workdir", "w", "--config.train.steps=5", "--config.data.scene", "2",
       "--config", "configs/smoke.py", "--config.data.root=a=b"])
  assert over == {"train.steps": "5", "data.scene": "2", "data.root": "a=b"}
  assert rest == ["--workdir", "w", "--config", "configs/smoke.py"]
  with pytest.raises(config_lib.ConfigError, match="--config.train.steps needs a value"):
    config_lib.parse_config_args(["--config.train.steps"])


def test_unknown_field_lists_existing_fields(cfg):
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.apply_overrides(cfg, {"train.stepz": "3"})
  msg = str(e.value)
  assert "--config.train.stepz" in msg and "'stepz'" in msg
  for f in ("steps", "batch_size", "checkpoint_every", "lr"):
    assert f in msg
  with pytest.raises(config_lib.ConfigError, match=r"'modle'.*fields: .*model"):
    config_lib.apply_overrides(cfg, {"modle.sh_degree": "1"})
  # Going below a leaf names the leaf's parent.
  with pytest.raises(config_lib.ConfigError, match="config.train.steps"):
    config_lib.apply_overrides(cfg, {"train.steps.x": "1"})


def test_group_and_bad_bool_are_errors(cfg):
  with pytest.raises(config_lib.ConfigError, match="--config.train.lr is a group"):
    config_lib.apply_overrides(cfg, {"train.lr": "1"})
  with pytest.raises(config_lib.ConfigError, match="--config.data.normalize.*'maybe'"):
    config_lib.apply_overrides(cfg, {"data.normalize": "maybe"})


def test_saved_config_round_trips(cfg, tmp_path):
  config_lib.apply_overrides(cfg, {"train.steps": "9", "data.synth.room": "(1, 2, 3)",
                                   "data.root": "/x/y", "train.lr.sh": "0.5"})
  path = tmp_path / "config.json"
  config_lib.save_config(cfg, path)
  assert not (tmp_path / "config.json.tmp").exists()
  json.loads(path.read_text())
  back = config_lib.load_saved_config(path)
  assert back.to_dict() == cfg.to_dict()
  assert isinstance(back.data.synth.room, tuple) and back.data.synth.room == (1, 2, 3)
  assert isinstance(back.train.lr, ml_collections.ConfigDict)
  # A loaded config takes overrides like a fresh one (types are kept).
  config_lib.apply_overrides(back, {"train.steps": "11", "data.normalize": "no"})
  assert back.train.steps == 11 and back.data.normalize is False


def test_saved_config_errors(tmp_path):
  with pytest.raises(config_lib.ConfigError, match="no saved config"):
    config_lib.load_saved_config(tmp_path / "config.json")
  bad = tmp_path / "bad.json"
  bad.write_text('{"train": {"steps": 3,}}')
  with pytest.raises(config_lib.ConfigError, match=r"bad.json: malformed JSON at line 1"):
    config_lib.load_saved_config(bad)


def test_broken_config_file_names_the_file(tmp_path):
  f = tmp_path / "broken.py"
  f.write_text("def get_config():\n  return 1 / 0\n")
  with pytest.raises(config_lib.ConfigError, match=r"broken.py: get_config\(\) failed: "
                                                   r"ZeroDivisionError"):
    config_lib.load_config_file(f)
  h = tmp_path / "syntax.py"
  h.write_text("def get_config(:\n")
  with pytest.raises(config_lib.ConfigError, match=r"syntax.py: could not be executed: "
                                                   r"SyntaxError"):
    config_lib.load_config_file(h)
  g = tmp_path / "noget.py"
  g.write_text("x = 1\n")
  with pytest.raises(config_lib.ConfigError, match="noget.py: defines no get_config"):
    config_lib.load_config_file(g)
  with pytest.raises(config_lib.ConfigError, match="not found"):
    config_lib.load_config_file(tmp_path / "missing.py")
