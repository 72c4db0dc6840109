"""Default config: the built-in synthetic scene (generated on first use, cached).

    python -m audiogs_jax.train                      # this config, workdir runs/default
    python -m audiogs_jax.train --config.train.steps=4000 --workdir runs/long

Every other config starts from this one and changes a few fields.
"""

import ml_collections

from audiogs_jax.models import audio3dgs_model
from audiogs_jax.models import audiogs


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "default"
  c.seed = 0
  c.workdir = "runs/default"

  # --- data --------------------------------------------------------------
  c.data = ml_collections.ConfigDict()
  c.data.kind = "synthetic"          # synthetic | rwavs | replay_nvas
  c.data.root = ""                   # release root (rwavs / replay_nvas); cache dir for synthetic
  c.data.scene = "1"                 # scene id (rwavs), scene name (replay_nvas)
  c.data.scenes = ""                 # "1,2,...,13": one model per scene, trained in one job
  c.data.clip = "centered"           # centered (AV-NeRF) | preceding (AV-Cloud)
  c.data.sample_rate = 22050
  c.data.clip_seconds = 1.0
  c.data.normalize = True
  c.data.train_split = "train"
  c.data.eval_split = "val"
  c.data.holdout_camera = 0          # replay_nvas held-out camera (0 = none)
  # Built-in scene generator (audiogs_jax.data.synth), used when kind == synthetic.
  c.data.synth = ml_collections.ConfigDict()
  c.data.synth.seconds = 240        # 192 train / 48 val clips of 1 s
  c.data.synth.room = (6.0, 5.0, 3.0)
  c.data.synth.rt60 = 0.4
  c.data.synth.signal = "speech"
  c.data.synth.trajectory = "random_walk"
  c.data.synth.seed = 0              # scene k (numeric id) is simulated with seed + k - 1
  c.data.synth.head_radius = 0.0875    # cardioid ears only
  c.data.synth.ears = "kemar"        # kemar (packaged MIT KEMAR HRIRs) | cardioid
  c.data.synth.hrtf = ""             # a SimpleFreeFieldHRIR .sofa file (overrides ears)

  # --- model ------------------------------------------------------------
  # Shared: the model's name and the STFT both models render in. Each model's own
  # fields are its sub-config, with its defaults (models/<model>.default_config).
  c.model = ml_collections.ConfigDict()
  c.model.name = "audiogs"           # audiogs | audio3dgs_unet
  c.model.n_fft = 512
  c.model.hop_length = 128
  c.model.audiogs = audiogs.default_config()
  c.model.audio3dgs_unet = audio3dgs_model.default_config()

  # --- optimisation ------------------------------------------------------
  c.train = ml_collections.ConfigDict()
  c.train.steps = 1500
  c.train.batch_size = 8
  c.train.schedule = "cosine"        # cosine | exponential | constant
  c.train.final_lr_factor = 0.05
  c.train.warmup_steps = 50
  c.train.clip_norm = 10.0
  c.train.frame_roll = False         # augmentation: roll clips' frames (see dataset.sample_batch)
  c.train.lr = ml_collections.ConfigDict()
  c.train.lr.xyz = 1e-3
  c.train.lr.sh = 2e-3               # AudioGS: low, its SH start is fitted (init_fit)
  c.train.lr.decay = 1e-2
  c.train.lr.phase = 1e-2
  c.train.lr.log_scale = 1e-3
  c.train.lr.tail = 1e-2
  c.train.lr.rotation = 1e-3
  c.train.lr.network = 1e-3
  c.train.log_every = 50
  c.train.eval_every = 500
  c.train.eval_at_start = False      # also validate the start (step 0), before any step
  c.train.checkpoint_every = 500
  c.train.keep = 3

  # --- evaluation --------------------------------------------------------
  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 16
  c.eval.num_wavs = 4
  c.eval.num_figures = 3
  c.eval.dpam = True                 # used only when the dpam extra is installed

  # --- devices (audiogs_jax.parallel) -------------------------------------
  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1                   # devices splitting each batch; -1: all the rest
  c.mesh.scenes = 1                  # devices splitting the scenes of a multi-scene job
  c.mesh.shard_gaussians = False     # split Gaussians (and Adam state) over the data axis
  return c
