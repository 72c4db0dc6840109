"""``python -m audiogs_jax.benchmark``: see ``audiogs_jax.benchmark``. The options are
parsed before the training code (and JAX) loads, so that ``--help`` answers at once."""

import sys

from audiogs_jax.benchmark import args

args.parser().parse_args(sys.argv[1:])

from audiogs_jax.benchmark import cli  # noqa: E402  (the training code loads here)

sys.exit(cli.main(sys.argv[1:]))
