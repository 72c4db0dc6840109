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
    ("model.audiogs.fast_math", "yes", True),
    ("model.audiogs.fast_math", "True", True),
    ("model.audiogs.sh_degree", "3", 3),
    ("model.audio3dgs_unet.unet_width", "8", 8),
    ("model.n_fft", "256", 256),
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
  # Format 2: AudioGS's fields are under model.audiogs, not model.
  with pytest.raises(config_lib.ConfigError, match=r"'sh_degree'.*audiogs"):
    config_lib.apply_overrides(cfg, {"model.sh_degree": "1"})
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


# Format 1 (before each model had its own sub-config) -----------------------------

# AudioGS's model fields in format 1, flat under "model" (non-default values where
# it matters that the value, not the default, comes through).
_V1_AUDIOGS = {
    "sh_degree": 3, "dual_sh": False, "activation": "softplus", "use_attenuation": True,
    "use_sh_directionality": False, "use_phase_correction": True, "itd_model": "woodworth",
    "use_learned_phase": False, "content_mode": False, "init_position": "itd",
    "init_spread": 0.07, "init_gain": 0.5, "head_radius": 0.09, "speed_of_sound": 340.0,
    "r0": 1.5, "r_min": 0.2, "learn_scale": False, "metres_per_unit": 2.0,
    "fast_math": False,
}
_V1_UNET = {"unet_width": 8, "unet_levels": 2, "max_norm": 12.0, "compute_dtype": "bfloat16"}
_V1_LOSS = {"mag_weight": 0.5, "log_mag_weight": 0.25, "phase_weight": 0.3,
            "env_weight": 0.0, "frame_tie_weight": 2.0}


def _format1(cfg, *, drop=()):
  """A format-1 ``config.json`` object: ``cfg``'s data / train / mesh / eval
  sections (unchanged between the formats) with ``eval.checkpoint``, and the
  format-1 model and loss sections written out by hand."""
  data = json.loads(cfg.to_json_best_effort(sort_keys=True))
  model = {"name": "audiogs", "n_fft": 256, "hop_length": 64, **_V1_AUDIOGS, **_V1_UNET}
  loss = dict(_V1_LOSS)
  for k in drop:
    model.pop(k, None)
    loss.pop(k, None)
  data["model"], data["loss"] = model, loss
  data["eval"] = dict(data["eval"], checkpoint="latest")
  data["_format"] = 1
  return data


def test_format1_config_loads_into_format2_layout(cfg, tmp_path):
  path = tmp_path / "config.json"
  path.write_text(json.dumps(_format1(cfg), indent=2))
  back = config_lib.load_saved_config(path)
  # The format-2 layout: the current config's fields, no loss / eval.checkpoint.
  assert config_lib.CONFIG_FORMAT == 4
  assert "loss" not in back and "checkpoint" not in back.eval
  expected = config_lib.load_config_file("configs/smoke.py")
  expected.model.name, expected.model.n_fft, expected.model.hop_length = "audiogs", 256, 64
  expected.model.audiogs.update(_V1_AUDIOGS)
  expected.model.audiogs.update({k: v for k, v in _V1_LOSS.items() if k != "env_weight"})
  expected.model.audio3dgs_unet.update(_V1_UNET)
  expected.model.audio3dgs_unet.init_spread = _V1_AUDIOGS["init_spread"]
  expected.model.audiogs.tail_frames = 0          # trained before the tail existed
  expected.model.audiogs.tail_init_rt60 = 0.5     # the tail's start before the estimate
  expected.model.audiogs.init_fit = 0             # trained from the constant start
  assert back.to_dict() == expected.to_dict()
  # ... the same values, and the types of the fresh config (overrides still cast).
  assert back.model.audiogs.sh_degree == 3 and back.model.audiogs.phase_weight == 0.3
  assert back.model.audio3dgs_unet.compute_dtype == "bfloat16"
  config_lib.apply_overrides(back, {"model.audiogs.sh_degree": "1",
                                    "model.audiogs.frame_tie_weight": "1"})
  assert back.model.audiogs.sh_degree == 1 and back.model.audiogs.frame_tie_weight == 1.0
  # It renders with the values it was saved with.
  from audiogs_jax.models import audiogs
  rc = audiogs.render_config(back)
  assert (rc.n_fft, rc.hop_length, rc.activation, rc.itd_model, rc.metres_per_unit,
          rc.fast_math) == (256, 64, "softplus", "woodworth", 2.0, False)
  # Saved again, it is format 4 and loads unchanged.
  config_lib.save_config(back, tmp_path / "again.json")
  assert json.loads((tmp_path / "again.json").read_text())["_format"] == 4
  assert config_lib.load_saved_config(tmp_path / "again.json").to_dict() == back.to_dict()


