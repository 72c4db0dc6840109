"""Real spherical harmonics up to degree 3, in the 3D Gaussian Splatting convention.

The ordering and normalisation are those of 3DGS (Kerbl et al. 2023) and gsplat:
orthonormal real SH on the unit sphere, index k = l * (l + 1) + m for degree l and
order m in [-l, l], with 3DGS's signs (e.g. ``Y_1 = -C1 * y``, ``Y_2 = C1 * z``,
``Y_3 = -C1 * x``). ``K = (L + 1) ** 2`` coefficients for degree L: 1, 4, 9, 16.

Directions are unit vectors ``[..., 3]`` in whatever frame the caller uses
(the head frame in ``render``: x = right, y = up, z = backward).
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["C0", "C1", "C2", "C3", "num_coeffs", "degree_of", "basis_terms", "sh_basis",
           "expand"]

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005,
      -1.0925484305920792, 0.5462742152960396)
C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658,
      0.3731763325901154, -0.4570457994644658, 1.445305721320277,
      -0.5900435899266435)

MAX_DEGREE = 3


def num_coeffs(degree: int) -> int:
  """K = (degree + 1) ** 2."""
  if not 0 <= degree <= MAX_DEGREE:
    raise ValueError(f"SH degree must be in [0, {MAX_DEGREE}], got {degree}")
  return (degree + 1) ** 2


def degree_of(k: int) -> int:
  """Degree L of a coefficient count K = (L + 1) ** 2."""
  for d in range(MAX_DEGREE + 1):
    if (d + 1) ** 2 == k:
      return d
  raise ValueError(f"{k} is not a valid SH coefficient count (1, 4, 9 or 16)")


def basis_terms(x, y, z, degree: int) -> list:
  """The (degree + 1) ** 2 basis functions as a list of arrays shaped like x.

  x, y, z are the components of unit directions. Used directly by the
  renderer so that the expansion fuses into one elementwise loop.
  """
  num_coeffs(degree)
  out = [jnp.full_like(x, C0)]
  if degree >= 1:
    out += [-C1 * y, C1 * z, -C1 * x]
  if degree >= 2:
    xx, yy, zz = x * x, y * y, z * z
    xy, yz, xz = x * y, y * z, x * z
    out += [C2[0] * xy, C2[1] * yz, C2[2] * (2.0 * zz - xx - yy),
            C2[3] * xz, C2[4] * (xx - yy)]
  if degree >= 3:
    out += [C3[0] * y * (3.0 * xx - yy),
            C3[1] * xy * z,
            C3[2] * y * (4.0 * zz - xx - yy),
            C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            C3[4] * x * (4.0 * zz - xx - yy),
            C3[5] * z * (xx - yy),
            C3[6] * x * (xx - 3.0 * yy)]
  return out


def sh_basis(dirs: jnp.ndarray, degree: int) -> jnp.ndarray:
  """Real SH basis functions at unit directions.

  Args:
    dirs: ``[..., 3]`` unit vectors (not re-normalised here).
    degree: 0..3.

  Returns:
    ``[..., (degree + 1) ** 2]``.
  """
  terms = basis_terms(dirs[..., 0], dirs[..., 1], dirs[..., 2], degree)
  return jnp.stack(terms, axis=-1)


def expand(coeffs: jnp.ndarray, x, y, z) -> jnp.ndarray:
  """An SH expansion at unit directions given by their components.

  Args:
    coeffs: ``[E, K, ...]`` coefficients (E fields: 1 shared or 2 per ear).
    x, y, z: ``[..., E', ...]`` direction components, broadcastable against
      ``coeffs[:, k]`` (the renderer passes ``[B, 2, T, F]`` against
      ``[E, T, F]``).

  Returns:
    ``sum_k coeffs[:, k] * Y_k(x, y, z)``, the broadcast shape.
  """
  terms = basis_terms(x, y, z, degree_of(coeffs.shape[1]))
  out = coeffs[:, 0] * terms[0]
  for k in range(1, len(terms)):  # K <= 16 terms, unrolled at trace time
    out = out + coeffs[:, k] * terms[k]
  return out
