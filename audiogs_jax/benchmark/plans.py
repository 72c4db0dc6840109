"""What a benchmark trains: the rooms, the variants of the method, the modes and the
runs they expand to, each with the shell command it is equivalent to."""

from __future__ import annotations

import dataclasses
import pathlib
import runpy
import shlex
from typing import Optional, Sequence

import ml_collections

from audiogs_jax import config as config_lib
from audiogs_jax.benchmark.paths import rel

__all__ = ["Variant", "Mode", "Run", "VARIANTS", "KEY_ABLATIONS", "MODES", "rooms", "plan",
           "command_argv", "command_line", "expected_cost", "run_config"]


@dataclasses.dataclass(frozen=True)
class Variant:
  """One way of training a room: config overrides on top of the room's config.

  Attributes:
    name: identifier (workdir name, ``--variants``).
    label: table label.
    overrides: ``{"model.audiogs.use_attenuation": "False", ...}`` (``--config.*`` values).
    ablates: for the key ablations, the component the variant removes.
    unet: the Audio 3DGS U-Net (its width and steps come from the mode).
  """
  name: str
  label: str
  overrides: dict
  ablates: Optional[str] = None
  unet: bool = False


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("full", "AudioGS (full)", {}),
    Variant("no_attenuation", "without distance attenuation",
            {"model.audiogs.use_attenuation": "False"}, ablates="distance attenuation"),
    Variant("no_sh_directionality", "without SH directionality (degree 0, identical ears)",
            {"model.audiogs.use_sh_directionality": "False", "model.audiogs.sh_degree": "0",
             "model.audiogs.dual_sh": "False"}, ablates="SH directionality"),
    Variant("single_sh", "single SH field instead of dual", {"model.audiogs.dual_sh": "False"}),
    Variant("no_phase_correction", "without phase correction",
            {"model.audiogs.use_phase_correction": "False"}, ablates="phase correction"),
    Variant("no_phase_loss", "without the phase loss", {"model.audiogs.phase_weight": "0.0"}),
    Variant("paper", "AudioGS (paper): without the reverberant tail",
            {"model.audiogs.tail_frames": "0"}, ablates="reverberant tail"),
    Variant("sh1", "SH degree 1", {"model.audiogs.sh_degree": "1"}),
    Variant("sh3", "SH degree 3", {"model.audiogs.sh_degree": "3"}),
    Variant("audio3dgs_unet", "Audio 3DGS (U-Net)",
            {"model.name": "audio3dgs_unet",
             "model.audio3dgs_unet.init_spread": "0.3", "train.lr.sh": "5e-3"},
            unet=True),
]}
#: The full model has SH degree 2 and a 128-frame reverberant tail (configs/default.py):
#: it is the "SH degree 2" row; "paper" is the published renderer (no tail).
KEY_ABLATIONS = ("no_attenuation", "no_sh_directionality", "no_phase_correction", "paper")


@dataclasses.dataclass(frozen=True)
class Mode:
  """How long and which variants.

  Attributes:
    name: quick | full | micro.
    steps: AudioGS training steps (batch ``configs/default.py``: 8).
    unet_steps / unet_width / unet_batch: the Audio 3DGS U-Net's training.
    variants: default variant selection.
    overrides: applied to every run (before the variant's).
    room_overrides: ``{room: {field: value}}`` applied to every variant of a room.
    room_reasons: ``{room: why}`` for each entry of ``room_overrides``.
    ablation_overrides: applied to every variant except ``full`` (e.g. no
      spectrogram figures: the report only uses the full model's WAVs).
    jobs: runs trained at once (``--jobs``), each in its own process.
    description: one line for the report.
  """
  name: str
  steps: int
  unet_steps: int
  unet_width: int
  unet_batch: int
  variants: tuple
  overrides: dict = dataclasses.field(default_factory=dict)
  room_overrides: dict = dataclasses.field(default_factory=dict)
  room_reasons: dict = dataclasses.field(default_factory=dict)
  ablation_overrides: dict = dataclasses.field(default_factory=dict)
  jobs: int = 1
  description: str = ""


_COMMON = {"train.eval_every": "0", "eval.dpam": "False"}

