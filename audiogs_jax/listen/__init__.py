"""``python -m audiogs_jax.listen --workdir DIR``: walk through a learned sound field by ear.

Starts a local web server (``127.0.0.1`` unless ``--host`` is given) and prints
the URL of the listening page (``command``: the command line, checked before JAX
loads; ``app``: the Starlette app; ``session``: one page's WebSocket session). The page draws the scene from above (the room
outline when known, the training poses, the Gaussians coloured by energy, the
source when its position is known); drag the listener, turn the head with the
mouse wheel or the arrow keys, and hear what the model renders there: the
server renders block by block (``audiogs_jax.stream``) with the pose the page
sent last and streams the blocks over a WebSocket into an AudioWorklet. The
source is the scene's recording, or a WAV dropped on the page. A/B: the model
against the recorded clip of the nearest training pose, and model A against
model B when two workdirs are given.

The page (``listen/static/``: HTML, JS, CSS) ships in the package: no build
step, nothing fetched from elsewhere.
"""
