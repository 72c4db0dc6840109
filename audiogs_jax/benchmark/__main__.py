"""``python -m audiogs_jax.benchmark``: see ``audiogs_jax.benchmark``."""

import sys

from audiogs_jax.benchmark.cli import main

sys.exit(main())
