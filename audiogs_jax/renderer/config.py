"""``RenderConfig``: the static settings of the AudioGS renderer."""

from __future__ import annotations

import dataclasses
from typing import Optional

from audiogs_jax.dsp import StftSettings

__all__ = ["RenderConfig"]


@dataclasses.dataclass(frozen=True)
class RenderConfig(StftSettings):
  """Static settings of the AudioGS renderer (hashable: a jit static argument).

  Ablation switches: ``use_attenuation`` (D = 1 when off),
  ``use_sh_directionality`` (only the degree-0 coefficient when off),
  ``use_phase_correction`` (tau = 0 when off), ``use_learned_phase``
  (ignore the learned ``phase`` field), ``dual_sh`` (both ears read field 0 when
  off). ``content_mode`` is Audio 3DGS's alternative: the Gaussians give the
  output magnitude directly and only the source's phase is used.
  ``fast_math`` lets the backend substitute polynomial exp/log/sin/cos where that
  pays (``backend.transcendentals``); ``fast_arcsin`` does the same for the Woodworth
  path's arcsine (``backend.arcsin``: the streaming renderer sets it; training and
  evaluation keep ``jnp.arcsin``, the numbers of the tables); ``custom_backward``
  selects the hand-derived
  VJP (``renderer.backward``) over autodiff of the same forward. ``tail_frames``
  > 0 adds the reverberant tail of ``renderer.tail`` (the Gaussians then carry a
  ``Tail`` and ``source_tf`` starts with that many frames before the clip); 0 is
  the paper's renderer.
  """
  sample_rate: int = 22050
  n_fft: int = 512
  hop_length: int = 128
  win_length: Optional[int] = None
  window: str = "hann"
  head_radius: float = 0.0875          # metres
  speed_of_sound: float = 343.0        # metres / second
  r0: float = 1.0                      # reference distance of the attenuation law, metres
  r_min: float = 0.1                   # distances are clamped below at this, metres
  metres_per_unit: float = 1.0         # used when the Gaussians carry no log_scale
  activation: str = "relu"             # "relu" or "softplus"
  use_attenuation: bool = True
  use_sh_directionality: bool = True
  use_phase_correction: bool = True
  itd_model: str = "straight"          # "straight" (ear points) | "woodworth" (spherical head)
  use_learned_phase: bool = True
  dual_sh: bool = True
  content_mode: bool = False
  fast_math: bool = True
  fast_arcsin: bool = False
  custom_backward: bool = True
  tail_frames: int = 0                 # K taps of the reverberant tail (renderer.tail); 0: none
  tail_mode: str = "power"             # "power" | "complex" (renderer.tail.combine)
  tail_coherence: bool = True          # ears' tail taps as coherent as a diffuse field's
