"""Default config: the built-in synthetic scene (generated on first use, cached).

    python -m audiogs_jax.train                      # this config, workdir runs/default
    python -m audiogs_jax.train --config.train.steps=4000 --workdir runs/long

Every other config starts from this one and changes a few fields.
"""

import ml_collections


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

  # --- model -------------------------------------------------------------
  c.model = ml_collections.ConfigDict()
  c.model.name = "audiogs"           # audiogs | audio3dgs_unet
  c.model.sh_degree = 2
  c.model.dual_sh = True
  c.model.activation = "relu"
  c.model.use_attenuation = True
  c.model.use_sh_directionality = True
  c.model.use_phase_correction = True
  c.model.itd_model = "woodworth"    # woodworth (spherical head) | straight (ear points)
  c.model.use_learned_phase = True
  c.model.content_mode = False
  c.model.init_position = "itd"      # itd (source estimated from ITDs) | listeners (centroid)
  c.model.init_spread = 0.05         # scene units around init_position
  c.model.init_gain = 1.0
  c.model.head_radius = 0.0875       # metres
  c.model.speed_of_sound = 343.0
  c.model.r0 = 1.0
  c.model.r_min = 0.1
  c.model.learn_scale = True         # learn log metres-per-unit
  c.model.metres_per_unit = 0.0      # 0: from the scene's metadata, else 5.0
  c.model.fast_math = True
  c.model.n_fft = 512
  c.model.hop_length = 128
  # Audio 3DGS (model.name == audio3dgs_unet)
  c.model.unet_width = 64
  c.model.unet_levels = 4
  c.model.max_norm = 25.0
  c.model.compute_dtype = "float32"

  # --- loss --------------------------------------------------------------
  c.loss = ml_collections.ConfigDict()
  c.loss.mag_weight = 1.0
  c.loss.log_mag_weight = 0.0
  c.loss.phase_weight = 0.1
  c.loss.env_weight = 0.0
  c.loss.frame_tie_weight = 0.0      # AudioGS: pull each bin's T frames together (losses.frame_tie)

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
  c.train.lr.sh = 5e-3
  c.train.lr.decay = 1e-2
  c.train.lr.phase = 1e-2
  c.train.lr.log_scale = 1e-3
  c.train.lr.rotation = 1e-3
  c.train.lr.network = 1e-3
  c.train.log_every = 50
  c.train.eval_every = 500
  c.train.checkpoint_every = 500
  c.train.keep = 3

  # --- evaluation --------------------------------------------------------
  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 16
  c.eval.num_wavs = 4
  c.eval.num_figures = 3
  c.eval.dpam = True                 # used only when the dpam extra is installed
  c.eval.checkpoint = "latest"       # latest | best

  # --- devices (audiogs_jax.parallel) -------------------------------------
  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1                   # devices splitting each batch; -1: all the rest
  c.mesh.scenes = 1                  # devices splitting the scenes of a multi-scene job
  c.mesh.shard_gaussians = False     # split Gaussians (and Adam state) over the data axis
  return c
