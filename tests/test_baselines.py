"""Baselines on constructed cases with known answers."""

import librosa
import numpy as np
import pytest
import scipy.signal

from audiogs_jax import baselines

L = 4000


def _rand(shape, seed):
  return np.random.default_rng(seed).standard_normal(shape)


def _pose(pos, yaw=0.0):
  c, s = np.cos(yaw), np.sin(yaw)
  p = np.eye(4)
  p[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]  # rotation about the up axis
  p[:3, 3] = pos
  return p


def _scaled_set(gains, seed):
  """Train sources [M, L] and binaural = per-ear scaled sources [M, 2, L]."""
  src = _rand((len(gains), L), seed)
  g = np.asarray(gains, dtype=np.float64)  # [M, 2]
  return src, g[:, :, None] * src[:, None, :]


def test_mono_mono():
  s = _rand((3, L), 0)
  out = baselines.mono_mono(s)
  assert out.shape == (3, 2, L)
  np.testing.assert_array_equal(out[:, 0], s)
  np.testing.assert_array_equal(out[:, 1], s)


def test_energy_gains_exact():
  g_l, g_r = 0.5, 2.0
  src, binaural = _scaled_set([[g_l, g_r]] * 4, 1)
  g, ge = baselines.energy_gains(src, binaural)
  np.testing.assert_allclose(ge, [g_l, g_r], rtol=1e-12)
  np.testing.assert_allclose(g, np.sqrt((g_l ** 2 + g_r ** 2) / 2), rtol=1e-12)
  test = _rand((2, L), 2)
  np.testing.assert_allclose(baselines.stereo_energy(test, src, binaural),
                             np.stack([g_l * test, g_r * test], axis=1), rtol=1e-12)
  mono = baselines.mono_energy(test, src, binaural)
  np.testing.assert_allclose(mono, g * np.stack([test, test], axis=1), rtol=1e-12)


def test_energy_gains_average_over_clips():
  # Clips with different gains: the gain matches mean energies, not mean gains.
  src = np.ones((2, L))
  binaural = np.stack([np.stack([1.0 * src[0], 3.0 * src[0]]),
                       np.stack([3.0 * src[1], 1.0 * src[1]])])
  g, ge = baselines.energy_gains(src, binaural)
  np.testing.assert_allclose(ge, [np.sqrt(5.0), np.sqrt(5.0)])
  np.testing.assert_allclose(g, np.sqrt(5.0))


def test_nearest_pose_index_distance_and_ties():
  train = np.stack([_pose([0, 0, 0]), _pose([1, 0, 0]), _pose([1, 0, 0], yaw=0.3),
                    _pose([0, 0, 2])])
  test = np.stack([_pose([0.9, 0.1, 0], yaw=0.25),   # tie between 1 and 2 -> 2
                   _pose([0.9, 0.1, 0], yaw=-0.1),   # tie -> 1 (smaller angle)
                   _pose([0.1, 0, 1.6], yaw=2.0),    # nearest position wins over angle
                   _pose([0, 0, 0.2])])
  np.testing.assert_array_equal(baselines.nearest_pose_index(test, train), [2, 1, 3, 0])


def test_nearest_pose_gains_match_librosa_ratio_of_means():
  src = _rand((2, L), 3)
  lp = scipy.signal.firwin(31, 0.3)
  binaural = np.stack([np.stack([scipy.signal.lfilter(lp, 1, s), 0.3 * s]) for s in src])
  gains = baselines.nearest_pose_gains(src, binaural)
  assert gains.shape == (2, 2, 257)
  for m in range(2):
    s_mag = np.abs(librosa.stft(src[m], n_fft=512, hop_length=128)).mean(-1)
    for e in range(2):
      b_mag = np.abs(librosa.stft(binaural[m, e], n_fft=512, hop_length=128)).mean(-1)
      np.testing.assert_allclose(gains[m, e], b_mag / (s_mag + baselines.GAIN_EPS),
                                 rtol=2e-4, atol=1e-6)
  np.testing.assert_allclose(gains[:, 1], 0.3, rtol=1e-4)


def test_nearest_pose_reproduces_recording_at_training_pose():
  gains = [[1.0, 0.2], [0.4, 1.5], [2.0, 0.7]]
  src, binaural = _scaled_set(gains, 4)
  train_poses = np.stack([_pose([0, 0, 0]), _pose([1, 0, 0], 0.5), _pose([0, 0, 1], 1.0)])
  test_poses = np.stack([_pose([1.02, 0, 0], 0.4), _pose([0, 0.05, 0.95], 1.0)])
  out = baselines.nearest_pose(src[[1, 2]], test_poses, src, binaural, train_poses)
  assert out.shape == (2, 2, L)
  for i, m in enumerate([1, 2]):
    err = np.linalg.norm(out[i] - binaural[m]) / np.linalg.norm(binaural[m])
    assert err < 1e-4, (m, err)
  # A different test source at pose 1 gets pose 1's ear gains.
  other = _rand((1, L), 5)
  out = baselines.nearest_pose(other, test_poses[:1], src, binaural, train_poses)
  np.testing.assert_allclose(out[0], np.stack([0.4 * other[0], 1.5 * other[0]]),
                             rtol=1e-3, atol=1e-3)


def test_all_baselines_shapes():
  src, binaural = _scaled_set([[1.0, 0.5], [0.5, 1.0]], 6)
  train_poses = np.stack([_pose([0, 0, 0]), _pose([1, 0, 0])])
  test_src = _rand((3, L), 7)
  test_poses = np.stack([_pose([0.2, 0, 0]), _pose([0.8, 0, 0]), _pose([5, 0, 0])])
  out = baselines.all_baselines(test_src, test_poses, src, binaural, train_poses)
  assert tuple(out) == baselines.BASELINE_NAMES
  for name, y in out.items():
    assert y.shape == (3, 2, L), name
    assert np.all(np.isfinite(y)), name
  with pytest.raises(ValueError):
    baselines.mono_mono(np.zeros((2, 2, L)))
