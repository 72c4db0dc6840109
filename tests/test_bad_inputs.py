"""The bad-input matrix: every malformed input to a command-line entry point
(train, evaluate, render, data.synth) ends with exit status 2 and ONE line on
stderr naming the culprit (file or option), no traceback, and leaves every
input and workdir exactly as it was (a failed train run removes the workdir it
created).

The entry points' ``main(argv)`` run in this process (one JAX import for the
whole matrix); the render / evaluate / resume cases share one tiny trained
workdir (``tiny_workdir`` of conftest: 2 steps of ``configs/smoke.py``). Each case builds
its inputs in its own folder, which is snapshotted (paths, modes, link
targets, file contents) before and after the call.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import time
from typing import Callable

import numpy as np
import pytest
import soundfile as sf

from audiogs_jax import evaluate, render as render_cli, train
from audiogs_jax.config import CONFIG_FORMAT
from audiogs_jax.data import synth
from audiogs_jax.data.trajectory import head_pose

REPO = pathlib.Path(__file__).resolve().parent.parent
SR_SCENE = 1000        # the small RWAVS scenes the data cases train on
SR_MODEL = 22050       # the smoke config's rate (render sources)
IDENTITY = "1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1"


# ----------------------------------------------------------------------------- fixtures

def snapshot(root: pathlib.Path) -> dict:
  """``{relative path: (kind, mode, content digest or link target)}``."""
  out = {}
  for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
    for name in dirnames + filenames:
      p = pathlib.Path(dirpath) / name
      st = os.lstat(p)
      rel = str(p.relative_to(root))
      if stat.S_ISLNK(st.st_mode):
        out[rel] = ("link", os.readlink(p))
      elif stat.S_ISDIR(st.st_mode):
        out[rel] = ("dir", stat.S_IMODE(st.st_mode))
      else:
        out[rel] = ("file", stat.S_IMODE(st.st_mode),
                    hashlib.sha1(p.read_bytes()).hexdigest())
  return out


def write_wav(path, x, sr, subtype="FLOAT"):
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  x = np.asarray(x)
  sf.write(str(path), x.T if x.ndim == 2 else x, sr, subtype=subtype)
  return path


def rwavs_scene(root: pathlib.Path, *, binaural=None, source=None, sr=SR_SCENE,
                bin_sr=None, src_sr=None, bin_subtype="FLOAT", src_subtype="FLOAT",
                poses=None) -> pathlib.Path:
  """A small valid RWAVS release under ``root/data`` (scene 1, 4 s), with
  any part replaced; returns the release root."""
  rel = root / "data"
  scene = rel / "1"
  n = 4 * sr
  t = np.arange(n) / sr
  rng = np.random.default_rng(0)
  if binaural is None:
    binaural = np.stack([np.sin(2 * np.pi * 50 * t), 0.5 * np.sin(2 * np.pi * 50 * t)])
  if source is None:
    source = rng.uniform(-0.5, 0.5, n)
  write_wav(scene / "binaural_syn_re.wav", binaural, bin_sr or sr, bin_subtype)
  write_wav(scene / "source_syn_re.wav", source, src_sr or sr, src_subtype)
  for split, frames in (("train", (1, 2, 3)), ("val", (4,))):
    cams = [{"file_path": f"frames/{k:05d}.png",
             "camera_to_world": head_pose([0.1 * k, 0, 0], 0.3 * k).reshape(-1).tolist()}
            for k in frames]
    if poses is not None and split == "train":
      cams[1]["camera_to_world"] = poses
    (scene / f"transforms_scale_{split}.json").write_text(json.dumps({"camera_path": cams}))
  return rel


@dataclasses.dataclass
class Ctx:
  """What a case builds its arguments from: its own folder ``root`` (the
  snapshotted one), the smoke settings and the tiny trained workdir."""
  root: pathlib.Path
  smoke: object
  tiny: pathlib.Path

  def train_rwavs(self, rel: pathlib.Path, *extra) -> list:
    return ["--config", self.smoke.config_path, "--workdir", str(self.root / "wd"),
            "--no-progress", "--no-eval", "--config.data.kind=rwavs",
            f"--config.data.root={rel}", "--config.data.scene=1",
            f"--config.data.sample_rate={SR_SCENE}", *extra]

  def train_smoke(self, *extra, workdir=None) -> list:
    return ["--config", self.smoke.config_path,
            "--workdir", str(workdir or self.root / "wd"), "--no-progress", "--no-eval",
            *self.smoke.overrides(), *extra]

  def copy_tiny(self, name="wd") -> pathlib.Path:
    return shutil.copytree(self.tiny, self.root / name)

  def edit_config(self, wd: pathlib.Path, fn) -> pathlib.Path:
    path = wd / "config.json"
    cfg = json.loads(path.read_text())
    fn(cfg)
    path.write_text(json.dumps(cfg))
    return wd

  def source(self, x=None, sr=SR_MODEL, subtype="FLOAT", name="src.wav") -> pathlib.Path:
    if x is None:
      x = 0.1 * np.sin(2 * np.pi * 440 * np.arange(sr // 2) / sr)
    return write_wav(self.root / name, x, sr, subtype)

  def render(self, *extra, source=None, workdir=None) -> list:
    return ["--workdir", str(workdir or self.tiny), "--source", str(source or self.source()),
            "--out", str(self.root / "out.wav"), *extra]

  def traj(self, obj, name="traj.json") -> list:
    path = self.root / name
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return self.render("--trajectory", str(path))

  def file(self, name, text) -> pathlib.Path:
    p = self.root / name
    p.write_text(text)
    return p


def _eye(scale=1.0, shear=0.0, t=(0.0, 0.0, 0.0)):
  m = np.eye(4)
  m[:3, :3] *= scale
  m[0, 1] = shear
  m[:3, 3] = t
  return m.tolist()


def _key(t, pose=None):
  return {"time": t, "pose": pose if pose is not None else _eye()}


def _read_only_workdir(c: Ctx) -> list:
  wd = c.root / "ro"
  wd.mkdir()
  wd.chmod(0o555)
  return c.train_smoke(workdir=wd)


def _dangling_link(c: Ctx) -> list:
  (c.root / "wd").symlink_to(c.root / "nowhere")
  return c.train_smoke()


def _link_to_file(c: Ctx) -> list:
  c.file("plain.txt", "x")
  (c.root / "wd").symlink_to(c.root / "plain.txt")
  return c.train_smoke()


def _break(path: pathlib.Path, text: str) -> pathlib.Path:
  """Overwrite ``path`` with ``text``; returns the release root it is in."""
  path.write_text(text)
  return path.parent.parent


def _npy(path: pathlib.Path, value) -> pathlib.Path:
  np.save(path, value)
  return path


def _mkdir(path: pathlib.Path) -> pathlib.Path:
  path.mkdir()
  return path


def _with_config(wd: pathlib.Path, text: str) -> pathlib.Path:
  (wd / "config.json").write_text(text)
  return wd


def _malformed_config_case(c: Ctx) -> list:
  wd = c.copy_tiny()
  (wd / "config.json").write_text('{"data": {"kind": "synthetic",')
  return ["--workdir", str(wd), "--no-progress"]



# ----------------------------------------------------------------------------- the matrix

def _text(path):
  path.write_text("not a SOFA file")
  return path


T, E, R, S = train.main, evaluate.main, render_cli.main, synth.main
NAN = float("nan")

#: (id, entry point, argv builder, needles that the one line must contain)
CASES: list[tuple[str, Callable, Callable[[Ctx], list], tuple]] = [
    # --- train: config overrides and config files
    ("steps-not-a-number", T, lambda c: c.train_smoke("--config.train.steps=five"),
     ("--config.train.steps", "'five'", "integer")),
    ("unknown-data-kind", T, lambda c: c.train_smoke("--config.data.kind=rwav"),
     ("--config.data.kind", "'rwav'", "synthetic, rwavs, replay_nvas")),
    ("unknown-model", T, lambda c: c.train_smoke("--config.model.name=audiogss"),
     ("config.model.name", "'audiogss'", "audiogs")),
    ("unknown-field", T, lambda c: c.train_smoke("--config.train.stepz=3"),
     ("--config.train.stepz", "steps")),
    ("bad-bool", T, lambda c: c.train_smoke("--config.data.normalize=maybe"),
     ("--config.data.normalize", "'maybe'")),
    ("float-field-text", T, lambda c: c.train_smoke("--config.train.clip_norm=big"),
     ("--config.train.clip_norm", "'big'", "number")),
    ("group-as-value", T, lambda c: c.train_smoke("--config.train.lr=3"),
     ("--config.train.lr", "group")),
    ("zero-steps", T, lambda c: c.train_smoke("--config.train.steps=0"),
     ("--config.train.steps", "positive")),
    ("negative-batch", T, lambda c: c.train_smoke("--config.train.batch_size=-4"),
     ("--config.train.batch_size", "positive")),
    ("unknown-schedule", T, lambda c: c.train_smoke("--config.train.schedule=linear"),
     ("--config.train.schedule", "'linear'")),
    ("fit-without-relu", T, lambda c: c.train_smoke("--config.model.audiogs.activation=softplus"),
     ("--config.model.audiogs.init_fit", "relu")),
    ("override-without-value", T, lambda c: c.train_smoke() + ["--config.train.steps"],
     ("--config.train.steps", "needs a value")),
    ("missing-config-file", T,
     lambda c: ["--config", str(c.root / "nope.py"), "--workdir", str(c.root / "wd")],
     ("nope.py", "not found")),
    ("broken-config-file", T,
     lambda c: ["--config", str(c.file("broken.py", "def get_config(:\n")),
                "--workdir", str(c.root / "wd")],
     ("broken.py", "could not be executed")),
    ("unknown-flag", T, lambda c: c.train_smoke("--steps=3"),
     ("audiogs_jax.train", "--steps=3")),
    ("unknown-eval-split", T, lambda c: c.train_smoke("--config.data.eval_split=test"),
     ("'test'", "splits: train, val", "--config.data.eval_split")),
    # --- train: the workdir
    ("workdir-is-a-file", T, lambda c: c.train_smoke(workdir=c.file("wd.txt", "notes")),
     ("--workdir", "wd.txt", "not a folder")),
    ("workdir-under-a-file", T,
     lambda c: c.train_smoke(workdir=c.file("f.txt", "x") / "wd"),
     ("--workdir", "f.txt", "is a file")),
    ("workdir-dangling-symlink", T, _dangling_link, ("--workdir", "nowhere", "does not exist")),
    ("workdir-symlink-to-file", T, _link_to_file, ("--workdir", "not a folder")),
    ("workdir-read-only", T, _read_only_workdir, ("--workdir", "ro", "read-only")),
    ("resume-other-steps", T,
     lambda c: ["--workdir", str(c.copy_tiny()), "--no-progress", "--no-eval",
                "--config.train.steps=5"],
     ("--config.train.steps", "learning-rate schedule", "--change-schedule")),
    ("resume-other-model", T,
     lambda c: ["--workdir", str(c.copy_tiny()), "--no-progress", "--no-eval",
                "--config.model.name=audio3dgs_unet"],
     ("checkpoints/2", "an 'audiogs' model", "config.model.name is 'audio3dgs_unet'")),
    ("resume-other-shapes", T,
     lambda c: ["--workdir", str(c.copy_tiny()), "--no-progress", "--no-eval",
                "--config.model.audiogs.sh_degree=1"],
     ("checkpoints/2", "does not match")),
    ("workdir-config-newer-format", T,
     lambda c: ["--workdir", str(c.edit_config(c.copy_tiny(), lambda d: d.update(_format=9))),
                "--no-progress"],
     ("config.json", "format 9", "newer")),
    ("workdir-config-malformed", T, _malformed_config_case,
     ("config.json", "malformed JSON")),
    # --- train: scene data (RWAVS layout)
    ("binaural-nan", T, lambda c: c.train_rwavs(rwavs_scene(
        c.root, binaural=np.where(np.arange(4000) == 7, NAN, 0.3)[None].repeat(2, 0))),
     ("binaural_syn_re.wav", "NaN/Inf")),
    ("source-inf", T, lambda c: c.train_rwavs(rwavs_scene(
        c.root, source=np.where(np.arange(4000) == 9, np.inf, 0.2))),
     ("source_syn_re.wav", "NaN/Inf")),
    ("source-subnormal", T, lambda c: c.train_rwavs(rwavs_scene(
        c.root, source=np.full(4000, 1e-41, np.float32))),
     ("source_syn_re.wav", "subnormal")),
    ("binaural-3-channels", T, lambda c: c.train_rwavs(rwavs_scene(
        c.root, binaural=0.1 * np.ones((3, 4000)))),
     ("binaural_syn_re.wav", "2 channel", "found 3")),
    ("source-zero-length", T, lambda c: c.train_rwavs(rwavs_scene(
        c.root, source=np.zeros(0))),
     ("source_syn_re.wav", "empty audio")),
    ("binaural-8bit-silent", T, lambda c: c.train_rwavs(rwavs_scene(
        c.root, binaural=np.zeros((2, 4000)), bin_subtype="PCM_U8")),
     ("binaural_syn_re.wav", "silent track")),
    ("binaural-24bit-cut-short", T, lambda c: c.train_rwavs(rwavs_scene(
        c.root, binaural=0.3 * np.ones((2, 1500)), bin_subtype="PCM_24")),
     ("binaural_syn_re.wav", "not synchronised", "cut short")),
    ("source-header-wrong-rate", T, lambda c: c.train_rwavs(rwavs_scene(
        c.root, src_sr=2 * SR_SCENE)),
     ("source_syn_re.wav", "not synchronised", "2.00 s (4000 samples at 2000 Hz)",
      "4.00 s (4000 samples at 1000 Hz)")),
    ("pose-scaled-in-transforms", T, lambda c: c.train_rwavs(rwavs_scene(
        c.root, poses=np.array(_eye(scale=2.0)).reshape(-1).tolist())),
     ("transforms_scale_train.json", "camera_path[1]", "not a rigid")),
    ("transforms-malformed", T, lambda c: c.train_rwavs(
        _break(rwavs_scene(c.root) / "1" / "transforms_scale_val.json", "{\"camera_path\": [")),
     ("transforms_scale_val.json", "malformed JSON")),
    ("scene-folder-missing", T, lambda c: c.train_rwavs(c.root / "nodata"),
     ("nodata", "missing scene folder")),
    # --- render: poses
    ("pose-nan", R, lambda c: c.render("--pose", "nan" + IDENTITY[1:]),
     ("--pose", "NaN/Inf")),
    ("pose-inf", R, lambda c: c.render("--pose", IDENTITY.replace("0 0 0 1", "inf 0 0 1", 1)),
     ("--pose", "NaN/Inf")),
    ("pose-15-numbers", R, lambda c: c.render("--pose", IDENTITY[:-2]),
     ("--pose", "16 numbers", "got 15")),
    ("pose-text", R, lambda c: c.render("--pose", "north-east"),
     ("--pose", "'north-east'")),
    ("pose-scaled", R, lambda c: c.render("--pose", " ".join(
        str(v) for v in np.ravel(_eye(scale=1.5)))), ("--pose", "not a rigid")),
    ("pose-sheared", R, lambda c: c.render("--pose", " ".join(
        str(v) for v in np.ravel(_eye(shear=0.4)))), ("--pose", "orthonormal")),
    ("pose-mirror", R, lambda c: c.render("--pose", IDENTITY.replace("1", "-1", 1)),
     ("--pose", "det(R)")),
    ("pose-huge-numbers-text", R, lambda c: c.render("--pose", " ".join(["1e400"] * 16)),
     ("--pose", "NaN/Inf")),
    ("pose-file-missing", R, lambda c: c.render("--pose", str(c.root / "p.json")),
     ("p.json", "missing file")),
    ("pose-file-malformed", R,
     lambda c: c.render("--pose", str(c.file("p.json", "[[1, 0, 0, 0], [0, 1"))),
     ("p.json", "malformed JSON")),
    ("pose-npy-3x3", R,
     lambda c: c.render("--pose", str(_npy(c.root / "p.npy", np.eye(3)))),
     ("p.npy", "16 (4x4) or 12 (3x4)")),
    # --- render: trajectories
    ("trajectory-nan-time", R, lambda c: c.traj("{\"poses\": [{\"time\": NaN, \"pose\": "
                                                f"{json.dumps(_eye())}}}]}}"),
     ("traj.json", "poses[0].time", "finite")),
    ("trajectory-duplicate-time", R, lambda c: c.traj([_key(0.0), _key(1.0), _key(1.0)]),
     ("traj.json", "poses[1]", "poses[2]", "same time")),
    ("trajectory-unsorted", R, lambda c: c.traj({"poses": [_key(2.0), _key(1.0)]}),
     ("traj.json", "poses[1].time", "must increase")),
    ("trajectory-inf-time", R, lambda c: c.traj("[{\"time\": Infinity, \"pose\": "
                                                f"{json.dumps(_eye())}}}]"),
     ("traj.json", "finite")),
    ("trajectory-time-text", R, lambda c: c.traj([_key("soon")]),
     ("traj.json", "poses[0].time", "'soon'")),
    ("trajectory-no-pose", R, lambda c: c.traj([{"time": 0.0}]),
     ("traj.json", "poses[0]", "'pose'")),
    ("trajectory-empty", R, lambda c: c.traj({"poses": []}),
     ("traj.json", "expected")),
    ("trajectory-sheared-pose", R, lambda c: c.traj([_key(0.0), _key(1.0, _eye(shear=0.5))]),
     ("traj.json", "pose 1", "not a rigid")),
    ("trajectory-bad-frame-name", R, lambda c: c.traj({"camera_path": [
        {"file_path": "frames/first.png", "camera_to_world": _eye()}]}),
     ("traj.json", "frames/first.png")),
    ("trajectory-empty-camera-path", R, lambda c: c.traj({"camera_path": []}),
     ("traj.json", "non-empty")),
    ("trajectory-malformed", R, lambda c: c.traj("{\"poses\": [}"),
     ("traj.json", "malformed JSON")),
    # --- render: the source WAV, the workdir, the flags
    ("render-source-nan", R, lambda c: c.render("--pose", IDENTITY, source=c.source(
        np.where(np.arange(2000) == 3, NAN, 0.1))), ("src.wav", "NaN/Inf")),
    ("render-source-subnormal", R, lambda c: c.render("--pose", IDENTITY, source=c.source(
        np.full(2000, 1e-40, np.float32))), ("src.wav", "subnormal")),
    ("render-source-empty", R, lambda c: c.render("--pose", IDENTITY, source=c.source(np.zeros(0))),
     ("src.wav", "empty audio")),
    ("render-source-missing", R, lambda c: c.render("--pose", IDENTITY, source=c.root / "no.wav"),
     ("no.wav", "missing file")),
    ("render-source-not-audio", R,
     lambda c: c.render("--pose", IDENTITY, source=c.file("text.wav", "hello")),
     ("text.wav", "cannot read as audio")),
    ("render-workdir-missing", R,
     lambda c: c.render("--pose", IDENTITY, workdir=c.root / "absent"),
     ("absent", "no such workdir")),
    ("render-no-best", R, lambda c: c.render("--pose", IDENTITY, "--checkpoint", "best"),
     ("best", "no best checkpoint")),
    ("render-wrong-scene", R, lambda c: c.render("--pose", IDENTITY, "--scene", "7"),
     ("scene 1", "not 7")),
    ("render-batch-zero", R, lambda c: c.render("--pose", IDENTITY, "--batch-size", "0"),
     ("--batch-size", "at least 1")),
    ("render-no-out", R, lambda c: ["--workdir", c.tiny, "--source", c.source(),
                                    "--pose", IDENTITY],
     ("audiogs_jax.render", "--out")),
    # --- evaluate
    ("evaluate-workdir-missing", E, lambda c: ["--workdir", str(c.root / "absent")],
     ("absent", "no such workdir")),
    ("evaluate-workdir-empty", E, lambda c: ["--workdir", str(_mkdir(c.root / "empty"))],
     ("empty/config.json", "no saved config")),
    ("evaluate-other-model", E, lambda c: ["--workdir", str(c.edit_config(
        c.copy_tiny(), lambda d: d["model"].update(name="audio3dgs_unet")))],
     ("wd/checkpoints", "model.name in", "config.json", "an 'audiogs' model",
      "'audio3dgs_unet'")),
    ("evaluate-newer-format", E, lambda c: ["--workdir", str(c.edit_config(
        c.copy_tiny(), lambda d: d.update(_format=CONFIG_FORMAT + 1)))],
     ("config.json", f"format {CONFIG_FORMAT + 1}")),
    ("evaluate-config-not-object", E, lambda c: ["--workdir", str(_with_config(
        c.copy_tiny(), "[1, 2]"))], ("config.json", "JSON object")),
    ("evaluate-no-best", E, lambda c: ["--workdir", str(c.tiny), "--checkpoint", "best"],
     ("best", "no best checkpoint")),
    ("evaluate-bad-choice", E, lambda c: ["--workdir", str(c.tiny), "--checkpoint", "worst"],
     ("--checkpoint", "'worst'")),
    # --- data.synth
    ("synth-seconds-text", S, lambda c: ["--out", str(c.root / "rel"), "--seconds", "five"],
     ("--seconds", "'five'")),
    ("synth-unknown-ears", S, lambda c: ["--out", str(c.root / "rel"), "--ears", "elf"],
     ("--ears", "'elf'")),
    ("synth-hrtf-missing", S, lambda c: ["--out", str(c.root / "rel"), "--seconds", "2",
                                         "--hrtf", str(c.root / "head.sofa"), "--quiet"],
     ("head.sofa", "no such HRTF file")),
    ("synth-hrtf-not-sofa", S, lambda c: ["--out", str(c.root / "rel"), "--seconds", "2",
                                          "--hrtf", str(_text(c.root / "h.sofa")), "--quiet"],
     ("h.sofa", "SOFA")),
    ("synth-zero-seconds", S, lambda c: ["--out", str(c.root / "rel"), "--seconds", "0",
                                         "--quiet"], ("seconds",)),
    ("synth-missing-signal", S, lambda c: ["--out", str(c.root / "rel"), "--signal",
                                           str(c.root / "speech.wav"), "--quiet"],
     ("speech.wav",)),
]


def test_the_matrix_is_large_enough():
  assert len(CASES) >= 40
  assert len({c[0] for c in CASES}) == len(CASES)
  entries = {c[1] for c in CASES}
  assert entries == {T, E, R, S}


@pytest.mark.parametrize("name,entry,build,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, entry, build, needles, tmp_path, smoke, tiny_workdir, capsys):
  root = tmp_path / "case"
  root.mkdir()
  ctx = Ctx(root=root, smoke=smoke, tiny=tiny_workdir)
  argv = [str(a) for a in build(ctx)]
  before, tiny_before = snapshot(root), snapshot(tiny_workdir)
  capsys.readouterr()
  with pytest.raises(SystemExit) as e:
    entry(argv)
  err = capsys.readouterr().err
  assert e.value.code == 2, err
  lines = err.strip().splitlines()
  assert len(lines) == 1, err
  assert "error" in lines[0] and "Traceback" not in err
  assert "strict" not in err            # no orbax advice the user cannot act on
  for needle in needles:
    assert str(needle) in lines[0], (needle, lines[0])
  table = os.environ.get("AUDIOGS_MATRIX_TABLE")   # the notes' (input, message) table
  if table:
    with open(table, "a") as f:
      f.write(json.dumps([name, entry.__module__, lines[0].replace(str(root), "<case>")
                          .replace(str(tiny_workdir), "<tiny>")]) + "\n")
  assert snapshot(root) == before          # inputs untouched, no workdir left behind
  assert snapshot(tiny_workdir) == tiny_before
  if (root / "ro").exists():
    (root / "ro").chmod(0o755)


def test_debug_shows_the_traceback(tmp_path, smoke, capsys):
  """``--debug``: the same bad input raises instead of the one-line exit."""
  from audiogs_jax.config import ConfigError
  with pytest.raises(ConfigError, match="'five'"):
    train.main(["--config", smoke.config_path, "--workdir", str(tmp_path / "wd"),
                "--debug", "--config.train.steps=five"])
  assert not (tmp_path / "wd").exists()


def test_resample_notice_for_a_binaural_at_another_rate(tmp_path, capsys):
  """A 2 kHz binaural in a 1 kHz scene is used (resampled), with one notice."""
  from audiogs_jax.data import rwavs
  n = 8000
  t = np.arange(n) / 2000
  rel = rwavs_scene(tmp_path, bin_sr=2000,
                    binaural=np.stack([np.sin(2 * np.pi * 50 * t)] * 2))
  capsys.readouterr()
  data = rwavs.load(rel, "1", "train", sample_rate=SR_SCENE)
  err = capsys.readouterr().err
  assert "binaural_syn_re.wav: 2000 Hz, resampled to 1000 Hz" in err
  assert data.binaural.shape == (3, 2, SR_SCENE)


# ----------------------------------------------------------------------------- subprocesses

def _run(args, timeout=60):
  env = dict(os.environ, PYTHONPATH=str(REPO))
  t0 = time.perf_counter()
  r = subprocess.run([sys.executable, *args], cwd=str(REPO), env=env, capture_output=True,
                     text=True, timeout=timeout)
  return r, time.perf_counter() - t0


@pytest.mark.parametrize("entry", ["train", "evaluate", "render"])
def test_help_is_quick_and_imports_no_jax(entry):
  """``--help`` answers before JAX is imported: under 2 s even on a busy
  2-core machine (best of two runs), and no ``jax`` module loaded."""
  r, _ = _run(["-X", "importtime", "-m", f"audiogs_jax.{entry}", "--help"])
  assert r.returncode == 0, r.stderr[-2000:]
  assert "usage:" in r.stdout
  imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines()
              if line.startswith("import time:")}
  assert not {m for m in imported if m == "jax" or m.startswith("jax.")}
  best = min(_run(["-m", f"audiogs_jax.{entry}", "--help"])[1] for _ in range(2))
  assert best < 2.0, best


def test_render_help_documents_the_trajectory_format():
  r, _ = _run(["-m", "audiogs_jax.render", "--help"])
  assert r.returncode == 0
  text = " ".join(r.stdout.split())
  for fragment in ('"time": seconds', '"poses"', "camera_path", "strictly increasing",
                   "spherical interpolation", "--checkpoint"):
    assert fragment in text, fragment
  assert "see module docs" not in text


def test_usage_error_in_a_subprocess_is_one_line(tmp_path):
  r, _ = _run(["-m", "audiogs_jax.train", "--config.train.steps=five", "--workdir",
               str(tmp_path / "wd")])
  assert r.returncode == 2
  assert r.stderr.strip().count("\n") == 0 and "'five'" in r.stderr
  assert not (tmp_path / "wd").exists()
