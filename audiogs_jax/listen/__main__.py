"""``python -m audiogs_jax.listen``: the arguments are checked (and the port bound)
before JAX and the models load, so that a typo fails at once."""

import sys

from audiogs_jax.listen import command

ARGS, SOCK = command.prepare(sys.argv[1:])

from audiogs_jax.listen import app  # noqa: E402  (JAX and the models load here)

try:
  STATE = app.load(ARGS.workdir, which=ARGS.checkpoint, scene=ARGS.scene, block=ARGS.block,
                   gain_mode=ARGS.gain_mode, frame_stride=ARGS.frame_stride)
except app.LoadError as e:
  print(f"error: {e}", file=sys.stderr)
  sys.exit(2)
command.announce(ARGS, SOCK)
app.serve(STATE, SOCK)
