"""AudioGS as a ``RenderModel``: the explicit renderer of ``audiogs_jax.renderer``.

Its config fields are ``config.model.audiogs`` (``default_config``); the STFT
(``config.model.n_fft``, ``hop_length``) and the sample rate are shared.
"""

from __future__ import annotations

import concurrent.futures
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from audiogs_jax import dataset, dsp, localize, reverb
from audiogs_jax.config import ConfigError
from audiogs_jax import losses
from audiogs_jax import renderer
from audiogs_jax.renderer import fit as fit_lib
from audiogs_jax.gaussians import GaussianGrid, Tail, from_grid, init_gaussians, to_grid
from audiogs_jax.renderer import tail as tail_lib
from audiogs_jax.models.base import RenderModel, SceneInfo, fields_of

NAME = "audiogs"
DEFAULT_METRES_PER_UNIT = 5.0


def default_config() -> ml_collections.ConfigDict:
  """AudioGS's config fields (``config.model.audiogs``) and their defaults."""
  c = ml_collections.ConfigDict()
  c.sh_degree = 2
  c.dual_sh = True
  c.activation = "relu"               # relu | softplus
  c.use_attenuation = True
  c.use_sh_directionality = True
  c.use_phase_correction = True
  c.itd_model = "woodworth"           # woodworth (spherical head) | straight (ear points)
  c.use_learned_phase = True
  c.content_mode = False
  c.init_position = "itd"             # itd (source estimated from ITDs) | listeners (centroid)
  c.init_spread = 0.05                # scene units around init_position
  c.init_gain = 1.0
  # The closed-form start (renderer.fit): SH coefficients and tail levels fitted by
  # least squares to the training clips before the first step; 0: the constant start.
  c.init_fit = 3                      # alternations of the coefficient and tail fits
  c.init_fit_ridge = 0.01             # ridge toward the omnidirectional fit (renderer.fit)
  c.head_radius = 0.0875              # metres
  c.speed_of_sound = 343.0
  c.r0 = 1.0
  c.r_min = 0.1
  c.learn_scale = True                # learn log metres-per-unit
  c.metres_per_unit = 0.0             # 0: from the scene's metadata, else 5.0
  c.fast_math = True                  # polynomial transcendentals where the backend gains
  # The reverberant tail (renderer.tail): K frames after the direct frame; 0 = the
  # paper's renderer.
  c.tail_frames = 128
  c.tail_mode = "power"               # power (expected magnitude) | complex (CTF as such)
  c.tail_coherence = True             # ears' taps as coherent as a diffuse field's
  c.tail_init_rt60 = 0.0              # seconds, every bin; 0: read from the training clips
                                      # (the closed-form start's choice, else their blind RT60)
  c.tail_init_level = 0.02            # amplitude of the first tap
  # Loss: mag_weight * |Y| L2 + log_mag_weight * log|Y| L1 + phase_weight * IPD
  # + frame_tie_weight * (pull each bin's T frames together, losses.frame_tie).
  c.mag_weight = 1.0
  c.log_mag_weight = 0.0
  c.phase_weight = 0.1
  c.frame_tie_weight = 0.0
  return c


def render_config(config) -> renderer.RenderConfig:
  """``RenderConfig`` from a full config (``config.model`` and ``config.data``)."""
  m = fields_of(config, NAME)
  return renderer.RenderConfig(
      sample_rate=int(config.data.sample_rate), n_fft=int(config.model.n_fft),
      hop_length=int(config.model.hop_length), head_radius=float(m.head_radius),
      speed_of_sound=float(m.speed_of_sound), r0=float(m.r0), r_min=float(m.r_min),
      activation=str(m.activation), use_attenuation=bool(m.use_attenuation),
      use_sh_directionality=bool(m.use_sh_directionality),
      use_phase_correction=bool(m.use_phase_correction), itd_model=str(m.itd_model),
      use_learned_phase=bool(m.use_learned_phase), dual_sh=bool(m.dual_sh),
      content_mode=bool(m.content_mode), fast_math=bool(m.fast_math),
      metres_per_unit=float(m.metres_per_unit or DEFAULT_METRES_PER_UNIT),
      tail_frames=tail_frames(config), tail_mode=str(m.get("tail_mode", "power")),
      tail_coherence=bool(m.get("tail_coherence", True)))


def tail_frames(config) -> int:
  """K, the taps of the reverberant tail (``config.model.audiogs.tail_frames``; 0: none)."""
  return int(fields_of(config, NAME).get("tail_frames", 0) or 0)


