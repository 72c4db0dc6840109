"""On-device batch sampling (dataset.sample_batch)."""

import jax
import jax.numpy as jnp
import numpy as np

from audiogs_jax import dataset


def _data(n=6, t=7, f=5):
  rng = np.random.default_rng(0)
  src = rng.standard_normal((n, t, f)) + 1j * rng.standard_normal((n, t, f))
  # Target = per-clip gain times source, so an aligned pair has a constant ratio.
  gain = rng.uniform(0.5, 2.0, (n, 2, 1, 1))
  tgt = gain * src[:, None]
  poses = np.tile(np.eye(4), (n, 1, 1))
  poses[:, 0, 3] = np.arange(n)          # clip index readable from the pose
  return dataset.DeviceData(poses=jnp.asarray(poses, jnp.float32),
                            source_tf=jnp.asarray(src, jnp.complex64),
                            target_tf=jnp.asarray(tgt, jnp.complex64),
                            source=jnp.zeros((n, 8)), target=jnp.zeros((n, 2, 8))), gain


def test_sample_batch_is_deterministic_and_consistent():
  data, _ = _data()
  key = jax.random.PRNGKey(3)
  a = dataset.sample_batch(data, key, 4)
  b = dataset.sample_batch(data, key, 4)
  for k in a:
    np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))
  idx = np.asarray(a["poses"][:, 0, 3]).astype(int)
  np.testing.assert_array_equal(np.asarray(a["source_tf"]), np.asarray(data.source_tf)[idx])


def test_frame_roll_keeps_source_and_target_aligned():
  data, gain = _data()
  out = dataset.sample_batch(data, jax.random.PRNGKey(5), 16, frame_roll=True)
  idx = np.asarray(out["poses"][:, 0, 3]).astype(int)
  src, tgt = np.asarray(out["source_tf"]), np.asarray(out["target_tf"])
  # Same roll for both: the per-clip gain still maps source to target exactly.
  np.testing.assert_allclose(tgt, gain[idx] * src[:, None], rtol=1e-5, atol=1e-5)
  # And the frames really moved for some clips (each is a roll of its original).
  orig = np.asarray(data.source_tf)[idx]
  moved = [not np.array_equal(s, o) for s, o in zip(src, orig)]
  assert any(moved)
  for s, o in zip(src, orig):
    assert any(np.array_equal(s, np.roll(o, k, axis=0)) for k in range(o.shape[0]))
