"""Listener geometry: poses, ears, and positions in the head frame.

A pose is a 4x4 head-to-world matrix in the OpenGL / nerfstudio convention used by
RWAVS: the columns of the rotation are the head's right, up and backward axes in
world coordinates, and the last column holds the head centre. The ears sit at
``centre -/+ head_radius * right`` (left ear first, ear index 0 = left).

All functions are pure jax.numpy and broadcast over leading axes.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = [
    "rotation", "translation", "ear_positions", "to_head_frame", "head_frame_planes",
    "ear_vectors", "distance_and_direction", "yaw_pose", "rotate_pose_yaw",
    "quat_to_rotmat",
]


def rotation(pose: jnp.ndarray) -> jnp.ndarray:
  """``[..., 4, 4]`` -> head-to-world rotation ``[..., 3, 3]``."""
  return pose[..., :3, :3]


def translation(pose: jnp.ndarray) -> jnp.ndarray:
  """``[..., 4, 4]`` -> head centre ``[..., 3]``."""
  return pose[..., :3, 3]


def ear_positions(pose: jnp.ndarray, head_radius) -> jnp.ndarray:
  """World positions of the two ears.

  Args:
    pose: ``[..., 4, 4]`` head-to-world.
    head_radius: scalar, in the same units as the pose's translation.

  Returns:
    ``[..., 2, 3]``: index 0 = left ear (centre - a * right), 1 = right ear.
  """
  right = pose[..., :3, 0]
  c = translation(pose)
  off = head_radius * right
  return jnp.stack([c - off, c + off], axis=-2)


def to_head_frame(points: jnp.ndarray, pose: jnp.ndarray) -> jnp.ndarray:
  """World points -> head frame (x right, y up, z backward), origin at the head centre.

  Args:
    points: ``[..., N, 3]`` world positions.
    pose: ``[..., 4, 4]`` head-to-world (leading axes broadcast with points').

  Returns:
    ``[..., N, 3]``: ``R^T (p - c)`` for each point.
  """
  r = rotation(pose)
  c = translation(pose)
  # (p - c) @ R  ==  (R^T (p - c))^T, row-vector form.
  return jnp.einsum("...nj,...jk->...nk", points - c[..., None, :], r)


def head_frame_planes(xyz: jnp.ndarray, poses: jnp.ndarray, scale) -> list:
  """Head-frame positions, in metres, of points laid out as coordinate planes.

  Args:
    xyz: ``[3, ...]`` world positions (scene units), one plane per axis.
    poses: ``[B, 4, 4]`` head-to-world.
    scale: scalar, metres per scene unit.

  Returns:
    ``[px, py, pz]``, each ``[B, ...]``: ``s R_b^T (x - c_b)`` (x right, y up,
    z backward). Written per axis so that it fuses into one elementwise loop.
  """
  rot = poses[:, :3, :3] * scale                              # [B, 3, 3]
  c = poses[:, :3, 3]                                          # [B, 3]
  bc = lambda a: a.reshape(a.shape + (1,) * (xyz.ndim - 1))    # [B] -> [B, 1, ...]
  d = [xyz[j][None] - bc(c[:, j]) for j in range(3)]
  return [bc(rot[:, 0, k]) * d[0] + bc(rot[:, 1, k]) * d[1] + bc(rot[:, 2, k]) * d[2]
          for k in range(3)]


def ear_vectors(p: list, head_radius: float) -> tuple:
  """Head-frame vectors from each ear to each point.

  Args:
    p: ``[px, py, pz]``, each ``[B, ...]``, head-frame positions.
    head_radius: the ears sit at ``x = -a`` (ear 0, left) and ``x = +a`` (right).

  Returns:
    ``(vx, vy, vz)``: ``vx`` ``[B, 2, ...]``; ``vy``, ``vz`` ``[B, 1, ...]``
    (the same for both ears; they broadcast against ``vx``).
  """
  px, py, pz = p
  ear_x = jnp.asarray([-head_radius, head_radius], px.dtype)
  ear_x = ear_x.reshape((1, 2) + (1,) * (px.ndim - 1))
  return px[:, None] - ear_x, py[:, None], pz[:, None]


def distance_and_direction(vx, vy, vz) -> tuple:
  """``(r, (ux, uy, uz))``: norms and unit directions of vectors given by their
  components (any broadcastable shapes); ``r`` is floored at 1e-9."""
  r = jnp.sqrt(jnp.maximum(vx * vx + vy * vy + vz * vz, 1e-18))
  inv_r = 1.0 / r
  return r, (vx * inv_r, vy * inv_r, vz * inv_r)


def quat_to_rotmat(q: jnp.ndarray) -> jnp.ndarray:
  """Unnormalised quaternions ``[..., 4]`` (w, x, y, z) -> rotations ``[..., 3, 3]``."""
  q = q / jnp.maximum(jnp.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
  w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
  return jnp.stack([
      jnp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
      jnp.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
      jnp.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
  ], axis=-2)


def yaw_pose(position, yaw: float, up_axis: int = 2) -> np.ndarray:
  """A level head at ``position`` facing ``yaw`` radians (numpy, for tests and tools).

  The world's up axis is ``up_axis`` (2 = z, as pyroomacoustics rooms and the
  built-in scenes; 1 = y). Yaw 0 faces world +x; positive yaw turns left
  (counter-clockwise seen from above).

  Returns:
    ``[4, 4]`` float64 head-to-world matrix (columns right, up, backward, centre).
  """
  position = np.asarray(position, dtype=np.float64)
  if up_axis == 2:
    fwd = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    up = np.array([0.0, 0.0, 1.0])
  elif up_axis == 1:
    fwd = np.array([np.cos(yaw), 0.0, -np.sin(yaw)])
    up = np.array([0.0, 1.0, 0.0])
  else:
    raise ValueError("up_axis must be 1 or 2")
  right = np.cross(fwd, up)
  pose = np.eye(4)
  pose[:3, 0] = right
  pose[:3, 1] = up
  pose[:3, 2] = -fwd
  pose[:3, 3] = position
  return pose


def rotate_pose_yaw(pose, angle: float) -> np.ndarray:
  """Turn a pose's head about its own up axis by ``angle`` radians (numpy)."""
  pose = np.asarray(pose, dtype=np.float64)
  c, s = np.cos(angle), np.sin(angle)
  # Rotation about the head's y (up) axis, applied in the head frame.
  ry = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
  out = pose.copy()
  out[:3, :3] = pose[:3, :3] @ ry
  return out