def metres_per_unit(scene: SceneInfo, config) -> float:
  m = fields_of(config, NAME)
  if m.metres_per_unit:
    return float(m.metres_per_unit)
  if scene.metres_per_unit:
    return float(scene.metres_per_unit)
  return DEFAULT_METRES_PER_UNIT


#: Range of the tail's data-driven initial RT60 (seconds).
TAIL_RT60_RANGE = (0.1, 1.5)

#: RT60s (s) the closed-form start chooses the tail's decay among (one for every bin):
#: 12 steps of about 28 % over ``TAIL_RT60_RANGE``.
TAIL_RT60_CANDIDATES = tuple(float(v) for v in np.geomspace(*TAIL_RT60_RANGE, 12))


def scene_extras(scene, config) -> dict:
  """``source_estimate``: the source located from the training clips' interaural
  times (``localize.estimate_source``), when ``init_position = "itd"``;
  ``rt60_estimate``: the median blind RT60 of the training recordings
  (``reverb.rt60_blind``), when the tail starts from it (``tail_init_rt60 = 0``; the
  closed-form start then replaces it with ``renderer.fit.fit_tail_decay``'s)."""
  m = fields_of(config, NAME)
  where = m.init_position
  if where not in ("itd", "listeners"):
    raise ValueError(f"model.audiogs.init_position must be listeners or itd, got {where!r}")
  out = {}
  if where == "itd":
    est = localize.estimate_source(scene.poses, scene.binaural, scene.sample_rate)
    out["source_estimate"] = tuple(float(v) for v in est)
  if tail_frames(config) and not float(m.get("tail_init_rt60", 0.0)):
    out["rt60_estimate"] = tail_rt60_estimate(scene.binaural, scene.sample_rate)
  return out


def tail_rt60_estimate(binaural, sample_rate: int, max_clips: int = 64) -> float:
  """Median blind RT60 (s) of up to ``max_clips`` evenly spaced clips of
  ``binaural`` ``[N, 2, L]``, clipped to ``TAIL_RT60_RANGE``: where the tail's decay
  starts. A fixed start (0.5 s) left the tail of a dry room (RT60 0.25 s) too long
  for a short training run to undo."""
  x = np.asarray(binaural)
  idx = np.unique(np.linspace(0, len(x) - 1, min(max_clips, len(x))).round().astype(int))
  rt = reverb.rt60_blind_batch(x[idx], sample_rate)
  return float(np.clip(np.median(rt), *TAIL_RT60_RANGE))


def _init_center(scene: SceneInfo, config) -> tuple:
  """Where the Gaussians start: the estimated source position (so that the
  geometric phase correction starts with the source's interaural time at every
  pose), else the listeners' centroid."""
  if fields_of(config, NAME).init_position == "itd" and scene.source_estimate is not None:
    return tuple(scene.source_estimate)
  return scene.center


def init(key, scene: SceneInfo, config) -> GaussianGrid:
  """Initial parameters in the grid layout (``gaussians.GaussianGrid``)."""
  m = fields_of(config, NAME)
  mpu = metres_per_unit(scene, config)
  grid_kw = dict(
      sh_degree=int(m.sh_degree), center=tuple(float(c) for c in _init_center(scene, config)),
      spread=float(m.init_spread), dual=bool(m.dual_sh), learn_phase=bool(m.use_learned_phase),
      log_scale=float(np.log(mpu)) if m.learn_scale else None,
      init_gain=float(m.init_gain), activation=str(m.activation))
  tail_kw = advance = None
  if tail_frames(config):
    tail_kw = dict(hop_length=int(config.model.hop_length),
                   sample_rate=int(config.data.sample_rate),
                   rt60=_tail_init_rt60(scene, config), level=float(m.tail_init_level),
                   learn_phase=str(m.tail_mode) == "complex")
    advance = tail_lib.natural_advance(int(config.model.n_fft), int(config.model.hop_length))
  return _init_grid(key, advance, num_freqs=int(scene.num_freqs),
                    num_frames=int(scene.num_frames), grid_kw=tuple(sorted(grid_kw.items())),
                    tail_kw=None if tail_kw is None else tuple(sorted(tail_kw.items())))


