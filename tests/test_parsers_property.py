"""Property tests (hypothesis) of the parsers that take user input: ``--pose``,
``--trajectory`` files, JSON files and ``--config.*`` overrides. Whatever the
input, a parser returns a valid value or raises its one user-error class
(``DataError`` / ``ConfigError``) naming the culprit; and valid inputs come
back exactly."""

from __future__ import annotations

import json
import math
import pathlib
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from audiogs_jax import config as config_lib
from audiogs_jax.data.scene import DataError, RIGID_TOL, read_json
from audiogs_jax.poses import load_trajectory, parse_pose

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
any_float = st.floats(allow_nan=True, allow_infinity=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> pathlib.Path:
  return tmp_path_factory.mktemp("prop")


def _file(folder: pathlib.Path, text, suffix=".json") -> pathlib.Path:
  p = folder / f"{uuid.uuid4().hex}{suffix}"
  if isinstance(text, bytes):
    p.write_bytes(text)
  else:
    p.write_text(text)
  return p


@st.composite
def rigid(draw) -> np.ndarray:
  """A rigid 4x4: rotation from a random unit quaternion, a finite translation."""
  q = np.array([draw(st.floats(-1, 1)) for _ in range(4)])
  if np.linalg.norm(q) < 1e-3:
    q = np.array([1.0, 0, 0, 0])
  w, x, y, z = q / np.linalg.norm(q)
  r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
  m = np.eye(4)
  m[:3, :3] = r
  m[:3, 3] = [draw(finite) for _ in range(3)]
  return m


def _assert_rigid(m: np.ndarray) -> None:
  assert m.shape == (4, 4) and np.all(np.isfinite(m))
  np.testing.assert_allclose(m[3], [0, 0, 0, 1], atol=RIGID_TOL)
  np.testing.assert_allclose(m[:3, :3].T @ m[:3, :3], np.eye(3), atol=RIGID_TOL)
  assert abs(np.linalg.det(m[:3, :3]) - 1) <= RIGID_TOL


# ----------------------------------------------------------------------------- --pose

@SETTINGS
@given(st.lists(any_float, min_size=16, max_size=16), st.sampled_from([" ", ",", ", "]))
def test_pose_of_any_16_numbers_is_rigid_or_refused(nums, sep):
  try:
    m = parse_pose(sep.join(repr(v) for v in nums))
  except DataError as e:
    assert str(e).startswith("--pose: ")
    return
  _assert_rigid(m)
  np.testing.assert_array_equal(m.ravel(), nums)   # accepted as written, no NaN through


@SETTINGS
@given(rigid(), st.sampled_from([" ", ","]))
def test_rigid_pose_round_trips(m, sep):
  np.testing.assert_array_equal(parse_pose(sep.join(repr(float(v)) for v in m.ravel())), m)


@SETTINGS
@given(st.text(max_size=60))
def test_pose_of_any_text_is_a_pose_or_a_data_error(text):
  try:
    m = parse_pose(text)
  except DataError:
    return
  _assert_rigid(m)


# ----------------------------------------------------------------------------- trajectories

json_leaf = st.one_of(st.none(), st.booleans(), any_float, st.integers(-10, 10), st.text(max_size=5))
json_value = st.recursive(json_leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=5), st.dictionaries(st.sampled_from(["poses", "time", "pose",
                                                                  "camera_path", "file_path",
                                                                  "camera_to_world", "x"]),
                                                kids, max_size=4)), max_leaves=40)


@SETTINGS
@given(json_value)
def test_trajectory_of_any_json_is_valid_or_a_data_error(folder, value):
  path = _file(folder, json.dumps(value))
  try:
    times, poses = load_trajectory(path)
  except DataError as e:
    assert str(e).startswith(f"{path}: ")
    return
  assert np.all(np.isfinite(times)) and np.all(np.diff(times) > 0)
  for m in poses:
    _assert_rigid(m)


@SETTINGS
@given(st.lists(st.tuples(finite, rigid()), min_size=1, max_size=6))
def test_keyframes_are_kept_in_order_or_refused(folder, keys):
  """Any keyframe list: accepted exactly when its times strictly increase,
  then returned as written."""
  path = _file(folder, json.dumps({"poses": [{"time": t, "pose": m.tolist()}
                                             for t, m in keys]}))
  times = [t for t, _ in keys]
  increasing = all(b > a for a, b in zip(times, times[1:]))
  try:
    got_t, got_p = load_trajectory(path)
  except DataError as e:
    assert not increasing and ("same time" in str(e) or "must increase" in str(e))
    return
  assert increasing
  np.testing.assert_array_equal(got_t, times)
  np.testing.assert_array_equal(got_p, np.stack([m for _, m in keys]))


# ----------------------------------------------------------------------------- JSON files

@SETTINGS
@given(st.binary(max_size=80))
def test_json_of_any_bytes_is_a_value_or_a_data_error(folder, data):
  path = _file(folder, data)
  try:
    value = read_json(path)
  except DataError as e:
    assert str(e).startswith(f"{path}: ")
    return
  assert json.loads(data.decode("utf-8")) == value or value != value  # NaN compares unequal


@SETTINGS
@given(json_value)
def test_json_round_trips(folder, value):
  got = read_json(_file(folder, json.dumps(value)))
  assert json.dumps(got) == json.dumps(value)


# ----------------------------------------------------------------------------- --config.*

@SETTINGS
@given(st.text(max_size=20), st.sampled_from(["train.steps", "train.clip_norm",
                                              "data.normalize", "data.kind",
                                              "data.synth.room"]))
def test_override_of_any_text_is_typed_or_a_config_error(text, field):
  cfg = config_lib.load_config_file(config_lib.CONFIG_DIR / "smoke.py")
  before = config_lib.get_dotted(cfg, field)
  try:
    config_lib.apply_overrides(cfg, {field: text})
  except config_lib.ConfigError as e:
    assert f"--config.{field}" in str(e)
    assert config_lib.get_dotted(cfg, field) == before
    return
  after = config_lib.get_dotted(cfg, field)
  assert type(after) is type(before)
  if isinstance(after, float):
    assert math.isfinite(after) or "inf" in text.lower() or "nan" in text.lower()
