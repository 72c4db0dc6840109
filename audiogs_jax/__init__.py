"""audiogs_jax: audio Gaussian splatting for novel-view binaural synthesis in JAX.

Layers, top to bottom (docs/architecture.md): the command-line entry points
(``train``, ``evaluate``, ``render``, ``listen``, ``benchmark``); the shared layer
(``training``, ``evaluation``, ``stream``, ``predict``, ``workdir``, ``trainstate``, ...);
the models (``models``); the renderer (``renderer``) and the metrics; the data
(``dataset``, ``data``); the maths (``dsp``, ``sh``, ``geometry``, ``backend``).
"""

__version__ = "0.1.0"
