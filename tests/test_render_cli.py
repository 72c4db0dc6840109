"""``python -m audiogs_jax.render``: poses, trajectories, long sources, errors."""

from __future__ import annotations

import copy
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from audiogs_jax import dataset
from audiogs_jax import dsp
from audiogs_jax import poses as poses_lib
from audiogs_jax import predict
from audiogs_jax import render as render_cli
from audiogs_jax import renderer
from audiogs_jax import workdir
from audiogs_jax.models import audiogs as audiogs_model

SR = 22050


@pytest.fixture(scope="module")
def trained(trained_workdir):
  """``(config, model, params, meta)`` of the session's smoke run."""
  return workdir.load_trained(trained_workdir)


@pytest.fixture(scope="module")
def val_poses(trained):
  config = trained[0]
  return dataset.load_split(config, "val", progress=False).poses.astype(np.float64)


def _noise(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  n = int(round(seconds * sr))
  t = np.arange(n) / sr
  return (0.1 * rng.standard_normal(n) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def source_wav(tmp_path_factory):
  path = tmp_path_factory.mktemp("render_src") / "source.wav"
  x = _noise(2.7)  # not a multiple of the 1-s clip: exercises the padding
  sf.write(str(path), x, SR, subtype="FLOAT")
  return path, x


def _read(path):
  y, sr = sf.read(str(path), always_2d=True)
  return y.T, sr


def test_pose_16_numbers(trained_workdir, source_wav, val_poses, tmp_path, capsys):
  path, x = source_wav
  pose = ",".join(repr(float(v)) for v in val_poses[0].reshape(-1))
  out = tmp_path / "sub" / "out.wav"
  assert render_cli.main(["--workdir", str(trained_workdir), "--source", str(path),
                          "--pose", pose, "--out", str(out)]) == 0
  assert str(out) in capsys.readouterr().out
  y, sr = _read(out)
  assert sr == SR and y.shape == (2, x.shape[0])
  assert np.all(np.isfinite(y)) and np.sqrt(np.mean(y ** 2)) > 1e-5
  # The same pose as a .json file gives the same output.
  pose_json = tmp_path / "pose.json"
  pose_json.write_text(json.dumps(val_poses[0].tolist()))
  out2 = tmp_path / "out2.wav"
  assert render_cli.main(["--workdir", str(trained_workdir), "--source", str(path),
                          "--pose", str(pose_json), "--out", str(out2)]) == 0
  np.testing.assert_allclose(_read(out2)[0], y, atol=1e-6)


def test_trajectory_json(trained_workdir, source_wav, val_poses, tmp_path):
  path, x = source_wav
  traj = tmp_path / "traj.json"
  traj.write_text(json.dumps({"poses": [
      {"time": 0.0, "pose": val_poses[0].tolist()},
      {"time": 2.7, "pose": val_poses[-1].reshape(-1).tolist()}]}))
  out = tmp_path / "traj.wav"
  assert render_cli.main(["--workdir", str(trained_workdir), "--source", str(path),
                          "--trajectory", str(traj), "--out", str(out),
                          "--batch-size", "2"]) == 0
  y, sr = _read(out)
  assert sr == SR and y.shape == (2, x.shape[0])
  assert np.all(np.isfinite(y)) and np.sqrt(np.mean(y ** 2)) > 1e-5


def test_trajectory_interpolation():
  a = np.eye(4)
  b = np.eye(4)
  b[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # 90 degrees about z
  b[:3, 3] = [2.0, 0.0, -4.0]
  at = poses_lib.trajectory_fn(np.array([1.0, 3.0]), np.stack([a, b]))
  p = at(np.array([0.0, 2.0, 5.0]))
  np.testing.assert_allclose(p[0], a, atol=1e-12)      # clamped before the start
  np.testing.assert_allclose(p[2], b, atol=1e-12)      # clamped after the end
  np.testing.assert_allclose(p[1, :3, 3], [1.0, 0.0, -2.0])
  c = np.cos(np.pi / 4)
  np.testing.assert_allclose(p[1, :3, :3], [[c, -c, 0], [c, c, 0], [0, 0, 1]], atol=1e-12)


@pytest.mark.parametrize("n", [1, 22049, 22050, 22051, 3 * 22050 + 17])
@pytest.mark.parametrize("align", [1, 128])
def test_chunk_plan_covers_every_sample(n, align):
  """Every sample lies under chunk weights summing to about 1 (exactly 1 with a hop
  of half a clip; ``render_long`` divides by the sum), the chunks start on the
  ``align`` grid, and the pad is one hop."""
  clip = 22050 if n > 10 else 8
  align = min(align, clip // 2)
  pad, hop, starts = predict.chunk_plan(n, clip, align=align)
  assert hop % align == 0 and clip // 2 - align < hop <= clip // 2 and pad == hop
  assert np.all(starts % align == 0) and starts[-1] + clip >= n + pad
  w = predict.chunk_weights(clip)
  total = np.zeros(int(starts[-1]) + clip)
  for s in starts:
    total[s:s + clip] += w
  if hop * 2 == clip:
    np.testing.assert_allclose(total[pad:pad + n], 1.0, atol=1e-12)
  assert 0.99 <= total[pad:pad + n].min() and total[pad:pad + n].max() <= 1.01


_FIELDS = ("xyz", "sh", "decay", "phase", "rotation")


def _replicate(params, num_freqs: int, *, frame: int = 0, freq=None):
  """Copy one frame (and, with ``freq``, one frequency bin) of the Gaussians over
  the whole grid, so that their gains do not depend on t (nor on f).

  Works on the flat ``Gaussians`` layout (index f * T + t, Gaussian axis as in
  ``gaussians.py``) and on the frames-major grid layout (fields ``[..., T, F]``)."""
  from audiogs_jax.gaussians import Gaussians
  flat = isinstance(params, Gaussians)
  t = params.xyz.shape[0] // num_freqs if flat else None
  axis = {"xyz": 0, "sh": 1, "decay": 0, "phase": 1, "rotation": 0}

  def rep(name, a):
    if flat:  # -> [..., T, F, rest] grid view, then back
      ax = axis[name]
      grid = jnp.swapaxes(a.reshape(a.shape[:ax] + (num_freqs, t) + a.shape[ax + 1:]),
                          ax, ax + 1)
    else:
      assert a.shape[-1] == num_freqs
      ax = a.ndim - 2
      grid = a
    idx = [slice(None)] * grid.ndim
    idx[ax] = slice(frame, frame + 1)
    if freq is not None:
      idx[ax + 1] = slice(freq, freq + 1)
    out = jnp.broadcast_to(grid[tuple(idx)], grid.shape)
    if flat:
      out = jnp.swapaxes(out, ax, ax + 1).reshape(a.shape)
    return out

  return params.replace(**{k: rep(k, getattr(params, k)) for k in _FIELDS
                           if getattr(params, k, None) is not None})


@pytest.mark.parametrize("freq,max_tol,rms_tol", [
    # One trained Gaussian everywhere: a flat gain and an interaural delay per ear,
    # a short filter; chunking may only differ at the crossfaded chunk edges.
    # (Seen: max 1.1e-4 of peak, RMS 1.2e-5 relative.)
    (40, 2e-3, 1e-3),
    # Frame 0 of the trained model everywhere: gains vary from bin to bin, a filter
    # as long as the STFT frame. The chunks start on the long render's frame grid
    # (hop 10,880 = 85 x 128 samples), so only the chunk edges differ.
    # (Seen: max 4.0e-3 of peak, RMS 2.1e-4 relative; 1.8e-2 and 1.4e-2 when the
    # chunks were 11,025 samples apart, off the grid.)
    (None, 2e-2, 2e-3),
])
def test_chunked_render_equals_one_long_render(trained, val_poses, freq, max_tol, rms_tol):
  """Stationary pose and t-independent gains make the model a fixed filter per
  frequency: rendering a source several clips long chunk by chunk (50% overlap,
  Hann crossfade) must equal filtering the whole source in one STFT."""
  config, model, params, meta = trained
  # The per-frame renderer (no reverberant tail: tests/test_tail.py renders one).
  config = copy.deepcopy(config)
  config.model.audiogs.tail_frames = 0
  params = params.replace(tail=None)
  rc = audiogs_model.render_config(config)
  g = _replicate(params, rc.num_freqs, frame=0, freq=freq)
  pose = val_poses[1]
  gain = np.asarray(jax.jit(renderer.gains, static_argnums=2)(
      g, jnp.asarray(pose, jnp.float32)[None], rc))[0]                    # [2, T, F]
  np.testing.assert_allclose(gain, np.broadcast_to(gain[:, :1], gain.shape),
                             rtol=1e-5, atol=1e-6 * np.abs(gain).max())
  if freq is not None:
    np.testing.assert_allclose(np.abs(gain), np.broadcast_to(np.abs(gain[:, :1, :1]),
                                                             gain.shape), rtol=1e-5)
  gain = np.swapaxes(gain, -1, -2)                                        # [2, F, T]
  x = _noise(4.3, seed=1)                  # 4.3 clips long
  fade = np.sin(np.linspace(0, np.pi / 2, 441)) ** 2
  x[:441] *= fade                          # no onset clicks at the signal's own ends
  x[-441:] *= fade[::-1]
  kw = dataset.stft_kwargs(config)
  direct = np.asarray(jax.jit(
      lambda s, gn: dsp.istft(gn[..., :1] * dsp.stft(s, **kw)[None], length=s.shape[0],
                              **kw))(jnp.asarray(x), jnp.asarray(gain)))
  chunked = predict.render_long(
      x, lambda t: np.repeat(pose[None], len(np.atleast_1d(t)), 0), model=model,
      params=g, config=config, clip_length=int(meta["clip_length"]),
      norm_factor=float(meta["norm_factor"]), batch_size=4)
  assert chunked.shape == direct.shape == (2, x.shape[0])
  peak = np.max(np.abs(direct))
  assert peak > 1e-3
  err = np.max(np.abs(chunked - direct)) / peak
  rms = np.sqrt(np.mean((chunked - direct) ** 2) / np.mean(direct ** 2))
  print(f"chunked vs one long render (freq={freq}): max |diff| / peak = {err:.2e}, "
        f"relative RMS = {rms:.2e}")
  assert err < max_tol and rms < rms_tol


def _expect_error(argv, capsys, *needles):
  with pytest.raises(SystemExit) as e:
    render_cli.main(argv)
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and "Traceback" not in err
  for n in needles:
    assert str(n) in err, (n, err)
  return err


IDENTITY = ",".join(["1", "0", "0", "0", "0", "1", "0", "0", "0", "0", "1", "0",
                     "0", "0", "0", "1"])


def test_wrong_rate_is_resampled_with_a_warning(trained_workdir, tmp_path):
  src = tmp_path / "src16k.wav"
  x = _noise(1.5, sr=16000, seed=2)
  sf.write(str(src), x, 16000)
  out = tmp_path / "o.wav"
  with pytest.warns(UserWarning, match="16000 Hz") as rec:
    assert render_cli.main(["--workdir", str(trained_workdir), "--source", str(src),
                            "--pose", IDENTITY, "--out", str(out)]) == 0
  assert any(str(src) in str(w.message) and "resampl" in str(w.message) for w in rec)
  y, sr = _read(out)
  assert sr == SR and y.shape == (2, round(x.shape[0] * SR / 16000))


def test_stereo_source_is_mixed_down_with_a_warning(trained_workdir, tmp_path):
  src = tmp_path / "stereo.wav"
  x = _noise(1.2, seed=3)
  sf.write(str(src), np.stack([x, -0.5 * x], 1), SR)
  out = tmp_path / "o.wav"
  with pytest.warns(UserWarning, match="mixing down"):
    assert render_cli.main(["--workdir", str(trained_workdir), "--source", str(src),
                            "--pose", IDENTITY, "--out", str(out)]) == 0
  assert _read(out)[0].shape == (2, x.shape[0])


def test_nan_source_is_refused(trained_workdir, tmp_path, capsys):
  src = tmp_path / "nan.wav"
  x = _noise(1.0, seed=4)
  x[1234] = np.nan
  sf.write(str(src), x, SR, subtype="FLOAT")
  out = tmp_path / "o.wav"
  _expect_error(["--workdir", str(trained_workdir), "--source", str(src), "--pose",
                 IDENTITY, "--out", str(out)], capsys, src, "NaN")
  assert not out.exists()


def test_missing_source(trained_workdir, tmp_path, capsys):
  _expect_error(["--workdir", str(trained_workdir), "--source", str(tmp_path / "no.wav"),
                 "--pose", IDENTITY, "--out", str(tmp_path / "o.wav")], capsys,
                tmp_path / "no.wav", "missing file")


@pytest.mark.parametrize("pose,needle", [
    ("1,2,3", "expected 16 numbers"),
    ("2,0,0,0, 0,1,0,0, 0,0,1,0, 0,0,0,1", "not a rigid transform"),
])
def test_bad_pose(trained_workdir, source_wav, tmp_path, capsys, pose, needle):
  _expect_error(["--workdir", str(trained_workdir), "--source", str(source_wav[0]),
                 "--pose", pose, "--out", str(tmp_path / "o.wav")], capsys, "--pose", needle)


def test_bad_trajectory(trained_workdir, source_wav, tmp_path, capsys):
  traj = tmp_path / "t.json"
  traj.write_text(json.dumps({"poses": [{"time": 0.0}]}))
  _expect_error(["--workdir", str(trained_workdir), "--source", str(source_wav[0]),
                 "--trajectory", str(traj), "--out", str(tmp_path / "o.wav")], capsys,
                traj, "poses[0]")


def test_no_checkpoint(trained_workdir, source_wav, tmp_path, capsys):
  args = ["--source", str(source_wav[0]), "--pose", IDENTITY, "--out",
          str(tmp_path / "o.wav")]
  _expect_error(["--workdir", str(tmp_path / "absent"), *args], capsys,
                tmp_path / "absent")
  empty = tmp_path / "empty"
  empty.mkdir()
  _expect_error(["--workdir", str(empty), *args], capsys, empty / "config.json")
  shutil.copy(trained_workdir / "config.json", empty / "config.json")
  _expect_error(["--workdir", str(empty), *args], capsys, empty / "checkpoints")
  assert not (tmp_path / "o.wav").exists()


def test_help(help_outputs):
  r = help_outputs["render"]
  assert r.returncode == 0, r.stderr
  for opt in ("--workdir", "--source", "--pose", "--trajectory", "--out"):
    assert opt in r.stdout