@functools.partial(jax.jit, static_argnames=("num_freqs", "num_frames", "grid_kw", "tail_kw"))
def _init_grid(key, advance, *, num_freqs: int, num_frames: int, grid_kw: tuple,
               tail_kw) -> GaussianGrid:
  """``init``'s arrays in one compiled program (``grid_kw``, ``tail_kw``: the keyword
  arguments of ``gaussians.init_gaussians`` and ``renderer.tail.init`` as sorted
  item tuples, None: no tail): run op by op, its few dozen small operations each
  compiled on their own."""
  grid = to_grid(init_gaussians(key, num_freqs, num_frames, **dict(grid_kw)), num_freqs)
  if tail_kw is None:
    return grid
  return grid.replace(tail=tail_lib.init(jax.random.fold_in(key, 7), num_freqs,
                                         advance=advance, **dict(tail_kw)))


def _tail_init_rt60(scene: SceneInfo, config) -> float:
  """``tail_init_rt60`` if set, else the scene's estimate (0.5 s without one)."""
  rt = float(fields_of(config, NAME).get("tail_init_rt60", 0.0))
  if rt:
    return rt
  return float(scene.rt60_estimate) if scene.rt60_estimate else 0.5


def _fit_iterations(config) -> int:
  """``model.audiogs.init_fit``, checked: the closed-form start's alternations."""
  m = fields_of(config, NAME)
  iterations = int(m.get("init_fit", 0) or 0)
  if iterations < 0:
    raise ConfigError(f"--config.model.audiogs.init_fit={iterations}: must be >= 0")
  if iterations and m.activation != "relu":
    raise ConfigError(f"--config.model.audiogs.init_fit={iterations} (the closed-form "
                      f"start) needs activation=relu, got {m.activation!r}: set "
                      "--config.model.audiogs.init_fit=0")
  return iterations


def fit(scene, config):
  """The closed-form start (``renderer.fit.start``, ``model.audiogs.init_fit``
  alternations) on the training split ``scene`` (``data.scene.SceneData``), as a
  function ``params -> params``; None when ``init_fit`` is 0.

  The start's program depends on the shapes alone, so it is traced and compiled
  in a background thread from here on (``_compiled_start``; the program ``jax.jit``
  would compile), while the clips' STFTs are computed and the caller analyses the
  scene and initialises the parameters."""
  if not _fit_iterations(config):
    return None
  rc, kw = fit_arguments(config)
  shapes = dataset.device_shapes(scene, config)
  info = _shape_info(scene, config)
  template = jax.eval_shape(lambda key: init(key, info, config), jax.random.PRNGKey(0))
  program = _compiled_start(template, shapes.poses, shapes.source_tf, shapes.target_tf,
                            rc, tuple(sorted(kw.items())))
  data = dataset.to_device(scene, config)   # dispatched: computed while the caller goes on

  def apply(params: GaussianGrid) -> GaussianGrid:
    args = (params, data.poses, data.source_tf, data.target_tf)
    if _avals(args) != _avals((template, shapes.poses, shapes.source_tf, shapes.target_tf)):
      return fit_lib.start(*args, rc, **kw)     # not what was compiled (a caller's params)
    return program.result()(*args)
  return apply


def fit_arguments(config) -> tuple:
  """``(RenderConfig, keyword arguments)`` of ``renderer.fit.start`` for ``config``:
  ``start(params, poses, source_tf, target_tf, rc, **kw)`` is the configured start."""
  kw = dict(iterations=_fit_iterations(config), tail_rates=_tail_rate_candidates(config),
            ridge=float(fields_of(config, NAME).get("init_fit_ridge", 0.01)))
  return render_config(config), kw


def _avals(tree) -> tuple:
  """The tree structure, shapes and dtypes of ``tree`` (what a compiled program takes)."""
  leaves, treedef = jax.tree.flatten(tree)
  return treedef, tuple((tuple(x.shape), jnp.dtype(x.dtype)) for x in leaves)


def _shape_info(scene, config) -> SceneInfo:
  """A ``SceneInfo`` of ``scene``'s sizes (what ``init``'s shapes depend on), without
  the scene analysis of ``scene_extras``."""
  kw = dataset.stft_kwargs(config)
  return SceneInfo(num_freqs=kw["n_fft"] // 2 + 1, sample_rate=int(scene.sample_rate),
                   num_frames=dsp.num_frames(scene.clip_length, kw["n_fft"], kw["hop_length"]),
                   center=(0.0, 0.0, 0.0), metres_per_unit=dataset.metres_per_unit(scene))


#: Background compilations of the closed-form start, by the shapes and options they
#: were compiled for (a multi-scene job compiles once for scenes of the same sizes).
_STARTS: dict = {}
_COMPILER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="fit")


