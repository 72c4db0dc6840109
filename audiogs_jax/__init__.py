"""audiogs_jax: audio Gaussian splatting for novel-view binaural synthesis in JAX.

Data path, by module: ``data`` (read a scene) -> ``dsp`` (STFT) -> ``gaussians``
(the parameter pytree) -> ``sh`` / ``geometry`` -> ``render`` -> ``losses`` ->
``train`` -> ``evaluate`` / ``metrics`` -> ``render`` CLI.
"""

__version__ = "0.1.0"
