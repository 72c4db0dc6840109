"""audiogs_jax: audio Gaussian splatting for novel-view binaural synthesis in JAX.

Data path, by module: ``data`` (read a scene) -> ``dsp`` (STFT) -> ``gaussians``
(the parameter pytree) -> ``sh`` / ``geometry`` -> ``render`` -> ``losses`` ->
``train`` -> ``evaluate`` / ``metrics`` -> ``render`` CLI.

Importing the package sets one XLA:CPU option unless ``XLA_FLAGS`` already names
it or ``AUDIOGS_NO_XLA_TWEAKS=1``: it keeps XLA:CPU's experimental YNNPACK
library fusions to dots and convolutions. With its reduction fusions enabled
(jaxlib 0.10), a sum over the leading axis of a ``[8, 2, 173, 257]`` array took
13.8 ms instead of 0.33 ms on the 2-core CI machine, which made the training
step's backward pass (sums over the batch of poses) 3-6x slower. The option
only affects the CPU backend, and only takes effect if set before JAX creates
its CPU client (import ``audiogs_jax`` before running JAX computations).
"""

import os as _os

__version__ = "0.1.0"

_YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type=individual_dot,individual_convolution"


def _configure_xla_cpu() -> None:
  if _os.environ.get("AUDIOGS_NO_XLA_TWEAKS"):
    return
  flags = _os.environ.get("XLA_FLAGS", "")
  if "xla_cpu_experimental_ynn_fusion_type" in flags:
    return
  try:
    from importlib.metadata import version
    major, minor = (int(v) for v in version("jaxlib").split(".")[:2])
  except Exception:  # unknown jaxlib: leave XLA's defaults alone
    return
  if (major, minor) >= (0, 10):  # the flag exists from jaxlib 0.10 on
    _os.environ["XLA_FLAGS"] = (flags + " " + _YNN_FLAG).strip()


_configure_xla_cpu()