def test_format1_config_without_later_fields_gets_their_old_meaning(cfg, tmp_path):
  """A format-1 file from before itd_model / init_position / frame_tie_weight: the
  ear-point ITD, the listeners' centroid and no frame tie, as it was trained."""
  path = tmp_path / "config.json"
  data = _format1(cfg, drop=("itd_model", "init_position", "frame_tie_weight"))
  assert "itd_model" not in data["model"] and "frame_tie_weight" not in data["loss"]
  path.write_text(json.dumps(data))
  back = config_lib.load_saved_config(path)
  a = back.model.audiogs
  assert a.itd_model == "straight" and a.init_position == "listeners"
  assert a.frame_tie_weight == 0.0 and isinstance(a.frame_tie_weight, float)
  assert a.sh_degree == 3 and a.phase_weight == 0.3              # the rest as saved
  del data["_format"]
  assert config_lib.migrate(data, 1)["model"]["audiogs"]["itd_model"] == "straight"


def _load_older(cfg, tmp_path, fmt: int, drop_model: tuple, drop_lr: tuple = ()):
  """``cfg`` saved as a format-``fmt`` file (without the AudioGS fields ``drop_model``,
  the learning rates ``drop_lr`` and everything format 4 added; ``sh_degree`` 1 as a
  saved value to keep) and loaded back."""
  data = json.loads(json.dumps(cfg.to_dict()))
  for k in drop_model + ("init_fit", "init_fit_ridge"):     # format 4's fields
    data["model"]["audiogs"].pop(k)
  for k in drop_lr:
    data["train"]["lr"].pop(k)
  data["train"].pop("eval_at_start")
  data["model"]["audiogs"]["sh_degree"] = 1
  data["_format"] = fmt
  path = tmp_path / "config.json"
  path.write_text(json.dumps(data))
  return config_lib.load_saved_config(path)


def test_format2_config_loads_without_a_tail(cfg, tmp_path):
  """A format-2 config (before the reverberant tail) loads with ``tail_frames = 0``,
  the tail's other defaults and its learning rate; its other values unchanged."""
  back = _load_older(cfg, tmp_path, 2, ("tail_frames", "tail_mode", "tail_coherence",
                                         "tail_init_rt60", "tail_init_level"),
                     drop_lr=("tail",))
  assert back.model.audiogs.tail_frames == 0 and back.model.audiogs.sh_degree == 1
  assert back.train.lr.tail == cfg.train.lr.tail
  expected = json.loads(json.dumps(cfg.to_dict()))
  expected["model"]["audiogs"].update(tail_frames=0, tail_init_rt60=0.5, sh_degree=1,
                                      init_fit=0)
  assert json.loads(json.dumps(back.to_dict())) == expected


def test_format3_config_loads_with_the_constant_start(cfg, tmp_path):
  """A format-3 config (before the closed-form start) loads with ``init_fit = 0``
  (it trained from the constant start) and no step-0 validation; the rest as
  saved, and it can be overridden like a fresh config."""
  back = _load_older(cfg, tmp_path, 3, ())
  assert cfg.model.audiogs.init_fit > 0
  assert back.model.audiogs.init_fit == 0 and back.train.eval_at_start is False
  assert back.model.audiogs.init_fit_ridge == cfg.model.audiogs.init_fit_ridge
  expected = json.loads(json.dumps(cfg.to_dict()))
  expected["model"]["audiogs"].update(init_fit=0, sh_degree=1)
  assert json.loads(json.dumps(back.to_dict())) == expected
  config_lib.apply_overrides(back, {"model.audiogs.init_fit": "3"})
  assert back.model.audiogs.init_fit == 3