MODES: dict[str, Mode] = {m.name: m for m in [
    Mode("full", steps=3000, unet_steps=2000, unet_width=32, unet_batch=4,
         variants=tuple(VARIANTS), overrides=dict(_COMMON),
         description="every variant, 3000 AudioGS steps (batch 8), U-Net width 32 "
                     "(32..512 channels) for 2000 steps (batch 4); meant for a GPU"),
    Mode("quick", steps=400, unet_steps=100, unet_width=8, unet_batch=4,
         variants=("full", *KEY_ABLATIONS, "audio3dgs_unet"), overrides=dict(_COMMON),
         room_overrides={"living": {"train.steps": "600"}},
         room_reasons={"living": "with 400 steps AudioGS lost to Stereo-Energy on LRE in "
                                 "this room (1.7751 vs 1.7222 dB; LRE still falling "
                                 "between 100 and 400 steps), so its AudioGS variants "
                                 "train for 600 steps"},
         ablation_overrides={"eval.num_figures": "0"}, jobs=2,
         description="the full model, the four key ablations and a width-8 U-Net; "
                     "400 AudioGS steps (600 in the living room) at batch 8, U-Net 100 "
                     "steps at batch 4; two runs at a time (each uses about one core on "
                     "average); under 30 min on an idle 2-core CPU"),
    Mode("micro", steps=6, unet_steps=4, unet_width=4, unet_batch=2,
         variants=("full", "no_attenuation"),
         overrides={**_COMMON, "data.synth.seconds": "10", "train.batch_size": "2",
                    "train.warmup_steps": "2", "train.log_every": "3",
                    "eval.batch_size": "4", "eval.num_wavs": "2", "eval.num_figures": "0"},
         description="a smoke run for the test suite (10-s scenes, a few steps); its "
                     "numbers mean nothing"),
]}


def rooms() -> dict:
  """``configs/bench_rooms.py``'s ``ROOMS``: room name -> its scene fields (``room``
  size in metres, ``rt60``, ``signal``, ``trajectory``, ``seed``, ``description``).

  The file is found like any config file (``config.resolve_config_path``: the
  working directory's ``configs/``, else the checkout's).
  """
  path = config_lib.resolve_config_path("configs/bench_rooms.py")
  return runpy.run_path(str(path))["ROOMS"]


@dataclasses.dataclass
class Run:
  """One training run: a room, a variant, its workdir, config file and overrides."""
  room: str
  variant: str
  workdir: pathlib.Path
  config_path: str
  overrides: dict

  @property
  def summary_path(self) -> pathlib.Path:
    """The evaluation summary whose presence marks the run as finished."""
    return self.workdir / "eval" / "val" / "summary.json"


def _run_overrides(mode: Mode, room: str, variant: Variant, data_root: pathlib.Path) -> dict:
  """A run's ``--config.*`` overrides, in command-line order: the scene cache, the
  mode's, the room's, the training length, the ablations', the variant's."""
  ov = {"data.root": rel(data_root), **mode.overrides, **mode.room_overrides.get(room, {})}
  if variant.unet:
    ov.update({"train.steps": str(mode.unet_steps),
               "train.checkpoint_every": str(mode.unet_steps),
               "train.batch_size": str(mode.unet_batch),
               "model.audio3dgs_unet.unet_width": str(mode.unet_width)})
  else:
    ov.setdefault("train.steps", str(mode.steps))
    ov["train.checkpoint_every"] = ov["train.steps"]
  if variant.name != "full":
    ov.update(mode.ablation_overrides)
  ov.update(variant.overrides)
  return ov


def plan(mode: Mode, room_names: Sequence[str], variant_names: Sequence[str],
         out: pathlib.Path, data_root: Optional[pathlib.Path] = None) -> list[Run]:
  """The runs of a benchmark, room-major (a room's scene is shared by its runs), each
  in its workdir ``out/<room>/<variant>``; scenes are cached in ``data_root``
  (default ``out/scenes``)."""
  data_root = data_root or out / "scenes"
  runs = []
  for room in room_names:
    config_path = rel(config_lib.resolve_config_path(f"configs/bench_room_{room}.py"))
    for name in variant_names:
      runs.append(Run(room, name, out / room / name, config_path,
                      _run_overrides(mode, room, VARIANTS[name], data_root)))
  return runs


def command_argv(run: Run, python: str = "python") -> list[str]:
  """``run`` as an argument vector: ``python -m audiogs_jax.train ...``."""
  parts = [python, "-m", "audiogs_jax.train", "--config", run.config_path,
           "--workdir", rel(run.workdir), "--no-progress"]
  return parts + [f"--config.{k}={v}" for k, v in run.overrides.items()]


def command_line(run: Run) -> str:
  """The shell command equivalent to ``run``."""
  return " ".join(shlex.quote(p) for p in command_argv(run))


def expected_cost(run: Run) -> float:
  """Relative training cost in clip-steps (steps x batch; a U-Net clip-step counts as
  6 AudioGS ones), used to start the longest runs first when ``jobs > 1``."""
  steps = float(run.overrides.get("train.steps", 1))
  batch = float(run.overrides.get("train.batch_size", 8))
  unet = run.overrides.get("model.name") == "audio3dgs_unet"
  return steps * batch * (6.0 if unet else 1.0)


def run_config(run: Run) -> ml_collections.ConfigDict:
  """The config ``command_line(run)`` trains with."""
  cfg = config_lib.load_config_file(run.config_path)
  return config_lib.apply_overrides(cfg, dict(run.overrides))
