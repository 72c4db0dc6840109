"""geometry: poses (OpenGL head-to-world), ears, head frame, quaternions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from audiogs_jax import geometry

A = 0.0875

# Jitted once per module (eager dispatch compiles every primitive separately).
_ear_positions = jax.jit(geometry.ear_positions)
_to_head_frame = jax.jit(geometry.to_head_frame)
_quat_to_rotmat = jax.jit(geometry.quat_to_rotmat)


@jax.jit
def _ear_geometry(points_world, pose):
  """World points ``[N, 3]``, one pose -> ``(r [2, N], u [2, N, 3])`` through the
  renderer's per-axis functions (head_frame_planes, ear_vectors,
  distance_and_direction)."""
  p = geometry.head_frame_planes(points_world.T, pose[None], 1.0)
  r, u = geometry.distance_and_direction(*geometry.ear_vectors(p, A))
  return r[0], jnp.stack(u, axis=-1)[0]


def _ears(pose, a=A):
  return np.asarray(_ear_positions(jnp.asarray(pose, jnp.float32), a), np.float64)


def test_yaw_pose_facing_x_at_origin():
  pose = geometry.yaw_pose([0.0, 0.0, 0.0], 0.0)
  assert pose.shape == (4, 4) and pose.dtype == np.float64
  np.testing.assert_allclose(pose[:3, 0], [0, -1, 0], atol=1e-15)    # right = -y
  np.testing.assert_allclose(pose[:3, 1], [0, 0, 1], atol=1e-15)     # up = +z
  np.testing.assert_allclose(pose[:3, 2], [-1, 0, 0], atol=1e-15)    # backward = -x
  np.testing.assert_array_equal(pose[3], [0, 0, 0, 1])
  ears = _ears(pose)
  np.testing.assert_allclose(ears[0], [0, A, 0], atol=1e-7)          # left ear at +y a
  np.testing.assert_allclose(ears[1], [0, -A, 0], atol=1e-7)


def test_yaw_pose_positive_yaw_turns_left_and_y_up_world():
  pose = geometry.yaw_pose([1.0, 2.0, 3.0], np.pi / 2)               # facing +y
  np.testing.assert_allclose(-pose[:3, 2], [0, 1, 0], atol=1e-12)
  np.testing.assert_allclose(pose[:3, 3], [1, 2, 3])
  np.testing.assert_allclose(_ears(pose)[0], [1 - A, 2, 3], atol=1e-6)  # left ear at -x
  pose_y = geometry.yaw_pose([0.0, 0.0, 0.0], 0.0, up_axis=1)
  np.testing.assert_allclose(pose_y[:3, 1], [0, 1, 0])
  np.testing.assert_allclose(-pose_y[:3, 2], [1, 0, 0], atol=1e-12)
  np.testing.assert_allclose(_ears(pose_y)[0], [0, 0, -A], atol=1e-7)  # y-up: left = -z
  with pytest.raises(ValueError):
    geometry.yaw_pose([0, 0, 0], 0.0, up_axis=0)


@pytest.mark.parametrize("yaw", [0.0, 0.7, -2.5, np.pi])
@pytest.mark.parametrize("up_axis", [1, 2])
def test_yaw_pose_rotation_is_proper_orthonormal(yaw, up_axis):
  r = geometry.yaw_pose([0.3, -1.0, 2.0], yaw, up_axis=up_axis)[:3, :3]
  np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
  assert np.linalg.det(r) == pytest.approx(1.0)


def test_to_head_frame_front_right_up():
  pos = np.array([1.0, -2.0, 0.5])
  for yaw in (0.0, 1.1, -2.0):
    pose = geometry.yaw_pose(pos, yaw)
    fwd = -pose[:3, 2]
    pts = np.stack([pos + 1.5 * fwd, pos + 0.4 * pose[:3, 0], pos + 0.2 * pose[:3, 1]])
    got = np.asarray(_to_head_frame(jnp.asarray(pts, jnp.float32), jnp.asarray(pose, jnp.float32)))
    np.testing.assert_allclose(got, [[0, 0, -1.5], [0.4, 0, 0], [0, 0.2, 0]], atol=1e-6)


def test_to_head_frame_batched_is_inverse_of_pose():
  rng = np.random.default_rng(0)
  poses = np.stack([geometry.yaw_pose(rng.normal(size=3), y) for y in rng.uniform(-3, 3, 4)])
  pts = rng.normal(size=(4, 7, 3))
  local = np.asarray(_to_head_frame(jnp.asarray(pts, jnp.float32), jnp.asarray(poses, jnp.float32)))
  assert local.shape == (4, 7, 3)
  back = np.einsum("bij,bnj->bni", poses[:, :3, :3], local) + poses[:, None, :3, 3]
  np.testing.assert_allclose(back, pts, atol=1e-5)


def test_ear_vectors_and_distances():
  pose = geometry.yaw_pose([0.0, 0.0, 0.0], 0.0)
  pts_world = np.array([[0.0, 2.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # left, front, centre
  plane = jax.ShapeDtypeStruct((4, 3), jnp.float32)                    # [B, N] per axis
  shapes = jax.eval_shape(lambda p: geometry.ear_vectors(p, A), [plane] * 3)
  assert [s.shape for s in shapes] == [(4, 2, 3), (4, 1, 3), (4, 1, 3)]
  r, u = map(np.asarray, _ear_geometry(jnp.asarray(pts_world, jnp.float32), jnp.asarray(pose, jnp.float32)))
  assert r.shape == (2, 3) and u.shape == (2, 3, 3)
  # The point on the left: 2 - a from the left ear, 2 + a from the right ear.
  np.testing.assert_allclose(r[:, 0], [2 - A, 2 + A], rtol=1e-6)
  np.testing.assert_allclose(u[0, 0], [-1, 0, 0], atol=1e-6)           # towards head -x
  # The point in front: equidistant, sqrt(9 + a^2).
  np.testing.assert_allclose(r[:, 1], np.sqrt(9 + A * A), rtol=1e-6)
  # The head centre: a from each ear, straight right of the left ear.
  np.testing.assert_allclose(r[:, 2], A, rtol=1e-6)
  np.testing.assert_allclose(u[:, 2], [[1, 0, 0], [-1, 0, 0]], atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(u, axis=-1), 1.0, rtol=1e-6)
  # The same distances from world ear positions.
  ears = _ears(pose)
  np.testing.assert_allclose(np.linalg.norm(pts_world[None] - ears[:, None], axis=-1), r, rtol=1e-6)
  # Zero vectors: distance floored at 1e-9, direction 0 (no NaN).
  z = jnp.zeros((2,))
  r0, u0 = jax.jit(geometry.distance_and_direction)(z, z, z)
  assert np.allclose(np.asarray(r0), 1e-9, rtol=1e-6) and np.all(np.asarray(u0) == 0)


def test_head_frame_planes_and_ear_vectors_match_closed_forms():
  """``head_frame_planes`` == ``s * to_head_frame`` per pose; ``ear_vectors`` ==
  head-frame position minus ear (-a, 0, 0) / (+a, 0, 0); ``distance_and_direction``
  == norm and normalised vector, for a batch of poses and a [T, F]-shaped grid."""
  rng = np.random.default_rng(3)
  poses = np.stack([geometry.yaw_pose(rng.normal(size=3), y) for y in (0.2, -1.4, 2.9)])
  xyz = rng.normal(size=(3, 5, 7)) * 2.0                                # [3, T, F]
  s = 0.8
  p = [np.asarray(a) for a in jax.jit(geometry.head_frame_planes)(
      jnp.asarray(xyz, jnp.float32), jnp.asarray(poses, jnp.float32), s)]
  assert all(a.shape == (3, 5, 7) for a in p)
  pts = np.moveaxis(xyz, 0, -1).reshape(-1, 3)                          # [N, 3]
  ref = s * np.asarray(_to_head_frame(jnp.asarray(pts[None], jnp.float32),
                                      jnp.asarray(poses, jnp.float32)))  # [B, N, 3]
  got = np.stack(p, axis=-1).reshape(3, -1, 3)
  np.testing.assert_allclose(got, ref, atol=1e-5)
  vx, vy, vz = map(np.asarray, geometry.ear_vectors([jnp.asarray(a) for a in p], A))
  assert vx.shape == (3, 2, 5, 7) and vy.shape == vz.shape == (3, 1, 5, 7)
  np.testing.assert_allclose(vx[:, 0], p[0] + A, atol=1e-6)            # left ear at x = -a
  np.testing.assert_allclose(vx[:, 1], p[0] - A, atol=1e-6)            # right ear at x = +a
  np.testing.assert_array_equal(vy[:, 0], p[1])
  np.testing.assert_array_equal(vz[:, 0], p[2])
  r, u = geometry.distance_and_direction(vx, vy, vz)
  v = np.stack(np.broadcast_arrays(vx, vy, vz), axis=-1)
  np.testing.assert_allclose(np.asarray(r), np.linalg.norm(v, axis=-1), rtol=1e-6)
  np.testing.assert_allclose(np.stack([np.asarray(c) for c in u], -1),
                             v / np.linalg.norm(v, axis=-1, keepdims=True), atol=1e-6)


def test_quat_to_rotmat_matches_scipy():
  rng = np.random.default_rng(1)
  q = rng.normal(size=(20, 4)) * rng.uniform(0.2, 5.0, (20, 1))       # unnormalised (w,x,y,z)
  qz = np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])          # 90 deg about z
  q = np.concatenate([q, [[1.0, 0, 0, 0], qz]])
  got = np.asarray(_quat_to_rotmat(jnp.asarray(q, jnp.float32)))
  assert got.shape == (22, 3, 3)
  ref = Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix()              # scipy: (x,y,z,w)
  np.testing.assert_allclose(got, ref, atol=1e-5)
  np.testing.assert_allclose(got[20], np.eye(3), atol=1e-7)
  np.testing.assert_allclose(got[21] @ [1, 0, 0], [0, 1, 0], atol=1e-6)  # x -> y


def test_rotate_pose_yaw_by_pi_swaps_ears():
  pose = geometry.yaw_pose([0.5, 1.0, 1.6], 0.4)
  turned = geometry.rotate_pose_yaw(pose, np.pi)
  e0, e1 = _ears(pose), _ears(turned)
  np.testing.assert_allclose(e1[0], e0[1], atol=1e-6)
  np.testing.assert_allclose(e1[1], e0[0], atol=1e-6)
  np.testing.assert_allclose(turned[:3, 3], pose[:3, 3])
  np.testing.assert_allclose(turned[:3, 1], pose[:3, 1], atol=1e-12)    # same up axis


@pytest.mark.parametrize("angle", [0.3, -1.2, 2.0])
def test_rotate_pose_yaw_composes_with_yaw_pose(angle):
  for up_axis in (1, 2):
    pose = geometry.yaw_pose([0.1, 0.2, 0.3], 0.5, up_axis=up_axis)
    np.testing.assert_allclose(geometry.rotate_pose_yaw(pose, angle),
                               geometry.yaw_pose([0.1, 0.2, 0.3], 0.5 + angle, up_axis=up_axis),
                               atol=1e-12)


def test_vmap_over_poses():
  poses = jnp.asarray(np.stack([geometry.yaw_pose([0, 0, 0], y) for y in (0.0, 1.0, 2.0)]), jnp.float32)
  ears = jax.jit(jax.vmap(geometry.ear_positions, in_axes=(0, None)))(poses, A)
  for i in range(3):
    np.testing.assert_allclose(np.asarray(ears[i]), _ears(poses[i]), atol=1e-7)
  assert geometry.rotation(poses).shape == (3, 3, 3)
  assert geometry.translation(poses).shape == (3, 3)