def _compiled_start(params, poses, source_tf, target_tf, rc, kw: tuple):
  """A future of ``renderer.fit.start`` compiled for these abstract arguments
  (``jax.ShapeDtypeStruct`` leaves) and options."""
  key = (_avals((params, poses, source_tf, target_tf)), rc, kw)
  if key not in _STARTS:
    _STARTS[key] = _COMPILER.submit(
        lambda: fit_lib.start.lower(params, poses, source_tf, target_tf, rc,
                                    **dict(kw)).compile())
  return _STARTS[key]


def _tail_rate_candidates(config):
  """The tail decay rates (nepers per frame) the closed-form start chooses among,
  one per RT60 of ``TAIL_RT60_CANDIDATES``; None (the rate stays where ``init`` put
  it) without a tail or with a fixed ``tail_init_rt60``."""
  if not tail_frames(config) or float(fields_of(config, NAME).get("tail_init_rt60", 0.0)):
    return None
  return tuple(tail_lib.rate_of_rt60(rt, int(config.model.hop_length),
                                     int(config.data.sample_rate))
               for rt in TAIL_RT60_CANDIDATES)


def render(params: GaussianGrid, poses, source_tf, config):
  return renderer.render(params, poses, source_tf, render_config(config))


def render_parts(config):
  """The render with a reverberant tail as ``renderer.direct`` then
  ``renderer.add_tail`` (``RenderModel.render_parts``); None without a tail."""
  if not tail_frames(config):
    return None
  return (lambda params, poses, source_tf, cfg: renderer.direct(
              params, poses, source_tf, render_config(cfg)),
          lambda y, params, source_tf, cfg: renderer.add_tail(
              y, params, source_tf, render_config(cfg)))


def loss(params, pred_tf, target_tf, source_tf, config):
  """The weighted AudioGS loss and its parts (``config.model.audiogs.*_weight``)."""
  del source_tf
  w = fields_of(config, NAME)
  parts = {"mag": losses.magnitude_l2(pred_tf, target_tf)}
  total = w.mag_weight * parts["mag"]
  if w.frame_tie_weight:
    parts["frame_tie"] = losses.frame_tie((params.xyz, params.sh, params.decay, params.phase))
    total = total + w.frame_tie_weight * parts["frame_tie"]
  if w.log_mag_weight:
    parts["log_mag"] = losses.log_magnitude_l1(pred_tf, target_tf)
    total = total + w.log_mag_weight * parts["log_mag"]
  if w.phase_weight:
    parts["ipd"] = losses.ipd_loss(pred_tf, target_tf)
    total = total + w.phase_weight * parts["ipd"]
  return total, parts


def _optional(params: GaussianGrid, value):
  tail = None
  if params.tail is not None:
    learned = params.tail.phase is not None          # the complex mode's phases
    tail = Tail(level=value("tail"), decay=value("tail"),
                phase=value("tail") if learned else None,
                omega=value("tail") if learned else None)
  return GaussianGrid(xyz=value("xyz"), sh=value("sh"), decay=value("decay"),
                      phase=None if params.phase is None else value("phase"),
                      log_scale=None if params.log_scale is None else value("log_scale"),
                      tail=tail)


def labels(params: GaussianGrid):
  return _optional(params, lambda name: name)


def gaussian_axes(params: GaussianGrid):
  """The frames axis (-2 of ``[..., T, F]``) of every grid field; None for the
  scalar ``log_scale`` and the tail (per bin, not per Gaussian)."""
  return _optional(params, lambda name: None if name in ("log_scale", "tail") else -2)


def positions(params: GaussianGrid):
  """``[N, 3]`` positions, index f * T + t."""
  return from_grid(params).xyz


def energy(params: GaussianGrid):
  """Degree-0 gain per Gaussian ``[N]``, averaged over ears (a plot's colour)."""
  return jnp.mean(jnp.abs(from_grid(params).sh[..., 0]), axis=0)


def stream_fields(params: GaussianGrid, config):
  """``(renderer.Fields, RenderConfig)`` for the streaming renderer."""
  rc = render_config(config)
  return renderer.fields(params, rc), rc


MODEL = RenderModel(name=NAME, label="AudioGS", init=init, render=render, loss=loss,
                    labels=labels, positions=positions, energy=energy,
                    default_config=default_config, scene_extras=scene_extras,
                    gaussian_axes=gaussian_axes, stream_fields=stream_fields,
                    render_parts=render_parts, fit=fit)
